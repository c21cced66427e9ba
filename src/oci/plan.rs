//! Spec → plan: turn a parsed config.json into plain data that says exactly what the kernel will
//! be asked to do (which namespaces to create or join, which mounts, which cgroup writes, which
//! process attributes). Pure: no syscalls, so every rule is unit-tested with `assert_eq!`. The
//! create path then carries the plan out (`init.rs` inside the container, `create.rs` outside).

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{
    LinuxCapabilities, LinuxDeviceType, LinuxNamespaceType, PosixRlimitType, Process, Spec,
};

use super::resources;
use super::spec::SpecError;
use crate::linux::cgroup::{Dirs, Layout, Write};
use crate::linux::mount::{self, CgroupMount, Device, Entry, Kind};
use crate::linux::process::{Capabilities, ProcessPlan, Rlimit};
use crate::linux::seccomp::Filter;

/// Namespaces: which to create at clone, which to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// New namespaces created by the clone itself.
    pub clone_flags: CloneFlags,
    /// Namespaces joined by path inside the child (not pid).
    pub join: Vec<(CloneFlags, PathBuf)>,
    /// A pid namespace joined by path: the parent enters it before cloning (setns on a pid
    /// namespace only affects children).
    pub join_pid: Option<PathBuf>,
    /// A new cgroup namespace to create after the child is in its cgroup (v1, where the child
    /// is moved in after clone).
    pub unshare_cgroup: bool,
    /// Runtime-spec names of every namespace the container does not share with the host.
    pub kinds: Vec<String>,
    /// A new time namespace (made in the child with unshare, as its offsets must be written
    /// before any process enters it).
    pub new_time: bool,
    /// The container is in a user namespace (new or joined): it becomes uid/gid 0 there first.
    pub user: bool,
}

/// uid/gid mappings of a new user namespace, written by the parent: (container, host, size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<(u32, u32, u32)>,
    pub gid: Vec<(u32, u32, u32)>,
}

impl Plan {
    /// True if hooks must run while the init waits (the runtime's, or the init's own, which
    /// need the state JSON from the parent).
    pub fn has_setup_hooks(&self) -> bool {
        let h = &self.hooks;
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
        .iter()
        .any(|l| l.as_ref().is_some_and(|v| !v.is_empty()))
    }
}

/// The container's cgroup: where, and what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPlan {
    pub dirs: Dirs,
    pub writes: Vec<Write>,
    /// cgroup v2: device rules, for the eBPF program (v1 has them in `writes`).
    pub device_rules: Vec<crate::linux::cgroup::devices::Rule>,
}

/// Everything `create` will do, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub namespaces: Namespaces,
    /// Propagation of `/` in the new mount namespace before anything is mounted.
    pub root_propagation: MsFlags,
    /// Propagation of the container's `/` after pivot_root, if rootfsPropagation asks for one
    /// that cannot be set before (shared, unbindable).
    pub final_propagation: Option<MsFlags>,
    pub mounts: Vec<Entry>,
    pub cgroup_mount: Option<CgroupMount>,
    pub devices: Vec<Device>,
    /// Bind device nodes from the host instead of mknod (not allowed in a user namespace).
    pub bind_devices: bool,
    pub dev_symlinks: bool,
    pub readonly_root: bool,
    pub pivot: bool,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// `/proc/sys/...` file → value.
    pub sysctls: Vec<(PathBuf, String)>,
    pub cgroup: CgroupPlan,
    pub process: ProcessPlan,
    /// The seccomp filter, compiled (or taken from the cache) by `create`.
    pub seccomp: Option<Filter>,
    /// Mappings of a new user namespace.
    pub id_maps: Option<IdMaps>,
    /// Offsets of a new time namespace: (clock name, seconds, nanoseconds).
    pub time_offsets: Vec<(String, i64, u32)>,
    /// Lifecycle hooks.
    pub hooks: oci_spec::runtime::Hooks,
    /// The container has a mount namespace of its own (without one it sees the host's root:
    /// nothing is mounted and there is no pivot_root).
    pub own_mounts: bool,
    /// SELinux context for the container's filesystems (added to each non-bind mount).
    pub mount_label: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// What was accepted but adjusted (relative masked paths), to show to the user.
    pub warnings: Vec<String>,
}

/// What the plan is made from besides the spec.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub id: &'a str,
    /// Absolute bundle directory.
    pub bundle: &'a Path,
    pub layout: &'a Layout,
    pub no_pivot: bool,
}

type R<T> = Result<T, SpecError>;

