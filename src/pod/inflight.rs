//! Operations in flight: a pod's or a container's creation and a pod's removal each hold a
//! lock on a marker in `<root>/inflight/` for as long as they run, and remove it when done. A
//! marker whose lock is free belongs to a process that was killed: [`Runtime::repair`] (run by
//! every `berth pod` command and by `berth serve` before it serves; a program embedding the
//! library calls it) rolls its creation back or finishes its removal. The check costs one
//! directory read when nothing is in flight.

use std::fs;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

use super::Runtime;
use super::error::{Result, io, sys};

/// What a marker stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The creation of pod `id`.
    CreatePod(String),
    /// The creation of container `ctr` of pod `pod`.
    CreateContainer { pod: String, ctr: String },
    /// The removal of pod `id`.
    RemovePod(String),
}

impl Op {
    fn name(&self) -> String {
        match self {
            Op::CreatePod(id) => format!("create-pod-{id}"),
            Op::CreateContainer { pod, ctr } => format!("create-ctr-{pod}-{ctr}"),
            Op::RemovePod(id) => format!("remove-pod-{id}"),
        }
    }

    fn parse(name: &str) -> Option<Op> {
        if let Some(id) = name.strip_prefix("create-pod-") {
            return Some(Op::CreatePod(id.into()));
        }
        if let Some(rest) = name.strip_prefix("create-ctr-") {
            let (pod, ctr) = rest.split_once('-')?;
            return Some(Op::CreateContainer {
                pod: pod.into(),
                ctr: ctr.into(),
            });
        }
        name.strip_prefix("remove-pod-")
            .map(|id| Op::RemovePod(id.into()))
    }

    /// Does this operation concern the object `id` (a pod or a container)?
    pub fn concerns(&self, id: &str) -> bool {
        match self {
            Op::CreatePod(p) | Op::RemovePod(p) => p == id,
            Op::CreateContainer { pod, ctr } => pod == id || ctr == id,
        }
    }
}

/// A held marker; [`Marker::done`] removes it, dropping it without `done` leaves it for
/// [`Runtime::repair`] (a creation that failed has rolled itself back and calls `done`).
pub struct Marker {
    path: PathBuf,
    _lock: Flock<fs::File>,
}

