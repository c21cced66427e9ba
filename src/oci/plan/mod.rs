//! Spec → plan: turn a parsed config.json into plain data that says exactly what the kernel will
//! be asked to do (which namespaces to create or join, which mounts, which cgroup writes, which
//! process attributes). Pure: no syscalls, so every rule is unit-tested with `assert_eq!`. The
//! create path then carries the plan out (`init.rs` inside the container, `create.rs` outside).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::resources;
use super::spec::SpecError;
use crate::linux::cgroup::{Dirs, Layout, Write};
use crate::linux::mount::{self, CgroupMount, Device, Entry, Kind};
use crate::linux::process::ProcessPlan;
use crate::linux::seccomp::Filter;

mod namespaces;
mod process;

use namespaces::namespaces;
pub use namespaces::ns_name;
pub use process::{personality, process_plan};

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

/// Lexically clean an absolute path (exposed for `exec --cwd`).
pub fn clean_path(p: &Path) -> PathBuf {
    clean(p)
}

/// Bytes of a path (for CStrings).
pub fn path_cstring(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

#[cfg(test)]
mod tests;
