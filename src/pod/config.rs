//! What a pod and its containers are, in berth's own terms (close to the CRI's
//! PodSandboxConfig and ContainerConfig): the CLI's Kubernetes manifests and the CRI server both
//! become these.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A pod: shared network, IPC and UTS namespaces (and optionally PID), one cgroup, one IP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodConfig {
    pub name: String,
    pub namespace: String,
    /// Kubernetes' UID of the pod (generated when absent).
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Hostname of the pod's UTS namespace (default: the pod name).
    pub hostname: Option<String>,
    /// Use the host's network namespace (no CNI).
    pub host_network: bool,
    /// One PID namespace for all containers of the pod.
    pub share_pid: bool,
    /// Use the host's IPC namespace.
    #[serde(default)]
    pub host_ipc: bool,
    /// Use the host's PID namespace.
    #[serde(default)]
    pub host_pid: bool,
    /// resolv.conf of the pod (default: the host's).
    pub dns: Option<DnsConfig>,
    /// `hostPort`s, set up by the CNI portmap plugin.
    pub port_mappings: Vec<PortMapping>,
    /// Namespaced sysctls set in the pod's namespaces.
    pub sysctls: BTreeMap<String, String>,
    /// Parent cgroup of the pod's cgroup (default `/berth`).
    pub cgroup_parent: Option<String>,
    /// Where container logs go (default `/var/log/berth/pods/<ns>_<name>_<uid>`).
    pub log_directory: Option<PathBuf>,
    /// Pod-wide limits (default: the sum of the containers' limits when all have them).
    pub resources: Option<Resources>,
    /// Volumes the containers can mount.
    pub volumes: Vec<Volume>,
    /// Grace period of a stop before SIGKILL.
    pub termination_grace_seconds: u64,
    /// What the pod monitor does when a container exits (CLI pods; the CRI leaves it to kubelet).
    pub restart_policy: RestartPolicy,
    /// Kubernetes' attempt number of this sandbox (the CRI's metadata.attempt).
    #[serde(default)]
    pub attempt: u32,
    /// Secrets of type `kubernetes.io/dockerconfigjson` of the pod's namespace whose
    /// credentials pull its images (a manifest's `imagePullSecrets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// A pod volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeSource {
    /// A directory that lives as long as the pod: on disk, or a tmpfs of `size_limit` bytes
    /// (`medium: Memory`).
    EmptyDir {
        memory: bool,
        size_limit: Option<u64>,
    },
    /// A host path; `kind` is Kubernetes' hostPath type ("" for no check).
    HostPath { path: PathBuf, kind: String },
    /// A PersistentVolumeClaim of the pod's namespace (`berth::volume`); `path` is where its
    /// volume is on the host, set when the pod is made; `read_only` makes every mount of it
    /// read-only, recursively.
    Claim {
        claim: String,
        read_only: bool,
        #[serde(default)]
        path: Option<PathBuf>,
    },
    /// Files from ConfigMaps, Secrets and the pod itself (`configMap`, `secret`,
    /// `downwardAPI` and `projected` volumes), written at the pod's creation and rewritten
    /// when a source changes; on a tmpfs when `tmpfs` (anything but a lone ConfigMap).
    Projected {
        sources: Vec<super::refs::Projection>,
        default_mode: u32,
        tmpfs: bool,
    },
}