fn err<T>(field: impl Into<String>, msg: impl Into<String>) -> R<T> {
    Err(SpecError::new(field, msg))
}

/// Clean a path lexically (no `.` or `..` left; `..` at the root stays at the root).
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Build the plan for a container.
pub fn build(spec: &Spec, input: &Input<'_>) -> R<Plan> {
    if !spec.version().starts_with("1.") {
        return err(
            "ociVersion",
            format!("{:?} is not a 1.x runtime-spec version", spec.version()),
        );
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| SpecError::new("root", "required"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        input.bundle.join(root.path())
    };
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| SpecError::new("process", "required to create a container"))?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| SpecError::new("linux", "required for a Linux container"))?;

    let namespaces = namespaces(linux.namespaces().as_deref().unwrap_or(&[]), input.layout)?;
    let has = |k: &str| namespaces.kinds.iter().any(|x| x == k);
    let new_uts = namespaces.clone_flags.contains(CloneFlags::CLONE_NEWUTS);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !new_uts {
        return err("hostname", "setting a hostname needs a new uts namespace");
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !new_uts {
        return err(
            "domainname",
            "setting a domainname needs a new uts namespace",
        );
    }

    let cgroups_path = match linux.cgroups_path() {
        Some(p) if !p.as_os_str().is_empty() => {
            if p.components().any(|c| c == Component::ParentDir) {
                return err("linux.cgroupsPath", "must not contain '..'");
            }
            if p.is_absolute() {
                clean(p)
            } else {
                clean(p).strip_prefix("/").unwrap().to_path_buf()
            }
        }
        // runc's default: the container id, relative to berth's own cgroup
        _ => PathBuf::from(input.id),
    };
    let dirs = input.layout.resolve(&cgroups_path);

    let mut extra_devices = Vec::new();
    let mut devices = Vec::new();
    for (i, d) in linux.devices().as_deref().unwrap_or(&[]).iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let (kind, t) = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => (SFlag::S_IFCHR, 'c'),
            LinuxDeviceType::B => (SFlag::S_IFBLK, 'b'),
            LinuxDeviceType::P => (SFlag::S_IFIFO, 'p'),
            LinuxDeviceType::A => {
                return err(format!("{field}.type"), "\"a\" is not a device node type");
            }
        };
        if !d.path().is_absolute() {
            return err(format!("{field}.path"), "must be an absolute path");
        }
        if t != 'p' {
            extra_devices.push((t, d.major(), d.minor()));
        }
        devices.push(Device {
            path: clean(d.path()),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    let (writes, device_rules) = match linux.resources() {
        Some(r) if input.layout.is_v2() => (
            resources::writes(r, true, &extra_devices)?,
            resources::device_rules(r, &extra_devices)?,
        ),
        Some(r) => (resources::writes(r, false, &extra_devices)?, Vec::new()),
        None => (Vec::new(), Vec::new()),
    };

    let mut mounts = Vec::new();
    for (i, m) in spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
        mounts.push(mount_entry(i, m, input.bundle)?);
    }
    let dev_bound = mounts
        .iter()
        .any(|m| m.kind == Kind::Bind && m.destination == Path::new("/dev"));
    let cgroup_mount = mounts.iter().any(|m| m.kind == Kind::Cgroup).then(|| {
        let namespaced = namespaces.clone_flags.contains(CloneFlags::CLONE_NEWCGROUP)
            || namespaces.unshare_cgroup;
        match (&dirs, input.layout) {
            (Dirs::V2(dir), _) => CgroupMount::V2 {
                dir: dir.clone(),
                namespaced,
            },
            (Dirs::V1(map), Layout::V1(hs)) => CgroupMount::V1 {
                hierarchies: hs
                    .iter()
                    .filter_map(|h| {
                        let name = h.name();
                        map.get(&name).map(|d| (name.clone(), name, d.clone()))
                    })
                    .collect(),
                namespaced,
            },
            (Dirs::V1(_), Layout::V2 { .. }) => unreachable!("dirs come from the layout"),
        }
    });
    if !dev_bound {
        for (name, minor_major) in [
            ("null", (1, 3)),
            ("zero", (1, 5)),
            ("full", (1, 7)),
            ("random", (1, 8)),
            ("urandom", (1, 9)),
            ("tty", (5, 0)),
        ] {
            let path = Path::new("/dev").join(name);
            if !devices.iter().any(|d| d.path == path) {
                devices.push(Device {
                    path,
                    kind: SFlag::S_IFCHR,
                    major: minor_major.0,
                    minor: minor_major.1,
                    mode: 0o666,
                    uid: 0,
                    gid: 0,
                });
            }
        }
    }

    let (root_propagation, final_propagation) = match linux.rootfs_propagation().as_deref() {
        None | Some("") | Some("rslave") => (MsFlags::MS_SLAVE | MsFlags::MS_REC, None),
        Some("slave") => (MsFlags::MS_SLAVE | MsFlags::MS_REC, Some(MsFlags::MS_SLAVE)),
        Some("private") => (
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            Some(MsFlags::MS_PRIVATE),
        ),
        Some("rprivate") => (MsFlags::MS_PRIVATE | MsFlags::MS_REC, None),
        // as runc: the host's shared mounts stay peers of the container's (a Bidirectional
        // volume's mounts reach the host); the rootfs itself is made private before its bind
        Some("shared") => (MsFlags::MS_SHARED, Some(MsFlags::MS_SHARED)),
        Some("rshared") => (
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC),
        ),
        Some("unbindable") => (
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            Some(MsFlags::MS_UNBINDABLE),
        ),
        Some("runbindable") => (
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        ),
        Some(other) => {
            return err(
                "linux.rootfsPropagation",
                format!("unknown propagation {other:?}"),
            );
        }
    };

    // The runtime-spec says absolute; runc resolves relative ones against the root: so does
    // berth, with a warning.
    let mut warnings = Vec::new();
    let mut paths = |field: &str, list: &Option<Vec<String>>| -> Vec<PathBuf> {
        let list = list.as_deref().unwrap_or(&[]);
        let mut out = Vec::with_capacity(list.len());
        for (i, p) in list.iter().enumerate() {
            if !p.starts_with('/') {
                warnings.push(format!(
                    "{field}[{i}]: {p:?} is not absolute: taken as /{p}, as runc does"
                ));
            }
            out.push(clean(&Path::new("/").join(p)));
        }
        out
    };
    let masked_paths = paths("linux.maskedPaths", linux.masked_paths());
    let readonly_paths = paths("linux.readonlyPaths", linux.readonly_paths());

    let mut sysctls = Vec::new();
    if let Some(map) = linux.sysctl() {
        let mut keys: Vec<_> = map.iter().collect();
        keys.sort();
        for (k, v) in keys {
            let field = format!("linux.sysctl.{k}");
            let ipc = matches!(
                k.as_str(),
                "kernel.msgmax"
                    | "kernel.msgmnb"
                    | "kernel.msgmni"
                    | "kernel.sem"
                    | "kernel.shmall"
                    | "kernel.shmmax"
                    | "kernel.shmmni"
                    | "kernel.shm_rmid_forced"
            ) || k.starts_with("fs.mqueue.");
            let ok = if k.starts_with("net.") {
                has("network")
            } else if ipc {
                has("ipc")
            } else if k == "kernel.hostname" || k == "kernel.domainname" {
                new_uts
            } else {
                return err(
                    field,
                    "not a namespaced sysctl: refusing to change the host",
                );
            };
            if !ok {
                return err(
                    field,
                    "needs the container's own namespace for it (network, ipc or uts)",
                );
            }
            if k.contains("..") || k.contains('/') {
                return err(field, "not a sysctl name");
            }
            sysctls.push((Path::new("/proc/sys").join(k.replace('.', "/")), v.clone()));
        }
    }

    let new_user = namespaces.clone_flags.contains(CloneFlags::CLONE_NEWUSER);
    let in_user = namespaces.user;
    let maps = |field: &str,
                list: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>|
     -> R<Vec<(u32, u32, u32)>> {
        let list = list.as_deref().unwrap_or(&[]);
        if list.is_empty() {
            return err(field, "required with a new user namespace");
        }
        if list.len() > 340 {
            return err(field, "at most 340 mappings");
        }
        Ok(list
            .iter()
            .map(|m| (m.container_id(), m.host_id(), m.size()))
            .collect())
    };
    let id_maps = if new_user {
        Some(IdMaps {
            uid: maps("linux.uidMappings", linux.uid_mappings())?,
            gid: maps("linux.gidMappings", linux.gid_mappings())?,
        })
    } else {
        if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
            return err("linux.uidMappings", "needs a new user namespace");
        }
        if linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
            return err("linux.gidMappings", "needs a new user namespace");
        }
        None
    };
    let mut time_offsets = Vec::new();
    if let Some(offsets) = linux.time_offsets() {
        if !offsets.is_empty() && !namespaces.new_time {
            return err("linux.timeOffsets", "needs a new time namespace");
        }
        let mut keys: Vec<_> = offsets.iter().collect();
        keys.sort_by_key(|(k, _)| k.as_str());
        for (clock, o) in keys {
            if clock != "monotonic" && clock != "boottime" {
                return err(
                    format!("linux.timeOffsets.{clock}"),
                    "only monotonic and boottime clocks have offsets",
                );
            }
            let nanos = o.nanosecs().unwrap_or(0);
            if nanos >= 1_000_000_000 {
                return err(
                    format!("linux.timeOffsets.{clock}.nanosecs"),
                    "must be below 1000000000",
                );
            }
            time_offsets.push((clock.clone(), o.secs().unwrap_or(0), nanos));
        }
    }

    // Without a mount namespace of its own the container sees the host's root, as with
    // runc: berth mounts nothing, makes no devices and does not pivot (it never mounts in the
    // host's namespace); paths cannot be masked there.
    let own_mounts = namespaces.kinds.iter().any(|k| k == "mount");
    if !own_mounts {
        for (field, list) in [
            ("linux.maskedPaths", &masked_paths),
            ("linux.readonlyPaths", &readonly_paths),
        ] {
            if !list.is_empty() {
                return err(
                    field,
                    "unable to restrict sys entries without a private MNT namespace",
                );
            }
        }
        mounts.clear();
        devices.clear();
    }
    let mut mount_label = None;
    let mut process = process_plan(process, "process")?;
    process.personality = personality(linux)?;
    if let Some(label) = linux.mount_label().as_deref().filter(|l| !l.is_empty()) {
        mount_label = Some(label.to_string());
        for m in mounts.iter_mut().filter(|m| matches!(m.kind, Kind::Fs(_))) {
            m.options.data.push(format!("context=\"{label}\""));
        }
    }

    Ok(Plan {
        id: input.id.to_string(),
        bundle: input.bundle.to_path_buf(),
        rootfs,
        namespaces,
        root_propagation,
        final_propagation,
        mounts,
        cgroup_mount,
        devices,
        bind_devices: in_user,
        dev_symlinks: !dev_bound && own_mounts,
        readonly_root: root.readonly().unwrap_or(false) && own_mounts,
        pivot: !input.no_pivot,
        masked_paths,
        readonly_paths,
        hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
        domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
        sysctls,
        cgroup: CgroupPlan {
            dirs,
            writes,
            device_rules,
        },
        process,
        mount_label,
        warnings,
        own_mounts,
        seccomp: linux
            .seccomp()
            .as_ref()
            .map(super::seccomp::filter)
            .transpose()?,
        id_maps,
        time_offsets,
        hooks: spec.hooks().clone().unwrap_or_default(),
        annotations: spec
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    })
}

