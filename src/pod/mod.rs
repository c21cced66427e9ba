//! Pods: groups of containers that share one network namespace (one IP, one port space), IPC
//! and UTS, each container with its own mount and PID namespace (or one pod-wide PID
//! namespace), in one cgroup, networked by CNI, watched by one monitor process per pod.
//!
//! [`Runtime`] is the library's entry point, with the CRI's verbs in Rust types: the CLI
//! (`berth pod ...`) and the CRI server are thin layers over it.
//!
//! ```no_run
//! use berth::pod::{Options, Runtime, manifest};
//!
//! let rt = Runtime::new(Options::default());
//! let text = std::fs::read_to_string("pod.yaml")?;
//! for m in manifest::parse(&text)? {
//!     let pod = rt.run_pod(&m, &mut |line| eprintln!("{line}"))?;
//!     println!("{pod}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cgroup;
pub mod cni;
pub mod config;
pub mod container;
pub mod error;
pub mod hostnet;
pub mod logs;
pub mod manifest;
pub mod monitor;
pub mod netns;
pub mod state;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

pub use config::*;
use error::io;
pub use error::{Error, Result};
pub use manifest::PodManifest;
use monitor::{Request, Response};
use state::{
    ContainerRecord, ContainerState, ContainerStatus, PodDir, PodRecord, PodState, read_json,
    write_json,
};

use crate::image::{Images, PullOptions};

/// Where berth keeps things, and how it reaches CNI and the monitor.
#[derive(Debug, Clone)]
pub struct Options {
    /// State of pods (`<root>/pods`); default `/run/berth`.
    pub root: PathBuf,
    /// The image store; default `/var/lib/berth`.
    pub data_root: PathBuf,
    /// Container logs; default `/var/log/berth/pods`.
    pub log_root: PathBuf,
    pub cni: cni::CniPaths,
    /// The `berth` binary, run as the pod monitor and for `exec` (default: this program if it
    /// is berth, else `$BERTH_BINARY`, else `berth` on PATH).
    pub berth_binary: PathBuf,
    /// First restart back-off of supervised pods (kubelet's: 10 s).
    pub restart_backoff: Duration,
    /// Parent cgroup of pods that name none (default `/berth`).
    pub cgroup_parent: String,
    /// How images missing from the store are pulled.
    pub pull: PullOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root: crate::oci::DEFAULT_ROOT.into(),
            data_root: crate::image::store::DEFAULT_DATA_ROOT.into(),
            log_root: "/var/log/berth/pods".into(),
            cni: cni::CniPaths::default(),
            berth_binary: default_binary(),
            restart_backoff: Duration::from_secs(10),
            cgroup_parent: cgroup::DEFAULT_PARENT.into(),
            pull: PullOptions::default(),
        }
    }
}

/// Could `key` be a pod or container ID (a plain file name: no path)?
fn is_id(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Marker file of a pod whose creation has not finished.
const CREATING: &str = "creating";

/// Create `dir/creating` and hold a lock on it until the guard drops.
fn creation_marker(dir: &Path) -> Result<nix::fcntl::Flock<fs::File>> {
    let f = fs::File::create(dir.join(CREATING)).map_err(io("mark the object as being created"))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| error::sys("lock the creation marker")(e))
}

/// Is `dir` marked as being created by someone who is gone (the marker is not locked)?
fn abandoned(dir: &Path) -> bool {
    let Ok(f) = fs::File::open(dir.join(CREATING)) else {
        return false;
    };
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
}

/// A log file and its rotated generations (`NAME.1`, ...).
fn remove_log_file(path: &Path) {
    let _ = fs::remove_file(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

fn default_binary() -> PathBuf {
    if let Some(b) = std::env::var_os("BERTH_BINARY") {
        return b.into();
    }
    match std::env::current_exe() {
        Ok(p) if p.file_name().is_some_and(|n| n == "berth") => p,
        _ => "berth".into(),
    }
}

/// A pod as `pod ls`/`inspect` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PodStatus {
    #[serde(flatten)]
    pub record: PodRecord,
    pub containers: Vec<ContainerInfo>,
    /// Inodes of the pod's namespaces (`net`, `ipc`, `uts`).
    pub namespaces: std::collections::BTreeMap<String, u64>,
    /// Where they are pinned (what a container joins).
    pub namespace_paths: std::collections::BTreeMap<String, PathBuf>,
    pub monitor_pid: Option<i32>,
}

/// A container and what the monitor recorded about it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    #[serde(flatten)]
    pub record: ContainerRecord,
    pub status: ContainerStatus,
}

/// A change of a pod or container (`container_id` empty for pod events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodEvent {
    /// `pod_created`, `pod_ready`, `pod_stopped`, `pod_removed`, `container_created`,
    /// `container_started`, `container_stopped`, `container_removed`.
    pub kind: &'static str,
    pub pod_id: String,
    pub container_id: String,
    pub time: String,
}

/// The pod runtime.
#[derive(Debug, Clone)]
pub struct Runtime {
    opts: Options,
    images: Images,
}

/// Steps to undo if creating a pod fails part way.
enum Undo {
    Dir(PathBuf),
    Namespaces(PathBuf),
    Cgroup(String, Vec<PathBuf>),
    Mount(PathBuf),
    Network(Box<cni::Cached>),
    Monitor(PodDir),
    Name(PathBuf),
}

