//! Back ends: where a volume's data lives. One interface, a file each; a back end knows
//! nothing of claims, pods or the CLI (a later CSI server drives the same calls).

mod dir;
mod loopfile;

use std::path::PathBuf;

use super::error::Result;
use super::model::{BackendKind, Source, Volume};
use super::store::Store;

/// What every back end does.
pub trait Backend {
    /// The source of volume `pv`'s storage, known before it is made (so that its record can
    /// be written while it is).
    fn source(&self, pv: &str, fs_type: &str) -> Source;
    /// Make new, empty storage of at least `size` bytes for volume `pv`, running `meanwhile`
    /// once while it waits for the slow part (mkfs), if the storage is made. The caller's
    /// records are staged there (src/volume/provision.rs).
    fn create(&self, pv: &str, size: u64, fs_type: &str, meanwhile: &mut dyn FnMut())
    -> Result<()>;
    /// Make it usable at a host path (attach and mount if needed). Idempotent; after a reboot
    /// (nothing attached, nothing mounted) it attaches again.
    fn attach(&self, v: &Volume) -> Result<PathBuf>;
    /// Undo [`Backend::attach`] (no pod uses the volume any more).
    fn detach(&self, v: &Volume) -> Result<()>;
    /// Remove its data for good.
    fn delete(&self, v: &Volume) -> Result<()>;
    /// (capacity, used) in bytes, when known (a loopfile volume: while attached).
    fn usage(&self, v: &Volume) -> Option<(u64, Option<u64>)>;
}

/// The back end of a kind.
pub fn of(kind: BackendKind, store: &Store) -> Box<dyn Backend> {
    match kind {
        BackendKind::Loopfile => Box::new(loopfile::Loopfile {
            store: store.clone(),
        }),
        BackendKind::Dir => Box::new(dir::Dir {
            store: store.clone(),
        }),
    }
}

/// The back end of a volume.
pub fn for_volume(v: &Volume, store: &Store) -> Box<dyn Backend> {
    match &v.source {
        Source::Csi { backend, .. } => of(*backend, store),
        Source::Path { .. } => of(BackendKind::Dir, store),
    }
}
