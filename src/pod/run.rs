//! Whole pods from manifests: images pulled, the sandbox made, the containers created, and the
//! monitor told to run the init containers in order, then the apps (it supervises the pod).

use std::time::Duration;

use super::Runtime;
use super::config::{ContainerConfig, Resources};
use super::error::Result;
use super::inflight::Op;
use super::manifest::PodManifest;
use super::monitor::{self, Request};

impl Runtime {
    /// Run a pod from a manifest: pull missing images, create the sandbox and containers,
    /// and let the monitor run init containers, then the apps. Returns the pod's ID. On
    /// failure nothing is left.
    pub fn run_pod(&self, m: &PodManifest, report: &mut dyn FnMut(&str)) -> Result<String> {
        let mut seen = std::collections::HashSet::new();
        for c in &m.containers {
            if seen.insert((c.image.clone(), c.pull)) {
                let creds = self.pull_credentials(&m.pod, &c.image)?;
                self.ensure_image_with(&c.image, c.pull, creds, report)?;
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
        // its claims bound first (a WaitForFirstConsumer class provisions now): a pod whose
        // claim stays Pending is refused before anything of it is made
        let claims: Vec<&String> = pod
            .volumes
            .iter()
            .filter_map(|v| match &v.source {
                super::config::VolumeSource::Claim { claim, .. } => Some(claim),
                _ => None,
            })
            .collect();
        if !claims.is_empty() {
            let volumes = crate::volume::Volumes::new(&self.opts.data_root);
            for c in claims {
                volumes.wait_bound(&pod.namespace, c, self.opts.bind_timeout)?;
            }
        }
        // one creation in flight from the sandbox to the last container: a `pod run` killed
        // anywhere is rolled back whole by the next berth
        let id = super::store::new_id();
        let marker = self.begin(&Op::CreatePod(id.clone()))?;
        if let Err(e) = self.create_sandbox(&id, &pod, true) {
            marker.done();
            return Err(e);
        }
        if !m.source.is_null() {
            let _ = super::store::write_json(&self.pod_dir(&id).manifest(), &m.source);
        }
        // a ConfigMap, Secret or key it needs is missing: the pod waits for it (kubelet's
        // CreateContainerConfigError), its containers made when it is applied
        let r = match self.wait_for_references(&id, m) {
            Ok(true) => Ok(()),
            Ok(false) => self.create_containers(&id, m),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            let _ = self.remove_pod(&id, true);
            marker.done();
            return Err(e);
        }
        marker.done();
        Ok(id)
    }

    /// Make pod `id`'s containers (those not made yet: a start cut short made some) and let
    /// its monitor run them.
    pub(super) fn create_containers(&self, id: &str, m: &PodManifest) -> Result<()> {
        // ConfigMap, Secret and downward API files, before any container
        let rec = self.find_pod(id)?;
        let resources = m
            .containers
            .iter()
            .map(|c| (c.name.clone(), c.resources.clone()))
            .collect();
        self.project_volumes(&rec, &resources, &|_| true)?;
        // the services' names in its /etc/hosts before anything of it runs
        self.services_changed();
        let made: std::collections::BTreeMap<String, String> = self
            .status_of(rec)?
            .containers
            .into_iter()
            .map(|c| (c.record.config.name.clone(), c.record.id))
            .collect();
        let mut inits = Vec::new();
        let mut apps = Vec::new();
        for c in &m.containers {
            let cid = match made.get(&c.name) {
                Some(cid) => cid.clone(),
                None => self.create_container(id, c)?,
            };
            if c.init {
                inits.push(cid)
            } else {
                apps.push(cid)
            }
        }
        monitor::request(
            &self.pod_dir(id),
            &Request::Sequence { inits, apps },
            Duration::from_secs(120),
        )?
        .expect_ok("sequence")
    }
}

impl Runtime {
    /// The Pod document pod `key` was made from (None: it was made otherwise, by the CRI).
    pub fn pod_manifest(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let p = self.find_pod(key)?;
        match super::store::read_json(&self.pod_dir(&p.id).manifest()) {
            Ok(v) => Ok(Some(v)),
            Err(super::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
