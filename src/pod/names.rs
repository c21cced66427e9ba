//! Name reservations: a pod's `namespace/name` (or the CRI's `namespace/name/uid/attempt`)
//! and a container's `name/attempt` in its pod are files made with `O_EXCL` in
//! `<root>/names`, so that of concurrent requests for one name exactly one succeeds. A file
//! holds its owner's ID once the owner is recorded.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::Runtime;
use super::error::{Error, Result, io};

impl Runtime {
    /// Reserve `key` for `what` (named in the AlreadyExists error); returns the reservation.
    pub(crate) fn reserve_name(&self, key: &str, what: &str) -> Result<PathBuf> {
        let names = self.store.names();
        fs::create_dir_all(&names).map_err(io(format!("create {}", names.display())))?;
        // the key holds names from the caller: one file name whatever they contain
        let path = names.join(key.replace('%', "%25").replace('/', "%2F"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // a reservation whose owner is gone (a crash between reserve and record) is stale
                let owner = fs::read_to_string(&path).unwrap_or_default();
                let old = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|d| d > Duration::from_secs(30));
                let stale = old
                    && !owner.is_empty()
                    && !self.store.pods().join(&owner).exists()
                    && !self.container_exists(&owner);
                if stale {
                    let _ = fs::remove_file(&path);
                    return self.reserve_name(key, what);
                }
                Err(Error::AlreadyExists(what.to_string()))
            }
            Err(e) => Err(Error::Io {
                step: format!("reserve the name {key}"),
                err: e,
            }),
        }
    }

    /// Release the names `owner` (a pod or container ID) holds.
    pub(crate) fn release_names(&self, owner: &str) {
        if let Ok(rd) = fs::read_dir(self.store.names()) {
            for e in rd.flatten() {
                if fs::read_to_string(e.path()).is_ok_and(|o| o == owner) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Remove reservations whose owner never got recorded (a creator killed in between).
    pub(crate) fn drop_unowned_names(&self) {
        if let Ok(rd) = fs::read_dir(self.store.names()) {
            for e in rd.flatten() {
                if fs::read_to_string(e.path()).is_ok_and(|o| o.is_empty()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    fn container_exists(&self, id: &str) -> bool {
        self.store
            .pod_ids()
            .iter()
            .any(|p| self.pod_dir(p).container(id).0.exists())
    }
}
