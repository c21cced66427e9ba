//! What a manifest pod takes from ConfigMaps, Secrets and itself, made concrete: its
//! projected volumes' files (written before its first container, rewritten when a source
//! changes) and a container's environment (resolved when it is made, into its config.json
//! only: records keep the references).

use std::collections::BTreeMap;

use crate::configmap::{ConfigData, DataKind, project, resolve};
use crate::pod::config::{ContainerConfig, Resources, VolumeSource};
use crate::pod::error::{Error, Result};
use crate::pod::store::PodRecord;
use crate::pod::{Projection, Runtime};

/// A configmap error as the pod layer's, naming `what` it was about (a missing reference is
/// a precondition).
fn pod_error(e: crate::configmap::Error, what: &str) -> Error {
    match e {
        crate::configmap::Error::Invalid(m) => Error::Invalid(format!("{what}: {m}")),
        crate::configmap::Error::Precondition(m) => Error::Precondition(format!("{what}: {m}")),
        crate::configmap::Error::NotFound(m) => Error::NotFound(format!("{what}: {m}")),
        o => Error::Internal(format!("{what}: {o}")),
    }
}

impl Runtime {
    fn config_data(&self) -> ConfigData {
        ConfigData::new(&self.opts.data_root)
    }

    /// The containers' resources of the manifest pod `id` was made from, by name.
    fn manifest_resources(&self, id: &str) -> BTreeMap<String, Resources> {
        crate::pod::store::read_json::<serde_json::Value>(&self.pod_dir(id).manifest())
            .ok()
            .and_then(|v| crate::pod::manifest::pod_from_value(&v, 0).ok())
            .map(|m| {
                m.containers
                    .into_iter()
                    .map(|c| (c.name, c.resources))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Write the files of pod `rec`'s projected volumes (`only`: those with a source for
    /// which it says yes).
    pub(crate) fn project_volumes(
        &self,
        rec: &PodRecord,
        containers: &BTreeMap<String, Resources>,
        only: &dyn Fn(&Projection) -> bool,
    ) -> Result<()> {
        let data = self.config_data();
        let lookup = |n: &str| containers.get(n).cloned();
        let pod = resolve::Pod {
            record: rec,
            resources: &lookup,
        };
        for v in &rec.config.volumes {
            let VolumeSource::Projected {
                sources,
                default_mode,
                ..
            } = &v.source
            else {
                continue;
            };
            if !sources.iter().any(only) {
                continue;
            }
            let what = format!("volume {}", v.name);
            let files = resolve::files(&data, &pod, sources, *default_mode)
                .map_err(|e| pod_error(e, &what))?;
            project::write(&self.pod_dir(&rec.id).volume(&v.name), &files)
                .map_err(|e| pod_error(e, &what))?;
        }
        Ok(())
    }

    /// Rewrite the volumes of every running pod that uses ConfigMap or Secret `ns/name`
    /// (after `kube apply` changed it); returns how many pods.
    pub fn refresh_projected(&self, kind: DataKind, ns: &str, name: &str) -> Result<usize> {
        let mut n = 0;
        for rec in self.list_pods()? {
            if rec.config.namespace != ns {
                continue;
            }
            let uses = |p: &Projection| matches!(p, Projection::Data { kind: k, name: nm, .. } if *k == kind && nm == name);
            let used = rec.config.volumes.iter().any(|v| {
                matches!(&v.source, VolumeSource::Projected { sources, .. } if sources.iter().any(uses))
            });
            if used {
                let res = self.manifest_resources(&rec.id);
                self.project_volumes(&rec, &res, &uses)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The credentials for `image`'s registry among the pod's `imagePullSecrets` (the first
    /// Secret that has some; None when none does).
    pub(crate) fn pull_credentials(
        &self,
        pod: &crate::pod::PodConfig,
        image: &str,
    ) -> Result<Option<crate::image::registry::Credentials>> {
        if pod.image_pull_secrets.is_empty() {
            return Ok(None);
        }
        let registry = crate::image::model::parse_reference(image)?
            .registry()
            .to_string();
        let data = self.config_data();
        for name in &pod.image_pull_secrets {
            let what = format!("imagePullSecrets: secret {}/{name}", pod.namespace);
            // kubelet goes on without a missing pull secret (and says so in an event)
            let Ok(s) = data.get(DataKind::Secret, &pod.namespace, name) else {
                continue;
            };
            let Some(json) = s.value(".dockerconfigjson") else {
                return Err(Error::Invalid(format!(
                    "{what}: not of type kubernetes.io/dockerconfigjson"
                )));
            };
            let text = String::from_utf8_lossy(&json);
            if let Some(c) = crate::image::registry::from_auth_json(&text, &registry, &what)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// `cfg` with its environment resolved and `$(VAR)` expanded (unchanged without an
    /// env_spec, as from the CRI), and the names `envFrom` skipped as invalid.
    pub(crate) fn resolve_container(
        &self,
        rec: &PodRecord,
        cfg: &ContainerConfig,
    ) -> Result<(ContainerConfig, Vec<String>)> {
        if cfg.env_spec.is_none() {
            return Ok((cfg.clone(), Vec::new()));
        }
        let mut res = self.manifest_resources(&rec.id);
        res.insert(cfg.name.clone(), cfg.resources.clone());
        let lookup = |n: &str| res.get(n).cloned();
        let pod = resolve::Pod {
            record: rec,
            resources: &lookup,
        };
        resolve::container(&self.config_data(), &pod, cfg)
            .map_err(|e| pod_error(e, &format!("container {}", cfg.name)))
    }
}
