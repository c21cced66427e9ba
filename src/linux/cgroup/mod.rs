//! cgroups: detect the host's layout (v1, hybrid, or unified v2), create a container's cgroup,
//! write its limits, move processes in, list them, and remove it.
//!
//! On a hybrid host (v1 controllers plus a controller-less cgroup2 mount at
//! `/sys/fs/cgroup/unified`) berth uses the v1 hierarchies, as runc does.
//! Every function takes the directories it acts on, so unit tests can point them at a temp dir.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod devices;
pub mod freeze;
pub mod stats;

use super::{Result, Step, SysError};

/// One v1 hierarchy as mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The controllers bound to it, e.g. `["cpu", "cpuacct"]`.
    pub controllers: Vec<String>,
    /// Where it is mounted, e.g. `/sys/fs/cgroup/cpu,cpuacct`.
    pub mountpoint: PathBuf,
    /// The calling process's cgroup in it, e.g. `/user.slice`.
    pub own: PathBuf,
}

impl Hierarchy {
    /// The hierarchy's name: its controllers joined by commas.
    pub fn name(&self) -> String {
        self.controllers.join(",")
    }
}

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1 (or hybrid): one hierarchy per controller group.
    V1(Vec<Hierarchy>),
    /// Unified cgroup v2.
    V2 {
        /// Mount point, normally `/sys/fs/cgroup`.
        mountpoint: PathBuf,
        /// The calling process's cgroup.
        own: PathBuf,
    },
}

impl Layout {
    /// Detect the layout of the host berth runs on.
    pub fn detect() -> Result<Layout> {
        let own =
            fs::read_to_string("/proc/self/cgroup").step(|| "read /proc/self/cgroup".into())?;
        let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false);
        if unified {
            return Layout::parse_v2(Path::new("/sys/fs/cgroup"), &own);
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .step(|| "read /proc/self/mountinfo".into())?;
        Layout::parse_v1(&mountinfo, &own)
    }

    /// A v2 layout from the text of `/proc/self/cgroup`.
    pub fn parse_v2(mountpoint: &Path, self_cgroup: &str) -> Result<Layout> {
        let own = self_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| SysError::other("read /proc/self/cgroup", "no cgroup v2 entry"))?;
        Ok(Layout::V2 {
            mountpoint: mountpoint.to_path_buf(),
            own: PathBuf::from(own),
        })
    }

    /// A v1 layout from the texts of `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn parse_v1(mountinfo: &str, self_cgroup: &str) -> Result<Layout> {
        let mut own = BTreeMap::new();
        for line in self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrls, path) = (parts.next(), parts.next(), parts.next());
            if let (Some(c), Some(p)) = (ctrls, path) {
                if !c.is_empty() {
                    own.insert(c.to_string(), PathBuf::from(p));
                }
            }
        }
        let mut hierarchies = Vec::new();
        for line in mountinfo.lines() {
            // "36 25 0:31 / /sys/fs/cgroup/memory rw,.. shared:14 - cgroup cgroup rw,memory"
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut r = right.split_whitespace();
            if r.next() != Some("cgroup") {
                continue;
            }
            let super_opts = r.nth(1).unwrap_or("");
            let mountpoint = left.split_whitespace().nth(4).unwrap_or("");
            let root = left.split_whitespace().nth(3).unwrap_or("/");
            if root != "/" {
                // a bind of a sub-cgroup (inside a container): not a hierarchy root
                continue;
            }
            let controllers: Vec<String> = super_opts
                .split(',')
                .filter(|o| {
                    matches!(
                        *o,
                        "cpu"
                            | "cpuacct"
                            | "cpuset"
                            | "memory"
                            | "devices"
                            | "freezer"
                            | "net_cls"
                            | "net_prio"
                            | "blkio"
                            | "perf_event"
                            | "hugetlb"
                            | "pids"
                            | "rdma"
                            | "misc"
                    )
                })
                .map(String::from)
                .collect();
            if controllers.is_empty() {
                continue; // named hierarchies (name=systemd) belong to their manager
            }
            let name = controllers.join(",");
            let own_path = own
                .get(&name)
                .cloned()
                .unwrap_or_else(|| PathBuf::from("/"));
            hierarchies.push(Hierarchy {
                controllers,
                mountpoint: PathBuf::from(super::mountinfo::unescape(mountpoint)),
                own: own_path,
            });
        }
        if hierarchies.is_empty() {
            return Err(SysError::other(
                "detect cgroups",
                "no cgroup v1 controller is mounted and /sys/fs/cgroup is not cgroup2",
            ));
        }
        Ok(Layout::V1(hierarchies))
    }

    /// True on a unified (v2) host.
    pub fn is_v2(&self) -> bool {
        matches!(self, Layout::V2 { .. })
    }

    /// The container's cgroup directories for a cleaned `cgroupsPath`: absolute paths are from
    /// each hierarchy's root, relative ones from berth's own cgroup (runc's rules).
    pub fn resolve(&self, path: &Path) -> Dirs {
        let join = |mountpoint: &Path, own: &Path| {
            let inner = if path.is_absolute() {
                path.to_path_buf()
            } else {
                own.join(path)
            };
            mountpoint.join(inner.strip_prefix("/").unwrap_or(&inner))
        };
        match self {
            Layout::V2 { mountpoint, own } => Dirs::V2(join(mountpoint, own)),
            Layout::V1(hs) => Dirs::V1(
                hs.iter()
                    .map(|h| (h.name(), join(&h.mountpoint, &h.own)))
                    .collect(),
            ),
        }
    }
}

