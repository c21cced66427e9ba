//! Where volumes live, in berth's data root (they outlive reboots; the state root does not):
//!
//! ```text
//! <data-root>/volumes/lock                      held (flock) by every change of the records
//! <data-root>/volumes/classes/<name>.json       StorageClass
//! <data-root>/volumes/pvs/<name>.json           Volume (PersistentVolume)
//! <data-root>/volumes/pvcs/<namespace>/<name>.json   Claim
//! <data-root>/volumes/data/<pv>.img             a loopfile volume's ext4 image
//! <data-root>/volumes/data/<pv>/                a dir volume berth made
//! <data-root>/volumes/mnt/<pv>/                 where a loopfile volume is mounted while used
//! <data-root>/volumes/users/<pv>/<pod>          a pod using the volume (its state directory)
//! <data-root>/volumes/inflight/<pv>             a provisioning in progress (locked)
//! ```
//!
//! Records are written with the durable [`crate::linux::fs::write_atomic`] and carry a version.

use std::path::{Path, PathBuf};

use super::error::Result;
use super::model::{Claim, StorageClass, VERSION, Volume};

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

pub use crate::records::Locked;
use crate::records::{self, Versioned, list, read, write};

impl Store {
    pub fn new(data_root: &Path) -> Store {
        Store {
            root: data_root.join("volumes"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the records' lock (every change holds it).
    pub fn lock(&self) -> Result<Locked> {
        records::lock(&self.root)
    }

    fn class_path(&self, name: &str) -> PathBuf {
        self.root.join("classes").join(format!("{name}.json"))
    }
    fn pv_path(&self, name: &str) -> PathBuf {
        self.root.join("pvs").join(format!("{name}.json"))
    }
    fn pvc_path(&self, ns: &str, name: &str) -> PathBuf {
        self.root.join("pvcs").join(ns).join(format!("{name}.json"))
    }
    pub fn image(&self, pv: &str) -> PathBuf {
        self.root.join("data").join(format!("{pv}.img"))
    }
    pub fn dir(&self, pv: &str) -> PathBuf {
        self.root.join("data").join(pv)
    }
    pub fn mount_point(&self, pv: &str) -> PathBuf {
        self.root.join("mnt").join(pv)
    }
    pub fn users(&self, pv: &str) -> PathBuf {
        self.root.join("users").join(pv)
    }
    pub fn inflight(&self) -> PathBuf {
        self.root.join("inflight")
    }
    /// The directories of volume and claim records.
    pub fn record_dirs(&self) -> Vec<PathBuf> {
        let pvcs = self.root.join("pvcs");
        let mut v = vec![self.root.join("pvs")];
        v.extend(
            std::fs::read_dir(&pvcs)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        v
    }

    pub fn class(&self, name: &str) -> Result<Option<StorageClass>> {
        read(&self.class_path(name))
    }
    pub fn put_class(&self, _l: &Locked, c: &StorageClass) -> Result<()> {
        write(&self.class_path(&c.name), c)
    }
    pub fn remove_class(&self, _l: &Locked, name: &str) -> Result<()> {
        remove(&self.class_path(name))
    }
    pub fn classes(&self) -> Result<Vec<StorageClass>> {
        list(&self.root.join("classes"))
    }

    pub fn volume(&self, name: &str) -> Result<Option<Volume>> {
        read(&self.pv_path(name))
    }
    pub fn put_volume(&self, _l: &Locked, v: &Volume) -> Result<()> {
        write(&self.pv_path(&v.name), v)
    }
    /// A volume and its claim, written together (their fsyncs at once).
    /// A volume and its claim made durable, put in place by the caller's commit (the volume
    /// first).
    pub fn stage_volume_and_claim(
        &self,
        _l: &Locked,
        v: &Volume,
        c: &Claim,
    ) -> Result<records::StagedRecords> {
        let (pv, pvc) = (self.pv_path(&v.name), self.pvc_path(&c.namespace, &c.name));
        let (v, c) = (
            serde_json::to_vec_pretty(v).expect("records serialise"),
            serde_json::to_vec_pretty(c).expect("records serialise"),
        );
        records::stage_all(&[(&pv, v), (&pvc, c)])
    }
    pub fn remove_volume(&self, _l: &Locked, name: &str) -> Result<()> {
        remove(&self.pv_path(name))
    }
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        list(&self.root.join("pvs"))
    }

    pub fn claim(&self, ns: &str, name: &str) -> Result<Option<Claim>> {
        read(&self.pvc_path(ns, name))
    }
    pub fn put_claim(&self, _l: &Locked, c: &Claim) -> Result<()> {
        write(&self.pvc_path(&c.namespace, &c.name), c)
    }
    pub fn remove_claim(&self, _l: &Locked, ns: &str, name: &str) -> Result<()> {
        remove(&self.pvc_path(ns, name))
    }
    /// Claims of one namespace, or of all.
    pub fn claims(&self, ns: Option<&str>) -> Result<Vec<Claim>> {
        records::list_namespaced(&self.root.join("pvcs"), ns)
    }
}

impl Versioned for StorageClass {
    const NEWEST: u32 = VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}
impl Versioned for Volume {
    const NEWEST: u32 = VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}
impl Versioned for Claim {
    const NEWEST: u32 = VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

/// A removal that finds nothing is no error here.
fn remove(p: &Path) -> Result<()> {
    records::remove(p).map(|_| ())
}
