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

use std::fs;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{Error, Result, io, sys};
use super::model::{Claim, StorageClass, VERSION, Volume};

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The records' lock, held while it lives.
pub struct Locked(#[allow(dead_code)] Flock<fs::File>);

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
        fs::create_dir_all(&self.root).map_err(io(format!("create {}", self.root.display())))?;
        let p = self.root.join("lock");
        let f = fs::File::create(&p).map_err(io(format!("create {}", p.display())))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map(Locked)
            .map_err(|(_, e)| sys(format!("lock {}", p.display()))(e))
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
        let base = self.root.join("pvcs");
        let spaces: Vec<PathBuf> = match ns {
            Some(n) => vec![base.join(n)],
            None => fs::read_dir(&base)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default(),
        };
        let mut out = Vec::new();
        for d in spaces {
            out.extend(list::<Claim>(&d)?);
        }
        Ok(out)
    }
}

/// A record with a version this berth can read.
trait Versioned {
    fn version(&self) -> u32;
}
impl Versioned for StorageClass {
    fn version(&self) -> u32 {
        self.version
    }
}
impl Versioned for Volume {
    fn version(&self) -> u32 {
        self.version
    }
}
impl Versioned for Claim {
    fn version(&self) -> u32 {
        self.version
    }
}

#[allow(private_bounds)]
fn read<T: DeserializeOwned + Versioned>(p: &Path) -> Result<Option<T>> {
    let b = match fs::read(p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("read {}", p.display()))(e)),
    };
    let v: T =
        serde_json::from_slice(&b).map_err(|e| Error::Failed(format!("{}: {e}", p.display())))?;
    if v.version() > VERSION {
        return Err(Error::Failed(format!(
            "{}: record version {} is newer than this berth knows ({VERSION})",
            p.display(),
            v.version()
        )));
    }
    Ok(Some(v))
}

fn write<T: Serialize>(p: &Path, v: &T) -> Result<()> {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
    }
    crate::linux::fs::write_atomic(p, &serde_json::to_vec_pretty(v).expect("records serialise"))
        .map_err(io(format!("write {}", p.display())))
}

fn remove(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(format!("remove {}", p.display()))(e)),
    }
}

#[allow(private_bounds)]
fn list<T: DeserializeOwned + Versioned>(dir: &Path) -> Result<Vec<T>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        if let Some(v) = read(&p)? {
            out.push(v);
        }
    }
    Ok(out)
}
