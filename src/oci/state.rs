//! Container state on disk: one directory per container under `--root`, holding `state.json`
//! (written atomically) and, between create and start, `exec.fifo`.
//!
//! ```text
//!             create              start               process exits / kill
//!  (none) ──► Creating ──► Created ──────► Running ─────────────────────────► Stopped
//!                │            │             pause ↓ ↑ resume                      │
//!                │            │                Paused                             │
//!                └─ failure ──┴──────────── kill ───────────────────────────────►│
//!                 (rolled back)                                  delete ──► (none)
//! ```
//! The status is derived, not stored: a dead (or reused) pid means Stopped, a present fifo
//! means Created. A per-container `flock` on the directory serialises commands.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use crate::linux::cgroup::Dirs;
use crate::linux::{SysError, proc};

/// The runtime-spec version berth implements.
pub const OCI_VERSION: &str = "1.2.0";
/// Version of the `state.json` format.
pub const STATE_VERSION: u32 = 1;
/// Name of the fifo that holds a created container until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// A container's status (runtime-spec names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What berth records about a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// Its start time (clock ticks since boot): guards against pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub cgroup: Dirs,
    /// cgroup directories berth created for this container (removed on delete).
    #[serde(default)]
    pub cgroup_created: Vec<PathBuf>,
    /// Namespaces the container does not share with the host (`pid`, `network`, ...): what
    /// `exec` joins.
    pub namespaces: Vec<String>,
    /// Hooks still to run after create (poststart, poststop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

impl Record {
    /// The state JSON hooks get on stdin, with `status` as given.
    pub fn hook_state(&self, status: Status) -> String {
        serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status,
            "pid": self.pid,
            "bundle": self.bundle,
            "annotations": self.annotations,
        })
        .to_string()
    }
}

/// The runtime-spec state of a container, as `berth state` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The state directory tree under `--root`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Where compiled seccomp programs are cached, if not under `root` (shared by roots).
    seccomp_cache: Option<PathBuf>,
}

/// An exclusively or shared-locked container directory.
pub struct Locked {
    pub id: String,
    pub dir: PathBuf,
    _lock: Flock<OwnedFd>,
}

