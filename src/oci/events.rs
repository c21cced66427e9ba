//! `events`: the container's resource usage (`--stats`: once), or a stream of stats and OOM
//! events every interval until the container stops, as runc prints them.

use std::time::Duration;

use serde::Serialize;

use super::error::Result;
use super::state::{Status, Store};
use crate::linux::cgroup::stats::{self, Stats};

/// One event line.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

/// The container's usage now.
pub fn stats(store: &Store, id: &str) -> Result<Stats> {
    let (_locked, rec) = store.open(id, false)?;
    Ok(stats::read_stats(&rec.cgroup))
}

/// Emit a stats event every `interval`, and an `oom` event when the cgroup's OOM-kill count
/// grows, until the container stops.
pub fn stream(
    store: &Store,
    id: &str,
    interval: Duration,
    emit: &mut dyn FnMut(&Event),
) -> Result<()> {
    let (locked, rec) = store.open(id, false)?;
    drop(locked);
    let mut ooms = stats::oom_kills(&rec.cgroup);
    loop {
        let (locked, rec) = match store.open(id, false) {
            Ok(x) => x,
            Err(super::Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if locked.status(&rec) == Status::Stopped {
            return Ok(());
        }
        drop(locked);
        let now = stats::oom_kills(&rec.cgroup);
        if now > ooms {
            emit(&Event {
                kind: "oom",
                id: id.to_string(),
                data: None,
            });
            ooms = now;
        }
        emit(&Event {
            kind: "stats",
            id: id.to_string(),
            data: Some(stats::read_stats(&rec.cgroup)),
        });
        std::thread::sleep(interval);
    }
}
