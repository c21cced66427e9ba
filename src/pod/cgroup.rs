//! The pod's cgroup (`<parent>/pod-<id>`, containers below it), its limits, and what the
//! monitor reads from its containers' cgroups (OOM kills, processes).

use std::fs;
use std::path::{Path, PathBuf};

use crate::linux::cgroup::{self, Dirs, Layout};

use super::config::Resources;
use super::error::{Error, Result};

/// Default parent of pod cgroups.
pub const DEFAULT_PARENT: &str = "/berth";

/// Absolute cgroupsPath of a pod.
pub fn pod_path(parent: Option<&str>, pod_id: &str) -> String {
    let parent = parent.unwrap_or(DEFAULT_PARENT).trim_end_matches('/');
    format!("{parent}/pod-{pod_id}")
}

/// Absolute cgroupsPath of a container of a pod.
pub fn container_path(pod_cgroup: &str, ctr_id: &str) -> String {
    format!("{pod_cgroup}/{ctr_id}")
}

pub(crate) fn dirs(path: &str) -> Option<(Layout, Dirs)> {
    let layout = Layout::detect().ok()?;
    let dirs = layout.resolve(Path::new(path));
    Some((layout, dirs))
}

/// Host-wide bookkeeping of the parent cgroups berth made for pods (a tmpfs, like cgroups:
/// both go with a reboot): `lock` orders making parents (shared) against removing them
/// (exclusive); `parents` lists them, one per line.
const PARENTS_DIR: &str = "/run/berth-cgroups";

fn parents_lock(exclusive: bool) -> Option<nix::fcntl::Flock<fs::File>> {
    fs::create_dir_all(PARENTS_DIR).ok()?;
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(PARENTS_DIR).join("lock"))
        .ok()?;
    let arg = if exclusive {
        nix::fcntl::FlockArg::LockExclusive
    } else {
        nix::fcntl::FlockArg::LockShared
    };
    nix::fcntl::Flock::lock(f, arg).ok()
}

fn registered_parents() -> Vec<PathBuf> {
    fs::read_to_string(Path::new(PARENTS_DIR).join("parents"))
        .unwrap_or_default()
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// Create the pod's cgroup with its limits; returns the directories created (for removal).
/// Parents it made are registered host-wide, so that the last pod below one removes it.
pub fn create(path: &str, r: Option<&Resources>) -> Result<Vec<PathBuf>> {
    let layout = Layout::detect()?;
    let d = layout.resolve(Path::new(path));
    // shared: pods are made at once; a removal of their parent waits
    let _lock = parents_lock(false);
    let created = cgroup::create(&layout, &d)?;
    let leaves = d.all();
    let parents: String = created
        .iter()
        .filter(|p| !leaves.contains(&p.as_path()))
        .map(|p| format!("{}\n", p.display()))
        .collect();
    if !parents.is_empty() {
        // one short O_APPEND write: concurrent registrations do not interleave
        let _ = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(PARENTS_DIR).join("parents"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, parents.as_bytes()));
    }
    if let Some(r) = r {
        // the same conversion as a container's limits: runtime-spec resources, then files
        let written = crate::oci::resources::writes(&r.to_oci(), layout.is_v2(), &[])
            .map_err(|e| Error::Invalid(format!("pod resources: {e}")))
            .and_then(|w| cgroup::apply(&d, &w).map_err(Error::from));
        if let Err(e) = written {
            let _ = cgroup::remove(&d, &[]);
            return Err(e);
        }
    }
    Ok(created)
}

/// Remove the pod's cgroup, then every parent berth made above it that no pod uses any more
/// (whoever made it: the last pod out removes it).
pub fn remove(path: &str, created: &[PathBuf]) -> Result<()> {
    if let Some((_, d)) = dirs(path) {
        cgroup::remove(&d, &[])?;
    }
    remove_parents(path, created);
    Ok(())
}

/// Best effort for a rollback: the directories a creation made, then unused parents.
pub fn remove_created(created: &[PathBuf]) -> Result<()> {
    for d in created.iter().rev() {
        let _ = fs::remove_dir(d);
    }
    remove_parents("", created);
    Ok(())
}

/// Remove registered parents that are ancestors of `path` (or in `created`) and empty,
/// deepest first, and unregister what is gone.
fn remove_parents(path: &str, created: &[PathBuf]) {
    let Some(_lock) = parents_lock(true) else {
        return;
    };
    let leaves: Vec<PathBuf> = dirs(path)
        .map(|(_, d)| d.all().iter().map(|p| p.to_path_buf()).collect())
        .unwrap_or_default();
    let mut parents = registered_parents();
    parents.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut kept = Vec::new();
    for p in parents {
        let ours = leaves.iter().any(|l| l.starts_with(&p)) || created.contains(&p);
        if ours {
            match fs::remove_dir(&p) {
                Ok(()) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => {}
            }
        } else if !p.exists() {
            continue;
        }
        kept.push(p);
    }
    let text: String = kept.iter().map(|p| format!("{}\n", p.display())).collect();
    let _ =
        crate::linux::fs::write_atomic(&Path::new(PARENTS_DIR).join("parents"), text.as_bytes());
}

/// How many times the kernel's OOM killer killed in this cgroup (0 if unknown).
pub fn oom_kills(path: &str) -> u64 {
    let Some((layout, d)) = dirs(path) else {
        return 0;
    };
    let file = if layout.is_v2() {
        d.all().first().map(|p| p.join("memory.events"))
    } else {
        d.v1_dir("memory").map(|p| p.join("memory.oom_control"))
    };
    let Some(text) = file.and_then(|f| fs::read_to_string(f).ok()) else {
        return 0;
    };
    text.lines()
        .find_map(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Processes in the cgroup.
pub fn procs(path: &str) -> Vec<i32> {
    dirs(path)
        .and_then(|(_, d)| cgroup::procs(&d).ok())
        .unwrap_or_default()
}
