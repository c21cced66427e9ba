//! `delete`: stop what is left of the container (with `force`, or when it was only created),
//! remove its cgroup and its state. Nothing of it remains afterwards.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::error::{Error, Result};
use super::kill::{signal_all, signal_init};
use super::state::{Record, Status, Store};
use crate::linux::{SysError, cgroup, proc, sys};

/// `berth delete`. Returns warnings (failed poststop hooks).
pub fn delete(store: &Store, id: &str, force: bool) -> Result<Vec<String>> {
    let (locked, rec) = match store.open(id, true) {
        Ok(x) => x,
        // A directory without state.json is what a crashed create leaves: with --force, clean it.
        Err(Error::NotFound(_)) if force => {
            let dir = store.root().join(id);
            if super::state::validate_id(id).is_ok() && dir.is_dir() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let status = locked.status(&rec);
    match status {
        Status::Running | Status::Paused if !force => {
            return Err(Error::State {
                id: id.to_string(),
                status,
                what: "cannot delete a running container (stop it, or use --force)",
            });
        }
        Status::Stopped => {}
        _ => {
            signal_init(&rec, libc::SIGKILL)?;
            if status == Status::Paused {
                // frozen processes act on the SIGKILL once thawed
                let _ = signal_all(&rec, libc::SIGKILL);
                crate::linux::cgroup::freeze::set_frozen(&rec.cgroup, false)?;
            }
            wait_gone(&rec)?;
        }
    }
    // Without a pid namespace, processes can outlive the init: kill what is left in the cgroup.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = cgroup::procs(&rec.cgroup)?;
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(SysError::other(
                format!("delete container {id}"),
                format!("processes {left:?} do not die"),
            )
            .into());
        }
        signal_all(&rec, libc::SIGKILL)?;
        std::thread::sleep(Duration::from_millis(5));
    }
    cgroup::remove(&rec.cgroup, &rec.cgroup_created)?;
    locked.remove()?;
    Ok(
        match rec.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
            Some(list) if !list.is_empty() => {
                super::hooks::run_all_warn("poststop", list, &rec.hook_state(Status::Stopped))
            }
            _ => Vec::new(),
        },
    )
}

/// Wait until the init has exited (up to 10 s).
fn wait_gone(rec: &Record) -> Result<()> {
    let Ok(pidfd) = sys::pidfd_open(rec.pid) else {
        return Ok(()); // already gone
    };
    if !proc::is_alive(rec.pid, rec.pid_start) {
        return Ok(());
    }
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(10_000u16)) {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(SysError::other(
            format!("kill {}", rec.pid),
            "process did not exit within 10s",
        )
        .into()),
        Err(e) => Err(SysError::new("wait for container init", e).into()),
    }
}