impl Runtime {
    pub fn new(opts: Options) -> Runtime {
        let images = Images::new(&opts.data_root);
        Runtime { opts, images }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn images(&self) -> &Images {
        &self.images
    }

    fn pods_dir(&self) -> PathBuf {
        self.opts.root.join("pods")
    }

    fn pod_dir(&self, id: &str) -> PodDir {
        PodDir(self.pods_dir().join(id))
    }

    // ----- pods

    /// Every pod.
    pub fn list_pods(&self) -> Result<Vec<PodRecord>> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.pods_dir()) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            if let Ok(r) = read_json::<PodRecord>(&e.path().join("pod.json")) {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// A pod by ID (or a unique prefix of one), `namespace/name`, or a name unique among pods.
    pub fn find_pod(&self, key: &str) -> Result<PodRecord> {
        // an exact ID reads one record, not every pod's
        if is_id(key)
            && let Ok(r) = read_json::<PodRecord>(&self.pod_dir(key).record())
        {
            return Ok(r);
        }
        let pods = self.list_pods()?;
        if let Some(p) = pods.iter().find(|p| p.id == key) {
            return Ok(p.clone());
        }
        let by_name: Vec<&PodRecord> = pods
            .iter()
            .filter(|p| match key.split_once('/') {
                Some((ns, n)) => p.config.namespace == ns && p.config.name == n,
                None => p.config.name == key,
            })
            .collect();
        let by_prefix: Vec<&PodRecord> = pods
            .iter()
            .filter(|p| key.len() >= 4 && p.id.starts_with(key))
            .collect();
        match (by_name.as_slice(), by_prefix.as_slice()) {
            ([p], _) | ([], [p]) => Ok((*p).clone()),
            ([], []) => Err(Error::NotFound(format!("pod {key:?}"))),
            _ => Err(Error::Invalid(format!(
                "pod {key:?} is ambiguous: name it namespace/name or by ID"
            ))),
        }
    }

    /// Create a pod: namespaces, cgroup, files, volumes, network, monitor. `supervised`: the
    /// monitor runs init containers and restarts (CLI pods); otherwise the caller drives.
    pub fn run_pod_sandbox(&self, cfg: &PodConfig, supervised: bool) -> Result<String> {
        let mut cfg = cfg.clone();
        let given_uid = !cfg.uid.is_empty();
        if !given_uid {
            cfg.uid = uuid_like();
        }
        if cfg.namespace.is_empty() {
            cfg.namespace = "default".into();
        }
        // A pod's name is reserved by a file made with O_EXCL, so two concurrent runs of one
        // name cannot both pass. CLI pods (no uid given) reserve namespace/name; the CRI's
        // reserve namespace/name/uid/attempt, as kubelet makes a new attempt beside the old.
        let key = if given_uid {
            format!(
                "pod_{}_{}_{}_{}",
                cfg.namespace, cfg.name, cfg.uid, cfg.attempt
            )
        } else {
            format!("pod_{}_{}", cfg.namespace, cfg.name)
        };
        let mut undo: Vec<Undo> = Vec::new();
        let what = if given_uid {
            format!(
                "pod {}/{} (uid {}, attempt {})",
                cfg.namespace, cfg.name, cfg.uid, cfg.attempt
            )
        } else {
            format!("pod {}/{}", cfg.namespace, cfg.name)
        };
        let reservation = self.reserve_name(&key, &what)?;
        undo.push(Undo::Name(reservation.clone()));
        let id = state::new_id();
        let dir = self.pod_dir(&id);
        let r = fs::write(self.opts.root.join("names").join(&key), &id)
            .map_err(io("record the pod's name"))
            .and_then(|_| self.sandbox_steps(&id, &dir, &cfg, supervised, &mut undo));
        if r.is_err() {
            for u in undo.into_iter().rev() {
                self.undo(u);
            }
        }
        r.map(|_| id)
    }

    fn sandbox_steps(
        &self,
        id: &str,
        dir: &PodDir,
        cfg: &PodConfig,
        supervised: bool,
        undo: &mut Vec<Undo>,
    ) -> Result<()> {
        fs::create_dir_all(self.pods_dir())
            .map_err(io(format!("create {}", self.pods_dir().display())))?;
        fs::create_dir(&dir.0).map_err(io(format!("create {}", dir.0.display())))?;
        undo.push(Undo::Dir(dir.0.clone()));
        // held (locked) while this call runs and removed when the pod is complete: `recover`
        // rolls back a pod whose marker is there but unlocked (its creator died)
        let _creating = creation_marker(&dir.0)?;
        for d in ["containers", "volumes", "shm"] {
            fs::create_dir_all(dir.0.join(d))
                .map_err(io(format!("create {}/{d}", dir.0.display())))?;
        }
        // 1. namespaces
        let hostname = container::pod_hostname(cfg);
        let spec = netns::NsSpec {
            host_network: cfg.host_network,
            host_ipc: cfg.host_ipc,
            hostname: hostname.clone(),
            sysctls: cfg
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        undo.push(Undo::Namespaces(dir.0.clone()));
        netns::create(&dir.0, &spec)?;
        // 2. the network, in a thread of its own: the CNI plugins are most of a pod's start
        //    on a bridge, and the steps up to the monitor do not need the pod's address
        std::thread::scope(|scope| {
            let network = (!cfg.host_network)
                .then(|| scope.spawn(|| attach_network(&self.opts.cni, id, dir, cfg)));
            let local = self.sandbox_local_steps(id, dir, cfg, &hostname, supervised, undo);
            // joined, and its undo recorded, whatever the other steps did
            let cached = network
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Invalid("the CNI thread panicked".into())))
                })
                .transpose();
            if let Ok(Some(c)) = &cached {
                undo.push(Undo::Network(Box::new(c.clone())));
            }
            let mut rec = local?;
            rec.ips = cached?.map(|c| c.ips()).unwrap_or_default();
            finish_sandbox(dir, &hostname, rec)
        })
    }

    /// The sandbox's steps that do not need its network: cgroup, files, volumes, the record
    /// (not ready yet) and the monitor.
    fn sandbox_local_steps(
        &self,
        id: &str,
        dir: &PodDir,
        cfg: &PodConfig,
        hostname: &str,
        supervised: bool,
        undo: &mut Vec<Undo>,
    ) -> Result<PodRecord> {
        // the pod's cgroup
        let cg = cgroup::pod_path(
            Some(
                cfg.cgroup_parent
                    .as_deref()
                    .unwrap_or(&self.opts.cgroup_parent),
            ),
            id,
        );
        let created = cgroup::create(&cg, cfg.resources.as_ref())?;
        fs::write(
            dir.0.join("cgroup.created"),
            created
                .iter()
                .map(|p| format!("{}\n", p.display()))
                .collect::<String>(),
        )
        .map_err(io("record the pod's cgroup"))?;
        undo.push(Undo::Cgroup(cg.clone(), created));
        // files and volumes
        nix::mount::mount(
            Some("shm"),
            &dir.shm(),
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            Some("mode=1777,size=65536k"),
        )
        .map_err(error::sys("mount the pod's /dev/shm"))?;
        undo.push(Undo::Mount(dir.shm()));
        for v in &cfg.volumes {
            match &v.source {
                VolumeSource::EmptyDir { memory, size_limit } => {
                    let p = dir.volume(&v.name);
                    fs::create_dir_all(&p).map_err(io(format!("create volume {}", v.name)))?;
                    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                        .ok();
                    if *memory {
                        let size = size_limit.map(|s| format!(",size={s}")).unwrap_or_default();
                        nix::mount::mount(
                            Some("tmpfs"),
                            &p,
                            Some("tmpfs"),
                            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                            Some(format!("mode=0777{size}").as_str()),
                        )
                        .map_err(error::sys(format!("mount tmpfs for volume {}", v.name)))?;
                        undo.push(Undo::Mount(p));
                    }
                }
                VolumeSource::HostPath { path, kind } => host_path(path, kind, &v.name)?,
            }
        }
        fs::write(dir.0.join("hostname"), format!("{hostname}\n")).map_err(io("write hostname"))?;
        fs::write(dir.0.join("resolv.conf"), resolv_conf(cfg.dns.as_ref()))
            .map_err(io("write resolv.conf"))?;
        // the record, then the monitor
        let log_dir = cfg.log_directory.clone().unwrap_or_else(|| {
            self.opts
                .log_root
                .join(format!("{}_{}_{}", cfg.namespace, cfg.name, cfg.uid))
        });
        let rec = PodRecord {
            id: id.to_string(),
            config: cfg.clone(),
            created: state::now(),
            state: PodState::NotReady,
            ips: Vec::new(),
            cgroup: cg,
            log_dir,
            supervised,
            restart_backoff_ms: self.opts.restart_backoff.as_millis() as u64,
            cni: Some(self.opts.cni.clone()),
        };
        write_json(&dir.record(), &rec)?;
        undo.push(Undo::Monitor(dir.clone()));
        self.spawn_monitor(dir)?;
        Ok(rec)
    }

    /// Roll back what a killed caller left half-made: pods still marked as being created
    /// (their monitor, network, namespaces, cgroups, mounts, names) and containers whose
    /// creation did not finish. A daemon calls this when it starts. Returns what it removed.
    pub fn recover(&self) -> Vec<String> {
        let mut done = Vec::new();
        let Ok(rd) = fs::read_dir(self.pods_dir()) else {
            return done;
        };
        for e in rd.flatten() {
            let dir = PodDir(e.path());
            let id = e.file_name().to_string_lossy().to_string();
            if abandoned(&dir.0) || (!dir.record().exists() && !dir.0.join(CREATING).exists()) {
                self.rollback_pod(&dir);
                self.release_names(&id);
                done.push(format!("pod {id}"));
                continue;
            }
            let Ok(cs) = fs::read_dir(dir.containers()) else {
                continue;
            };
            for c in cs.flatten() {
                if abandoned(&c.path())
                    || (!c.path().join("status.json").exists() && !c.path().join(CREATING).exists())
                {
                    let cid = c.file_name().to_string_lossy().to_string();
                    let _ = self.images.unmount(&c.path().join("bundle"));
                    let _ = fs::remove_dir_all(c.path());
                    self.release_names(&cid);
                    done.push(format!("container {cid}"));
                }
            }
        }
        // names whose owner never got recorded
        if let Ok(rd) = fs::read_dir(self.opts.root.join("names")) {
            for e in rd.flatten() {
                if fs::read_to_string(e.path()).is_ok_and(|o| o.is_empty()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        done
    }

    /// Undo every step of a pod's creation that may have happened (each tolerates absence).
    fn rollback_pod(&self, dir: &PodDir) {
        let _ = self.stop_monitor(dir);
        for f in [dir.network(), dir.0.join("network.pending.json")] {
            if let Ok(c) = read_json::<cni::Cached>(&f) {
                let _ = cni::del(&self.opts.cni, &c);
            }
        }
        let _ = netns::remove(&dir.0);
        let created: Vec<PathBuf> = fs::read_to_string(dir.0.join("cgroup.created"))
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .collect();
        for d in created.iter().rev() {
            let _ = fs::remove_dir(d);
        }
        let mounts = crate::linux::mountinfo::read().unwrap_or_default();
        for m in crate::linux::mountinfo::below(&mounts, &dir.0) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&dir.0);
    }

    /// The CNI result of a pod's network (None: host network, or its network is down).
    pub fn pod_network(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let p = self.find_pod(key)?;
        match read_json::<cni::Cached>(&self.pod_dir(&p.id).network()) {
            Ok(c) => Ok(Some(c.result)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A pod's cgroup usage (the sum of its containers').
    pub fn pod_stats(&self, key: &str) -> Result<crate::linux::cgroup::stats::Stats> {
        let p = self.find_pod(key)?;
        let dirs = cgroup::dirs(&p.cgroup)
            .map(|(_, d)| d)
            .ok_or_else(|| Error::Precondition(format!("pod {}: no cgroup", p.config.name)))?;
        Ok(crate::linux::cgroup::stats::read_stats(&dirs))
    }

    /// Make the monitor reopen a container's log file (after the caller rotated it).
    pub fn reopen_log(&self, id: &str) -> Result<()> {
        let (pod, c) = self.find_container(None, id)?;
        if c.status.state != ContainerState::Running {
            return Err(Error::Precondition(format!(
                "container {} is not running",
                c.record.config.name
            )));
        }
        match monitor::request(
            &self.pod_dir(&pod.id),
            &Request::ReopenLog {
                id: c.record.id.clone(),
            },
            Duration::from_secs(10),
        )? {
            Response::Ok => Ok(()),
            Response::Error { message } => Err(Error::Precondition(message)),
            other => Err(Error::Invalid(format!(
                "pod monitor answered {other:?} to reopen-log"
            ))),
        }
    }

    fn spawn_monitor(&self, dir: &PodDir) -> Result<()> {
        let log = fs::File::create(dir.0.join("monitor.log")).map_err(io("create monitor.log"))?;
        let mut child = Command::new(&self.opts.berth_binary)
            .arg(monitor::ARG)
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(io(format!(
                "start the pod monitor ({})",
                self.opts.berth_binary.display()
            )))?;
        let mut line = String::new();
        let out = child.stdout.take().expect("piped");
        let _ = BufReader::new(out).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            let why = fs::read_to_string(dir.0.join("monitor.log")).unwrap_or_default();
            return Err(Error::Invalid(format!(
                "the pod monitor did not start: {}",
                why.trim()
            )));
        }
        // what we started was only the monitor's launcher: it forked the monitor and exited
        let _ = child.wait();
        Ok(())
    }

    fn undo(&self, u: Undo) {
        match u {
            Undo::Dir(d) => {
                let _ = fs::remove_dir_all(d);
            }
            Undo::Namespaces(d) => {
                let _ = netns::remove(&d);
            }
            Undo::Cgroup(path, created) => {
                let _ = cgroup::remove(&path, &created);
            }
            Undo::Mount(p) => {
                let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
            }
            Undo::Network(c) => {
                let _ = cni::del(&self.opts.cni, &c);
            }
            Undo::Monitor(d) => {
                let _ = self.stop_monitor(&d);
            }
            Undo::Name(p) => {
                let _ = fs::remove_file(p);
            }
        }
    }

    /// Reserve a name: a file in `<root>/names` made with O_EXCL (its content: the owner's ID).
    fn reserve_name(&self, key: &str, what: &str) -> Result<PathBuf> {
        let names = self.opts.root.join("names");
        fs::create_dir_all(&names).map_err(io(format!("create {}", names.display())))?;
        // the key holds names from the caller: one file name whatever they contain
        let path = names.join(key.replace('%', "%25").replace('/', "%2F"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // a reservation whose owner is gone (a crash between reserve and record) is stale
                let owner = fs::read_to_string(&path).unwrap_or_default();
                let old = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|d| d > Duration::from_secs(30));
                let stale = old
                    && !owner.is_empty()
                    && !self.pods_dir().join(&owner).exists()
                    && !self.container_exists(&owner);
                if stale {
                    let _ = fs::remove_file(&path);
                    return self.reserve_name(key, what);
                }
                Err(Error::AlreadyExists(what.to_string()))
            }
            Err(e) => Err(Error::Io {
                step: format!("reserve the name {key}"),
                err: e,
            }),
        }
    }

    /// Release the names `owner` (a pod or container ID) holds.
    fn release_names(&self, owner: &str) {
        if let Ok(rd) = fs::read_dir(self.opts.root.join("names")) {
            for e in rd.flatten() {
                if fs::read_to_string(e.path()).is_ok_and(|o| o == owner) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    fn container_exists(&self, id: &str) -> bool {
        self.list_pods()
            .unwrap_or_default()
            .iter()
            .any(|p| self.pod_dir(&p.id).container(id).exists())
    }

    fn stop_monitor(&self, dir: &PodDir) -> Result<()> {
        let pid: Option<i32> = read_json(&dir.monitor_pid()).ok();
        let asked = monitor::request(dir, &Request::Shutdown, Duration::from_secs(10)).is_ok();
        if let Some(pid) = pid {
            // wait for it to go (it is not our child: poll its /proc entry)
            let deadline = Instant::now() + Duration::from_secs(if asked { 5 } else { 0 });
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if alive(pid) && is_monitor(pid, dir) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if let Ok(p) = read_json::<i32>(&dir.pause_pid()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        Ok(())
    }

    /// The pod's status: its record, its containers and what the monitor recorded.
    pub fn pod_status(&self, key: &str) -> Result<PodStatus> {
        let rec = self.find_pod(key)?;
        Ok(self.status_of(rec))
    }

    /// The status of a pod whose record is at hand.
    fn status_of(&self, rec: PodRecord) -> PodStatus {
        let dir = self.pod_dir(&rec.id);
        let mut containers = Vec::new();
        if let Ok(rd) = fs::read_dir(dir.containers()) {
            for e in rd.flatten() {
                if let Ok(r) = read_json::<ContainerRecord>(&e.path().join("container.json")) {
                    let status = read_json(&e.path().join("status.json")).unwrap_or_default();
                    containers.push(ContainerInfo { record: r, status });
                }
            }
        }
        containers.sort_by(|a, b| a.record.created.cmp(&b.record.created));
        let mut namespaces = std::collections::BTreeMap::new();
        let mut namespace_paths = std::collections::BTreeMap::new();
        for (k, _) in netns::KINDS {
            if let Some(p) = netns::path(&dir.0, k) {
                if let Some(i) = netns::inode(&p) {
                    namespaces.insert(k.to_string(), i);
                }
                namespace_paths.insert(k.to_string(), p);
            }
        }
        let monitor_pid = read_json::<i32>(&dir.monitor_pid())
            .ok()
            .filter(|p| is_monitor(*p, &dir));
        PodStatus {
            record: rec,
            containers,
            namespaces,
            namespace_paths,
            monitor_pid,
        }
    }

    /// Stop every container of the pod (grace period, then SIGKILL) and take down its network;
    /// the pod stays, NotReady, until removed.
    pub fn stop_pod_sandbox(&self, key: &str, grace: Option<Duration>) -> Result<()> {
        let st = self.pod_status(key)?;
        let grace = grace.unwrap_or(Duration::from_secs(
            st.record.config.termination_grace_seconds,
        ));
        let dir = self.pod_dir(&st.record.id);
        // every container at once, as kubelet does: the grace periods overlap
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = st
                .containers
                .iter()
                .map(|c| {
                    let dir = &dir;
                    let has_monitor = st.monitor_pid.is_some();
                    s.spawn(move || {
                        if c.status.state == ContainerState::Running {
                            self.stop_container(&c.record.id, grace)
                        } else {
                            if has_monitor {
                                // no restarts after a stop
                                let _ = monitor::request(
                                    dir,
                                    &Request::Stop {
                                        id: c.record.id.clone(),
                                        signal: libc::SIGKILL,
                                        timeout_ms: 0,
                                    },
                                    Duration::from_secs(10),
                                );
                            }
                            Ok(())
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Invalid("stop thread panicked".into())))
                })
                .collect()
        });
        for r in results {
            r?;
        }
        if let Ok(cached) = read_json::<cni::Cached>(&dir.network()) {
            let paths = st
                .record
                .cni
                .clone()
                .unwrap_or_else(|| self.opts.cni.clone());
            cni::del(&paths, &cached)?;
            let _ = fs::remove_file(dir.network());
        }
        let mut rec = st.record;
        rec.state = PodState::NotReady;
        write_json(&dir.record(), &rec)
    }

    /// Remove a pod and everything it made: containers, monitor, namespaces, network, cgroup,
    /// mounts, state, logs. A running pod needs `force` (it is stopped first, with no grace).
    pub fn remove_pod_sandbox(&self, key: &str, force: bool) -> Result<()> {
        let st = self.pod_status(key)?;
        let dir = self.pod_dir(&st.record.id);
        let running = st
            .containers
            .iter()
            .any(|c| c.status.state == ContainerState::Running);
        if running && !force {
            return Err(Error::Precondition(format!(
                "pod {} has running containers: stop it first or use --force",
                st.record.config.name
            )));
        }
        if running || st.record.state == PodState::Ready {
            self.stop_pod_sandbox(
                &st.record.id,
                Some(if force {
                    Duration::ZERO
                } else {
                    Duration::from_secs(st.record.config.termination_grace_seconds)
                }),
            )?;
        }
        for c in &st.containers {
            self.remove_container(&c.record.id)?;
        }
        self.stop_monitor(&dir)?;
        netns::remove(&dir.0)?;
        let created: Vec<PathBuf> = fs::read_to_string(dir.0.join("cgroup.created"))
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .collect();
        cgroup::remove(&st.record.cgroup, &created)?;
        for v in &st.record.config.volumes {
            let _ = nix::mount::umount2(&dir.volume(&v.name), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&dir.shm(), nix::mount::MntFlags::MNT_DETACH);
        fs::remove_dir_all(&dir.0).map_err(io(format!("remove {}", dir.0.display())))?;
        let _ = fs::remove_dir_all(&st.record.log_dir);
        self.release_names(&st.record.id);
        Ok(())
    }

    // ----- containers

    /// Every container of every pod.
    pub fn list_containers(&self) -> Result<Vec<(PodRecord, ContainerInfo)>> {
        let mut out = Vec::new();
        for p in self.list_pods()? {
            let st = self.status_of(p);
            for c in st.containers {
                out.push((st.record.clone(), c));
            }
        }
        Ok(out)
    }

    /// A container by ID (or unique prefix), or by name within `pod`.
    pub fn find_container(
        &self,
        pod: Option<&str>,
        key: &str,
    ) -> Result<(PodRecord, ContainerInfo)> {
        // an exact container ID: find its pod by directory, read only that pod
        if pod.is_none()
            && is_id(key)
            && let Ok(rd) = fs::read_dir(self.pods_dir())
        {
            for e in rd.flatten() {
                if e.path()
                    .join("containers")
                    .join(key)
                    .join("container.json")
                    .exists()
                    && let Ok(rec) = read_json::<PodRecord>(&e.path().join("pod.json"))
                {
                    let st = self.status_of(rec);
                    if let Some(c) = st.containers.iter().find(|c| c.record.id == key) {
                        return Ok((st.record.clone(), c.clone()));
                    }
                }
            }
        }
        let all = match pod {
            Some(p) => {
                let st = self.pod_status(p)?;
                st.containers
                    .into_iter()
                    .map(|c| (st.record.clone(), c))
                    .collect()
            }
            None => self.list_containers()?,
        };
        let hits: Vec<&(PodRecord, ContainerInfo)> = all
            .iter()
            .filter(|(_, c)| {
                c.record.id == key
                    || (key.len() >= 4 && c.record.id.starts_with(key))
                    || (pod.is_some() && c.record.config.name == key)
            })
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(format!("container {key:?}"))),
            _ => Err(Error::Invalid(format!("container {key:?} is ambiguous"))),
        }
    }

    /// Make sure an image is in the store, pulling it per the policy.
    pub fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        report: &mut dyn FnMut(&str),
    ) -> Result<String> {
        let have = self.images.resolve(image).ok();
        match (policy, have) {
            (PullPolicy::Never, None) => Err(Error::NotFound(format!(
                "image {image} (imagePullPolicy Never)"
            ))),
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some((name, _))) => Ok(name),
            _ => Ok(self.images.pull(image, &self.opts.pull, report)?),
        }
    }

    /// Create a container in a pod from an image in the store (its bundle is prepared; the
    /// monitor creates and starts it at `start_container`).
    pub fn create_container(&self, pod: &str, cfg: &ContainerConfig) -> Result<String> {
        let prec = self.find_pod(pod)?;
        if prec.state != PodState::Ready {
            return Err(Error::Precondition(format!(
                "pod {} is not ready",
                prec.config.name
            )));
        }
        let dir = self.pod_dir(&prec.id);
        let st = self.pod_status(&prec.id)?;
        let what = if cfg.attempt > 0 {
            format!(
                "container {} (attempt {}) in pod {}",
                cfg.name, cfg.attempt, prec.config.name
            )
        } else {
            format!("container {} in pod {}", cfg.name, prec.config.name)
        };
        if st
            .containers
            .iter()
            .any(|c| c.record.config.name == cfg.name && c.record.config.attempt == cfg.attempt)
        {
            return Err(Error::AlreadyExists(what));
        }
        let (image_name, image_rec) = self
            .images
            .resolve(&cfg.image)
            .map_err(|_| Error::NotFound(format!("image {} (pull it first)", cfg.image)))?;
        let reservation = self.reserve_name(
            &format!("ctr_{}_{}_{}", prec.id, cfg.name, cfg.attempt),
            &what,
        )?;
        let id = state::new_id();
        let cdir = dir.container(&id);
        fs::create_dir_all(&cdir).map_err(io(format!("create {}", cdir.display())))?;
        let r = (|| -> Result<()> {
            let _creating = creation_marker(&cdir)?;
            fs::write(&reservation, &id).map_err(io("record the container's name"))?;
            let bundle = cdir.join("bundle");
            self.images
                .unpack(&image_name, &bundle, false, &mut |_| {})?;
            let (_, image_cfg) = self.images.manifest_and_config(&image_rec)?;
            let log_path = cfg
                .log_path
                .clone()
                .unwrap_or_else(|| prec.log_dir.join(&cfg.name).join("0.log"));
            let stop_signal = cfg
                .stop_signal
                .clone()
                .or_else(|| {
                    image_cfg
                        .config()
                        .as_ref()
                        .and_then(|c| c.stop_signal().clone())
                })
                .unwrap_or_else(|| "SIGTERM".into());
            let rec = ContainerRecord {
                id: id.clone(),
                pod_id: prec.id.clone(),
                config: cfg.clone(),
                image: image_name.clone(),
                image_id: image_rec.config.clone(),
                created: state::now(),
                bundle: bundle.clone(),
                log_path,
                cgroup: cgroup::container_path(&prec.cgroup, &id),
                stop_signal,
            };
            let cfg_path = bundle.join("config.json");
            let mut spec: serde_json::Value = read_json(&cfg_path)?;
            let pause: Option<i32> = read_json(&dir.pause_pid()).ok();
            if prec.config.share_pid && pause.is_none() {
                return Err(Error::Invalid(format!(
                    "pod {}: its PID namespace holder is gone",
                    prec.config.name
                )));
            }
            container::configure(&mut spec, &prec, &dir, &rec, &image_cfg, pause)?;
            write_json(&cfg_path, &spec)?;
            write_json(&cdir.join("container.json"), &rec)?;
            write_json(
                &cdir.join("status.json"),
                &ContainerStatus {
                    created_at: Some(state::now()),
                    ..Default::default()
                },
            )?;
            fs::remove_file(cdir.join(CREATING)).map_err(io("mark the container as created"))
        })();
        if let Err(e) = r {
            let _ = self.images.unmount(&cdir.join("bundle"));
            let _ = fs::remove_dir_all(&cdir);
            let _ = fs::remove_file(&reservation);
            return Err(e);
        }
        Ok(id)
    }

    /// Start a created container (the monitor creates it and becomes its parent).
    pub fn start_container(&self, id: &str) -> Result<i32> {
        let (pod, c) = self.find_container(None, id)?;
        match monitor::request(
            &self.pod_dir(&pod.id),
            &Request::Start {
                id: c.record.id.clone(),
            },
            Duration::from_secs(120),
        )? {
            Response::Started { pid } => Ok(pid),
            Response::Error { message } => Err(Error::Invalid(message)),
            other => Err(Error::Invalid(format!(
                "unexpected monitor answer {other:?}"
            ))),
        }
    }

    /// Stop a container: its stop signal, then SIGKILL after `grace`. Waits until it exited.
    pub fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let (pod, c) = self.find_container(None, id)?;
        let dir = self.pod_dir(&pod.id);
        let sig = crate::linux::signal::parse(&c.record.stop_signal).unwrap_or(libc::SIGTERM);
        let status = dir.container(&c.record.id).join("status.json");
        match monitor::request(
            &dir,
            &Request::Stop {
                id: c.record.id.clone(),
                signal: sig,
                timeout_ms: grace.as_millis() as u64,
            },
            Duration::from_secs(10),
        ) {
            Ok(Response::Ok) => {}
            Ok(Response::Error { message }) => return Err(Error::Invalid(message)),
            Ok(other) => {
                return Err(Error::Invalid(format!(
                    "unexpected monitor answer {other:?}"
                )));
            }
            Err(e) => {
                // the monitor is gone: nobody can collect the exit status; kill what is in
                // the container's cgroup and say so
                for p in cgroup::procs(&c.record.cgroup) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let mut s = c.status.clone();
                s.state = ContainerState::Exited;
                s.finished_at = Some(state::now());
                s.reason = Some("Unknown".into());
                s.message = Some(format!(
                    "killed without its pod monitor ({e}); exit code unknown"
                ));
                write_json(&status, &s)?;
                return Ok(());
            }
        }
        let deadline = Instant::now() + grace + Duration::from_secs(10);
        loop {
            let s: ContainerStatus = read_json(&status).unwrap_or_default();
            if s.state != ContainerState::Running {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "container {} did not exit after SIGKILL",
                    c.record.config.name
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Remove a stopped (or never started) container: its OCI state and cgroup, its rootfs
    /// mount, its record and logs.
    pub fn remove_container(&self, id: &str) -> Result<()> {
        let (pod, c) = self.find_container(None, id)?;
        if c.status.state == ContainerState::Running {
            return Err(Error::Precondition(format!(
                "container {} is running: stop it first",
                c.record.config.name
            )));
        }
        let dir = self.pod_dir(&pod.id);
        let rt = crate::oci::Runtime::new(dir.oci_root());
        match rt.delete(&c.record.id, true) {
            Ok(_) | Err(crate::oci::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = monitor::request(
            &dir,
            &Request::Forget {
                id: c.record.id.clone(),
            },
            Duration::from_secs(10),
        );
        self.images.unmount(&c.record.bundle)?;
        fs::remove_dir_all(dir.container(&c.record.id))
            .map_err(io("remove the container's directory"))?;
        if c.record.config.log_path.is_some() {
            // the caller chose the file (the CRI): other attempts share its directory
            remove_log_file(&c.record.log_path);
        } else if let Some(d) = c.record.log_path.parent() {
            let _ = fs::remove_dir_all(d);
        }
        self.release_names(&c.record.id);
        Ok(())
    }

    /// Run a process in a container and wait for it, with the caller's stdio (`tty`: a
    /// terminal proxied from the caller's). Returns its exit code.
    pub fn exec(&self, id: &str, cmd: &[String], tty: bool) -> Result<i32> {
        let mut c = self.exec_command(id, cmd, tty)?;
        let st = c.status().map_err(io("run berth exec"))?;
        Ok(st
            .code()
            .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)))
    }

    /// Run a process in a container, capturing its output. At `timeout` the process and every
    /// descendant are killed (they may hold the output pipes open) and the call returns
    /// [`Error::Timeout`] then, not when the pipes close.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, Vec<u8>)> {
        let mut c = self.exec_command(id, cmd, false)?;
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("run berth exec"))?;
        // `berth exec` is the exec'd process's parent: its tree holds everything exec started
        let pid = child.id() as i32;
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let killer = std::thread::spawn(move || match done_rx.recv_timeout(timeout) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                crate::linux::proc::kill_tree(pid);
                true
            }
            _ => false,
        });
        let out = child.wait_with_output().map_err(io("wait for berth exec"));
        let _ = done_tx.send(());
        let timed_out = killer.join().unwrap_or(false);
        if timed_out {
            return Err(Error::Timeout(format!(
                "exec in container {id} took longer than {timeout:?}: killed"
            )));
        }
        let out = out?;
        let code = out.status.code().unwrap_or(
            128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0),
        );
        Ok((code, out.stdout, out.stderr))
    }

    /// The `berth exec` command that runs `cmd` in a running container (for callers that wire
    /// its stdio themselves, as the CRI's streaming server does).
    pub fn exec_command(&self, id: &str, cmd: &[String], tty: bool) -> Result<Command> {
        let (pod, c) = self.find_container(None, id)?;
        if c.status.state != ContainerState::Running {
            return Err(Error::Precondition(format!(
                "container {} is not running",
                c.record.config.name
            )));
        }
        if cmd.is_empty() {
            return Err(Error::Invalid("exec: no command".into()));
        }
        let mut command = Command::new(&self.opts.berth_binary);
        let dir = self.pod_dir(&pod.id);
        command
            .arg("--root")
            .arg(dir.oci_root())
            .arg("--seccomp-cache")
            .arg(dir.seccomp_cache())
            .arg("exec");
        if tty {
            command.arg("--tty");
        }
        command.arg(&c.record.id).args(cmd);
        Ok(command)
    }

    /// Attach to a running container's streams through its pod's monitor. The connection
    /// then carries frames `[kind u8][len u32 BE][payload]`: 1 stdout and 2 stderr from the
    /// container; 0 stdin data, 1 end of stdin, 2 terminal size (rows, cols: u16 BE) to it.
    pub fn attach(&self, id: &str) -> Result<std::os::unix::net::UnixStream> {
        use std::io::{Read, Write};
        let (pod, c) = self.find_container(None, id)?;
        if c.status.state != ContainerState::Running {
            return Err(Error::Precondition(format!(
                "container {} is not running",
                c.record.config.name
            )));
        }
        let sock = self.pod_dir(&pod.id).socket();
        let mut s = std::os::unix::net::UnixStream::connect(&sock)
            .map_err(io(format!("connect to pod monitor {}", sock.display())))?;
        let mut req = serde_json::to_vec(&Request::Attach {
            id: c.record.id.clone(),
        })
        .expect("requests serialise");
        req.push(b'\n');
        s.write_all(&req).map_err(io("send to pod monitor"))?;
        // the answer line, byte by byte: the frames that follow are the caller's
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while line.last() != Some(&b'\n') {
            match s.read(&mut b).map_err(io("read pod monitor's answer"))? {
                0 => break,
                _ => line.push(b[0]),
            }
        }
        match serde_json::from_slice::<Response>(&line) {
            Ok(Response::Ok) => Ok(s),
            Ok(Response::Error { message }) => Err(Error::Precondition(message)),
            other => Err(Error::Invalid(format!(
                "pod monitor answered {other:?} to attach"
            ))),
        }
    }

    /// A TCP connection to `port` on the pod's loopback (port forwarding).
    pub fn connect_in_pod(&self, pod: &str, port: u16) -> Result<std::net::TcpStream> {
        let p = self.find_pod(pod)?;
        netns::connect(&self.pod_dir(&p.id).0, port)
    }

    /// A container's resource usage.
    pub fn stats(&self, id: &str) -> Result<crate::linux::cgroup::stats::Stats> {
        let (pod, c) = self.find_container(None, id)?;
        Ok(crate::oci::Runtime::new(self.pod_dir(&pod.id).oci_root()).stats(&c.record.id)?)
    }

    /// Change a running container's limits.
    pub fn update_resources(&self, id: &str, r: &Resources) -> Result<()> {
        let (pod, c) = self.find_container(None, id)?;
        let res: oci_spec::runtime::LinuxResources =
            serde_json::from_value(container::resources(r))
                .map_err(|e| Error::Invalid(format!("resources: {e}")))?;
        crate::oci::Runtime::new(self.pod_dir(&pod.id).oci_root()).update(&c.record.id, &res)?;
        Ok(())
    }

    /// Write a container's logs to `out` (following until it exits, with `follow`).
    pub fn logs(
        &self,
        id: &str,
        q: &logs::LogQuery,
        follow: bool,
        out: &mut dyn std::io::Write,
    ) -> Result<()> {
        let (pod, c) = self.find_container(None, id)?;
        let path = c
            .status
            .log_path
            .clone()
            .unwrap_or(c.record.log_path.clone());
        let offset = logs::copy(&path, q, out)?;
        if follow {
            let status = self
                .pod_dir(&pod.id)
                .container(&c.record.id)
                .join("status.json");
            logs::follow(
                &path,
                offset,
                &logs::LogQuery {
                    tail: None,
                    since: None,
                    ..q.clone()
                },
                out,
                &mut || {
                    read_json::<ContainerStatus>(&status)
                        .map(|s| s.state != ContainerState::Running)
                        .unwrap_or(true)
                },
            )?;
        }
        Ok(())
    }

    /// Lifecycle events of every pod and container (as the CRI's GetContainerEvents streams
    /// them), found by comparing the recorded state every `interval`, until `stop()` says so.
    pub fn events(
        &self,
        interval: Duration,
        stop: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(&PodEvent),
    ) -> Result<()> {
        let snapshot = |rt: &Runtime| -> std::collections::BTreeMap<(String, String), String> {
            let mut m = std::collections::BTreeMap::new();
            for p in rt.list_pods().unwrap_or_default() {
                m.insert((p.id.clone(), String::new()), format!("{:?}", p.state));
                if let Ok(st) = rt.pod_status(&p.id) {
                    for c in st.containers {
                        m.insert(
                            (p.id.clone(), c.record.id.clone()),
                            format!("{:?}/{}", c.status.state, c.status.restart_count),
                        );
                    }
                }
            }
            m
        };
        let mut before = snapshot(self);
        while !stop() {
            std::thread::sleep(interval);
            let now = snapshot(self);
            for (k, v) in &now {
                let kind = match before.get(k) {
                    Some(old) if old == v => continue,
                    Some(_) if k.1.is_empty() => {
                        if v == "Ready" {
                            "pod_ready"
                        } else {
                            "pod_stopped"
                        }
                    }
                    None if k.1.is_empty() => "pod_created",
                    _ if v.starts_with("Running") => "container_started",
                    _ if v.starts_with("Exited") => "container_stopped",
                    _ => "container_created",
                };
                emit(&PodEvent {
                    kind,
                    pod_id: k.0.clone(),
                    container_id: k.1.clone(),
                    time: state::now(),
                });
            }
            for k in before.keys().filter(|k| !now.contains_key(*k)) {
                let kind = if k.1.is_empty() {
                    "pod_removed"
                } else {
                    "container_removed"
                };
                emit(&PodEvent {
                    kind,
                    pod_id: k.0.clone(),
                    container_id: k.1.clone(),
                    time: state::now(),
                });
            }
            before = now;
        }
        Ok(())
    }

    // ----- whole pods from manifests

    /// Run a pod from a manifest: pull missing images, create the sandbox and containers,
    /// and let the monitor run init containers, then the apps. Returns the pod's ID. On
    /// failure nothing is left.
    pub fn run_pod(&self, m: &PodManifest, report: &mut dyn FnMut(&str)) -> Result<String> {
        let mut seen = std::collections::HashSet::new();
        for c in &m.containers {
            if seen.insert((c.image.clone(), c.pull)) {
                self.ensure_image(&c.image, c.pull, report)?;
            }
        }
        let mut pod = m.pod.clone();
        // pod-wide limits: the sum of the containers' (apps'), when every app has one
        let apps: Vec<&ContainerConfig> = m.containers.iter().filter(|c| !c.init).collect();
        if pod.resources.is_none() {
            let mem: Option<i64> = apps.iter().map(|c| c.resources.memory_limit).sum();
            let quota: Option<i64> = apps.iter().map(|c| c.resources.cpu_quota).sum();
            if mem.is_some() || quota.is_some() {
                pod.resources = Some(Resources {
                    memory_limit: mem,
                    cpu_quota: quota,
                    cpu_period: quota.map(|_| 100_000),
                    ..Default::default()
                });
            }
        }
        let id = self.run_pod_sandbox(&pod, true)?;
        let r = (|| -> Result<()> {
            let mut inits = Vec::new();
            let mut apps = Vec::new();
            for c in &m.containers {
                let cid = self.create_container(&id, c)?;
                if c.init {
                    inits.push(cid)
                } else {
                    apps.push(cid)
                }
            }
            match monitor::request(
                &self.pod_dir(&id),
                &Request::Sequence { inits, apps },
                Duration::from_secs(120),
            )? {
                Response::Ok => Ok(()),
                Response::Error { message } => Err(Error::Invalid(message)),
                other => Err(Error::Invalid(format!(
                    "unexpected monitor answer {other:?}"
                ))),
            }
        })();
        if let Err(e) = r {
            let _ = self.remove_pod_sandbox(&id, true);
            return Err(e);
        }
        Ok(id)
    }
}

