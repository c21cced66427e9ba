//! PersistentVolumes: apply, list, delete (protected while bound), release, and what happens
//! to a volume whose claim is gone (its reclaim policy).

use std::fs;

use super::backend;
use super::error::{Error, Result};
use super::model::{ReclaimPolicy, Source, Volume, VolumePhase};
use super::store::Locked;
use super::{Applied, VolumeStatus, Volumes};

impl Volumes {
    /// Create or update a volume. A new berth.io/local volume whose storage does not exist
    /// yet gets it now. Its source and capacity cannot change (expansion comes later); its
    /// access modes, reclaim policy, class and labels can.
    pub fn apply_volume(&self, mut v: Volume) -> Result<Applied> {
        let lock = self.store.lock()?;
        if let Some(old) = self.store.volume(&v.name)? {
            if old.source != v.source {
                return Err(Error::Precondition(format!(
                    "persistentvolume {}: its source (spec.csi, spec.local, spec.hostPath) cannot change",
                    v.name
                )));
            }
            if old.capacity != v.capacity {
                return Err(Error::Precondition(format!(
                    "persistentvolume {}: spec.capacity.storage cannot change (expansion is not supported yet)",
                    v.name
                )));
            }
            let mut new = old.clone();
            new.access_modes = v.access_modes;
            new.reclaim_policy = v.reclaim_policy;
            new.class = v.class;
            new.labels = v.labels;
            if new == old {
                return Ok(Applied::Unchanged);
            }
            self.store.put_volume(&lock, &new)?;
            return Ok(Applied::Configured);
        }
        v.created = crate::pod::store::now();
        v.phase = VolumePhase::Available;
        // static provisioning: a volume named for storage berth has not made yet gets it
        if let Source::Csi {
            handle,
            backend,
            fs_type,
        } = &v.source
        {
            let exists = match backend {
                super::BackendKind::Loopfile => self.store.image(handle).exists(),
                super::BackendKind::Dir => self.store.dir(handle).exists(),
            };
            if !exists {
                self.provision_storage(&lock, handle, *backend, v.capacity, fs_type)?;
            }
        }
        self.store.put_volume(&lock, &v)?;
        self.sync_pending(&lock)?;
        Ok(Applied::Created)
    }

    /// Every volume.
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        self.store.volumes()
    }

    /// A volume by name.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.store
            .volume(name)?
            .ok_or_else(|| Error::NotFound(format!("persistentvolume {name:?}")))
    }

    /// A volume with its usage and users.
    pub fn status(&self, v: Volume) -> VolumeStatus {
        let b = backend::for_volume(&v, &self.store);
        let (limit, used) = match (&v.source, b.usage(&v)) {
            (Source::Path { .. }, _)
            | (
                Source::Csi {
                    backend: super::BackendKind::Dir,
                    ..
                },
                _,
            ) => (None, None),
            (_, Some((cap, used))) => (Some(cap), used),
            (_, None) => (Some(v.capacity), None),
        };
        let users = self.users(&v.name).into_iter().map(|(p, _)| p).collect();
        VolumeStatus {
            volume: v,
            limit,
            used,
            users,
        }
    }

    /// Delete a volume. One bound to a claim is only marked (Terminating) and goes when its
    /// claim does, as Kubernetes' protection keeps it. Its data goes with it under the Delete
    /// policy and stays under Retain (applying a volume of the same handle finds it again).
    pub fn delete_volume(&self, name: &str) -> Result<()> {
        let lock = self.store.lock()?;
        let mut v = self.volume(name)?;
        let bound = v.claim_ref.as_ref().is_some_and(|r| {
            self.store
                .claim(&r.namespace, &r.name)
                .ok()
                .flatten()
                .is_some()
        });
        if bound {
            v.terminating = true;
            return self.store.put_volume(&lock, &v);
        }
        self.remove_volume(&lock, &v)
    }

    /// Remove a volume's record, and its data under the Delete policy.
    pub(super) fn remove_volume(&self, lock: &Locked, v: &Volume) -> Result<()> {
        let b = backend::for_volume(v, &self.store);
        if v.reclaim_policy == ReclaimPolicy::Delete {
            b.delete(v)?;
        } else {
            b.detach(v)?;
        }
        let _ = fs::remove_dir_all(self.store.users(&v.name));
        self.store.remove_volume(lock, &v.name)
    }

    /// A Released volume (its claim was deleted, Retain) becomes Available again: its claim
    /// reference is cleared, as an administrator does in Kubernetes. Its data is kept.
    pub fn release(&self, name: &str) -> Result<()> {
        let lock = self.store.lock()?;
        let mut v = self.volume(name)?;
        if v.phase != VolumePhase::Released {
            return Err(Error::Precondition(format!(
                "persistentvolume {name} is {:?}, not Released",
                v.phase
            )));
        }
        v.claim_ref = None;
        v.phase = VolumePhase::Available;
        v.reason.clear();
        self.store.put_volume(&lock, &v)?;
        self.sync_pending(&lock)
    }

    /// The claim of volume `v` is gone: Delete removes it with its data, Retain keeps it
    /// Released (a volume marked for deletion goes now, its data per its policy).
    pub(super) fn reclaim(&self, lock: &Locked, mut v: Volume, claim: &str) -> Result<()> {
        if v.terminating || v.reclaim_policy == ReclaimPolicy::Delete {
            return match self.remove_volume(lock, &v) {
                Ok(()) => Ok(()),
                Err(e) => {
                    v.phase = VolumePhase::Failed;
                    v.reason = format!("its claim {claim} was deleted; deleting it failed: {e}");
                    self.store.put_volume(lock, &v)
                }
            };
        }
        backend::for_volume(&v, &self.store).detach(&v)?;
        v.phase = VolumePhase::Released;
        v.reason = format!("its claim {claim} was deleted (Retain: data kept)");
        self.store.put_volume(lock, &v)
    }
}

