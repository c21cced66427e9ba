//! A pod's containers: `create` prepares one from an image (bundle, OCI spec, record),
//! `start` has the pod's monitor create and start it, `stop`, `remove`; `exec` and
//! `attach` reach into a running one, `logs` reads what it wrote, `stats` its usage.
//! Here: finding containers.

pub mod attach;
pub mod create;
pub mod exec;
pub mod logs;
pub mod project;
pub mod remove;
pub mod start;
pub mod stats;
pub mod stop;

use serde::Serialize;

use super::error::{Error, Result};
use super::store::{ContainerRecord, ContainerStatus, PodRecord, read_record};
use super::{Runtime, is_id};

/// A container and what the monitor recorded about it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    #[serde(flatten)]
    pub record: ContainerRecord,
    pub status: ContainerStatus,
}

impl Runtime {
    /// Every container of every pod.
    pub fn list_containers(&self) -> Result<Vec<(PodRecord, ContainerInfo)>> {
        let mut out = Vec::new();
        for p in self.list_pods()? {
            let st = self.status_of(p)?;
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
        if pod.is_none() && is_id(key) {
            for p in self.store.pod_ids() {
                let dir = self.pod_dir(&p);
                if !dir.container(key).record().exists() {
                    continue;
                }
                let rec = read_record::<PodRecord>(&dir.record())?;
                let st = self.status_of(rec)?;
                if let Some(c) = st.containers.iter().find(|c| c.record.id == key) {
                    return Ok((st.record.clone(), c.clone()));
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

    /// A container that must be running for `what`.
    pub(crate) fn running_container(&self, id: &str) -> Result<(PodRecord, ContainerInfo)> {
        let (pod, c) = self.find_container(None, id)?;
        if c.status.state != super::store::ContainerState::Running {
            return Err(Error::Precondition(format!(
                "container {} is not running",
                c.record.config.name
            )));
        }
        Ok((pod, c))
    }
}
