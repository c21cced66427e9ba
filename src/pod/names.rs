//! Name reservations: a pod's `namespace/name` (or the CRI's `namespace/name/uid/attempt`)
//! and a container's `name/attempt` in its pod are files made with `O_EXCL` in
//! `<root>/names`, so that of concurrent requests for one name exactly one succeeds. A file
//! holds its owner's ID once the owner is recorded.

use std::fs;
use std::path::PathBuf;

use super::Runtime;
use super::error::{Error, Result, io};

impl Runtime {
    /// The reservation file of `key`.
    pub(crate) fn name_path(&self, key: &str) -> PathBuf {
        // the key holds names from the caller: one file name whatever they contain
        self.store
            .names()
            .join(key.replace('%', "%25").replace('/', "%2F"))
    }

    /// Reserve `key` for `owner` (a pod or container ID); `what` is named in the AlreadyExists
    /// error. The file appears with its owner in it (a link of a written temporary file), so
    /// no reservation is ever ownerless.
    pub(crate) fn reserve_name(&self, key: &str, what: &str, owner: &str) -> Result<PathBuf> {
        let names = self.store.names();
        fs::create_dir_all(&names).map_err(io(format!("create {}", names.display())))?;
        let path = self.name_path(key);
        let tmp = names.join(format!(".{owner}.tmp"));
        fs::write(&tmp, owner).map_err(io(format!("write {}", tmp.display())))?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // a reservation whose owner is gone and that nothing in flight holds is stale
                let holder = fs::read_to_string(&path).unwrap_or_default();
                // (empty: made by a berth before owners were written in, whose creator died)
                let stale = holder.is_empty()
                    || !self.store.pods().join(&holder).exists()
                        && !self.container_exists(&holder)
                        && !self.in_flight().iter().any(|op| op.concerns(&holder));
                if stale && fs::remove_file(&path).is_ok() {
                    return self.reserve_name(key, what, owner);
                }
                Err(Error::AlreadyExists(what.to_string()))
            }
            Err(e) => Err(Error::Io {
                step: format!("reserve the name {key}"),
                err: e,
            }),
        }
    }

    /// The owner of a name reservation, if there is one.
    pub(crate) fn name_owner(&self, key: &str) -> Option<String> {
        fs::read_to_string(self.name_path(key))
            .ok()
            .filter(|o| !o.is_empty())
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

    fn container_exists(&self, id: &str) -> bool {
        self.store
            .pod_ids()
            .iter()
            .any(|p| self.pod_dir(p).container(id).0.exists())
    }
}
