//! Persistent volumes on one node, as Kubernetes models them: StorageClasses, PersistentVolumes
//! (storage with a life of its own) and PersistentVolumeClaims (a request a pod consumes), with
//! sizes enforced on any host file system.
//!
//! A verb is found by its file: `classes`/`volumes`/`claims` apply, list and delete each
//! kind; `bind` decides which volume a claim gets (pure); `provision` makes one through a
//! class; `pods` is what a pod does with its claims (wait for binding, admission, attach,
//! release); `backend/` holds the back ends (`loopfile`, `dir`); `store` owns every path;
//! `manifest` reads the Kubernetes objects.

pub mod backend;
pub mod bind;
mod claims;
mod classes;
mod error;
pub mod manifest;
pub mod model;
mod pods;
mod provision;
pub(crate) mod store;
mod volumes;

use std::path::Path;

pub(crate) use error::io as error_io;
pub use error::{Error, Result};
pub use model::*;
pub use pods::Use;

/// What applying an object did (kubectl's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Unchanged,
    Configured,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Applied::Created => "created",
            Applied::Unchanged => "unchanged",
            Applied::Configured => "configured",
        })
    }
}

/// A volume with what it holds now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeStatus {
    #[serde(flatten)]
    pub volume: Volume,
    /// Bytes the file system offers (the record's capacity while a loopfile volume is not
    /// attached); None for a `dir` volume (no limit).
    pub limit: Option<u64>,
    /// Bytes used, when the volume is attached.
    pub used: Option<u64>,
    /// The pods using it (their IDs).
    pub users: Vec<String>,
}

/// The volumes of one data root.
#[derive(Debug, Clone)]
pub struct Volumes {
    store: store::Store,
}

impl Volumes {
    /// The volumes under `data_root` (berth's image store's root: they outlive reboots).
    pub fn new(data_root: &Path) -> Volumes {
        Volumes {
            store: store::Store::new(data_root),
        }
    }
}
