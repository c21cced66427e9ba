//! `start`: let a created container's init exec the user's program, by writing one byte into
//! the exec fifo the init waits on.

use std::io::Write;
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::error::{Error, Result};
use super::state::{EXEC_FIFO, Status, Store};
use crate::linux::SysError;

/// `berth start`. Returns warnings (failed poststart hooks).
pub fn start(store: &Store, id: &str) -> Result<Vec<String>> {
    let (locked, rec) = store.open(id, true)?;
    let status = locked.status(&rec);
    if status != Status::Created {
        return Err(Error::State {
            id: id.to_string(),
            status,
            what: "only a created container can be started",
        });
    }
    let fifo = locked.dir.join(EXEC_FIFO);
    // Non-blocking: with no reader (the init died) this fails at once instead of hanging.
    let fd = nix::fcntl::open(
        &fifo,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        nix::errno::Errno::ENXIO => {
            Error::Init("container init is not waiting to be started (it exited)".into())
        }
        e => SysError::new(format!("open {}", fifo.display()), e).into(),
    })?;
    let mut f = std::fs::File::from(fd);
    f.write_all(b"0")
        .map_err(|e| SysError::new(format!("write {}", fifo.display()), e))?;
    std::fs::remove_file(&fifo)
        .map_err(|e| SysError::new(format!("remove {}", fifo.display()), e))?;
    // Started: the lock goes now. The init may still run startContainer hooks (for as long
    // as they take): `delete --force` and `kill` must not wait for them.
    drop(locked);
    // The init's end of the fifo is close-on-exec: when it is gone (POLLERR on ours), the
    // program has been exec'd (or the init died), so poststart runs after the program started.
    let mut fds = [PollFd::new(f.as_fd(), PollFlags::empty())];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_)
                if fds[0]
                    .revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)) =>
            {
                break;
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SysError::new("wait for the container's program", e).into()),
        }
    }
    Ok(poststart(&rec))
}

/// poststart hooks: after the program started; failures are warnings.
pub(crate) fn poststart(rec: &super::state::Record) -> Vec<String> {
    match rec.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        Some(list) if !list.is_empty() => {
            super::hooks::run_all_warn("poststart", list, &rec.hook_state(Status::Running))
        }
        _ => Vec::new(),
    }
}