/// A container's cgroup: its directory in each hierarchy (v1) or its one directory (v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dirs {
    /// Hierarchy name (`memory`, `cpu,cpuacct`) → directory.
    V1(BTreeMap<String, PathBuf>),
    /// The unified directory.
    V2(PathBuf),
}

/// One write of a limit into a cgroup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// v1: the controller whose hierarchy holds the file; v2: empty.
    pub controller: &'static str,
    /// File name, e.g. `memory.limit_in_bytes`.
    pub file: String,
    pub value: String,
}

impl Write {
    /// A write into a v1 controller's hierarchy.
    pub fn v1(controller: &'static str, file: &str, value: impl ToString) -> Self {
        Write {
            controller,
            file: file.to_string(),
            value: value.to_string(),
        }
    }

    /// A write into the v2 directory.
    pub fn v2(file: &str, value: impl ToString) -> Self {
        Write {
            controller: "",
            file: file.to_string(),
            value: value.to_string(),
        }
    }
}

impl Dirs {
    /// The v1 directory of the hierarchy that holds `controller`.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        match self {
            Dirs::V1(m) => m
                .iter()
                .find(|(name, _)| name.split(',').any(|c| c == controller))
                .map(|(_, p)| p.as_path()),
            Dirs::V2(_) => None,
        }
    }

    /// Every directory, in a stable order.
    pub fn all(&self) -> Vec<&Path> {
        match self {
            Dirs::V1(m) => m.values().map(|p| p.as_path()).collect(),
            Dirs::V2(p) => vec![p.as_path()],
        }
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    pub fn procs_dir(&self) -> &Path {
        match self {
            Dirs::V2(p) => p,
            Dirs::V1(m) => ["pids", "memory", "freezer", "cpu"]
                .iter()
                .find_map(|c| self.v1_dir(c))
                .or_else(|| m.values().next().map(|p| p.as_path()))
                .unwrap_or(Path::new("/nonexistent")),
        }
    }
}

fn write_file(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).step(|| format!("write {value:?} to {}", path.display()))
}

fn read_trimmed(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .step(|| format!("read {}", path.display()))
}

/// Create the container's cgroup directories. Returns every directory it created, parents
/// first, so that a failure or `delete` removes exactly those.
pub fn create(layout: &Layout, dirs: &Dirs) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let res = create_inner(layout, dirs, &mut created);
    if let Err(e) = res {
        remove_created(&created);
        return Err(e);
    }
    Ok(created)
}

