//! Pod sandboxes: `run` makes one (namespaces, cgroup, files, volumes, network, monitor),
//! `stop` stops its containers and takes its network down, `remove` takes everything,
//! `recover` rolls back what a killed creator left. Here: finding pods and their status.

pub mod recover;
pub mod remove;
pub mod run;
pub mod stop;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::container::ContainerInfo;
use super::error::{Error, Result};
use super::net::{cni, netns};
use super::store::{ContainerRecord, PodRecord, read_json, read_record};
use super::{Runtime, is_id};

/// A pod as `pod ls`/`inspect` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PodStatus {
    #[serde(flatten)]
    pub record: PodRecord,
    pub containers: Vec<ContainerInfo>,
    /// Inodes of the pod's namespaces (`net`, `ipc`, `uts`).
    pub namespaces: BTreeMap<String, u64>,
    /// Where they are pinned (what a container joins).
    pub namespace_paths: BTreeMap<String, PathBuf>,
    pub monitor_pid: Option<i32>,
    /// The pod's network and where its configuration came from (None: the host's network,
    /// or the pod is stopped).
    pub network: Option<NetworkSummary>,
    /// `Ready` and `ContainersReady`, as Kubernetes reports them.
    pub conditions: Vec<Condition>,
    /// Why its containers are not made yet (a missing ConfigMap, Secret or key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<super::Waiting>,
}

/// A pod condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// "True" or "False".
    pub status: &'static str,
    pub last_transition_time: String,
}

impl PodStatus {
    /// Every app container runs and is ready (its readiness probe passed, if it has one).
    pub fn ready(&self) -> bool {
        let mut apps = self.containers.iter().filter(|c| !c.record.config.init);
        self.record.state == super::store::PodState::Ready
            && self.containers.iter().any(|c| !c.record.config.init)
            && apps.all(|c| c.status.ready)
    }
}

/// Which network a pod is on.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkSummary {
    pub name: String,
    /// A configuration file, or berth's default network and why it was used.
    pub source: String,
}

/// Is there a creation marker at `path` whose creator is gone (it is not locked)?
pub(crate) fn abandoned(path: &Path) -> bool {
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
}

impl Runtime {
    /// A pod's record as readers see it: NotReady while it is being removed.
    pub(crate) fn read_pod(&self, id: &str) -> Result<PodRecord> {
        let dir = self.pod_dir(id);
        let mut r: PodRecord = read_record(&dir.record())?;
        if dir.removing().exists() {
            r.state = super::store::PodState::NotReady;
        }
        Ok(r)
    }