/// A pod's CNI ADD (what DEL needs is on disk before the plugins run, for a recovery after a
/// crash).
fn attach_network(
    paths: &cni::CniPaths,
    id: &str,
    dir: &PodDir,
    cfg: &PodConfig,
) -> Result<cni::Cached> {
    let net = cni::load(paths, !cfg.port_mappings.is_empty())?;
    let att = cni::Attachment {
        container_id: id.to_string(),
        netns: dir.0.join("net"),
        ifname: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAMESPACE".into(), cfg.namespace.clone()),
            ("K8S_POD_NAME".into(), cfg.name.clone()),
            ("K8S_POD_INFRA_CONTAINER_ID".into(), id.to_string()),
            ("K8S_POD_UID".into(), cfg.uid.clone()),
        ],
        runtime_config: json!({"portMappings": cfg.port_mappings.iter().map(|p| {
                let mut m = json!({"hostPort": p.host_port, "containerPort": p.container_port, "protocol": p.protocol});
                if let Some(ip) = &p.host_ip { m["hostIP"] = json!(ip); }
                m
            }).collect::<Vec<_>>()}),
    };
    // what DEL needs is on disk before ADD runs, for a recovery after a crash
    let pending = dir.0.join("network.pending.json");
    cni::save(
        &pending,
        &cni::Cached {
            network: net.clone(),
            attachment: att.clone(),
            result: serde_json::Value::Null,
        },
    )?;
    let cached = cni::add(paths, &net, &att)?;
    if let Err(e) = cni::save(&dir.network(), &cached) {
        let _ = cni::del(paths, &cached);
        return Err(e);
    }
    let _ = fs::remove_file(&pending);
    Ok(cached)
}

