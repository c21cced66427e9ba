//! Loop devices: a file attached as a block device (ioctls on `/dev/loop-control` and
//! `/dev/loopN`, no `losetup` process), found again by their backing file.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::sys;

/// The loop device backed by `file`, if one is attached (`/sys/block/loop*/loop/backing_file`).
pub fn find(file: &Path) -> Option<PathBuf> {
    let want = fs::canonicalize(file).ok()?;
    let rd = fs::read_dir("/sys/block").ok()?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let backing = fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
        if Path::new(backing.trim()) == want {
            return Some(PathBuf::from("/dev").join(name));
        }
    }
    None
}

/// Attach `file` to a free loop device; returns the device and an open fd of it. With
/// `autoclear` the kernel detaches the device when its last user goes: keep the fd until the
/// device is mounted (the mount is then its user), or it goes at once.
pub fn attach(file: &Path, autoclear: bool) -> std::io::Result<(PathBuf, fs::File)> {
    let f = fs::OpenOptions::new().read(true).write(true).open(file)?;
    let control = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    let flags = if autoclear {
        sys::LO_FLAGS_AUTOCLEAR
    } else {
        0
    };
    let name = file.as_os_str().as_encoded_bytes();
    // another process may take the free device between the two calls: try again
    let mut last = None;
    for _ in 0..16 {
        let n = sys::loop_get_free(control.as_fd())?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match fs::OpenOptions::new().read(true).write(true).open(&path) {
            Ok(d) => d,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match sys::loop_configure(dev.as_fd(), f.as_fd(), flags, name) {
            Ok(()) => return Ok((path, dev)),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free loop device")))
}

/// Detach a loop device.
pub fn detach(dev: &Path) -> std::io::Result<()> {
    let d = fs::OpenOptions::new().read(true).open(dev)?;
    match sys::loop_clear(d.as_fd()) {
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
        r => r,
    }
}
