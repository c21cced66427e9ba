//! A pod's shared namespaces: network, IPC and UTS, made once and pinned by bind mounts of
//! their nsfs files into the pod's directory (as `ip netns` and CRI-O's pinns do), so they live
//! from pod creation to pod removal whether or not a process is in them. Containers join them
//! by path.
//!
//! They are made in a short-lived thread: `unshare(2)` of these namespaces affects only the
//! calling thread, so no fork is needed and a multi-threaded caller is fine.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;

use crate::pod::error::{Error, Result, io, sys};

/// The kinds pinned, and the nsfs file name of each.
pub const KINDS: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
];

/// What to make.
#[derive(Debug, Clone)]
pub struct NsSpec {
    /// Share the host's network namespace instead of making one.
    pub host_network: bool,
    /// Share the host's IPC namespace.
    pub host_ipc: bool,
    pub hostname: String,
    /// Namespaced sysctls (`net.*` in the network namespace, `kernel.shm*`, `kernel.msg*`,
    /// `kernel.sem`, `fs.mqueue.*` in the IPC namespace).
    pub sysctls: Vec<(String, String)>,
}

impl NsSpec {
    /// Does the pod use the host's namespace of this kind?
    fn shares_host(&self, kind: &str) -> bool {
        (kind == "net" && self.host_network) || (kind == "ipc" && self.host_ipc)
    }
}

/// Is a sysctl one a pod may set (namespaced, so it cannot change the host)?
pub fn namespaced_sysctl(name: &str, host_network: bool) -> bool {
    let ipc = name.starts_with("kernel.shm")
        || name.starts_with("kernel.msg")
        || name == "kernel.sem"
        || name.starts_with("fs.mqueue.");
    ipc || (!host_network && name.starts_with("net."))
}

/// Make the namespaces and pin them as `dir/net`, `dir/ipc`, `dir/uts`. On failure nothing
/// stays pinned.
pub fn create(dir: &Path, spec: &NsSpec) -> Result<()> {
    for (name, _) in KINDS {
        if spec.shares_host(name) {
            continue;
        }
        let f = dir.join(name);
        fs::File::create(&f).map_err(io(format!("create {}", f.display())))?;
    }
    let dir2 = dir.to_path_buf();
    let spec2 = spec.clone();
    let r = std::thread::spawn(move || pin_in_thread(&dir2, &spec2))
        .join()
        .map_err(|_| Error::Internal("namespace thread panicked".into()))?;
    if r.is_err() {
        let _ = remove(dir);
    }
    r
}

fn pin_in_thread(dir: &Path, spec: &NsSpec) -> Result<()> {
    let mut flags = CloneFlags::empty();
    for (name, flag) in KINDS {
        if !spec.shares_host(name) {
            flags |= flag;
        }
    }
    nix::sched::unshare(flags).map_err(sys("unshare pod namespaces"))?;
    nix::unistd::sethostname(&spec.hostname)
        .map_err(sys(format!("set hostname {:?}", spec.hostname)))?;
    if !spec.host_network {
        crate::linux::sys::loopback_up()
            .map_err(io("bring loopback up in the pod's network namespace"))?;
    }
    for (k, v) in &spec.sysctls {
        if !namespaced_sysctl(k, spec.host_network) {
            return Err(Error::Invalid(format!(
                "sysctl {k}: not a namespaced sysctl a pod may set"
            )));
        }
        // /proc/sys resolves namespaced entries through the namespaces of the calling thread
        let p = Path::new("/proc/sys").join(k.replace('.', "/"));
        fs::write(&p, v).map_err(io(format!("set sysctl {k}={v}")))?;
    }
    for (name, _) in KINDS {
        if spec.shares_host(name) {
            continue;
        }
        let src = format!("/proc/thread-self/ns/{name}");
        mount(
            Some(src.as_str()),
            &dir.join(name),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(format!(
            "pin {name} namespace at {}",
            dir.join(name).display()
        )))?;
    }
    Ok(())
}

/// Path of a pinned namespace (None for the host's network).
pub fn path(dir: &Path, kind: &str) -> Option<PathBuf> {
    let p = dir.join(kind);
    p.exists().then_some(p)
}

/// Unpin and remove the namespace files (missing ones are fine).
pub fn remove(dir: &Path) -> Result<()> {
    for (name, _) in KINDS {
        let f = dir.join(name);
        match umount2(&f, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::Io {
                    step: format!("unpin {}", f.display()),
                    err: e.into(),
                });
            }
        }
        match fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    step: format!("remove {}", f.display()),
                    err: e,
                });
            }
        }
    }
    Ok(())
}

/// The inode of a namespace file (what `/proc/<pid>/ns/<kind>` of its members shows).
pub fn inode(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).ok().map(|m| m.ino())
}

/// Connect to `127.0.0.1:port` inside the pod's network namespace (the host's with
/// hostNetwork). A short-lived thread joins the namespace; the socket stays in it.
pub fn connect(dir: &Path, port: u16) -> Result<std::net::TcpStream> {
    let Some(ns) = path(dir, "net") else {
        return std::net::TcpStream::connect(("127.0.0.1", port))
            .map_err(io(format!("connect to port {port}")));
    };
    std::thread::spawn(move || -> Result<std::net::TcpStream> {
        let f = fs::File::open(&ns).map_err(io(format!("open {}", ns.display())))?;
        nix::sched::setns(&f, CloneFlags::CLONE_NEWNET)
            .map_err(sys("join the pod's network namespace"))?;
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map_err(io(format!("connect to port {port} in the pod")))
    })
    .join()
    .map_err(|_| Error::Internal("port-forward thread panicked".into()))?
}
