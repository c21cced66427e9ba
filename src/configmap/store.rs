//! Where ConfigMaps and Secrets live, in berth's data root:
//!
//! ```text
//! <data-root>/config/lock                              held (flock) by every change
//! <data-root>/config/configmaps/<namespace>/<name>.json
//! <data-root>/config/secrets/<namespace>/<name>.json   mode 0600, in directories of mode 0700
//! ```
//!
//! Records are written with the durable [`crate::linux::fs::write_atomic`]; a Secret's
//! directories are 0700 before anything is written in them, so no temporary file is ever
//! readable by others.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{DataKind, Error, Object, Result, VERSION};
use crate::volume::error_io as io;

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The records' lock, held while it lives.
pub struct Locked(#[allow(dead_code)] Flock<fs::File>);

impl Store {
    pub fn new(data_root: &Path) -> Store {
        Store {
            root: data_root.join("config"),
        }
    }

    pub fn lock(&self) -> Result<Locked> {
        fs::create_dir_all(&self.root).map_err(io(format!("create {}", self.root.display())))?;
        let p = self.root.join("lock");
        let f = fs::File::create(&p).map_err(io(format!("create {}", p.display())))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map(Locked)
            .map_err(|(_, e)| io(format!("lock {}", p.display()))(e.into()))
    }

    fn kind_dir(&self, kind: DataKind) -> PathBuf {
        self.root.join(match kind {
            DataKind::ConfigMap => "configmaps",
            DataKind::Secret => "secrets",
        })
    }

    fn path(&self, kind: DataKind, ns: &str, name: &str) -> PathBuf {
        self.kind_dir(kind).join(ns).join(format!("{name}.json"))
    }

    /// Write a record (the caller holds the lock).
    pub fn write(&self, o: &Object) -> Result<()> {
        let p = self.path(o.kind, &o.namespace, &o.name);
        let dir = p.parent().expect("a record has a directory");
        let mode = if o.kind == DataKind::Secret {
            0o700
        } else {
            0o755
        };
        for d in [self.kind_dir(o.kind), dir.to_path_buf()] {
            fs::DirBuilder::new()
                .mode(mode)
                .recursive(true)
                .create(&d)
                .map_err(io(format!("create {}", d.display())))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(mode))
                .map_err(io(format!("set the mode of {}", d.display())))?;
        }
        let text = serde_json::to_vec_pretty(o).expect("a record serializes");
        crate::linux::fs::write_atomic(&p, &text).map_err(io(format!("write {}", p.display())))?;
        if o.kind == DataKind::Secret {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600))
                .map_err(io(format!("set the mode of {}", p.display())))?;
        }
        Ok(())
    }

    pub fn read(&self, kind: DataKind, ns: &str, name: &str) -> Result<Option<Object>> {
        let p = self.path(kind, ns, name);
        let text = match fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("read {}", p.display()))(e)),
        };
        let o: Object = serde_json::from_slice(&text)
            .map_err(|e| Error::Failed(format!("{}: {e}", p.display())))?;
        if o.version > VERSION {
            return Err(Error::Failed(format!(
                "{}: version {} is newer than this berth's {VERSION}",
                p.display(),
                o.version
            )));
        }
        Ok(Some(o))
    }

    /// Remove a record; false when there was none (the caller holds the lock).
    pub fn remove(&self, kind: DataKind, ns: &str, name: &str) -> Result<bool> {
        let p = self.path(kind, ns, name);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(format!("remove {}", p.display()))(e)),
        }
    }

    pub fn list(&self, kind: DataKind, ns: Option<&str>) -> Result<Vec<Object>> {
        let mut out = Vec::new();
        let namespaces: Vec<String> = match ns {
            Some(n) => vec![n.to_string()],
            None => match fs::read_dir(self.kind_dir(kind)) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => Vec::new(),
            },
        };
        for n in namespaces {
            let Ok(rd) = fs::read_dir(self.kind_dir(kind).join(&n)) else {
                continue;
            };
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                if let Some(name) = f.strip_suffix(".json").filter(|_| !f.starts_with('.')) {
                    if let Some(o) = self.read(kind, &n, name)? {
                        out.push(o);
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }
}
