//! `kill`: signal the container's init (through a pidfd, immune to pid reuse), or with `all`
//! every process in its cgroup.

use std::os::fd::AsFd;

use nix::sys::signal::kill as kill_pid;
use nix::unistd::Pid;

use super::error::{Error, Result};
use super::state::{Record, Status, Store};
use crate::linux::{SysError, cgroup, proc, sys};

/// `berth kill`.
pub fn kill(store: &Store, id: &str, signal: i32, all: bool) -> Result<()> {
    let (locked, rec) = store.open(id, false)?;
    let status = locked.status(&rec);
    if status == Status::Stopped {
        return Err(Error::State {
            id: id.to_string(),
            status,
            what: "container not running",
        });
    }
    if all {
        signal_all(&rec, signal)
    } else {
        signal_init(&rec, signal)
    }
}

/// Signal the init if it is still the process we started.
pub(crate) fn signal_init(rec: &Record, signal: i32) -> Result<()> {
    let pidfd = match sys::pidfd_open(rec.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => return Err(SysError::new(format!("pidfd_open {}", rec.pid), e).into()),
    };
    // The pidfd pins the process; check it is ours (not a reused pid) before signalling.
    if !proc::is_alive(rec.pid, rec.pid_start) {
        return Ok(());
    }
    match sys::pidfd_send_signal(pidfd.as_fd(), signal) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(SysError::new(format!("send signal {signal} to {}", rec.pid), e).into()),
    }
}

/// Signal every process of the container's cgroup.
pub(crate) fn signal_all(rec: &Record, signal: i32) -> Result<()> {
    let sig = nix::sys::signal::Signal::try_from(signal).ok();
    for pid in cgroup::procs(&rec.cgroup)? {
        match sig {
            Some(s) => {
                let _ = kill_pid(Pid::from_raw(pid), s);
            }
            None => {
                // realtime signals have no nix::Signal
                if let Ok(fd) = sys::pidfd_open(pid) {
                    let _ = sys::pidfd_send_signal(fd.as_fd(), signal);
                }
            }
        }
    }
    Ok(())
}
