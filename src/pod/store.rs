//! Where the pod layer keeps everything, and the records it writes. Every path of a state root
//! is spelled here and nowhere else:
//!
//! ```text
//! <root>/names/<key>                         a name reservation: its owner's ID (linked into place)
//! <root>/seccomp-cache/                      compiled seccomp programs, shared by the pods
//! <root>/inflight/<op>-<id>                  held locked while a creation or removal runs
//! <root>/pods/<pod>/pod.json                 PodRecord          written by the library
//! <root>/pods/<pod>/removing                 present while the pod is being removed
//! <root>/pods/<pod>/repair.lock              held while a pod whose monitor and keeper died is repaired
//! <root>/pods/<pod>/cgroup.created           cgroup directories made for the pod (lines)
//! <root>/pods/<pod>/{net,ipc,uts}            the pinned namespaces
//! <root>/pods/<pod>/network.pending.json     CNI request saved before ADD (for a DEL after a crash)
//! <root>/pods/<pod>/network.json             CNI result (for CHECK and DEL)
//! <root>/pods/<pod>/{hosts,resolv.conf,hostname}   files bound into the containers
//! <root>/pods/<pod>/shm/                     the pod's /dev/shm (a tmpfs)
//! <root>/pods/<pod>/volumes/<name>/          emptyDir volumes
//! <root>/pods/<pod>/monitor.sock             the pod monitor's socket
//! <root>/pods/<pod>/monitor.pid, pause.pid   written by the monitor
//! <root>/pods/<pod>/keeper.pid               written by the monitor's keeper
//! <root>/pods/<pod>/manifest.json            the Pod document it was made from (if any)
//! <root>/pods/<pod>/monitor.log              the monitor's stderr
//! <root>/pods/<pod>/oci/                     OCI state of the pod's containers
//! <root>/pods/<pod>/containers/<ctr>/container.json   ContainerRecord   written by the library
//! <root>/pods/<pod>/containers/<ctr>/status.json      ContainerStatus   written by the monitor
//!                                            (by the library only when the monitor and its keeper
//!                                            are both dead, under repair.lock)
//! <root>/pods/<pod>/containers/<ctr>/bundle/          config.json and the rootfs mount
//! ```
//!
//! Each JSON record has one writer, is written with
//! [`crate::linux::fs::write_atomic_volatile`] (atomic; no fsync: a state root describes
//! processes and means nothing after a reboot) and
//! carries a `version` (absent: 1, as written before versions); a record newer than this berth
//! knows is refused, never misread.

use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::config::{ContainerConfig, PodConfig};
use super::error::{Error, Result, io};

/// The version of the records this berth writes.
pub const VERSION: u32 = 1;

fn v1() -> u32 {
    1
}

/// A record with a format version.
pub trait Versioned {
    fn version(&self) -> u32;
}

/// Write a record atomically (not durably: see the module's notes).
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    crate::linux::fs::write_atomic_volatile(
        path,
        &serde_json::to_vec_pretty(v).expect("records serialise"),
    )
    .map_err(io(format!("write {}", path.display())))
}

/// Read a JSON file (a record without a version, or a plain value).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let b = fs::read(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(path.display().to_string())
        } else {
            Error::Io {
                step: format!("read {}", path.display()),
                err,
            }
        }
    })?;
    serde_json::from_slice(&b).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))
}

/// Read a versioned record; one written by a newer berth is refused.
pub fn read_record<T: DeserializeOwned + Versioned>(path: &Path) -> Result<T> {
    let r: T = read_json(path)?;
    if r.version() > VERSION {
        return Err(Error::Internal(format!(
            "{}: written by a newer berth (record version {}, this berth reads up to {VERSION})",
            path.display(),
            r.version()
        )));
    }
    Ok(r)
}