fn ns_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The runtime-spec name of a namespace type.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

fn namespaces(list: &[oci_spec::runtime::LinuxNamespace], layout: &Layout) -> R<Namespaces> {
    let mut ns = Namespaces {
        clone_flags: CloneFlags::empty(),
        join: Vec::new(),
        join_pid: None,
        unshare_cgroup: false,
        kinds: Vec::new(),
        new_time: false,
        user: false,
    };
    let mut seen = HashSet::new();
    for (i, n) in list.iter().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let t = n.typ();
        if !seen.insert(ns_name(t)) {
            return err(
                format!("{field}.type"),
                format!("{} namespace listed twice", ns_name(t)),
            );
        }
        ns.kinds.push(ns_name(t).to_string());
        if t == LinuxNamespaceType::User {
            ns.user = true;
        }
        match n.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                if !p.is_absolute() {
                    return err(format!("{field}.path"), "must be an absolute path");
                }
                if t == LinuxNamespaceType::Time {
                    ns.join.push((ns_flag(t), p.clone()));
                } else if t == LinuxNamespaceType::Pid {
                    ns.join_pid = Some(p.clone());
                } else {
                    ns.join.push((ns_flag(t), p.clone()));
                }
            }
            _ => {
                if t == LinuxNamespaceType::Time {
                    ns.new_time = true;
                } else if t == LinuxNamespaceType::Cgroup && !layout.is_v2() {
                    // v1: the child is moved into its cgroups after clone, so the namespace
                    // (rooted at the current cgroup) is created after that
                    ns.unshare_cgroup = true;
                } else {
                    ns.clone_flags |= ns_flag(t);
                }
            }
        }
    }
    if ns.clone_flags.contains(CloneFlags::CLONE_NEWUSER)
        && (ns.join_pid.is_some() || !ns.join.is_empty())
    {
        // Namespaces joined after a new user namespace would need privileges the container's
        // root does not have over the host's namespaces; join their user namespace instead.
        return err(
            "linux.namespaces",
            "a new user namespace cannot be combined with namespaces joined by path (join their user namespace by path too)",
        );
    }
    Ok(ns)
}

