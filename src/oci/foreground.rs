//! Waiting in the foreground for a container process (`run`, `exec` without `--detach`):
//! forward signals to it, copy a terminal between our stdio and its pty, and turn its end into
//! an exit code (128+signal when killed, as shells do).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::linux::{Result, Step, console};

/// Signals we catch and pass on to the container process (SIGCHLD and SIGWINCH we handle).
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGPWR,
];

/// Signals blocked and read through a signalfd. Create it before cloning the child, so that no
/// signal is lost in between (the child unblocks its copy first thing).
pub struct Foreground {
    sfd: SignalFd,
    old: SigSet,
}

impl Foreground {
    /// Block the forwarded signals, SIGCHLD and SIGWINCH.
    pub fn block() -> Result<Foreground> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(*s);
        }
        set.add(Signal::SIGCHLD);
        set.add(Signal::SIGWINCH);
        let mut old = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .step(|| "block signals".into())?;
        let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .step(|| "create signalfd".into())?;
        Ok(Foreground { sfd, old })
    }

    /// Wait for `pid` to end; proxy `tty` (the pty master) if given. Returns the exit code.
    pub fn wait(&self, pid: i32, tty: Option<OwnedFd>) -> Result<i32> {
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let (stdin, stdout) = (stdin.as_fd(), stdout.as_fd());
        let _raw = tty.as_ref().and_then(|_| console::RawMode::enter(stdin));
        if let Some(m) = &tty {
            resize(stdin, m.as_fd());
        }
        let mut stdin_open = tty.is_some();
        let mut master_open = tty.is_some();
        loop {
            let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            if let (Some(m), true) = (&tty, master_open) {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            let stdin_slot = fds.len();
            if stdin_open {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(crate::linux::SysError::new("poll", e)),
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (sig_ready, master_ready, stdin_ready) = (
                ready(0),
                master_open && ready(1),
                stdin_open && ready(stdin_slot),
            );
            drop(fds);
            if master_ready {
                if let Some(m) = &tty {
                    master_open = console::pump(m.as_fd(), stdout);
                }
            }
            if stdin_ready {
                if let Some(m) = &tty {
                    stdin_open = console::pump(stdin, m.as_fd());
                }
            }
            if sig_ready {
                while let Ok(Some(info)) = self.sfd.read_signal() {
                    let signo = info.ssi_signo as i32;
                    if signo == libc::SIGCHLD {
                        if let Some(code) = reap(pid)? {
                            if let Some(m) = &tty {
                                while master_open && readable(m.as_fd()) {
                                    master_open = console::pump(m.as_fd(), stdout);
                                }
                            }
                            return Ok(code);
                        }
                    } else if signo == libc::SIGWINCH {
                        if let Some(m) = &tty {
                            resize(stdin, m.as_fd());
                        }
                    } else if let Ok(sig) = Signal::try_from(signo) {
                        let _ = kill(Pid::from_raw(pid), sig);
                    }
                }
            }
        }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

fn readable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
}

fn resize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Some((rows, cols)) = console::size_of(from) {
        let _ = crate::linux::sys::set_window_size(to, rows, cols);
    }
}

/// The exit code of `pid` if it has ended.
pub fn reap(pid: i32) -> Result<Option<i32>> {
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(128 + sig as i32)),
        Ok(_) => Ok(None),
        Err(nix::errno::Errno::ECHILD) => Ok(Some(255)),
        Err(e) => Err(crate::linux::SysError::new(format!("wait for {pid}"), e)),
    }
}
