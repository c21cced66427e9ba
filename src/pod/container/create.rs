//! CreateContainer: the container's name reserved in its pod, its directory, its image
//! unpacked into a bundle, its OCI spec written from the image's and the container's config
//! ([`crate::pod::spec`]), its record. The pod's monitor creates and starts it at `start`.

use std::fs;

use crate::pod::config::{ContainerConfig, PullPolicy};
use crate::pod::error::{Error, Result, io};
use crate::pod::inflight::Op;
use crate::pod::store::{self, ContainerRecord, PodState, read_json, write_json};
use crate::pod::{Runtime, cgroup};
use crate::undo::Undo;

impl Runtime {
    /// Make sure an image is in the store, pulling it per the policy.
    pub fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        report: &mut dyn FnMut(&str),
    ) -> Result<String> {
        self.ensure_image_with(image, policy, None, report)
    }

    /// [`Runtime::ensure_image`] with these credentials (a pod's `imagePullSecrets`).
    pub fn ensure_image_with(
        &self,
        image: &str,
        policy: PullPolicy,
        creds: Option<crate::image::registry::Credentials>,
        report: &mut dyn FnMut(&str),
    ) -> Result<String> {
        let have = self.images.resolve(image).ok();
        match (policy, have) {
            (PullPolicy::Never, None) => Err(Error::NotFound(format!(
                "image {image} (imagePullPolicy Never)"
            ))),
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some((name, _))) => Ok(name),
            _ if creds.is_some() => {
                let opts = crate::image::PullOptions {
                    creds,
                    ..self.opts.pull.clone()
                };
                Ok(self.images.pull(image, &opts, report)?)
            }
            _ => Ok(self.images.pull(image, &self.opts.pull, report)?),
        }
    }

    /// Create a container in a pod from an image in the store (its bundle is prepared; the
    /// monitor creates and starts it at `start_container`).
    pub fn create_container(&self, pod: &str, cfg: &ContainerConfig) -> Result<String> {
        let prec = self.find_pod(pod)?;
        if prec.state != PodState::Ready {
            return Err(Error::Precondition(format!(
                "pod {} is not ready",
                prec.config.name
            )));
        }
        cfg.resources.validate("resources")?;
        let dir = self.pod_dir(&prec.id);
        let st = self.status_of(prec.clone())?;
        let what = if cfg.attempt > 0 {
            format!(
                "container {} (attempt {}) in pod {}",
                cfg.name, cfg.attempt, prec.config.name
            )
        } else {
            format!("container {} in pod {}", cfg.name, prec.config.name)
        };
        if st
            .containers
            .iter()
            .any(|c| c.record.config.name == cfg.name && c.record.config.attempt == cfg.attempt)
        {
            return Err(Error::AlreadyExists(what));
        }
        let (image_name, image_rec) = self
            .images
            .resolve(&cfg.image)
            .map_err(|_| Error::NotFound(format!("image {} (pull it first)", cfg.image)))?;
        let id = store::new_id();
        let marker = self.begin(&Op::CreateContainer {
            pod: prec.id.clone(),
            ctr: id.clone(),
        })?;
        let mut undo = Undo::new();
        let cdir = dir.container(&id);
        let made = (|| -> Result<()> {
            let reservation = self.reserve_name(
                &format!("ctr_{}_{}_{}", prec.id, cfg.name, cfg.attempt),
                &what,
                &id,
            )?;
            undo.push("release the container's name", move || {
                fs::remove_file(&reservation).map_err(|e| e.to_string())
            });
            fs::create_dir_all(&cdir.0).map_err(io(format!("create {}", cdir.0.display())))?;
            let d = cdir.0.clone();
            undo.push(format!("remove {}", d.display()), move || {
                fs::remove_dir_all(&d).map_err(|e| e.to_string())
            });
            let bundle = cdir.bundle();
            let (images, b) = (self.images.clone(), bundle.clone());
            undo.push("release the container's rootfs", move || {
                images.unmount(&b).map_err(|e| e.to_string())
            });
            self.images
                .unpack(&image_name, &bundle, false, &mut |_| {})?;
            crate::fault::point("container-create:unpacked");
            let (_, image_cfg) = self.images.manifest_and_config(&image_rec)?;
            let log_path = cfg
                .log_path
                .clone()
                .unwrap_or_else(|| prec.log_dir.join(&cfg.name).join("0.log"));
            let stop_signal = cfg
                .stop_signal
                .clone()
                .or_else(|| {
                    image_cfg
                        .config()
                        .as_ref()
                        .and_then(|c| c.stop_signal().clone())
                })
                .unwrap_or_else(|| "SIGTERM".into());
            // the environment from ConfigMaps, Secrets and the pod: into config.json only
            let (resolved, skipped) = self.resolve_container(&prec, cfg)?;
            let mut rec = ContainerRecord {
                version: store::VERSION,
                id: id.clone(),
                pod_id: prec.id.clone(),
                config: cfg.clone(),
                image: image_name.clone(),
                image_id: image_rec.config.clone(),
                created: store::now(),
                bundle: bundle.clone(),
                log_path,
                cgroup: cgroup::container_path(&prec.cgroup, &id),
                stop_signal,
            };
            let pause: Option<i32> = read_json(&dir.pause_pid()).ok();
            if prec.config.share_pid && pause.is_none() {
                return Err(Error::Internal(format!(
                    "pod {}: its PID namespace holder is gone",
                    prec.config.name
                )));
            }
            let base = crate::oci::spec::load(&bundle).map_err(crate::oci::Error::config)?;
            let for_spec = ContainerRecord {
                config: resolved,
                ..rec.clone()
            };
            let spec = crate::pod::spec::build(base, &prec, &dir, &for_spec, &image_cfg, pause)?;
            write_json(&bundle.join("config.json"), &spec)?;
            if cfg.env_spec.is_some() {
                // it may hold Secret values
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(
                    bundle.join("config.json"),
                    fs::Permissions::from_mode(0o600),
                )
                .map_err(io("set config.json's mode"))?;
            }
            if !skipped.is_empty() {
                // kubelet's event, kept where `pod inspect` shows it
                rec.config.annotations.insert(
                    "berth.io/envfrom-skipped".into(),
                    format!("invalid variable names: {}", skipped.join(", ")),
                );
            }
            crate::fault::point("container-create:spec");
            write_json(&cdir.record(), &rec)
        })();
        let r = match made {
            Ok(()) => {
                undo.commit();
                Ok(id)
            }
            Err(e) => {
                let failed = undo.rollback();
                Err(e.with_rollback(failed))
            }
        };
        marker.done();
        r
    }
}
