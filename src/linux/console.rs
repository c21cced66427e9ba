//! Terminals: a pty inside the container, the console-socket protocol, and the host side of a
//! foreground terminal (raw mode and copying).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::termios::{self, SetArg, Termios};

use super::{Result, Step, sys};

/// A pty pair opened inside the container.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The slave's path inside the container, e.g. `/dev/pts/0`.
    pub slave_path: PathBuf,
}

/// Open a new pty on the container's `/dev/ptmx` (its own devpts instance).
pub fn open_pty() -> Result<Pty> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .step(|| "open /dev/ptmx".into())?;
    nix::pty::unlockpt(&master).step(|| "unlock pty".into())?;
    let name = nix::pty::ptsname_r(&master).step(|| "read pty name".into())?;
    let slave = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .step(|| format!("open {name}"))?;
    Ok(Pty {
        master: master.into(),
        slave,
        slave_path: PathBuf::from(name),
    })
}

/// Connect to a `--console-socket` (done on the host, before the container's root is entered).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .step(|| format!("connect to console socket {}", path.display()))
}

/// Make `slave` the controlling terminal and the stdio of this process (a new session).
pub fn become_session_leader_on(slave: BorrowedFd<'_>, size: Option<(u16, u16)>) -> Result<()> {
    nix::unistd::setsid().step(|| "setsid".into())?;
    sys::set_controlling_terminal(slave).step(|| "set controlling terminal".into())?;
    if let Some((rows, cols)) = size {
        sys::set_window_size(slave, rows, cols).step(|| "set console size".into())?;
    }
    nix::unistd::dup2_stdin(slave).step(|| "dup terminal to stdin".into())?;
    nix::unistd::dup2_stdout(slave).step(|| "dup terminal to stdout".into())?;
    nix::unistd::dup2_stderr(slave).step(|| "dup terminal to stderr".into())?;
    Ok(())
}

/// Puts the host terminal in raw mode while alive; restores it on drop.
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on `fd` if it is a terminal.
    pub fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        let fd = fd.try_clone_to_owned().ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Copy what is readable on `from` to `to`; `false` at end of input.
pub fn pump(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 16 * 1024];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

/// The window size of the terminal on `fd`, if any.
pub fn size_of(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    sys::window_size(fd)
}