/// A random 32-hex-digit ID.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = (t ^ ((std::process::id() as u128) << 64)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Now, RFC 3339 with nanoseconds.
/// A uid as Kubernetes writes them (8-4-4-4-12 hex), for objects made without one.
pub fn new_uid() -> String {
    let h = new_id();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Ready: its namespaces, network and monitor exist; NotReady: stopped (or broken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodState {
    Ready,
    NotReady,
}

/// A pod, as the library recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    #[serde(default = "v1")]
    pub version: u32,
    pub id: String,
    pub config: PodConfig,
    pub created: String,
    pub state: PodState,
    /// The pod's IPs from CNI (empty with hostNetwork).
    pub ips: Vec<String>,
    /// Absolute cgroupsPath of the pod (containers are below it).
    pub cgroup: String,
    pub log_dir: PathBuf,
    /// The monitor drives restarts and init containers (CLI pods); the CRI leaves it to kubelet.
    pub supervised: bool,
    /// First restart back-off (doubles up to 5 minutes, as kubelet's).
    pub restart_backoff_ms: u64,
    /// CNI used for this pod (so DEL finds the same plugins).
    pub cni: Option<super::net::cni::CniPaths>,
}

impl Versioned for PodRecord {
    fn version(&self) -> u32 {
        self.version
    }
}

/// A container, as the library recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    #[serde(default = "v1")]
    pub version: u32,
    pub id: String,
    pub pod_id: String,
    pub config: ContainerConfig,
    /// The image's name in the store, and its ID (config digest).
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub bundle: PathBuf,
    /// Log file of attempt 0; attempt N writes `<dir>/<N>.log`.
    pub log_path: PathBuf,
    /// Absolute cgroupsPath.
    pub cgroup: String,
    /// StopSignal (the container's, else the image's, else SIGTERM).
    pub stop_signal: String,
}

impl Versioned for ContainerRecord {
    fn version(&self) -> u32 {
        self.version
    }
}

/// ```text
/// Pending ──start──▶ Running ──exit──▶ Exited ──restart──▶ Running
///    └──────────start fails──────────▶ Exited
/// ```
/// (`Created` is what older monitors wrote between create and start.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Recorded by the library; not created by the monitor yet.
    #[default]
    Pending,
    Created,
    Running,
    Exited,
}

/// What the monitor knows of a container (it alone writes this file; no file yet: Pending).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    #[serde(default = "v1")]
    pub version: u32,
    pub state: ContainerState,
    pub pid: i32,
    /// The init's start time (clock ticks since boot): with `pid`, it names the process.
    #[serde(default)]
    pub pid_start: u64,
    /// The cgroup's OOM-kill count when this attempt started (its own kills are those above).
    #[serde(default)]
    pub oom_base: u64,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `Killed`.
    pub reason: Option<String>,
    pub message: Option<String>,
    pub restart_count: u32,
    /// Log file of the current attempt.
    pub log_path: Option<PathBuf>,
    /// Its readiness (probes: kept by the monitor; false while it does not run).
    #[serde(default)]
    pub ready: bool,
    /// Probe failures of this container, all attempts (each one an event).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probe_failures: u32,
    /// The last probe failure, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_failure: Option<String>,
    /// How the previous attempt ended (Kubernetes' `lastState.terminated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<LastExit>,
}

/// How a container's previous attempt ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub finished_at: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Versioned for ContainerStatus {
    fn version(&self) -> u32 {
        self.version
    }
}

