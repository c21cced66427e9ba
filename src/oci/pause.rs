//! `pause` and `resume`: freeze and thaw every process of the container's cgroup.

use super::error::{Error, Result};
use super::state::{Status, Store};
use crate::linux::cgroup::freeze;

/// `berth pause`.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    let (locked, rec) = store.open(id, true)?;
    match locked.status(&rec) {
        Status::Running | Status::Created => Ok(freeze::set_frozen(&rec.cgroup, true)?),
        status => Err(Error::State {
            id: id.to_string(),
            status,
            what: "container not running",
        }),
    }
}

/// `berth resume`.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    let (locked, rec) = store.open(id, true)?;
    match locked.status(&rec) {
        Status::Paused => Ok(freeze::set_frozen(&rec.cgroup, false)?),
        status => Err(Error::State {
            id: id.to_string(),
            status,
            what: "container not paused",
        }),
    }
}
