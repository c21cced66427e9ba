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

/// Create the pod's cgroup with its limits; returns the directories created (for removal).
pub fn create(path: &str, r: Option<&Resources>) -> Result<Vec<PathBuf>> {
    let layout = Layout::detect()?;
    let d = layout.resolve(Path::new(path));
    let created = cgroup::create(&layout, &d)?;
    if let Some(r) = r {
        // the same conversion as a container's limits: runtime-spec resources, then files
        let written = crate::oci::resources::writes(&r.to_oci(), layout.is_v2(), &[])
            .map_err(|e| Error::Invalid(format!("pod resources: {e}")))
            .and_then(|w| cgroup::apply(&d, &w).map_err(Error::from));
        if let Err(e) = written {
            let _ = cgroup::remove(&d, &created);
            return Err(e);
        }
    }
    Ok(created)
}

/// Remove the pod's cgroup (and parents it created that nothing else uses).
pub fn remove(path: &str, created: &[PathBuf]) -> Result<()> {
    let Some((_, d)) = dirs(path) else {
        return Ok(());
    };
    cgroup::remove(&d, created)?;
    Ok(())
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