fn create_inner(layout: &Layout, dirs: &Dirs, created: &mut Vec<PathBuf>) -> Result<()> {
    match (layout, dirs) {
        (Layout::V2 { mountpoint, .. }, Dirs::V2(dir)) => {
            let rel = dir.strip_prefix(mountpoint).unwrap_or(dir);
            let mut cur = mountpoint.clone();
            for comp in rel.components() {
                enable_controllers(&cur)?;
                cur.push(comp);
                mkdir_tracked(&cur, created)?;
            }
            Ok(())
        }
        (Layout::V1(hs), Dirs::V1(map)) => {
            for h in hs {
                let Some(dir) = map.get(&h.name()) else {
                    continue;
                };
                let rel = dir.strip_prefix(&h.mountpoint).unwrap_or(dir);
                let mut cur = h.mountpoint.clone();
                let cpuset = h.controllers.iter().any(|c| c == "cpuset");
                for comp in rel.components() {
                    let parent = cur.clone();
                    cur.push(comp);
                    if mkdir_tracked(&cur, created)? && cpuset {
                        inherit_cpuset(&parent, &cur)?;
                    }
                }
            }
            Ok(())
        }
        _ => Err(SysError::other(
            "create cgroup",
            "cgroup version changed since the container was created",
        )),
    }
}

fn mkdir_tracked(dir: &Path, created: &mut Vec<PathBuf>) -> Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => {
            created.push(dir.to_path_buf());
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        // the kernel charges a new memory cgroup to its ancestors: a tiny limit above refuses it
        Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => Err(SysError::new(
            format!(
                "create cgroup {} (a memory limit above it, such as its pod's, is too small for \
                 the kernel to make a cgroup there)",
                dir.display()
            ),
            e,
        )),
        Err(e) => Err(SysError::new(format!("create cgroup {}", dir.display()), e)),
    }
}

/// A new v1 cpuset cgroup starts with no cpus and mems, and refuses tasks until given some.
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read_trimmed(&dir.join(file))?.is_empty() {
            let v = read_trimmed(&parent.join(file))?;
            write_file(dir, file, &v)?;
        }
    }
    Ok(())
}

/// Enable in `dir`'s children every controller `dir` has (v2 `cgroup.subtree_control`).
fn enable_controllers(dir: &Path) -> Result<()> {
    let available = read_trimmed(&dir.join("cgroup.controllers"))?;
    let enabled = read_trimmed(&dir.join("cgroup.subtree_control"))?;
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write_file(dir, "cgroup.subtree_control", &missing.join(" "))
}

/// Write the container's limits.
pub fn apply(dirs: &Dirs, writes: &[Write]) -> Result<()> {
    for w in writes {
        let dir = match dirs {
            Dirs::V2(d) => d.as_path(),
            Dirs::V1(_) => dirs.v1_dir(w.controller).ok_or_else(|| {
                SysError::other(
                    format!("write {}", w.file),
                    format!(
                        "the {} controller is not mounted on this host",
                        w.controller
                    ),
                )
            })?,
        };
        write_file(dir, &w.file, &w.value)?;
    }
    Ok(())
}

/// Move `pid` into the container's cgroup (every hierarchy on v1).
pub fn add_process(dirs: &Dirs, pid: i32) -> Result<()> {
    let pid = pid.to_string();
    for dir in dirs.all() {
        write_file(dir, "cgroup.procs", &pid)?;
    }
    Ok(())
}

/// Open every v1 hierarchy's `tasks` file for writing (the init moves itself, see
/// `oci::init::InitIo::cgroup_tasks`).
pub fn open_tasks(dirs: &Dirs) -> Result<Vec<OwnedFd>> {
    dirs.all()
        .iter()
        .map(|dir| {
            let path = dir.join("tasks");
            nix::fcntl::open(
                &path,
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .step(|| format!("open {}", path.display()))
        })
        .collect()
}

/// Open the v2 directory for `CLONE_INTO_CGROUP`.
pub fn open_v2(dirs: &Dirs) -> Result<Option<OwnedFd>> {
    let Dirs::V2(dir) = dirs else { return Ok(None) };
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .step(|| format!("open cgroup {}", dir.display()))?;
    Ok(Some(fd))
}

/// The pids in the container's cgroup.
pub fn procs(dirs: &Dirs) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    procs_below(dirs.procs_dir(), &mut out)?;
    Ok(out)
}

