//! The kernel side of berth: namespaces, mounts, cgroups, process attributes, terminals.
//!
//! Functions here take kernel interfaces (a cgroup mount point, a `/proc`, a directory fd) as
//! arguments, so unit tests can point them at temporary directories. All `unsafe` code is in
//! [`sys`].

pub mod cgroup;
pub mod channel;
pub mod console;
pub mod fs;
pub mod loopdev;
pub mod mount;
pub mod mountinfo;
pub mod proc;
pub mod process;
pub mod seccomp;
pub mod signal;
pub mod sys;

/// A failed kernel operation, named by the step that failed and the object it acted on, e.g.
/// `mount proc on /run/x/rootfs/proc: Operation not permitted (os error 1)`.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {err}")]
pub struct SysError {
    /// What berth was doing, with its object.
    pub step: String,
    /// What the kernel answered.
    pub err: std::io::Error,
}

impl SysError {
    /// A failure with an errno.
    pub fn new(step: impl Into<String>, err: impl Into<std::io::Error>) -> Self {
        SysError {
            step: step.into(),
            err: err.into(),
        }
    }

    /// A failure that is not an errno (a malformed kernel file, a missing controller).
    pub fn other(step: impl Into<String>, msg: impl Into<String>) -> Self {
        SysError {
            step: step.into(),
            err: std::io::Error::other(msg.into()),
        }
    }

    /// The errno, if the failure came from a syscall.
    pub fn errno(&self) -> Option<i32> {
        self.err.raw_os_error()
    }
}

/// Result of a kernel operation.
pub type Result<T> = std::result::Result<T, SysError>;

/// Attach the name of a step to a failed syscall without allocating on success.
pub trait Step<T> {
    /// Name the failed step; `f` runs only on failure.
    fn step<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> Step<T> for nix::Result<T> {
    fn step<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| SysError::new(f(), std::io::Error::from(e)))
    }
}

impl<T> Step<T> for std::io::Result<T> {
    fn step<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| SysError::new(f(), e))
    }
}