    /// Every pod.
    pub fn list_pods(&self) -> Result<Vec<PodRecord>> {
        let mut out: Vec<PodRecord> = self
            .store
            .pod_ids()
            .iter()
            .filter_map(|id| self.read_pod(id).ok())
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// A pod by ID (or a unique prefix of one), `namespace/name`, or a name unique among pods.
    pub fn find_pod(&self, key: &str) -> Result<PodRecord> {
        // an exact ID reads one record, not every pod's
        if is_id(key) {
            match self.read_pod(key) {
                Ok(r) => return Ok(r),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let pods = self.list_pods()?;
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

    /// The pod's status: its record, its containers and what the monitor recorded.
    pub fn pod_status(&self, key: &str) -> Result<PodStatus> {
        let rec = self.find_pod(key)?;
        self.status_of(rec)
    }

    /// The status of a pod whose record is at hand.
    pub(crate) fn status_of(&self, rec: PodRecord) -> Result<PodStatus> {
        let dir = self.pod_dir(&rec.id);
        let mut monitor_pid = super::monitor::pid(&dir);
        if monitor_pid.is_none() && self.replace_lost_monitor(&rec)? {
            monitor_pid = super::monitor::pid(&dir);
        }
        let mut containers = Vec::new();
        for id in dir.container_ids() {
            let cdir = dir.container(&id);
            // a container being created has no record yet
            let Ok(r) = read_record::<ContainerRecord>(&cdir.record()) else {
                continue;
            };
            let mut status = settled_status(&cdir, &r)?;
            // without readiness or startup probes a running container is ready (whatever
            // a monitor before probes wrote)
            let p = &r.config.probes;
            status.ready = status.state == super::store::ContainerState::Running
                && (status.ready || (p.readiness.is_none() && p.startup.is_none()));
            containers.push(ContainerInfo { record: r, status });
        }
        containers.sort_by(|a, b| a.record.created.cmp(&b.record.created));
        let mut namespaces = BTreeMap::new();
        let mut namespace_paths = BTreeMap::new();
        for (k, _) in netns::KINDS {
            if let Some(p) = netns::path(&dir.0, k) {
                if let Some(i) = netns::inode(&p) {
                    namespaces.insert(k.to_string(), i);
                }
                namespace_paths.insert(k.to_string(), p);
            }
        }
        let network = read_json::<cni::Cached>(&dir.network())
            .ok()
            .map(|c| NetworkSummary {
                name: c.network.name,
                source: c.network.source,
            });
        // a pod whose starter died after its containers' start was asked for waits no more
        let asked = containers
            .iter()
            .any(|c| c.status.state != super::store::ContainerState::Pending);
        let mut st = PodStatus {
            network,
            monitor_pid,
            record: rec,
            containers,
            namespaces,
            namespace_paths,
            conditions: Vec::new(),
            waiting: read_json::<super::pending::Pending>(&dir.pending())
                .ok()
                .filter(|_| !asked)
                .map(Into::into),
        };
        // the monitor records when readiness changed; what it says now is read from the
        // containers (a stopped pod's monitor is gone)
        let ready = st.ready();
        let since = read_json::<super::store::Readiness>(&dir.readiness())
            .ok()
            .filter(|r| r.ready == ready)
            .map(|r| r.since)
            .unwrap_or_else(|| st.record.created.clone());
        st.conditions = ["ContainersReady", "Ready"]
            .into_iter()
            .map(|kind| Condition {
                kind,
                status: if ready { "True" } else { "False" },
                last_transition_time: since.clone(),
            })
            .collect();
        Ok(st)
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
        let dirs = super::cgroup::dirs(&p.cgroup)
            .map(|(_, d)| d)
            .ok_or_else(|| Error::Precondition(format!("pod {}: no cgroup", p.config.name)))?;
        Ok(crate::linux::cgroup::stats::read_stats(&dirs))
    }

    /// The cgroup directories made for a pod (`cgroup.created`).
    pub(crate) fn pod_cgroup_created(&self, id: &str) -> Vec<PathBuf> {
        fs::read_to_string(self.pod_dir(id).cgroup_created())
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .collect()
    }
}

/// A container's status as the kernel has it: one recorded Running whose init is gone (its
/// monitor has not written the exit yet) is read again until the monitor has (a few
/// milliseconds), and reported exited with the reason `Unknown` if it does not.
fn settled_status(
    cdir: &super::store::CtrDir,
    rec: &ContainerRecord,
) -> Result<super::store::ContainerStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let mut s = cdir.read_status(&rec.created)?;
        if s.state != super::store::ContainerState::Running || init_running(s.pid, s.pid_start) {
            return Ok(s);
        }
        if std::time::Instant::now() >= deadline {
            s.state = super::store::ContainerState::Exited;
            s.exit_code = Some(255);
            s.reason = Some("Unknown".into());
            s.message = Some("its init is gone and no exit was recorded".into());
            return Ok(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Is `pid` the running (not zombie) process that started at `start` (0: any)?
pub(crate) fn init_running(pid: i32, start: u64) -> bool {
    crate::linux::proc::stat(pid)
        .is_some_and(|p| p.state != 'Z' && (start == 0 || p.start_time == start))
}