fn mount_entry(i: usize, m: &oci_spec::runtime::Mount, bundle: &Path) -> R<Entry> {
    let field = format!("mounts[{i}]");
    let options = mount::parse_options(m.options().as_deref().unwrap_or(&[]))
        .map_err(|e| SpecError::new(format!("{field}.options"), e))?;
    let dest = m.destination();
    if dest.as_os_str().is_empty() {
        return err(format!("{field}.destination"), "required");
    }
    // runtime-spec 1.1 allows relative destinations: relative to "/"
    let destination = clean(&Path::new("/").join(dest));
    let typ = m.typ().as_deref().unwrap_or("");
    let kind = if typ == "bind" || options.bind {
        Kind::Bind
    } else if typ == "cgroup" || typ == "cgroup2" {
        Kind::Cgroup
    } else if typ.is_empty() || typ == "none" {
        return err(
            format!("{field}.type"),
            "required unless options contain bind or rbind",
        );
    } else {
        Kind::Fs(typ.to_string())
    };
    let source = match (&kind, m.source()) {
        (Kind::Bind, None) => return err(format!("{field}.source"), "required for a bind mount"),
        (Kind::Bind, Some(s)) if s.is_absolute() => Some(s.clone()),
        (Kind::Bind, Some(s)) => Some(bundle.join(s)),
        (_, s) => s.clone(),
    };
    let mut options = options;
    if kind == Kind::Bind && typ == "bind" && !options.bind {
        options.bind = true;
    }
    Ok(Entry {
        kind,
        source,
        destination,
        options,
    })
}

