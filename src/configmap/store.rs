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

use super::{DataKind, Object, Result, VERSION};
use crate::records::{self, Versioned};
use crate::volume::error_io as io;

pub use crate::records::Locked;

impl Versioned for Object {
    const NEWEST: u32 = VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(data_root: &Path) -> Store {
        Store {
            root: data_root.join("config"),
        }
    }

    pub fn lock(&self) -> Result<Locked> {
        records::lock(&self.root)
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
        records::read(&self.path(kind, ns, name))
    }

    /// Remove a record; false when there was none (the caller holds the lock).
    pub fn remove(&self, kind: DataKind, ns: &str, name: &str) -> Result<bool> {
        records::remove(&self.path(kind, ns, name))
    }

    pub fn list(&self, kind: DataKind, ns: Option<&str>) -> Result<Vec<Object>> {
        records::list_namespaced(&self.kind_dir(kind), ns)
    }
}
