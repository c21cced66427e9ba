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
//!
//! A verb is found by its file: `sandbox``/{run,stop,remove,recover}.rs` for pods,
//! `container``/{create,start,stop,remove,exec,attach,logs,stats}.rs` for containers,
//! `run` for whole manifests, `wait` for their start, `events`. `store` owns every path and record on disk;
//! `spec` turns a container's config into its OCI spec; `monitor` is the per-pod process;
//! `net` the namespaces, CNI and the default network's host rules.

pub(crate) mod cgroup;
mod config;
pub(crate) mod container;
mod error;
mod events;
mod inflight;
pub(crate) mod logs;
pub mod manifest;
pub(crate) mod monitor;
mod names;
pub(crate) mod net;
mod pending;
pub mod probe;
mod refs;
mod run;
pub(crate) mod sandbox;
mod services;
pub(crate) mod spec;
pub(crate) mod store;
mod wait;

use std::path::PathBuf;
use std::time::Duration;

// The pod layer's public surface: its verbs are `Runtime`'s methods; these are their types.
pub use config::*;
pub use container::ContainerInfo;
pub use error::{Error, ErrorKind, Result};
pub use events::PodEvent;
pub use logs::LogQuery;
pub use manifest::PodManifest;
pub use monitor::hook;
pub use net::cni::CniPaths;
pub use pending::Waiting;
pub use refs::*;
pub use sandbox::{Condition, NetworkSummary, PodStatus};
pub use store::{ContainerRecord, ContainerState, ContainerStatus, PodRecord, PodState};

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
    pub cni: net::cni::CniPaths,
    /// The `berth` binary, run as the pod monitor and for `exec` (default: this program if it
    /// is berth, else `$BERTH_BINARY`, else `berth` on PATH).
    pub berth_binary: PathBuf,
    /// First restart back-off of supervised pods (kubelet's: 10 s).
    pub restart_backoff: Duration,
    /// Parent cgroup of pods that name none (default `/berth`).
    pub cgroup_parent: String,
    /// How images missing from the store are pulled.
    pub pull: PullOptions,
    /// How long a pod waits for its claims to be bound before it is refused.
    pub bind_timeout: Duration,
    /// The range Services' ClusterIPs are allocated from (`10.78.0.0/16`); it must not
    /// overlap the pod network.
    pub service_cidr: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root: crate::oci::DEFAULT_ROOT.into(),
            data_root: crate::image::store::DEFAULT_DATA_ROOT.into(),
            log_root: "/var/log/berth/pods".into(),
            cni: net::cni::CniPaths::default(),
            berth_binary: default_binary(),
            restart_backoff: Duration::from_secs(10),
            cgroup_parent: cgroup::DEFAULT_PARENT.into(),
            pull: PullOptions::default(),
            bind_timeout: Duration::from_secs(60),
            service_cidr: crate::service::store::DEFAULT_CIDR.into(),
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

/// The pod runtime.
#[derive(Debug, Clone)]
pub struct Runtime {
    opts: Options,
    images: Images,
    store: store::Store,
}

impl Runtime {
    pub fn new(opts: Options) -> Runtime {
        let images = Images::new(&opts.data_root);
        let store = store::Store::new(&opts.root);
        Runtime {
            opts,
            images,
            store,
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn images(&self) -> &Images {
        &self.images
    }

    fn pod_dir(&self, id: &str) -> store::PodDir {
        self.store.pod(id)
    }

    /// A file of pod `id`'s `/etc` (`hosts`, `resolv.conf`, `hostname`), bind-mounted into
    /// its containers: rewrite it in place, never replace it.
    pub fn pod_etc_file(&self, id: &str, name: &str) -> std::path::PathBuf {
        self.pod_dir(id).etc_file(name)
    }
}

/// Could `key` be a pod or container ID (a plain file name: no path)?
fn is_id(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric())
}
