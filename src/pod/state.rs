//! What berth records about pods and containers, on disk, so that every command (and a
//! restarted daemon) sees the same truth:
//!
//! ```text
//! <root>/pods/<pod id>/pod.json                     PodRecord (written by the library)
//! <root>/pods/<pod id>/{net,ipc,uts}                pinned namespaces
//! <root>/pods/<pod id>/monitor.sock, monitor.pid    the pod monitor
//! <root>/pods/<pod id>/network.json                 CNI result, for CHECK and DEL
//! <root>/pods/<pod id>/{hosts,resolv.conf,hostname,shm/,volumes/}
//! <root>/pods/<pod id>/oci/                         OCI state of its containers
//! <root>/pods/<pod id>/containers/<id>/container.json  ContainerRecord (library)
//! <root>/pods/<pod id>/containers/<id>/status.json     ContainerStatus (the monitor)
//! <root>/pods/<pod id>/containers/<id>/bundle/         config.json and rootfs
//! ```
//! Every JSON file is written to a temporary name and renamed: a reader sees the old or the
//! new record, never half of one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::config::{ContainerConfig, PodConfig};
use super::error::{Error, Result, io};

/// Write JSON atomically (temporary file, fsync, rename).
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(io(format!("create {}", tmp.display())))?;
    f.write_all(&serde_json::to_vec_pretty(v).expect("records serialise"))
        .and_then(|_| f.sync_data())
        .map_err(io(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("rename {}", path.display())))
}

/// Read a JSON record.
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
    serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
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
    pub cni: Option<super::cni::CniPaths>,
}

/// A container, as the library recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Recorded by the library; not created by the monitor yet.
    #[default]
    Pending,
    Created,
    Running,
    Exited,
}

/// What the monitor knows of a container (it alone writes this file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub state: ContainerState,
    pub pid: i32,
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
}

/// Paths of a pod's files.
#[derive(Debug, Clone)]
pub struct PodDir(pub PathBuf);

impl PodDir {
    pub fn record(&self) -> PathBuf {
        self.0.join("pod.json")
    }
    pub fn socket(&self) -> PathBuf {
        self.0.join("monitor.sock")
    }
    pub fn monitor_pid(&self) -> PathBuf {
        self.0.join("monitor.pid")
    }
    pub fn network(&self) -> PathBuf {
        self.0.join("network.json")
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
    pub fn container(&self, id: &str) -> PathBuf {
        self.0.join("containers").join(id)
    }
    pub fn containers(&self) -> PathBuf {
        self.0.join("containers")
    }
    pub fn volume(&self, name: &str) -> PathBuf {
        self.0.join("volumes").join(name)
    }
    pub fn shm(&self) -> PathBuf {
        self.0.join("shm")
    }
    /// The pod's PID namespace holder (shareProcessNamespace), written by the monitor.
    pub fn pause_pid(&self) -> PathBuf {
        self.0.join("pause.pid")
    }
}
