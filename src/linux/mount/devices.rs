//! `/dev` of a container: device nodes made (or bound from the host, in a user namespace),
//! the standard symlinks, and the console.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, fchownat};

use super::resolve::{ensure_in_root, proc_fd_path};
use crate::linux::{Result, Step, SysError};

/// What `/dev` gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Absolute path inside the container.
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Create device nodes (`linux.devices` and the defaults) inside the rootfs. The caller has set
/// the umask to 0, so mknod's mode is exact.
pub fn create_devices(root: BorrowedFd<'_>, devices: &[Device]) -> Result<()> {
    let mut parent: Option<(PathBuf, OwnedFd)> = None;
    for d in devices {
        let parent_path = d.path.parent().unwrap_or(Path::new("/"));
        let dir = match &parent {
            Some((p, fd)) if p == parent_path => fd,
            _ => {
                let fd = ensure_in_root(root, parent_path, true)?;
                &parent.insert((parent_path.to_path_buf(), fd)).1
            }
        };
        let name = d.path.file_name().unwrap_or_default();
        let dev = makedev(d.major, d.minor);
        match mknodat(
            dir.as_fd(),
            name,
            d.kind,
            Mode::from_bits_truncate(d.mode & 0o7777),
            dev,
        ) {
            Ok(()) => {}
            // An image that ships the node already: keep it, as runc does.
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(SysError::new(format!("mknod {}", d.path.display()), e)),
        }
        if d.uid != 0 || d.gid != 0 {
            fchownat(
                dir.as_fd(),
                name,
                Some(Uid::from_raw(d.uid)),
                Some(Gid::from_raw(d.gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .step(|| format!("chown {}", d.path.display()))?;
        }
    }
    Ok(())
}

/// In a user namespace mknod is not allowed: bind each device node from the host instead (an
/// empty file is the mount point), as runc does.
pub fn bind_devices(root: BorrowedFd<'_>, devices: &[Device]) -> Result<()> {
    for d in devices {
        let target = ensure_in_root(root, &d.path, false)?;
        mount(
            Some(&d.path),
            &proc_fd_path(target.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .step(|| format!("bind host device {}", d.path.display()))?;
    }
    Ok(())
}

/// The standard `/dev` symlinks: fd, stdin, stdout, stderr, ptmx.
pub fn create_dev_symlinks(root: BorrowedFd<'_>) -> Result<()> {
    let dev = ensure_in_root(root, Path::new("/dev"), true)?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        if name == "ptmx" {
            // an image's /dev/ptmx node would bypass the container's devpts instance
            let _ =
                nix::unistd::unlinkat(dev.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        match nix::unistd::symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(SysError::new(format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}

/// Bind the terminal at `pts` over `/dev/console` (after pivot).
pub fn bind_console(pts: &Path) -> Result<()> {
    let console = Path::new("/dev/console");
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(console)
    {
        Ok(_) => {}
        Err(e)
            if e.raw_os_error() == Some(libc::ENXIO) || e.raw_os_error() == Some(libc::EACCES) => {}
        Err(e) => return Err(SysError::new("create /dev/console", e)),
    }
    mount(
        Some(pts),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .step(|| format!("bind {} on /dev/console", pts.display()))
}
