//! `list` and `ps`.

use super::error::{Error, Result};
use super::state::{State, Store};
use crate::linux::cgroup;

/// The state of every container under the root.
pub fn list(store: &Store) -> Result<Vec<State>> {
    let mut out = Vec::new();
    for id in store.ids()? {
        match store.open(&id, false) {
            Ok((locked, rec)) => out.push(locked.state(&rec)),
            // being created, or half-removed: not a container (yet)
            Err(Error::NotFound(_)) | Err(Error::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The host pids of the container's processes.
pub fn ps(store: &Store, id: &str) -> Result<Vec<i32>> {
    let (_locked, rec) = store.open(id, false)?;
    let mut pids = cgroup::procs(&rec.cgroup)?;
    pids.sort();
    Ok(pids)
}