/// A container id must be a safe single path component.
pub fn validate_id(id: &str) -> Result<()> {
    // names starting with '.' are berth's own files under the root (the seccomp cache)
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 1024
        && !id.chars().all(|c| c == '.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

impl Store {
    /// Where compiled seccomp programs are cached, keyed by the filter's hash.
    pub fn seccomp_cache(&self) -> PathBuf {
        self.seccomp_cache
            .clone()
            .unwrap_or_else(|| self.root.join(".seccomp-cache"))
    }

    /// The store at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store {
            root: root.into(),
            seccomp_cache: None,
        }
    }

    /// Cache seccomp programs in `dir` instead of under the root.
    pub fn with_seccomp_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.seccomp_cache = Some(dir.into());
        self
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_dir(id: &str, dir: &Path, arg: FlockArg) -> Result<Flock<OwnedFd>> {
        let fd = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ENOENT => Error::NotFound(id.to_string()),
            e => SysError::new(format!("open state dir {}", dir.display()), e).into(),
        })?;
        Flock::lock(fd, arg)
            .map_err(|(_, e)| SysError::new(format!("lock {}", dir.display()), e).into())
    }

    /// Claim a new container id: its directory is created and locked exclusively.
    pub fn reserve(&self, id: &str) -> Result<Locked> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| SysError::new(format!("create state root {}", self.root.display()), e))?;
        let dir = self.root.join(id);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()));
            }
            Err(e) => return Err(SysError::new(format!("create {}", dir.display()), e).into()),
        }
        let lock = Self::lock_dir(id, &dir, FlockArg::LockExclusive)?;
        Ok(Locked {
            id: id.to_string(),
            dir,
            _lock: lock,
        })
    }

    /// Lock an existing container (exclusive for changes, shared for reads) and read its record.
    pub fn open(&self, id: &str, exclusive: bool) -> Result<(Locked, Record)> {
        validate_id(id)?;
        let dir = self.root.join(id);
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        let lock = Self::lock_dir(id, &dir, arg)?;
        let locked = Locked {
            id: id.to_string(),
            dir,
            _lock: lock,
        };
        let rec = locked.read()?;
        Ok((locked, rec))
    }

    /// Ids of all containers, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(SysError::new(format!("read {}", self.root.display()), e).into());
            }
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl Locked {
    /// Read `state.json`. A directory without one belongs to a create that failed or is still
    /// running: such a container does not exist (yet).
    pub fn read(&self) -> Result<Record> {
        let path = self.dir.join("state.json");
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::NotFound(self.id.clone()));
            }
            Err(e) => return Err(SysError::new(format!("read {}", path.display()), e).into()),
        };
        let rec: Record = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
            id: self.id.clone(),
            msg: e.to_string(),
        })?;
        if rec.version > STATE_VERSION {
            return Err(Error::Corrupt {
                id: self.id.clone(),
                msg: format!("written by a newer berth (state version {})", rec.version),
            });
        }
        Ok(rec)
    }

    /// Write `state.json` atomically: a reader sees the old or the new record, never a part.
    /// No fsync: the state describes processes and means nothing after a reboot.
    pub fn write(&self, rec: &Record) -> Result<()> {
        let path = self.dir.join("state.json");
        let text = serde_json::to_vec(rec).expect("state serialises");
        crate::linux::fs::write_atomic_volatile(&path, &text)
            .map_err(|e| SysError::new(format!("write {}", path.display()), e).into())
    }

    /// The status of the container, derived from the kernel.
    pub fn status(&self, rec: &Record) -> Status {
        if !proc::is_alive(rec.pid, rec.pid_start) {
            Status::Stopped
        } else if self.dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else if crate::linux::cgroup::freeze::is_frozen(&rec.cgroup) {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The runtime-spec state.
    pub fn state(&self, rec: &Record) -> State {
        let status = self.status(rec);
        State {
            oci_version: OCI_VERSION.to_string(),
            id: rec.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                rec.pid
            },
            bundle: rec.bundle.clone(),
            rootfs: rec.rootfs.clone(),
            created: rec.created.clone(),
            owner: String::new(),
            annotations: rec.annotations.clone(),
        }
    }

    /// The lock's raw fd, for forked children that must close it without unlocking.
    pub(crate) fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self._lock.as_raw_fd()
    }

    /// Remove the container's directory (and so the container).
    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.dir)
            .or_else(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| SysError::new(format!("remove {}", self.dir.display()), e).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for ok in ["a", "abc-1_2.3+x", "ctr.1"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", ".cache", "a/b", "a b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reserve_is_exclusive_and_write_is_readable() {
        let root = std::env::temp_dir().join(format!("berth-state-unit-{}", std::process::id()));
        let store = Store::new(&root);
        let l = store.reserve("c1").unwrap();
        assert!(matches!(store.reserve("c1"), Err(Error::AlreadyExists(_))));
        assert!(matches!(l.read(), Err(Error::NotFound(_))));
        let rec = Record {
            version: STATE_VERSION,
            id: "c1".into(),
            pid: std::process::id() as i32,
            pid_start: proc::stat(std::process::id() as i32).unwrap().start_time,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            annotations: BTreeMap::new(),
            cgroup: Dirs::V2("/sys/fs/cgroup/x".into()),
            cgroup_created: vec![],
            namespaces: vec!["pid".into()],
            hooks: None,
        };
        l.write(&rec).unwrap();
        assert_eq!(l.read().unwrap(), rec);
        assert_eq!(l.status(&rec), Status::Running);
        l.remove().unwrap();
        assert_eq!(store.ids().unwrap(), Vec::<String>::new());
        fs::remove_dir_all(&root).unwrap();
    }
}
