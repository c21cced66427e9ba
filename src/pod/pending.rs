//! Pods waiting for a ConfigMap, Secret or key they refer to (kubelet's
//! `CreateContainerConfigError`): the sandbox is made and the manifest kept in `pending.json`;
//! the containers are made when what was missing is applied (`kube apply` and `kube create`
//! of a ConfigMap or Secret start the pods it completes). A start cut short is taken up by the
//! next one: containers already made are kept.

use std::fs;

use serde::{Deserialize, Serialize};

use super::Runtime;
use super::error::{Error, Result, io};
use super::manifest::PodManifest;
use super::store::{read_json, write_json};

/// What `pending.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub manifest: PodManifest,
    /// The first missing reference, in kubelet's words.
    pub missing: String,
    pub since: String,
}

/// Why a pod's containers are not made yet, as `pod inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
    /// The app containers it will have.
    pub containers: Vec<String>,
}

impl From<Pending> for Waiting {
    fn from(p: Pending) -> Waiting {
        Waiting {
            reason: "CreateContainerConfigError".into(),
            message: p.missing,
            containers: p
                .manifest
                .containers
                .iter()
                .filter(|c| !c.init)
                .map(|c| c.name.clone())
                .collect(),
        }
    }
}

impl Runtime {
    /// Record pod `id` as waiting if a reference of `m` is missing; true then.
    pub(super) fn wait_for_references(&self, id: &str, m: &PodManifest) -> Result<bool> {
        let data = crate::configmap::ConfigData::new(&self.opts.data_root);
        let Some(missing) = crate::configmap::resolve::missing(&data, m) else {
            return Ok(false);
        };
        let p = Pending {
            manifest: m.clone(),
            missing,
            since: super::store::now(),
        };
        write_json(&self.pod_dir(id).pending(), &p)?;
        Ok(true)
    }

    /// Make the containers of pod `id` if it waits and what it needs exists now; true when it
    /// no longer waits.
    pub fn start_pending(&self, id: &str) -> Result<bool> {
        let dir = self.pod_dir(id);
        // one starter at a time
        let lock_path = dir.0.join("pending.lock");
        let f =
            fs::File::create(&lock_path).map_err(io(format!("create {}", lock_path.display())))?;
        let _lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| super::error::sys(format!("lock {}", lock_path.display()))(e))?;
        let mut p: Pending = match read_json(&dir.pending()) {
            Ok(p) => p,
            Err(Error::NotFound(_)) => return Ok(true),
            Err(e) => return Err(e),
        };
        // a starter killed after the monitor was asked to start the containers: done
        let rec = self.find_pod(id)?;
        if self.status_of(rec)?.waiting.is_none() {
            let _ = fs::remove_file(dir.pending());
            return Ok(true);
        }
        let data = crate::configmap::ConfigData::new(&self.opts.data_root);
        if let Some(missing) = crate::configmap::resolve::missing(&data, &p.manifest) {
            if missing != p.missing {
                p.missing = missing;
                write_json(&dir.pending(), &p)?;
            }
            return Ok(false);
        }
        self.create_containers(id, &p.manifest)?;
        crate::fault::point("pod-pending:started");
        let _ = fs::remove_file(dir.pending());
        Ok(true)
    }

    /// Start every waiting pod whose references all exist now (after a ConfigMap or Secret
    /// was applied); the pods that could not start, with why.
    pub fn start_all_pending(&self) -> Vec<(String, Error)> {
        let mut failed = Vec::new();
        for rec in self.list_pods().unwrap_or_default() {
            if !self.pod_dir(&rec.id).pending().exists() {
                continue;
            }
            if let Err(e) = self.start_pending(&rec.id) {
                failed.push((rec.id, e));
            }
        }
        failed
    }
}
