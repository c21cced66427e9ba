//! Dynamic provisioning: a class makes a volume for a claim (`pvc-<claim uid>`, the claim's
//! size and access modes, the class's back end and reclaim policy). Storage being made is
//! marked in flight (a locked file naming the volume): a berth killed part way leaves a
//! marker whose lock is free, and the next berth removes the half-made storage
//! ([`Volumes::repair`]).

use std::fs;

use nix::fcntl::{Flock, FlockArg};

use super::Volumes;
use super::backend;
use super::error::{Result, io, sys};
use super::model::{
    BackendKind, Claim, ClaimRef, Source, StorageClass, VERSION, Volume, VolumePhase,
};
use super::store::Locked;

/// A provisioning in flight: its marker file, locked; removed (then unlocked) on drop.
pub(super) struct Marker {
    path: std::path::PathBuf,
    _held: Flock<fs::File>,
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Volumes {
    /// Provision a volume for `claim` through `class`; returns its name (reserved for the
    /// claim: the caller binds them).
    pub(super) fn provision(
        &self,
        lock: &Locked,
        claim: &Claim,
        class: &StorageClass,
    ) -> Result<String> {
        let name = format!("pvc-{}", claim.uid);
        let source = self.provision_storage(
            lock,
            &name,
            class.backend,
            claim.spec.request,
            &class.fs_type,
        )?;
        let v = Volume {
            version: VERSION,
            name: name.clone(),
            capacity: claim.spec.request,
            access_modes: claim.spec.access_modes.clone(),
            reclaim_policy: class.reclaim_policy,
            class: class.name.clone(),
            labels: Default::default(),
            source,
            claim_ref: Some(ClaimRef {
                namespace: claim.namespace.clone(),
                name: claim.name.clone(),
                uid: claim.uid.clone(),
            }),
            phase: VolumePhase::Available,
            reason: String::new(),
            provisioned: true,
            terminating: false,
            created: crate::pod::store::now(),
        };
        self.store.put_volume(lock, &v)?;
        crate::fault::point("volume-provision:recorded");
        Ok(name)
    }

    /// Make the storage of volume `handle`, marked in flight until it is made.
    pub(super) fn provision_storage(
        &self,
        lock: &Locked,
        handle: &str,
        kind: BackendKind,
        size: u64,
        fs_type: &str,
    ) -> Result<Source> {
        let source = backend::of(kind, &self.store).source(handle, fs_type);
        self.provision_storage_marked(lock, handle, kind, size, fs_type, || Ok(()))?;
        Ok(source)
    }

    /// [`Self::provision_storage`], the marker kept until the caller drops it (once the
    /// volume's record is written), with `meanwhile` run while the storage is made (the
    /// records staged while mkfs runs: a file system takes milliseconds to make, their
    /// fsyncs as long). Either failing, nothing is left.
    pub(super) fn provision_storage_marked<T>(
        &self,
        _lock: &Locked,
        handle: &str,
        kind: BackendKind,
        size: u64,
        fs_type: &str,
        meanwhile: impl FnOnce() -> Result<T>,
    ) -> Result<(Marker, T)> {
        let dir = self.store.inflight();
        fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let marker = dir.join(handle);
        let f = fs::File::create(&marker).map_err(io(format!("create {}", marker.display())))?;
        let held = Flock::lock(f, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| sys(format!("lock {}", marker.display()))(e))?;
        let marker = Marker {
            path: marker,
            _held: held,
        };
        crate::fault::point("volume-provision:marked");
        let mut meanwhile = Some(meanwhile);
        let mut other = None;
        let made = backend::of(kind, &self.store).create(handle, size, fs_type, &mut || {
            if let Some(f) = meanwhile.take() {
                other = Some(f());
            }
        });
        crate::fault::point("volume-provision:made");
        made?;
        let other = match (other, meanwhile) {
            (Some(o), _) => o,
            (None, Some(f)) => f(),
            (None, None) => unreachable!("meanwhile ran or is still there"),
        };
        match other {
            Ok(t) => Ok((marker, t)),
            Err(e) => {
                self.remove_half_made(handle);
                Err(e)
            }
        }
    }

    /// Remove the storage of volume `handle` that has no record.
    fn remove_half_made(&self, handle: &str) {
        let _ = fs::remove_file(self.store.image(handle));
        let _ = fs::remove_dir_all(self.store.dir(handle));
    }

    /// Remove the storage of provisionings a killed berth left half done (markers whose lock
    /// is free and whose volume has no record). Returns what it did, one line each.
    pub fn repair(&self) -> Vec<String> {
        let dir = self.store.inflight();
        let Ok(rd) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut done = Vec::new();
        let entries: Vec<_> = rd.flatten().collect();
        if entries.is_empty() {
            return done;
        }
        // provisionings hold the records' lock: with it, a marker's free lock means its
        // berth died
        let Ok(_lock) = self.store.lock() else {
            return done;
        };
        for e in entries {
            let handle = e.file_name().to_string_lossy().into_owned();
            let Ok(f) = fs::File::open(e.path()) else {
                continue;
            };
            let Ok(_held) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            if self.store.volume(&handle).ok().flatten().is_none() {
                self.remove_half_made(&handle);
                done.push(format!("removed the half-made storage of volume {handle}"));
            }
            let _ = fs::remove_file(e.path());
            // records it staged but never put in place
            for d in self.store.record_dirs() {
                crate::linux::fs::remove_stale_temps(&d);
            }
        }
        done
    }
}
