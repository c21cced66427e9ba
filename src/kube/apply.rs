//! `berth kube apply`: objects in dependency order — classes, volumes, claims, ConfigMaps and
//! Secrets, pods. An unchanged object is left alone; a changed one is updated where its
//! fields may change (a changed ConfigMap or Secret rewrites the volumes of the running pods
//! that use it before apply returns); a changed Pod is refused naming the first changed
//! field (never silently recreated). A pod whose ConfigMaps or Secrets are missing waits for
//! them, as kubelet does (CreateContainerConfigError), up to the timeout.

use std::time::Duration;

use super::{Document, Error, Object, Result, first_change};
use crate::volume::manifest::Object as Storage;
use crate::volume::{Applied, Volumes};

/// How pods are waited for.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Up to how long a pod's claims wait to be bound, and the pod to start.
    pub timeout: Duration,
    /// Do not wait for pods to start.
    pub detach: bool,
    /// A pod whose name exists is refused (`berth pod run`), not compared.
    pub pods_must_be_new: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            timeout: Duration::from_secs(60),
            detach: false,
            pods_must_be_new: false,
        }
    }
}

/// What applying one object did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `kind/name`.
    pub what: String,
    pub applied: Applied,
    /// A pod's ID (made now, or the one already there).
    pub pod_id: Option<String>,
}

/// The order objects are made in.
fn rank(d: &Document) -> u8 {
    match &d.object {
        Object::Storage(s) => match **s {
            Storage::Class(_) => 0,
            Storage::Volume(_) => 1,
            Storage::Claim(_) => 2,
        },
        Object::Data(_) | Object::Service(_) => 3,
        Object::Pod(_) => 4,
    }
}

/// Apply `docs`. `done` hears of each object as it is applied (the CLI prints
/// `pod/web created`); a pod that does not start fails the apply after that.
pub fn apply(
    rt: &crate::pod::Runtime,
    vols: &Volumes,
    docs: &[Document],
    opts: &ApplyOptions,
    report: &mut dyn FnMut(&str),
    done: &mut dyn FnMut(&Outcome),
) -> Result<Vec<Outcome>> {
    let mut order: Vec<&Document> = docs.iter().collect();
    order.sort_by_key(|d| (rank(d), d.index));
    let mut out = Vec::new();
    let mut started = Vec::new();
    for d in order {
        let (applied, pod_id) = match &d.object {
            Object::Service(b) => {
                let (svc, ip) = &**b;
                let o = rt.options();
                let range = crate::service::store::check_range(
                    &o.service_cidr,
                    "--service-cidr",
                    &o.cni.default_subnet,
                )?;
                let services = crate::service::Services::new(&o.data_root).with_range(range);
                let applied = services.apply(svc.clone(), *ip)?;
                // unchanged too: after a reboot this puts the table back
                resync_services(rt)?;
                (applied, None)
            }
            Object::Data(o) => {
                let data = crate::configmap::ConfigData::new(&rt.options().data_root);
                let applied = data.apply((**o).clone())?;
                if applied == Applied::Configured {
                    rt.refresh_projected(o.kind, &o.namespace, &o.name)?;
                }
                // pods that waited for it start
                start_pending(rt, report);
                (applied, None)
            }
            Object::Storage(s) => match &**s {
                Storage::Class(c) => (vols.apply_class(c.clone())?, None),
                Storage::Volume(v) => (vols.apply_volume(v.clone())?, None),
                Storage::Claim(c) => (vols.apply_claim(c.clone())?, None),
            },
            Object::Pod(m) => {
                let key = format!("{}/{}", d.namespace, d.name);
                match rt.find_pod(&key) {
                    Ok(_) if opts.pods_must_be_new => {
                        return Err(crate::pod::Error::AlreadyExists(format!("pod {key}")).into());
                    }
                    Ok(rec) => {
                        let old = rt.pod_manifest(&rec.id)?.ok_or_else(|| {
                            Error::Invalid(format!(
                                "pod {key} exists and was not made from a manifest: delete it first"
                            ))
                        })?;
                        if let Some(field) = first_change(&old, &m.source) {
                            return Err(Error::Invalid(format!(
                                "pod {key}: {field} changed, and a Pod cannot be updated: delete it, then apply"
                            )));
                        }
                        (Applied::Unchanged, Some(rec.id))
                    }
                    Err(crate::pod::Error::NotFound(_)) => {
                        let id = rt.run_pod(m, report).map_err(|e| naming(e, &key))?;
                        started.push((key, id.clone()));
                        (Applied::Created, Some(id))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let o = Outcome {
            what: d.describe(),
            applied,
            pod_id,
        };
        done(&o);
        out.push(o);
    }
    if !opts.detach {
        for (key, id) in started {
            rt.wait_started(&id, opts.timeout)
                .map_err(|e| naming(e, &key))?;
        }
    }
    Ok(out)
}

/// Bring the services' rules and names in line now (after a Service changed).
pub(super) fn resync_services(rt: &crate::pod::Runtime) -> Result<()> {
    let cfg = crate::service::ServiceConfig::new(&rt.options().data_root)?;
    crate::service::resync(rt, &cfg)?;
    Ok(())
}

/// A pod's error, naming the pod unless it does already.
fn naming(e: crate::pod::Error, key: &str) -> Error {
    if e.to_string().contains(key) {
        e.into()
    } else {
        Error::Invalid(format!("pod {key}: {e}"))
    }
}

/// Start the pods waiting for ConfigMaps or Secrets that now all exist (a pod that cannot
/// start yet keeps waiting, and says why in its status).
pub fn start_pending(rt: &crate::pod::Runtime, report: &mut dyn FnMut(&str)) {
    for (id, e) in rt.start_all_pending() {
        report(&format!(
            "pod {id} waited for its configuration and could not start: {e}"
        ));
    }
}
