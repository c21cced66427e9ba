//! Mounts: parsing runtime-spec mount options, and building the container's filesystem inside its
//! new mount namespace (rootfs bind, `mounts`, `/dev`, pivot_root, masked and read-only paths).
//!
//! Mount targets are resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)` and mounted
//! through `/proc/self/fd/N`, so a symlink planted in an image cannot redirect a mount onto the
//! host (the CVE-2021-30465 class).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, fchownat};

use super::{Result, Step, SysError, sys};

/// `MOUNT_ATTR_*` bits for recursive (`r*`) options, applied with mount_setattr.
pub mod attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    pub const ATIME_MASK: u64 = 0x70;
    pub const RELATIME: u64 = 0x0;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// Mount options of one `mounts[]` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`: bind recursively.
    pub recursive: bool,
    /// Propagation changes, applied in order after the mount.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes to set / clear with mount_setattr.
    pub attr_set: u64,
    pub attr_clear: u64,
    /// Filesystem-specific options, passed as mount data (`mode=755,size=65536k`).
    pub data: Vec<String>,
    /// `tmpcopyup`: copy what the image had at the mount point into the new tmpfs.
    pub copy_up: bool,
}

/// Parse runtime-spec mount options (mount(8) names). Unknown names are filesystem data.
pub fn parse_options(options: &[String]) -> std::result::Result<Options, String> {
    let mut o = Options {
        flags: MsFlags::empty(),
        bind: false,
        recursive: false,
        propagation: Vec::new(),
        attr_set: 0,
        attr_clear: 0,
        data: Vec::new(),
        copy_up: false,
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
            "nosymfollow" => (
                MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
                MsFlags::empty(),
            ),
            "symfollow" => (
                MsFlags::empty(),
                MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
            ),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                let rec = opt.starts_with('r');
                o.propagation
                    .push(if rec { base | MsFlags::MS_REC } else { base });
                continue;
            }
            "tmpcopyup" => {
                o.copy_up = true;
                continue;
            }
            "idmap" | "ridmap" => {
                return Err(format!(
                    "option {opt} needs idmapped mounts, not supported yet"
                ));
            }
            other => {
                if let Some((set, clear)) = recursive_attr(other) {
                    o.attr_set = (o.attr_set & !clear) | set;
                    o.attr_clear = (o.attr_clear & !set) | clear;
                    continue;
                }
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags = (o.flags - clear) | set;
    }
    Ok(o)
}

/// The `r*` options that mount_setattr applies to a whole mount tree: (set, clear).
fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    use attr::*;
    Some(match opt {
        "rro" => (RDONLY, 0),
        "rrw" => (0, RDONLY),
        "rnosuid" => (NOSUID, 0),
        "rsuid" => (0, NOSUID),
        "rnodev" => (NODEV, 0),
        "rdev" => (0, NODEV),
        "rnoexec" => (NOEXEC, 0),
        "rexec" => (0, NOEXEC),
        "rnodiratime" => (NODIRATIME, 0),
        "rdiratime" => (0, NODIRATIME),
        "rrelatime" => (RELATIME, ATIME_MASK),
        "rnorelatime" => (0, ATIME_MASK),
        "rnoatime" => (NOATIME, ATIME_MASK),
        "ratime" => (0, ATIME_MASK),
        "rstrictatime" => (STRICTATIME, ATIME_MASK),
        "rnostrictatime" => (0, ATIME_MASK),
        "rnosymfollow" => (NOSYMFOLLOW, 0),
        "rsymfollow" => (0, NOSYMFOLLOW),
        _ => return None,
    })
}

/// What kind of mount an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A bind mount of a host path.
    Bind,
    /// A filesystem of the given type (`proc`, `tmpfs`, `sysfs`, ...).
    Fs(String),
    /// The container's cgroup hierarchy (`type: cgroup` or `cgroup2`).
    Cgroup,
}

/// One entry of the container's mount table, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Host path for binds (absolute), the fs source string otherwise.
    pub source: Option<PathBuf>,
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub options: Options,
}

impl Entry {
    fn data(&self) -> Option<String> {
        (!self.options.data.is_empty()).then(|| self.options.data.join(","))
    }
}

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

/// How the cgroup mount is to be built (from the host layout and the container's cgroup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMount {
    /// cgroup v2: with a cgroup namespace mount cgroup2; else bind the container's dir.
    V2 { dir: PathBuf, namespaced: bool },
    /// cgroup v1: a tmpfs with one mount per hierarchy (name, controllers option, host dir).
    V1 {
        hierarchies: Vec<(String, String, PathBuf)>,
        namespaced: bool,
    },
}

fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn relative(p: &Path) -> &Path {
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
fn resolve_for_create(root: BorrowedFd<'_>, path: &Path) -> Result<PathBuf> {
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
fn ordinary_directory(root: BorrowedFd<'_>, dest: &Path, fstype: &str) -> Result<()> {
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

/// Step 1 inside the new mount namespace: stop propagation towards the host, and make the rootfs
/// a mount point of its own (pivot_root needs one). Returns an fd on the rootfs mount.
pub fn prepare_rootfs(rootfs: &Path, root_propagation: MsFlags) -> Result<OwnedFd> {
    // Everything below "/" becomes a slave (or private): our mounts never reach the host. With
    // rshared root propagation the host's shared mounts stay shared (runc's rule), so the mount
    // holding the rootfs is made private: the rootfs's own bind and everything mounted inside
    // it then stay in this namespace, and pivot_root accepts it.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        root_propagation,
        None::<&str>,
    )
    .step(|| "set the propagation of /".into())?;
    if root_propagation.contains(MsFlags::MS_SHARED) {
        let mounts = super::mountinfo::read().step(|| "read /proc/self/mountinfo".into())?;
        let real = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
        if let Some(m) = super::mountinfo::containing(&mounts, &real).filter(|m| m.is_shared()) {
            mount(
                None::<&str>,
                &m.mount_point,
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .step(|| format!("make {} private", m.mount_point.display()))?;
        }
    }
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .step(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| format!("open rootfs {}", rootfs.display()))
}

/// Mount flags that the kernel locks on a mount and that a bind remount must repeat.
fn locked_flags(target: &Path) -> MsFlags {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let Ok(st) = statvfs(target) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        // ST_RELATIME (4096): not exported by nix for every libc
        (FsFlags::from_bits_retain(4096), MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

const BIND_FLAG_MASK: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

/// Mount one `mounts[]` entry under the rootfs `root` (before pivot_root).
pub fn apply_entry(root: BorrowedFd<'_>, e: &Entry, cgroup: Option<&CgroupMount>) -> Result<()> {
    let dest = &e.destination;
    let step = |what: &str| format!("mount {what} on {}", dest.display());
    match &e.kind {
        Kind::Bind => {
            let src = e.source.as_deref().unwrap_or(Path::new(""));
            let is_dir = std::fs::metadata(src)
                .map_err(|err| SysError::new(format!("stat bind source {}", src.display()), err))?
                .is_dir();
            let target = ensure_in_root(root, dest, is_dir)?;
            let mut flags = MsFlags::MS_BIND;
            if e.options.recursive {
                flags |= MsFlags::MS_REC;
            }
            mount(
                Some(src),
                &proc_fd_path(target.as_fd()),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .step(|| step(&src.display().to_string()))?;
            let want = e.options.flags & BIND_FLAG_MASK;
            if !want.is_empty() {
                let top = open_in_root(root, dest, OFlag::O_PATH).step(|| step("(reopen)"))?;
                let p = proc_fd_path(top.as_fd());
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | want | locked_flags(&p);
                mount(None::<&str>, &p, None::<&str>, flags, None::<&str>)
                    .step(|| format!("remount {} with its options", dest.display()))?;
            }
        }
        Kind::Fs(fstype) => {
            if fstype == "proc" || fstype == "sysfs" {
                ordinary_directory(root, dest, fstype)?;
            }
            let target = ensure_in_root(root, dest, true)?;
            // The image's directory, readable, before the tmpfs hides it.
            let below = if e.options.copy_up {
                Some(
                    open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                        .step(|| format!("open {} for tmpcopyup", dest.display()))?,
                )
            } else {
                None
            };
            let src: &OsStr = match &e.source {
                Some(s) => s.as_os_str(),
                None => OsStr::new(fstype),
            };
            mount(
                Some(src),
                &proc_fd_path(target.as_fd()),
                Some(fstype.as_str()),
                e.options.flags,
                e.data().as_deref(),
            )
            .step(|| step(fstype))?;
            if let Some(below) = below {
                let top = open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                    .step(|| step("(reopen)"))?;
                copy_tree(below.as_fd(), top.as_fd(), dest)?;
            }
        }
        Kind::Cgroup => {
            let target = ensure_in_root(root, dest, true)?;
            mount_cgroup(root, dest, target, e, cgroup)?;
        }
    }
    if !e.options.propagation.is_empty() || e.options.attr_set != 0 || e.options.attr_clear != 0 {
        let top = open_in_root(root, dest, OFlag::O_PATH).step(|| step("(reopen)"))?;
        for p in &e.options.propagation {
            mount(
                None::<&str>,
                &proc_fd_path(top.as_fd()),
                None::<&str>,
                *p,
                None::<&str>,
            )
            .step(|| format!("set propagation of {}", dest.display()))?;
        }
        if e.options.attr_set != 0 || e.options.attr_clear != 0 {
            sys::mount_setattr(top.as_fd(), true, e.options.attr_set, e.options.attr_clear)
                .step(|| format!("set recursive attributes of {}", dest.display()))?;
        }
    }
    Ok(())
}

/// Copy a directory tree (files, directories, symlinks, special files, with modes and owners)
/// from `from` into `to`.
fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>, shown: &Path) -> Result<()> {
    use nix::dir::{Dir, Type};
    use nix::sys::stat::fstatat;
    let mut dir = Dir::openat(
        from,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| format!("read {}", shown.display()))?;
    let names: Vec<(std::ffi::CString, Option<Type>)> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_owned(), e.file_type()))
        .filter(|(n, _)| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for (name, _) in names {
        let path = shown.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
        let st = fstatat(
            from,
            name.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .step(|| format!("stat {}", path.display()))?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let step = || format!("copy {} into tmpfs", path.display());
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                nix::sys::stat::mkdirat(to, name.as_c_str(), mode).step(step)?;
                let src = nix::fcntl::openat(
                    from,
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .step(step)?;
                let dst = nix::fcntl::openat(
                    to,
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .step(step)?;
                copy_tree(src.as_fd(), dst.as_fd(), &path)?;
            }
            libc::S_IFREG => {
                let src = nix::fcntl::openat(
                    from,
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .step(step)?;
                let dst = nix::fcntl::openat(
                    to,
                    name.as_c_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    mode,
                )
                .step(step)?;
                std::io::copy(&mut std::fs::File::from(src), &mut std::fs::File::from(dst))
                    .step(step)?;
            }
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(from, name.as_c_str()).step(step)?;
                nix::unistd::symlinkat(target.as_os_str(), to, name.as_c_str()).step(step)?;
            }
            _ => {
                let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
                mknodat(to, name.as_c_str(), kind, mode, st.st_rdev).step(step)?;
            }
        }
        fchownat(
            to,
            name.as_c_str(),
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .step(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

fn mount_cgroup(
    root: BorrowedFd<'_>,
    dest: &Path,
    target: OwnedFd,
    e: &Entry,
    cgroup: Option<&CgroupMount>,
) -> Result<()> {
    let Some(cg) = cgroup else {
        return Err(SysError::other(
            format!("mount cgroup on {}", dest.display()),
            "the container has no cgroup",
        ));
    };
    let flags = e.options.flags & BIND_FLAG_MASK;
    match cg {
        CgroupMount::V2 {
            namespaced: true, ..
        } => mount(
            Some("cgroup2"),
            &proc_fd_path(target.as_fd()),
            Some("cgroup2"),
            flags,
            None::<&str>,
        )
        .step(|| format!("mount cgroup2 on {}", dest.display())),
        CgroupMount::V2 {
            dir,
            namespaced: false,
        } => bind_with_flags(
            root,
            dir,
            dest,
            target,
            flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        ),
        CgroupMount::V1 {
            hierarchies,
            namespaced,
        } => {
            mount(
                Some("tmpfs"),
                &proc_fd_path(target.as_fd()),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("mode=755"),
            )
            .step(|| format!("mount tmpfs for cgroups on {}", dest.display()))?;
            for (name, controllers, dir) in hierarchies {
                let sub = dest.join(name);
                let t = ensure_in_root(root, &sub, true)?;
                let f = flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                if *namespaced {
                    mount(
                        Some("cgroup"),
                        &proc_fd_path(t.as_fd()),
                        Some("cgroup"),
                        f,
                        Some(controllers.as_str()),
                    )
                    .step(|| format!("mount cgroup {controllers} on {}", sub.display()))?;
                } else {
                    bind_with_flags(root, dir, &sub, t, f)?;
                }
                // co-mounted controllers (cpu,cpuacct) are also reachable by each name
                if name.contains(',') {
                    let dfd = open_in_root(root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY)
                        .step(|| format!("open {}", dest.display()))?;
                    for single in name.split(',') {
                        match nix::unistd::symlinkat(name.as_str(), dfd.as_fd(), single) {
                            Ok(()) | Err(Errno::EEXIST) => {}
                            Err(err) => {
                                return Err(SysError::new(
                                    format!("symlink {}/{single}", dest.display()),
                                    err,
                                ));
                            }
                        }
                    }
                }
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                let top = open_in_root(root, dest, OFlag::O_PATH)
                    .step(|| format!("reopen {}", dest.display()))?;
                mount(
                    None::<&str>,
                    &proc_fd_path(top.as_fd()),
                    None::<&str>,
                    MsFlags::MS_REMOUNT
                        | MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    Some("mode=755"),
                )
                .step(|| format!("remount {} read-only", dest.display()))?;
            }
            Ok(())
        }
    }
}

fn bind_with_flags(
    root: BorrowedFd<'_>,
    src: &Path,
    dest: &Path,
    target: OwnedFd,
    flags: MsFlags,
) -> Result<()> {
    mount(
        Some(src),
        &proc_fd_path(target.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .step(|| format!("bind {} on {}", src.display(), dest.display()))?;
    if !flags.is_empty() {
        let top = open_in_root(root, dest, OFlag::O_PATH)
            .step(|| format!("reopen {}", dest.display()))?;
        mount(
            None::<&str>,
            &proc_fd_path(top.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            None::<&str>,
        )
        .step(|| format!("remount {} with its options", dest.display()))?;
    }
    Ok(())
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

/// Make `root` the process's root: pivot_root, then detach the old root.
pub fn pivot_root(root: BorrowedFd<'_>) -> Result<()> {
    let old_root = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| "open old root".into())?;
    nix::unistd::fchdir(root).step(|| "chdir to rootfs".into())?;
    nix::unistd::pivot_root(".", ".").step(|| "pivot_root".into())?;
    // The old root is stacked on the new one. "." must name the old root's mount, not the new
    // root's ("." does not cross mounts): go through the fd opened before the pivot.
    nix::unistd::fchdir(&old_root).step(|| "chdir to old root".into())?;
    // A slave first, so that detaching it cannot propagate an unmount to the host.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .step(|| "make old root a slave".into())?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach old root".into())?;
    nix::unistd::chdir("/").step(|| "chdir to /".into())
}

/// `--no-pivot`: move the rootfs onto `/` and chroot into it (for ramdisk roots).
pub fn move_root(root: BorrowedFd<'_>, rootfs: &Path) -> Result<()> {
    nix::unistd::fchdir(root).step(|| "chdir to rootfs".into())?;
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .step(|| format!("move {} to /", rootfs.display()))?;
    nix::unistd::chroot(".").step(|| "chroot".into())?;
    nix::unistd::chdir("/").step(|| "chdir to /".into())
}

/// After pivot: mask `paths` (a read-only tmpfs on directories, /dev/null on files).
pub fn mask_paths(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(SysError::new(
                    format!("stat masked path {}", p.display()),
                    e,
                ));
            }
        };
        if meta.is_dir() {
            mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0k"),
            )
            .step(|| format!("mask {}", p.display()))?;
        } else {
            mount(
                Some("/dev/null"),
                p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .step(|| format!("mask {}", p.display()))?;
        }
    }
    Ok(())
}

/// After pivot: make `paths` read-only bind mounts of themselves.
pub fn readonly_paths(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        match mount(
            Some(p),
            p,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => {
                return Err(SysError::new(
                    format!("bind read-only path {}", p.display()),
                    e,
                ));
            }
        }
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_REC
            | locked_flags(p);
        mount(None::<&str>, p, None::<&str>, flags, None::<&str>)
            .step(|| format!("remount {} read-only", p.display()))?;
    }
    Ok(())
}

/// After pivot: make the root filesystem read-only.
pub fn readonly_root() -> Result<()> {
    let flags =
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(Path::new("/"));
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .step(|| "remount / read-only".into())
}

/// After pivot: set the propagation of `/` as `linux.rootfsPropagation` asks.
pub fn set_root_propagation(flags: MsFlags) -> Result<()> {
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .step(|| "set rootfs propagation".into())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Options {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_set_and_clear_in_order() {
        let o = opts(&["nosuid", "noexec", "nodev", "ro"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        let o = opts(&["ro", "rw"]);
        assert_eq!(o.flags, MsFlags::empty());
    }

    #[test]
    fn fs_data_is_kept() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert!(o.flags.contains(MsFlags::MS_STRICTATIME));
    }

    #[test]
    fn bind_and_propagation() {
        let o = opts(&["rbind", "rprivate", "slave"]);
        assert!(o.bind && o.recursive);
        assert_eq!(
            o.propagation,
            vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::MS_SLAVE]
        );
        let o = opts(&["bind", "rslave", "runbindable", "shared"]);
        assert!(o.bind && !o.recursive);
        assert_eq!(
            o.propagation,
            vec![
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
                MsFlags::MS_SHARED
            ]
        );
    }

    #[test]
    fn recursive_attributes() {
        let o = opts(&["rro", "rnosuid", "rnoatime"]);
        assert_eq!(o.attr_set, attr::RDONLY | attr::NOSUID | attr::NOATIME);
        // the kernel wants the whole atime field cleared and the new atime set
        assert_eq!(o.attr_clear, attr::ATIME_MASK);
    }

    #[test]
    fn unsupported_options_are_refused() {
        assert!(opts(&["tmpcopyup"]).copy_up);
        assert!(parse_options(&["idmap".into()]).is_err());
    }
}