/// cgroup limits of a container or a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Relative CPU weight in cgroup v1 shares (2..262144).
    pub cpu_shares: Option<u64>,
    /// CPU time per period, in microseconds.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Bytes.
    pub memory_limit: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// Kubernetes' cpu.shares for a CPU request in millicores (1024 per CPU, 2..262144).
    pub fn cpu_shares_of(milli: u64) -> u64 {
        (milli * 1024 / 1000).clamp(2, 262_144)
    }

    /// As runtime-spec `linux.resources`: the one conversion of pod and container limits
    /// (the OCI runtime turns it into cgroup files). No swap beyond the memory limit, as
    /// kubelet sets it.
    pub fn to_oci(&self) -> oci_spec::runtime::LinuxResources {
        use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
        let mut r = LinuxResources::default();
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(self.cpu_shares);
        if let Some(q) = self.cpu_quota {
            cpu.set_quota(Some(q));
            cpu.set_period(Some(self.cpu_period.unwrap_or(100_000)));
        } else {
            cpu.set_period(self.cpu_period);
        }
        cpu.set_cpus(self.cpuset_cpus.clone());
        cpu.set_mems(self.cpuset_mems.clone());
        if cpu != LinuxCpu::default() {
            r.set_cpu(Some(cpu));
        }
        let mut mem = LinuxMemory::default();
        if let Some(l) = self.memory_limit {
            mem.set_limit(Some(l));
            mem.set_swap(Some(l));
        }
        mem.set_reservation(self.memory_reservation);
        if mem != LinuxMemory::default() {
            r.set_memory(Some(mem));
        }
        if let Some(p) = self.pids_limit {
            let mut pids = LinuxPids::default();
            pids.set_limit(p);
            r.set_pids(Some(pids));
        }
        r
    }

    /// Refuse limits the kernel would refuse, naming the field under `at` (the CLI's and the
    /// CRI's input both pass here).
    pub fn validate(&self, at: &str) -> super::error::Result<()> {
        let bad = |f: &str, m: String| Err(super::error::Error::Invalid(format!("{at}.{f}: {m}")));
        if let Some(l) = self.memory_limit.filter(|l| *l <= 0) {
            return bad(
                "memory_limit",
                format!("{l} is not a positive number of bytes"),
            );
        }
        if let Some(l) = self.memory_reservation.filter(|l| *l < 0) {
            return bad("memory_reservation", format!("{l} is negative"));
        }
        if let Some(p) = self.pids_limit.filter(|p| *p <= 0) {
            return bad("pids_limit", format!("{p} is not a positive number"));
        }
        // the rest as the runtime checks config.json
        crate::oci::resources::writes(&self.to_oci(), false, &[])
            .map(|_| ())
            .map_err(|e| super::error::Error::Invalid(format!("{at}: {e}")))
    }
}

/// One container of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub name: String,
    /// An image reference (pulled when missing from the store, unless `pull` says never).
    pub image: String,
    pub pull: PullPolicy,
    /// Replaces the image's Entrypoint.
    pub command: Vec<String>,
    /// Replaces the image's Cmd.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub security: Security,
    /// Log file (CRI format); default `<pod log dir>/<name>/<restart>.log`.
    pub log_path: Option<PathBuf>,
    pub tty: bool,
    pub stdin: bool,
    /// Close the container's stdin when the first attached client ends its input.
    #[serde(default)]
    pub stdin_once: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Runs to completion, in order, before the app containers start.
    pub init: bool,
    /// Signal that asks the container to stop (default: the image's StopSignal, else SIGTERM).
    pub stop_signal: Option<String>,
    /// Ports the container listens on (informational, as in Kubernetes).
    pub ports: Vec<u16>,
    /// Kubernetes' attempt number of this container (the CRI's metadata.attempt).
    #[serde(default)]
    pub attempt: u32,
    /// Host devices made in the container (the CRI's devices).
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Join the PID namespace of this container of the pod (the CRI's TARGET mode).
    #[serde(default)]
    pub pid_target: Option<String>,
    /// A manifest's environment with its references (resolved into `env`, and `$(VAR)`
    /// expanded, when the container is made; the CRI's env is final and has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_spec: Option<super::refs::EnvSpec>,
    /// Probes the pod monitor runs (manifests; the CRI's containers have none: kubelet probes).
    #[serde(default, skip_serializing_if = "super::probe::Probes::is_empty")]
    pub probes: super::probe::Probes,
}

/// A host device node to create in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub host_path: PathBuf,
    pub container_path: String,
    /// cgroup permissions: some of `r`, `w`, `m`.
    pub permissions: String,
}

/// The seccomp filter of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    /// berth's default profile (the container ecosystem's default).
    #[default]
    RuntimeDefault,
    Unconfined,
    /// An OCI `linux.seccomp` JSON file on the host.
    Localhost(PathBuf),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

/// A mount into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub container_path: String,
    pub source: MountSource,
    pub readonly: bool,
    /// `private` (default), `rslave` (HostToContainer) or `rshared` (Bidirectional).
    pub propagation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSource {
    /// A host path (the CRI's mounts).
    Host(PathBuf),
    /// A pod volume, optionally a path inside it.
    Volume {
        name: String,
        sub_path: Option<String>,
    },
}

/// A container's security settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub run_as_user: Option<u32>,
    /// A user name of the image's `/etc/passwd` (the CRI's `run_as_username`).
    #[serde(default)]
    pub run_as_username: Option<String>,
    pub run_as_group: Option<u32>,
    pub run_as_non_root: bool,
    /// Capability names as Kubernetes writes them (`NET_ADMIN`) or with `CAP_`.
    pub caps_add: Vec<String>,
    pub caps_drop: Vec<String>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    /// `allowPrivilegeEscalation`; false sets no_new_privs.
    pub allow_privilege_escalation: bool,
    #[serde(default)]
    pub seccomp: Seccomp,
    /// Extra groups of the process.
    #[serde(default)]
    pub supplemental_groups: Vec<u32>,
    /// Paths made inaccessible / read-only (replace the defaults when given).
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
}
