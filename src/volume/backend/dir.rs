//! `dir`: a plain directory, with no size limit (`berth volume ls` says so). Either one berth
//! made in its data root (provisioned), or an administrator's (`local.path`, `hostPath.path`).

use std::fs;
use std::path::PathBuf;

use super::Backend;
use crate::volume::error::{Error, Result, io};
use crate::volume::model::{BackendKind, Source, Volume};
use crate::volume::store::Store;

pub struct Dir {
    pub store: Store,
}

impl Dir {
    fn path(&self, v: &Volume) -> PathBuf {
        match &v.source {
            Source::Path { path } => path.clone(),
            Source::Csi { handle, .. } => self.store.dir(handle),
        }
    }
}

impl Backend for Dir {
    fn source(&self, pv: &str, _fs_type: &str) -> Source {
        Source::Csi {
            handle: pv.to_string(),
            backend: BackendKind::Dir,
            fs_type: String::new(),
        }
    }

    fn create(
        &self,
        pv: &str,
        _size: u64,
        _fs_type: &str,
        meanwhile: &mut dyn FnMut(),
    ) -> Result<()> {
        let d = self.store.dir(pv);
        fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
        meanwhile();
        Ok(())
    }

    fn attach(&self, v: &Volume) -> Result<PathBuf> {
        let p = self.path(v);
        if !p.is_dir() {
            return Err(Error::Failed(format!(
                "volume {}: its directory {} does not exist",
                v.name,
                p.display()
            )));
        }
        Ok(p)
    }

    fn detach(&self, _v: &Volume) -> Result<()> {
        Ok(())
    }

    fn delete(&self, v: &Volume) -> Result<()> {
        match &v.source {
            // an administrator's directory is theirs
            Source::Path { path } => Err(Error::Precondition(format!(
                "volume {}: berth does not delete {} (a local or hostPath volume); remove it by hand",
                v.name,
                path.display()
            ))),
            Source::Csi { .. } => {
                let p = self.path(v);
                match fs::remove_dir_all(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(io(format!("remove {}", p.display()))(e))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    fn usage(&self, v: &Volume) -> Option<(u64, Option<u64>)> {
        Some((v.capacity, None))
    }
}