impl Volumes {
    /// `berth volume create`: a volume of `size` bytes on `backend` (Retain) and a claim of
    /// the same name in `namespace` bound to it, for pods to name.
    pub fn create(
        &self,
        name: &str,
        namespace: &str,
        size: u64,
        access_modes: Vec<super::AccessMode>,
        backend: super::BackendKind,
    ) -> Result<Volume> {
        super::model::check_name(name, "NAME")?;
        super::model::check_name(namespace, "--namespace")?;
        let lock = self.store.lock()?;
        if self.store.volume(name)?.is_some() {
            return Err(Error::Precondition(format!("volume {name} already exists")));
        }
        if self.store.claim(namespace, name)?.is_some() {
            return Err(Error::Precondition(format!(
                "persistentvolumeclaim {namespace}/{name} already exists"
            )));
        }
        let created = crate::pod::store::now();
        let source = super::backend::of(backend, &self.store).source(name, "ext4");
        let claim = super::Claim {
            version: super::VERSION,
            namespace: namespace.into(),
            name: name.into(),
            uid: crate::pod::store::new_uid(),
            spec: super::ClaimSpec {
                request: size,
                access_modes: access_modes.clone(),
                class: Some(String::new()),
                volume_name: Some(name.into()),
                selector: Default::default(),
            },
            labels: Default::default(),
            phase: super::ClaimPhase::Bound,
            reason: String::new(),
            volume: Some(name.into()),
            terminating: false,
            created: created.clone(),
        };
        // made bound: one write of each record, their fsyncs at once and while the storage is
        // made; put in place once it is, the volume first: a berth killed between leaves a
        // volume bound to no claim, which `berth volume rm` removes. In flight until both
        // are in place: a berth killed before leaves storage and staged records the next
        // berth removes.
        let v = Volume {
            version: super::VERSION,
            name: name.into(),
            capacity: size,
            access_modes,
            reclaim_policy: ReclaimPolicy::Retain,
            class: String::new(),
            labels: Default::default(),
            source: source.clone(),
            claim_ref: Some(super::model::ClaimRef {
                namespace: namespace.into(),
                name: name.into(),
                uid: claim.uid.clone(),
            }),
            phase: VolumePhase::Bound,
            reason: String::new(),
            provisioned: false,
            terminating: false,
            created,
        };
        let (marker, staged) =
            self.provision_storage_marked(&lock, name, backend, size, "ext4", || {
                self.store.stage_volume_and_claim(&lock, &v, &claim)
            })?;
        crate::fault::point("volume-create:volume");
        let recorded = staged.commit();
        if let Err(e) = recorded {
            let mut gone = v.clone();
            gone.reclaim_policy = ReclaimPolicy::Delete;
            let _ = self.remove_volume(&lock, &gone);
            let _ = self.store.remove_claim(&lock, namespace, name);
            return Err(e);
        }
        drop(marker);
        Ok(v)
    }

    /// `berth volume rm`: the volume, its data, and its claim (refused while a pod uses it).
    pub fn remove(&self, name: &str) -> Result<()> {
        let lock = self.store.lock()?;
        let mut v = self.volume(name)?;
        if let Some((_, who)) = self.users(name).first() {
            return Err(Error::Precondition(format!(
                "volume {name} is in use by pod {who}"
            )));
        }
        if let Some(r) = &v.claim_ref {
            self.store.remove_claim(&lock, &r.namespace, &r.name)?;
        }
        v.reclaim_policy = ReclaimPolicy::Delete;
        self.remove_volume(&lock, &v)
    }
}
