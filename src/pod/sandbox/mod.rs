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
use super::error::{Error, Result, io};
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
}

/// Create `<dir>/creating` and hold a lock on it until the guard drops: a creation in
/// progress. [`abandoned`] tells one whose creator died.
pub(crate) fn creation_marker(path: &Path) -> Result<nix::fcntl::Flock<fs::File>> {
    let f = fs::File::create(path).map_err(io("mark the object as being created"))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| super::error::sys("lock the creation marker")(e))
}

/// Is there a creation marker at `path` whose creator is gone (it is not locked)?
pub(crate) fn abandoned(path: &Path) -> bool {
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
}

impl Runtime {
    /// Every pod.
    pub fn list_pods(&self) -> Result<Vec<PodRecord>> {
        let mut out: Vec<PodRecord> = self
            .store
            .pod_ids()
            .iter()
            .filter_map(|id| read_record::<PodRecord>(&self.pod_dir(id).record()).ok())
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// A pod by ID (or a unique prefix of one), `namespace/name`, or a name unique among pods.
    pub fn find_pod(&self, key: &str) -> Result<PodRecord> {
        // an exact ID reads one record, not every pod's
        if is_id(key) {
            match read_record::<PodRecord>(&self.pod_dir(key).record()) {
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
        let mut containers = Vec::new();
        for id in dir.container_ids() {
            let cdir = dir.container(&id);
            // a container being created has no record yet
            let Ok(r) = read_record::<ContainerRecord>(&cdir.record()) else {
                continue;
            };
            let status = cdir.read_status(&r.created)?;
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
        Ok(PodStatus {
            monitor_pid: super::monitor::pid(&dir),
            record: rec,
            containers,
            namespaces,
            namespace_paths,
        })
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