/// The processes of `dir` and of its sub-cgroups (made by `exec --cgroup` users or by the
/// container itself).
fn procs_below(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let path = dir.join("cgroup.procs");
    match fs::read_to_string(&path) {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SysError::new(format!("read {}", path.display()), e)),
    }
    for sub in sub_cgroups(dir) {
        procs_below(&sub, out)?;
    }
    Ok(())
}

/// The child cgroups of `dir`.
fn sub_cgroups(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// `dir`'s sub-cgroups, deepest first.
fn sub_cgroups_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in sub_cgroups(dir) {
        out.extend(sub_cgroups_deepest_first(&sub));
        out.push(sub);
    }
    out
}

/// Remove the container's cgroup: the leaf directories, then the parents berth created for it
/// (kept if another container still uses them). Waits briefly for exiting processes to leave.
pub fn remove(dirs: &Dirs, created: &[PathBuf]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let all: Vec<PathBuf> = dirs
        .all()
        .into_iter()
        .flat_map(|d| {
            let mut v = sub_cgroups_deepest_first(d);
            v.push(d.to_path_buf());
            v
        })
        .collect();
    for dir in &all {
        let mut pause = Duration::from_micros(200);
        loop {
            match fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(SysError::new(format!("remove cgroup {}", dir.display()), e)),
            }
        }
    }
    remove_created(created);
    Ok(())
}

/// Best-effort removal of created parents, deepest first; a parent still in use stays.
fn remove_created(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory
32 25 0:30 /sub /sys/fs/cgroup/bound rw - cgroup cgroup rw,pids
";
    const SELF: &str = "4:memory:/process_api/abc\n3:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n";

    #[test]
    fn v1_hybrid_layout() {
        let l = Layout::parse_v1(MOUNTINFO, SELF).unwrap();
        let Layout::V1(hs) = &l else { panic!() };
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].name(), "cpu,cpuacct");
        assert_eq!(hs[1].own, PathBuf::from("/process_api/abc"));
        let Dirs::V1(abs) = l.resolve(Path::new("/a/b")) else {
            panic!()
        };
        assert_eq!(abs["memory"], PathBuf::from("/sys/fs/cgroup/memory/a/b"));
        let rel = l.resolve(Path::new("x/y"));
        assert_eq!(
            rel.v1_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/abc/x/y")
        );
        assert_eq!(
            rel.v1_dir("cpuacct").unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/x/y")
        );
    }

    #[test]
    fn v2_layout() {
        let l = Layout::parse_v2(Path::new("/sys/fs/cgroup"), "0::/user.slice/u\n").unwrap();
        assert_eq!(
            l.resolve(Path::new("/c")),
            Dirs::V2("/sys/fs/cgroup/c".into())
        );
        assert_eq!(
            l.resolve(Path::new("c")),
            Dirs::V2("/sys/fs/cgroup/user.slice/u/c".into())
        );
    }

    #[test]
    fn create_and_remove_track_created_dirs() {
        let tmp = std::env::temp_dir().join(format!("berth-cg-unit-{}", std::process::id()));
        let mem = tmp.join("memory");
        fs::create_dir_all(mem.join("existing")).unwrap();
        let layout = Layout::V1(vec![Hierarchy {
            controllers: vec!["memory".into()],
            mountpoint: mem.clone(),
            own: "/".into(),
        }]);
        let dirs = layout.resolve(Path::new("/existing/new/leaf"));
        let created = create(&layout, &dirs).unwrap();
        assert_eq!(
            created,
            vec![mem.join("existing/new"), mem.join("existing/new/leaf")]
        );
        remove(&dirs, &created).unwrap();
        assert!(mem.join("existing").exists());
        assert!(!mem.join("existing/new").exists());
        fs::remove_dir_all(&tmp).unwrap();
    }
}
