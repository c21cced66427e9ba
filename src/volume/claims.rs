//! PersistentVolumeClaims: apply (binding at once, unless the class waits for a consumer),
//! list, delete (protected while a pod uses it), and binding Pending claims.

use super::bind::{self, Decision};
use super::error::{Error, Result};
use super::model::{Claim, ClaimPhase, ClaimRef, VolumePhase};
use super::store::Locked;
use super::{Applied, Volumes};

impl Volumes {
    /// Create a claim, or leave an unchanged one as it is. Its spec cannot change once made
    /// (as in Kubernetes, but for a bigger request: expansion comes later), labels can.
    pub fn apply_claim(&self, mut c: Claim) -> Result<Applied> {
        let lock = self.store.lock()?;
        if let Some(old) = self.store.claim(&c.namespace, &c.name)? {
            if old.spec != c.spec {
                let field = if old.spec.request != c.spec.request {
                    "spec.resources.requests.storage"
                } else if old.spec.access_modes != c.spec.access_modes {
                    "spec.accessModes"
                } else if old.spec.class != c.spec.class {
                    "spec.storageClassName"
                } else if old.spec.volume_name != c.spec.volume_name {
                    "spec.volumeName"
                } else {
                    "spec.selector"
                };
                return Err(Error::Precondition(format!(
                    "persistentvolumeclaim {}/{}: {field} cannot change once the claim exists",
                    c.namespace, c.name
                )));
            }
            if old.labels == c.labels {
                return Ok(Applied::Unchanged);
            }
            let mut new = old;
            new.labels = c.labels;
            self.store.put_claim(&lock, &new)?;
            return Ok(Applied::Configured);
        }
        c.created = crate::pod::store::now();
        c.phase = ClaimPhase::Pending;
        self.store.put_claim(&lock, &c)?;
        self.sync_claim(&lock, c, false)?;
        Ok(Applied::Created)
    }

    /// Claims of a namespace (None: all).
    pub fn claims(&self, namespace: Option<&str>) -> Result<Vec<Claim>> {
        self.store.claims(namespace)
    }

    /// A claim.
    pub fn claim(&self, namespace: &str, name: &str) -> Result<Claim> {
        self.store
            .claim(namespace, name)?
            .ok_or_else(|| Error::NotFound(format!("persistentvolumeclaim {namespace}/{name}")))
    }

    /// Delete a claim. One a pod uses is marked Terminating and goes with the last such pod;
    /// its volume is then reclaimed (Delete: removed with its data; Retain: Released).
    pub fn delete_claim(&self, namespace: &str, name: &str) -> Result<()> {
        let lock = self.store.lock()?;
        let mut c = self.claim(namespace, name)?;
        let used = c.volume.as_ref().is_some_and(|v| !self.users(v).is_empty());
        if used {
            c.terminating = true;
            return self.store.put_claim(&lock, &c);
        }
        self.remove_claim(&lock, &c)
    }

    /// Remove a claim's record and reclaim its volume.
    pub(super) fn remove_claim(&self, lock: &Locked, c: &Claim) -> Result<()> {
        self.store.remove_claim(lock, &c.namespace, &c.name)?;
        // its volume, and one provisioned for it but not bound yet (a berth killed between)
        for v in self.store.volumes()? {
            let ours = v.claim_ref.as_ref().is_some_and(|r| {
                r.namespace == c.namespace
                    && r.name == c.name
                    && (r.uid.is_empty() || r.uid == c.uid)
            });
            if ours && v.phase != VolumePhase::Released {
                self.reclaim(lock, v, &format!("{}/{}", c.namespace, c.name))?;
            }
        }
        Ok(())
    }

    /// Try to bind every Pending claim (a volume appeared or became Available).
    pub(super) fn sync_pending(&self, lock: &Locked) -> Result<()> {
        for c in self.store.claims(None)? {
            if c.phase == ClaimPhase::Pending {
                self.sync_claim(lock, c, false)?;
            }
        }
        Ok(())
    }

    /// Bind a Pending claim, provisioning if its class does (`consumer`: a pod waits for it,
    /// which a WaitForFirstConsumer class provisions for). Returns the claim as it is now.
    pub(super) fn sync_claim(&self, lock: &Locked, mut c: Claim, consumer: bool) -> Result<Claim> {
        if c.phase != ClaimPhase::Pending {
            return Ok(c);
        }
        let classes = self.classes()?;
        let volumes = self.store.volumes()?;
        let pv = match bind::decide(&c, &volumes, &classes, consumer) {
            Decision::Bind(name) => name,
            Decision::Provision(class) => {
                let class = classes
                    .iter()
                    .find(|k| k.name == class)
                    .expect("decided from these classes");
                match self.provision(lock, &c, class) {
                    Ok(name) => name,
                    Err(e) => {
                        c.reason = format!("provisioning through class {} failed: {e}", class.name);
                        self.store.put_claim(lock, &c)?;
                        return Ok(c);
                    }
                }
            }
            Decision::Wait(why) => {
                if c.reason != why {
                    c.reason = why;
                    self.store.put_claim(lock, &c)?;
                }
                return Ok(c);
            }
        };
        let mut v = self
            .store
            .volume(&pv)?
            .ok_or_else(|| Error::NotFound(format!("persistentvolume {pv:?}")))?;
        v.claim_ref = Some(ClaimRef {
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            uid: c.uid.clone(),
        });
        v.phase = VolumePhase::Bound;
        v.reason.clear();
        self.store.put_volume(lock, &v)?;
        c.volume = Some(pv);
        c.phase = ClaimPhase::Bound;
        c.reason.clear();
        self.store.put_claim(lock, &c)?;
        Ok(c)
    }
}