fn cstring(field: &str, s: &str) -> R<CString> {
    CString::new(s).map_err(|_| SpecError::new(field, "contains a NUL byte"))
}

fn rlimit_resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

fn cap_set(field: &str, set: &Option<oci_spec::runtime::Capabilities>) -> R<caps::CapsHashSet> {
    let mut out = caps::CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: caps::Capability = name
            .parse()
            .map_err(|_| SpecError::new(field, format!("unknown capability {name}")))?;
        out.insert(cap);
    }
    Ok(out)
}

fn capabilities(field: &str, c: &LinuxCapabilities) -> R<Capabilities> {
    let caps = Capabilities {
        bounding: cap_set(&format!("{field}.bounding"), c.bounding())?,
        effective: cap_set(&format!("{field}.effective"), c.effective())?,
        inheritable: cap_set(&format!("{field}.inheritable"), c.inheritable())?,
        permitted: cap_set(&format!("{field}.permitted"), c.permitted())?,
        ambient: cap_set(&format!("{field}.ambient"), c.ambient())?,
        drop_bounding: Vec::new(),
    };
    // Only what this kernel knows can be set; newer names are dropped, as runc does.
    let known = caps::runtime::procfs_all_supported(None)
        .unwrap_or_else(|_| caps::runtime::thread_all_supported());
    let keep = |s: &caps::CapsHashSet| s.intersection(&known).copied().collect();
    let mut drop_bounding: Vec<caps::Capability> =
        known.difference(&caps.bounding).copied().collect();
    drop_bounding.sort_by_key(|c| c.index());
    Ok(Capabilities {
        bounding: keep(&caps.bounding),
        effective: keep(&caps.effective),
        inheritable: keep(&caps.inheritable),
        permitted: keep(&caps.permitted),
        ambient: keep(&caps.ambient),
        drop_bounding,
    })
}

/// The execution domain of `linux.personality` (for the init and every exec'd process).
pub fn personality(linux: &oci_spec::runtime::Linux) -> R<Option<u64>> {
    let Some(per) = linux.personality() else {
        return Ok(None);
    };
    if per.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return err(
            "linux.personality.flags",
            "no personality flags are supported",
        );
    }
    Ok(Some(match per.domain() {
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0x0000,
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
    }))
}

