//! CRI messages ↔ berth's pod types, and errors → gRPC codes: one file per kind of object
//! (`sandbox`, `container` with its `security` context, `stats`, the `verbose` info);
//! protobuf types go no further than this module.

mod container;
mod sandbox;
mod security;
mod stats;
#[cfg(test)]
mod tests;
mod verbose;

pub use container::*;
pub use sandbox::*;
pub use stats::*;
pub use verbose::*;

use std::collections::HashMap;

use tonic::Status;

use crate::pod;

/// A library error as the gRPC status clients expect; the message names the object. Bad
/// input is InvalidArgument, berth's own failures Internal.
pub fn status(e: pod::Error) -> Status {
    use pod::ErrorKind as K;
    let msg = e.to_string();
    match e.kind() {
        K::NotFound => Status::not_found(msg),
        K::AlreadyExists => Status::already_exists(msg),
        K::Precondition => Status::failed_precondition(msg),
        K::Invalid => Status::invalid_argument(msg),
        K::Timeout => Status::deadline_exceeded(msg),
        // logged once, by the observing layer, with the RPC's name
        K::Internal => Status::internal(msg),
    }
}

/// RFC 3339 (as the library records times) → Unix nanoseconds (0 if absent).
pub fn nanos(t: Option<&str>) -> i64 {
    t.and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub(crate) fn map(m: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn btree(m: &HashMap<String, String>) -> std::collections::BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Does every `selector` label match?
pub fn labels_match(
    labels: &std::collections::BTreeMap<String, String>,
    selector: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
