//! Paths inside a rootfs: resolved with `openat2(RESOLVE_IN_ROOT)` (a symlink planted in an
//! image cannot lead out), made when missing, and named for mount(2) as `/proc/self/fd/N`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use crate::linux::{Result, Step, SysError};

pub(super) fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub(super) fn relative(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

/// Open `path` inside the tree rooted at `root` as if `root` were `/`: symlinks, `..` and
/// absolute links all stay inside.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let rel = relative(path);
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    // The kernel answers EAGAIN when a ".." walk races with any mount or rename on the system
    // (it cannot prove the walk stayed inside); openat2(2) says to retry.
    let mut tries = 0;
    loop {
        match openat2(root, rel, how) {
            Err(Errno::EAGAIN) if tries < 1000 => tries += 1,
            other => return other,
        }
    }
}

/// Resolve `path` inside `root` component by component, following symlinks (absolute ones
/// from `root`), up to the first component that does not exist; the rest is appended as is.
/// The result names, inside `root`, where a missing mount point must be created.
pub(super) fn resolve_for_create(root: BorrowedFd<'_>, path: &Path) -> Result<PathBuf> {
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            done.pop();
            continue;
        }
        let cand = done.join(&c);
        match open_in_root(root, &cand, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
            Ok(fd) => {
                let st = nix::sys::stat::fstat(&fd).step(|| format!("stat {}", cand.display()))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                    done = cand;
                    continue;
                }
                links += 1;
                if links > 40 {
                    return Err(SysError::new(
                        format!("resolve {}", path.display()),
                        Errno::ELOOP,
                    ));
                }
                let target = nix::fcntl::readlinkat(&fd, "")
                    .step(|| format!("readlink {}", cand.display()))?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    done = PathBuf::from("/");
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(n) => todo.push_front(n.to_os_string()),
                        Component::ParentDir => todo.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            Err(Errno::ENOENT) => {
                done = cand;
                done.extend(todo.drain(..));
            }
            Err(e) => return Err(SysError::new(format!("resolve {}", cand.display()), e)),
        }
    }
    Ok(done)
}

/// Make sure `path` exists inside `root` (creating missing directories, and the last component
/// as a directory or an empty file), and return an `O_PATH` fd on it. Symlinks are followed
/// inside `root` only; creation happens with `mkdirat` on fds resolved inside `root`.
/// proc and sysfs go only on a real directory (or where none is yet): a symlinked `/proc`
/// would let the image redirect what the runtime later writes through it (masked paths, LSM
/// labels: the CVE-2019-16884 / CVE-2019-19921 class). runc refuses the same.
pub(super) fn ordinary_directory(root: BorrowedFd<'_>, dest: &Path, fstype: &str) -> Result<()> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Ok(());
    };
    let parent = match open_in_root(root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(SysError::new(format!("resolve {}", parent.display()), e)),
    };
    match nix::sys::stat::fstatat(&parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(SysError::new(format!("stat {}", dest.display()), e)),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(()),
        Ok(_) => Err(SysError::other(
            format!("mount {fstype} on {}", dest.display()),
            format!("filesystem {fstype:?} must be mounted on ordinary directory"),
        )),
    }
}

pub fn ensure_in_root(root: BorrowedFd<'_>, path: &Path, dir: bool) -> Result<OwnedFd> {
    match open_in_root(root, path, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(SysError::new(format!("resolve {}", path.display()), e)),
    }
    let resolved = resolve_for_create(root, path)?;
    let mut parent = open_in_root(root, Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .step(|| "open container root".into())?;
    let mut sofar = PathBuf::from("/");
    let comps: Vec<Component<'_>> = resolved.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let Component::Normal(name) = comp else {
            continue;
        };
        sofar.push(name);
        let last = i + 1 == comps.len();
        match open_in_root(root, &sofar, OFlag::O_PATH) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(SysError::new(format!("resolve {}", sofar.display()), e)),
        }
        // `parent` is an O_PATH fd; *at() calls accept it as a directory.
        if last && !dir {
            let f = nix::fcntl::openat(
                parent.as_fd(),
                *name,
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            );
            match f {
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(SysError::new(format!("create {}", sofar.display()), e)),
            }
        } else {
            match nix::sys::stat::mkdirat(parent.as_fd(), *name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(SysError::new(format!("mkdir {}", sofar.display()), e)),
            }
        }
        parent = open_in_root(root, &sofar, OFlag::O_PATH)
            .step(|| format!("resolve {}", sofar.display()))?;
    }
    Ok(parent)
}