/// The process plan of a `process` object (of config.json, or of `exec --process`). `field`
/// prefixes the field names in errors.
pub fn process_plan(p: &Process, field: &str) -> R<ProcessPlan> {
    let args = p.args().as_deref().unwrap_or(&[]);
    if args.is_empty() || args[0].is_empty() {
        return err(format!("{field}.args"), "must name the program to run");
    }
    if !p.cwd().is_absolute() {
        return err(
            format!("{field}.cwd"),
            format!("{:?} must be an absolute path", p.cwd()),
        );
    }
    let args = args
        .iter()
        .enumerate()
        .map(|(i, a)| cstring(&format!("{field}.args[{i}]"), a))
        .collect::<R<Vec<_>>>()?;
    let env = p
        .env()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, e)| cstring(&format!("{field}.env[{i}]"), e))
        .collect::<R<Vec<_>>>()?;
    let mut rlimits: Vec<Rlimit> = Vec::new();
    for (i, r) in p.rlimits().as_deref().unwrap_or(&[]).iter().enumerate() {
        let name = r.typ().to_string();
        if rlimits.iter().any(|x| x.name == name) {
            return err(
                format!("{field}.rlimits[{i}].type"),
                format!("{name} listed twice"),
            );
        }
        if r.soft() > r.hard() {
            return err(
                format!("{field}.rlimits[{i}]"),
                format!("soft {} is above hard {}", r.soft(), r.hard()),
            );
        }
        rlimits.push(Rlimit {
            resource: rlimit_resource(r.typ()),
            name,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    let capabilities = p
        .capabilities()
        .as_ref()
        .map(|c| capabilities(&format!("{field}.capabilities"), c))
        .transpose()?;
    if let Some(c) = &capabilities {
        if !c.effective.is_subset(&c.permitted) {
            return err(
                format!("{field}.capabilities.effective"),
                "must be a subset of permitted",
            );
        }
    }
    if let Some(v) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&v) {
            return err(
                format!("{field}.oomScoreAdj"),
                format!("{v} is outside -1000..1000"),
            );
        }
    }
    let user = p.user();
    let console_size = p
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    Ok(ProcessPlan {
        args,
        env,
        cwd: p.cwd().clone(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        rlimits,
        capabilities,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        terminal: p.terminal().unwrap_or(false),
        console_size,
        oom_score_adj: p.oom_score_adj(),
        scheduler: p
            .scheduler()
            .as_ref()
            .map(|s| scheduler(s, field))
            .transpose()?,
        io_priority: p
            .io_priority()
            .as_ref()
            .map(|io| {
                let class = match io.class() {
                    oci_spec::runtime::IOPriorityClass::IoprioClassRt => 1,
                    oci_spec::runtime::IOPriorityClass::IoprioClassBe => 2,
                    oci_spec::runtime::IOPriorityClass::IoprioClassIdle => 3,
                };
                if !(0..=7).contains(&io.priority()) {
                    return err(
                        format!("{field}.ioPriority.priority"),
                        format!("{} is outside 0..7", io.priority()),
                    );
                }
                Ok((class, io.priority() as u32))
            })
            .transpose()?,
        personality: None,
        apparmor_profile: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
        selinux_label: p.selinux_label().clone().filter(|s| !s.is_empty()),
    })
}

fn scheduler(s: &oci_spec::runtime::Scheduler, field: &str) -> R<crate::linux::sys::Sched> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return err(
            format!("{field}.scheduler.nice"),
            format!("{nice} is outside -20..19"),
        );
    }
    let priority = s.priority().unwrap_or(0);
    if (policy == 1 || policy == 2) && !(1..=99).contains(&priority) {
        return err(
            format!("{field}.scheduler.priority"),
            "SCHED_FIFO and SCHED_RR need a priority in 1..99",
        );
    }
    if policy == 6 && (s.runtime().is_none() || s.deadline().is_none()) {
        return err(
            format!("{field}.scheduler"),
            "SCHED_DEADLINE needs runtime and deadline",
        );
    }
    Ok(crate::linux::sys::Sched {
        policy,
        flags,
        nice,
        priority: priority.max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

/// Lexically clean an absolute path (exposed for `exec --cwd`).
pub fn clean_path(p: &Path) -> PathBuf {
    clean(p)
}

/// Bytes of a path (for CStrings).
pub fn path_cstring(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::cgroup::Hierarchy;

    fn v1() -> Layout {
        Layout::V1(vec![
            Hierarchy {
                controllers: vec!["memory".into()],
                mountpoint: "/sys/fs/cgroup/memory".into(),
                own: "/".into(),
            },
            Hierarchy {
                controllers: vec!["pids".into()],
                mountpoint: "/sys/fs/cgroup/pids".into(),
                own: "/".into(),
            },
        ])
    }

    fn v2() -> Layout {
        Layout::V2 {
            mountpoint: "/sys/fs/cgroup".into(),
            own: "/".into(),
        }
    }

    const BASE: &str = r#"{
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 1, "gid": 2, "additionalGids": [3]},
                    "env": ["PATH=/bin"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]},
        "hostname": "h",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/data", "type": "bind", "source": "data", "options": ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "cgroup"},
                           {"type": "network", "path": "/var/run/netns/x"}],
            "cgroupsPath": "/pods/c1",
            "resources": {"memory": {"limit": 1048576}}
        }
    }"#;

    fn plan(json: &str, layout: &Layout) -> R<Plan> {
        let spec = super::super::spec::parse(json)?;
        build(
            &spec,
            &Input {
                id: "c1",
                bundle: Path::new("/b"),
                layout,
                no_pivot: false,
            },
        )
    }

    #[test]
    fn namespaces_created_and_joined() {
        let p = plan(BASE, &v1()).unwrap();
        assert_eq!(
            p.namespaces.clone_flags,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS
        );
        assert!(
            p.namespaces.unshare_cgroup,
            "v1: cgroupns after the cgroup join"
        );
        assert_eq!(
            p.namespaces.join,
            vec![(CloneFlags::CLONE_NEWNET, PathBuf::from("/var/run/netns/x"))]
        );
        let p = plan(BASE, &v2()).unwrap();
        assert!(
            p.namespaces
                .clone_flags
                .contains(CloneFlags::CLONE_NEWCGROUP)
        );
        assert!(!p.namespaces.unshare_cgroup);
    }

    #[test]
    fn rootfs_mounts_devices_process() {
        let p = plan(BASE, &v1()).unwrap();
        assert_eq!(p.rootfs, PathBuf::from("/b/rootfs"));
        assert!(p.readonly_root);
        assert_eq!(p.mounts[2].kind, Kind::Bind);
        assert_eq!(p.mounts[2].source, Some(PathBuf::from("/b/data")));
        assert_eq!(p.mounts[2].options.flags, MsFlags::MS_RDONLY);
        assert_eq!(p.devices.len(), 6);
        assert!(p.dev_symlinks);
        assert_eq!((p.process.uid, p.process.gid), (1, 2));
        assert_eq!(p.process.additional_gids, vec![3]);
        assert_eq!(p.process.rlimits[0].hard, 20);
        assert_eq!(p.hostname.as_deref(), Some("h"));
        assert_eq!(
            p.cgroup.dirs.v1_dir("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/pods/c1"))
        );
        assert_eq!(p.cgroup.writes[0].file, "memory.limit_in_bytes");
        let Some(CgroupMount::V1 {
            hierarchies,
            namespaced,
        }) = &p.cgroup_mount
        else {
            panic!()
        };
        assert!(namespaced);
        assert_eq!(hierarchies.len(), 2);
    }

    #[test]
    fn default_cgroup_path_is_relative_to_own_cgroup() {
        let json = BASE.replace(r#""cgroupsPath": "/pods/c1","#, "");
        let p = plan(&json, &v2()).unwrap();
        assert_eq!(p.cgroup.dirs, Dirs::V2("/sys/fs/cgroup/c1".into()));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (BASE.replace(r#"{"type": "uts"}, "#, ""), "hostname"),
            (
                BASE.replace(r#"{"type": "mount"}, "#, "").replace(
                    r#""cgroupsPath""#,
                    r#""maskedPaths": ["/proc/kcore"], "cgroupsPath""#,
                ),
                "linux.maskedPaths",
            ),
            (
                BASE.replace(r#"{"type": "pid"}"#, r#"{"type": "user"}"#),
                "linux.namespaces",
            ),
            (
                BASE.replace(r#"{"type": "uts"}"#, r#"{"type": "pid"}"#),
                "linux.namespaces[2].type",
            ),
            (
                BASE.replace(r#""args": ["sh"]"#, r#""args": []"#),
                "process.args",
            ),
            (
                BASE.replace(r#""cwd": "/""#, r#""cwd": "rel""#),
                "process.cwd",
            ),
            (
                BASE.replace(r#""type": "bind", "source": "data""#, r#""type": "bind""#),
                "mounts[2].source",
            ),
            (BASE.replace(r#""type": "proc", "#, ""), "mounts[0].type"),
            (BASE.replace("1.0.2", "2.0.0"), "ociVersion"),
            (
                BASE.replace("/pods/c1", "/pods/../../x"),
                "linux.cgroupsPath",
            ),
            (
                BASE.replace(r#""limit": 1048576"#, r#""limit": -2"#),
                "linux.resources.memory.limit",
            ),
            (
                BASE.replace(r#""soft": 10"#, r#""soft": 30"#),
                "process.rlimits[0]",
            ),
            (
                BASE.replace(r#""options": ["ro"]"#, r#""options": ["idmap"]"#),
                "mounts[2].options",
            ),
        ];
        for (json, field) in cases {
            let e = plan(&json, &v1()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn without_a_mount_namespace_nothing_is_mounted() {
        let p = plan(&BASE.replace(r#"{"type": "mount"}, "#, ""), &v1()).unwrap();
        assert!(!p.own_mounts);
        assert!(p.mounts.is_empty() && p.devices.is_empty() && !p.dev_symlinks);
    }

    #[test]
    fn relative_masked_paths_are_taken_from_the_root_with_a_warning() {
        let json = BASE.replace(
            r#""cgroupsPath""#,
            r#""maskedPaths": ["proc/kcore", "/proc/keys"], "readonlyPaths": ["proc/sys"], "cgroupsPath""#,
        );
        let p = plan(&json, &v1()).unwrap();
        assert_eq!(
            p.masked_paths,
            vec![PathBuf::from("/proc/kcore"), "/proc/keys".into()]
        );
        assert_eq!(p.readonly_paths, vec![PathBuf::from("/proc/sys")]);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(
            p.warnings[0].starts_with("linux.maskedPaths[0]"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn user_and_time_namespaces() {
        let own = r#""namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "user"}, {"type": "time"}],"#;
        let json = BASE.replace(
            r#""namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "cgroup"},
                           {"type": "network", "path": "/var/run/netns/x"}],"#,
            own,
        );
        assert_eq!(plan(&json, &v1()).unwrap_err().field, "linux.uidMappings");
        let json = json.replace(
            own,
            &format!(
                r#"{own} "uidMappings": [{{"containerID": 0, "hostID": 100000, "size": 65536}}],
                 "gidMappings": [{{"containerID": 0, "hostID": 200000, "size": 10}}],
                 "timeOffsets": {{"monotonic": {{"secs": 86400, "nanosecs": 5}}}},"#
            ),
        );
        let p = plan(&json, &v1()).unwrap();
        assert!(p.namespaces.clone_flags.contains(CloneFlags::CLONE_NEWUSER));
        assert!(p.namespaces.new_time && p.namespaces.user && p.bind_devices);
        let maps = p.id_maps.unwrap();
        assert_eq!(maps.uid, vec![(0, 100000, 65536)]);
        assert_eq!(maps.gid, vec![(0, 200000, 10)]);
        assert_eq!(p.time_offsets, vec![("monotonic".to_string(), 86400, 5)]);
        let bad = json.replace("monotonic", "realtime");
        assert_eq!(
            plan(&bad, &v1()).unwrap_err().field,
            "linux.timeOffsets.realtime"
        );
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let with = |k: &str| {
            BASE.replace(
                r#""cgroupsPath""#,
                &format!(r#""sysctl": {{"{k}": "1"}}, "cgroupsPath""#),
            )
        };
        let p = plan(&with("net.ipv4.ip_forward"), &v1()).unwrap();
        assert_eq!(
            p.sysctls,
            vec![(PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1".into())]
        );
        assert_eq!(
            plan(&with("vm.swappiness"), &v1()).unwrap_err().field,
            "linux.sysctl.vm.swappiness"
        );
        assert_eq!(
            plan(&with("kernel.shmmax"), &v1()).unwrap_err().field,
            "linux.sysctl.kernel.shmmax"
        );
    }

    #[test]
    fn rootfs_propagation() {
        let p = plan(
            &BASE.replace(
                r#""cgroupsPath""#,
                r#""rootfsPropagation": "rshared", "cgroupsPath""#,
            ),
            &v1(),
        )
        .unwrap();
        // never a slave first: that would cut the container's mounts off from the host's
        assert_eq!(p.root_propagation, MsFlags::MS_SHARED | MsFlags::MS_REC);
        assert_eq!(
            p.final_propagation,
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        let p = plan(
            &BASE.replace(
                r#""cgroupsPath""#,
                r#""rootfsPropagation": "rslave", "cgroupsPath""#,
            ),
            &v1(),
        )
        .unwrap();
        assert_eq!(p.root_propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(p.final_propagation, None);
    }
}
