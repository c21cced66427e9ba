//! The records of berth's Kubernetes objects in its data root (volumes, claims, classes,
//! ConfigMaps, Secrets, Services): one JSON file per object, written durably and atomically
//! ([`crate::linux::fs::write_atomic`]) under one lock per kind of store, carrying a version
//! so that a newer berth's record is refused, never misread. Errors are the volumes'.

use std::fs;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::volume::error_io as io;
use crate::volume::{Error, Result};

/// A record with the version of the berth that wrote it.
pub trait Versioned {
    fn version(&self) -> u32;
    /// The newest version this berth reads.
    const NEWEST: u32;
}

/// A store's lock, held while it lives.
pub struct Locked(#[allow(dead_code)] Flock<fs::File>);

/// Take `dir/lock` (made with `dir` if missing).
pub fn lock(dir: &Path) -> Result<Locked> {
    fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let p = dir.join("lock");
    let f = fs::File::create(&p).map_err(io(format!("create {}", p.display())))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map(Locked)
        .map_err(|(_, e)| io(format!("lock {}", p.display()))(e.into()))
}

/// Read a record (None: there is none).
pub fn read<T: DeserializeOwned + Versioned>(p: &Path) -> Result<Option<T>> {
    let b = match fs::read(p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("read {}", p.display()))(e)),
    };
    let v: T =
        serde_json::from_slice(&b).map_err(|e| Error::Failed(format!("{}: {e}", p.display())))?;
    if v.version() > T::NEWEST {
        return Err(Error::Failed(format!(
            "{}: record version {} is newer than this berth knows ({})",
            p.display(),
            v.version(),
            T::NEWEST
        )));
    }
    Ok(Some(v))
}

/// Write a record, making its directory (the caller holds the lock).
pub fn write<T: Serialize>(p: &Path, v: &T) -> Result<()> {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
    }
    crate::linux::fs::write_atomic(p, &serde_json::to_vec_pretty(v).expect("records serialise"))
        .map_err(io(format!("write {}", p.display())))
}

/// Write several records, each made whole and durable before any is renamed into place
/// ([`crate::linux::fs::write_atomic_all`]; the caller holds the lock).
pub fn write_all(records: &[(&Path, Vec<u8>)]) -> Result<()> {
    stage_all(records)?.commit()
}

/// Records written and durable, not yet in place ([`crate::linux::fs::Staged`]): committed
/// by [`StagedRecords::commit`], removed if dropped.
#[must_use = "staged records are removed unless committed"]
pub struct StagedRecords {
    staged: crate::linux::fs::Staged,
    names: String,
}

/// The first half of [`write_all`], for a caller with other work to do meanwhile.
pub fn stage_all(records: &[(&Path, Vec<u8>)]) -> Result<StagedRecords> {
    for (p, _) in records {
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        }
    }
    let files: Vec<(&Path, &[u8])> = records.iter().map(|(p, d)| (*p, d.as_slice())).collect();
    let names: Vec<String> = records
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    let names = names.join(", ");
    let staged = crate::linux::fs::stage_all(&files).map_err(io(format!("write {names}")))?;
    Ok(StagedRecords { staged, names })
}

impl StagedRecords {
    pub fn commit(self) -> Result<()> {
        let names = self.names;
        self.staged
            .commit()
            .map_err(io(format!("put {names} in place")))
    }
}

/// Remove a record; false when there was none (the caller holds the lock).
pub fn remove(p: &Path) -> Result<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(format!("remove {}", p.display()))(e)),
    }
}

/// Every record of a directory, by file name.
pub fn list<T: DeserializeOwned + Versioned>(dir: &Path) -> Result<Vec<T>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "json")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
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

/// Every record of `base/<namespace>/` (one namespace, or all).
pub fn list_namespaced<T: DeserializeOwned + Versioned>(
    base: &Path,
    namespace: Option<&str>,
) -> Result<Vec<T>> {
    let mut spaces: Vec<PathBuf> = match namespace {
        Some(n) => vec![base.join(n)],
        None => fs::read_dir(base)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default(),
    };
    spaces.sort();
    let mut out = Vec::new();
    for d in spaces {
        out.extend(list::<T>(&d)?);
    }
    Ok(out)
}