/// The state root of the pod layer.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where every pod's directory is.
    pub fn pods(&self) -> PathBuf {
        self.root.join("pods")
    }

    pub fn pod(&self, id: &str) -> PodDir {
        PodDir(self.pods().join(id))
    }

    /// Name reservations.
    pub fn names(&self) -> PathBuf {
        self.root.join("names")
    }

    /// The IDs of every pod directory.
    pub fn pod_ids(&self) -> Vec<String> {
        fs::read_dir(self.pods())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Paths of a pod's files.
#[derive(Debug, Clone)]
pub struct PodDir(pub PathBuf);

impl PodDir {
    pub fn record(&self) -> PathBuf {
        self.0.join("pod.json")
    }
    /// Left by berths before 0.1's crash safety while a pod was being made (now
    /// `<root>/inflight/`).
    pub fn creating(&self) -> PathBuf {
        self.0.join("creating")
    }
    /// Present while the pod is being removed (it reads NotReady meanwhile).
    pub fn removing(&self) -> PathBuf {
        self.0.join("removing")
    }
    pub fn cgroup_created(&self) -> PathBuf {
        self.0.join("cgroup.created")
    }
    pub fn socket(&self) -> PathBuf {
        self.0.join("monitor.sock")
    }
    pub fn monitor_pid(&self) -> PathBuf {
        self.0.join("monitor.pid")
    }
    /// A pod waiting for a ConfigMap, Secret or key (`super::pending`).
    pub fn pending(&self) -> PathBuf {
        self.0.join("pending.json")
    }
    /// The pod's readiness and when it last changed ([`Readiness`]), written by the monitor.
    pub fn readiness(&self) -> PathBuf {
        self.0.join("ready.json")
    }
    /// The monitor's keeper (its parent), written by the keeper.
    /// The manifest the pod was made from (`kube apply` compares it).
    pub fn manifest(&self) -> PathBuf {
        self.0.join("manifest.json")
    }
    pub fn keeper_pid(&self) -> PathBuf {
        self.0.join("keeper.pid")
    }
    pub fn monitor_log(&self) -> PathBuf {
        self.0.join("monitor.log")
    }
    /// The pod's PID namespace holder (shareProcessNamespace), written by the monitor.
    pub fn pause_pid(&self) -> PathBuf {
        self.0.join("pause.pid")
    }
    pub fn network(&self) -> PathBuf {
        self.0.join("network.json")
    }
    pub fn network_pending(&self) -> PathBuf {
        self.0.join("network.pending.json")
    }
    /// `hosts`, `resolv.conf` or `hostname`.
    pub fn etc_file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn oci_root(&self) -> PathBuf {
        self.0.join("oci")
    }
    /// Compiled seccomp programs, shared by the pods of one state root (`<root>/pods/<id>`).
    pub fn seccomp_cache(&self) -> PathBuf {
        match self.0.parent().and_then(Path::parent) {
            Some(root) => root.join("seccomp-cache"),
            None => self.0.join("seccomp-cache"),
        }
    }
    pub fn containers(&self) -> PathBuf {
        self.0.join("containers")
    }
    pub fn container(&self, id: &str) -> CtrDir {
        CtrDir(self.containers().join(id))
    }
    pub fn volumes(&self) -> PathBuf {
        self.0.join("volumes")
    }
    pub fn volume(&self, name: &str) -> PathBuf {
        self.volumes().join(name)
    }
    pub fn shm(&self) -> PathBuf {
        self.0.join("shm")
    }
    /// The IDs of the pod's container directories.
    pub fn container_ids(&self) -> Vec<String> {
        fs::read_dir(self.containers())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Paths of a container's files.
#[derive(Debug, Clone)]
pub struct CtrDir(pub PathBuf);

impl CtrDir {
    pub fn record(&self) -> PathBuf {
        self.0.join("container.json")
    }
    pub fn status(&self) -> PathBuf {
        self.0.join("status.json")
    }
    pub fn bundle(&self) -> PathBuf {
        self.0.join("bundle")
    }
    /// A console socket (relative to the pod's directory, where the monitor works: a socket
    /// path has at most 107 bytes).
    pub fn console_socket(id: &str) -> PathBuf {
        Path::new("containers").join(id).join("console.sock")
    }
    /// The container's status: what the monitor recorded, or Pending since `created` when it
    /// has recorded nothing yet.
    pub fn read_status(&self, created: &str) -> Result<ContainerStatus> {
        match read_record::<ContainerStatus>(&self.status()) {
            Err(Error::NotFound(_)) => Ok(ContainerStatus {
                version: VERSION,
                created_at: Some(created.to_string()),
                ..Default::default()
            }),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_a_version_read_as_version_1_and_newer_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("berth-store-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("status.json");
        fs::write(
            &p,
            r#"{"state": "Running", "pid": 7, "created_at": null, "started_at": null,
            "finished_at": null, "exit_code": null, "reason": null, "message": null,
            "restart_count": 0, "log_path": null}"#,
        )
        .unwrap();
        let s: ContainerStatus = read_record(&p).unwrap();
        assert_eq!((s.version, s.state, s.pid), (1, ContainerState::Running, 7));
        fs::write(
            &p,
            r#"{"version": 99, "state": "Running", "pid": 7, "created_at": null, "started_at": null,
            "finished_at": null, "exit_code": null, "reason": null, "message": null,
            "restart_count": 0, "log_path": null}"#,
        )
        .unwrap();
        let e = read_record::<ContainerStatus>(&p).unwrap_err().to_string();
        assert!(e.contains("newer berth") && e.contains("99"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// A pod's `Ready` condition (and `ContainersReady`, the same without readiness gates) and
/// its last transition, as the monitor records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub since: String,
}

/// Record the pod's readiness, when it changed.
pub(crate) fn record_readiness(dir: &PodDir, ready: bool) {
    let old: Option<Readiness> = read_json(&dir.readiness()).ok();
    if old.as_ref().is_some_and(|o| o.ready == ready) {
        return;
    }
    let _ = write_json(
        &dir.readiness(),
        &Readiness {
            ready,
            since: now(),
        },
    );
}