/// The sandbox's last steps, once its address is known: /etc/hosts, and the record says ready.
fn finish_sandbox(dir: &PodDir, hostname: &str, mut rec: PodRecord) -> Result<()> {
    fs::write(
        dir.0.join("hosts"),
        hosts_file(hostname, rec.ips.first().map(String::as_str)),
    )
    .map_err(io("write hosts"))?;
    rec.state = PodState::Ready;
    write_json(&dir.record(), &rec)?;
    fs::remove_file(dir.0.join(CREATING)).map_err(io("mark the pod as created"))
}

/// Does `pid` run (a zombie does not: it waits for a parent that may be slow to reap it)?
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with(|c| c != 'Z' && c != 'X'))
        })
        .unwrap_or(false)
}

/// Is `pid` the monitor of this pod (not a reused pid)?
fn is_monitor(pid: i32, dir: &PodDir) -> bool {
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let s = String::from_utf8_lossy(&c);
        s.contains(monitor::ARG) && s.contains(&dir.0.display().to_string())
    })
}

fn host_path(path: &Path, kind: &str, name: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let md = fs::metadata(path);
    let bad = |m: &str| {
        Err(Error::Invalid(format!(
            "volume {name}: hostPath {}: {m}",
            path.display()
        )))
    };
    match (kind, md) {
        ("DirectoryOrCreate", Err(_)) => {
            fs::create_dir_all(path).map_err(io(format!("create hostPath {}", path.display())))
        }
        ("FileOrCreate", Err(_)) => {
            if let Some(p) = path.parent() {
                fs::create_dir_all(p).map_err(io(format!("create {}", p.display())))?;
            }
            fs::File::create(path)
                .map(|_| ())
                .map_err(io(format!("create hostPath {}", path.display())))
        }
        ("", _) | ("DirectoryOrCreate" | "FileOrCreate", Ok(_)) => Ok(()),
        ("Directory", Ok(m)) if m.is_dir() => Ok(()),
        ("File", Ok(m)) if m.is_file() => Ok(()),
        ("Socket", Ok(m)) if m.file_type().is_socket() => Ok(()),
        ("CharDevice", Ok(m)) if m.file_type().is_char_device() => Ok(()),
        ("BlockDevice", Ok(m)) if m.file_type().is_block_device() => Ok(()),
        (k, Ok(_)) => bad(&format!("is not a {k}")),
        (k, Err(_)) => bad(&format!("does not exist (type {k})")),
    }
}

/// resolv.conf: the pod's DNS settings, or the host's file.
fn resolv_conf(dns: Option<&DnsConfig>) -> String {
    match dns {
        Some(d) if !d.nameservers.is_empty() || !d.searches.is_empty() || !d.options.is_empty() => {
            let mut s = String::new();
            for n in &d.nameservers {
                s.push_str(&format!("nameserver {n}\n"));
            }
            if !d.searches.is_empty() {
                s.push_str(&format!("search {}\n", d.searches.join(" ")));
            }
            if !d.options.is_empty() {
                s.push_str(&format!("options {}\n", d.options.join(" ")));
            }
            s
        }
        _ => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    }
}

fn hosts_file(hostname: &str, ip: Option<&str>) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match ip {
        Some(ip) => s.push_str(&format!("{ip}\t{hostname}\n")),
        None => s.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    s
}

/// A random UUID-shaped string (for pods without metadata.uid).
fn uuid_like() -> String {
    let h = state::new_id();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
