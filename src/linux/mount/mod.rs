//! Mounts: parsing runtime-spec mount options, and building the container's filesystem inside its
//! new mount namespace (rootfs bind, `mounts`, `/dev`, pivot_root, masked and read-only paths).
//!
//! Mount targets are resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)` and mounted
//! through `/proc/self/fd/N`, so a symlink planted in an image cannot redirect a mount onto the
//! host (the CVE-2021-30465 class).

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, mknodat};
use nix::unistd::{Gid, Uid, fchownat};

use super::{Result, Step, SysError, sys};

mod devices;
mod options;
mod resolve;

pub use devices::{Device, bind_console, bind_devices, create_dev_symlinks, create_devices};
pub use options::{Options, parse_options};
pub use resolve::{ensure_in_root, open_in_root};
use resolve::{ordinary_directory, proc_fd_path};

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