impl Marker {
    /// The operation is over: remove the marker (while still holding its lock).
    pub fn done(self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Runtime {
    fn inflight_dir(&self) -> PathBuf {
        self.store.root().join("inflight")
    }

    /// Mark `op` as in flight. The marker appears already locked and naming its owner (a
    /// locked temporary file linked into place), so that no other berth can take it for
    /// abandoned. The lock is inherited by the programs this process runs (CNI plugins and
    /// theirs): if it is killed, the marker stays locked until they are done too, so that a
    /// rollback never races a plugin still adding what it would remove. (The pod monitor
    /// closes it at once.) A marker of the same operation left by a killed berth is taken
    /// over; one held by a live berth is refused.
    pub(crate) fn begin(&self, op: &Op) -> Result<Marker> {
        let dir = self.inflight_dir();
        fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let path = dir.join(op.name());
        let tmp = dir.join(format!(".{}.{}", op.name(), std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(io(format!("create {}", tmp.display())))?;
        nix::fcntl::fcntl(
            &f,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(sys(format!("let children inherit {}", tmp.display())))?;
        let owner = owner_text(std::process::id() as i32);
        let _ = std::io::Write::write_all(&mut f, owner.as_bytes());
        let lock = Flock::lock(f, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| sys(format!("lock {}", tmp.display()))(e))?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Marker { path, _lock: lock }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                drop(lock);
                let f = fs::File::open(&path).map_err(io(format!("open {}", path.display())))?;
                match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                    Ok(lock) if same_file(&lock, &path) => {
                        let _ = fs::write(&path, owner);
                        Ok(Marker { path, _lock: lock })
                    }
                    _ => Err(super::Error::Precondition(format!(
                        "another berth is busy with this ({}): try again when it is done",
                        op.name()
                    ))),
                }
            }
            Err(e) => Err(io(format!("create {}", path.display()))(e)),
        }
    }

    /// The operations in flight whose process is alive (their markers are locked).
    pub(crate) fn in_flight(&self) -> Vec<Op> {
        self.markers(false).into_iter().map(|(op, _)| op).collect()
    }

    /// Markers with their lock state: `abandoned` asks for those whose owner is gone, each
    /// returned locked by this process.
    fn markers(&self, abandoned: bool) -> Vec<(Op, Option<Marker>)> {
        let Ok(rd) = fs::read_dir(self.inflight_dir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // a temporary marker of a berth killed before it linked it
            if let Some(pid) = name.strip_prefix('.').and_then(|n| n.rsplit_once('.')) {
                let gone = pid
                    .1
                    .parse::<i32>()
                    .is_ok_and(|p| crate::linux::proc::stat(p).is_none());
                if gone && abandoned {
                    let _ = fs::remove_file(e.path());
                }
                continue;
            }
            let Some(op) = Op::parse(&name) else {
                continue;
            };
            let Ok(f) = fs::File::open(e.path()) else {
                continue;
            };
            let lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => Some(lock),
                // its owner is dead: what it ran still holds the lock, for a moment
                Err((f, _)) if abandoned && !owner_alive(&e.path()) => wait_for_lock(f),
                Err(_) => None,
            };
            match lock {
                Some(lock) if abandoned => out.push((
                    op,
                    Some(Marker {
                        path: e.path(),
                        _lock: lock,
                    }),
                )),
                Some(_) => {}
                None if !abandoned => out.push((op, None)),
                None => {}
            }
        }
        out
    }

    /// Roll back what killed creators left and finish what killed removals began. Returns
    /// what it did, one line each.
    pub fn repair(&self) -> Vec<String> {
        let mut done = Vec::new();
        for (op, marker) in self.markers(true) {
            let Some(marker) = marker else { continue };
            // the file may have been removed by its owner just before we locked it (and
            // another made under its name)
            if !same_file(&marker._lock, &marker.path) {
                continue;
            }
            match &op {
                Op::CreatePod(id) => {
                    // a whole pod (`pod run` holds the marker until its last container is
                    // made) is removed as pods are; a half-made sandbox is rolled back
                    let dir = self.pod_dir(id);
                    if !dir.record().exists() || self.remove_pod(id, true).is_err() {
                        self.rollback_pod(&dir);
                    }
                    self.release_names(id);
                    done.push(format!("rolled back the creation of pod {id}"));
                }
                Op::CreateContainer { pod, ctr } => {
                    let c = self.pod_dir(pod).container(ctr);
                    let _ = self.images.unmount(&c.bundle());
                    let _ = fs::remove_dir_all(&c.0);
                    self.release_names(ctr);
                    done.push(format!("rolled back the creation of container {ctr}"));
                }
                Op::RemovePod(id) => {
                    match self.remove_pod(id, true) {
                        Ok(()) | Err(super::Error::NotFound(_)) => {}
                        Err(e) => {
                            done.push(format!("could not finish removing pod {id}: {e}"));
                            continue;
                        }
                    }
                    done.push(format!("finished removing pod {id}"));
                }
            }
            marker.done();
        }
        done
    }
}

/// Is the locked file still the one at `path`?
fn same_file(f: &fs::File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// A marker's content: its owner's pid and start time.
fn owner_text(pid: i32) -> String {
    let start = crate::linux::proc::stat(pid).map_or(0, |s| s.start_time);
    format!("{pid} {start}")
}

/// Does the process that wrote the marker at `path` still run?
fn owner_alive(path: &std::path::Path) -> bool {
    let text = fs::read_to_string(path).unwrap_or_default();
    let pid: i32 = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // no owner written (the moment between create and write): treat it as alive
    pid == 0 || owner_text(pid) == text.trim()
}

/// Wait (up to 10 s) for the lock the dead owner's leftover children hold.
fn wait_for_lock(mut f: fs::File) -> Option<Flock<fs::File>> {
    let t = std::time::Instant::now();
    loop {
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Some(l),
            Err((back, _)) if t.elapsed() < std::time::Duration::from_secs(10) => f = back,
            Err(_) => return None,
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in [
            Op::CreatePod("abc".into()),
            Op::CreateContainer {
                pod: "p1".into(),
                ctr: "c2".into(),
            },
            Op::RemovePod("xyz".into()),
        ] {
            assert_eq!(Op::parse(&op.name()), Some(op));
        }
        assert_eq!(Op::parse("junk"), None);
        assert!(
            Op::CreateContainer {
                pod: "p".into(),
                ctr: "c".into()
            }
            .concerns("c")
        );
    }
}
