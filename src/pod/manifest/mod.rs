//! Kubernetes Pod manifests (`apiVersion: v1`, `kind: Pod`, YAML or JSON, several documents per
//! file) → [`PodConfig`] and [`ContainerConfig`]s.
//!
//! Every field is checked against the list of what berth implements before anything is read:
//! a field berth does not support is an error naming its path
//! (`spec.containers[1].lifecycle: not supported`), never silently dropped.
//!
//! `schema` is the list of what berth reads; `k8s` the serde types; `convert` turns them
//! into berth's types.

mod convert;
mod k8s;
mod probes;
mod refs;
pub(crate) mod schema;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use serde_json::Value;

use super::config::*;
use super::error::{Error, Result};
pub use convert::quantity;

/// A pod read from a manifest: the pod and its containers (init containers first, in order).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodManifest {
    pub pod: PodConfig,
    pub containers: Vec<ContainerConfig>,
    /// The document it was read from (kept with the pod: `kube apply` compares it).
    pub source: Value,
}

/// Read one Pod document.
pub fn pod_from_value(v: &Value, doc: usize) -> Result<PodManifest> {
    let at = |m: String| {
        Error::Manifest(if doc > 0 {
            format!("document {}: {m}", doc + 1)
        } else {
            m
        })
    };
    // the inner text, not "manifest: ..." again
    let inner = |e: Error| match e {
        Error::Manifest(m) => m,
        other => other.to_string(),
    };
    schema::check(v, &schema::POD, "").map_err(|e| at(inner(e)))?;
    let pod: k8s::Pod = serde_path_to_error::deserialize(v)
        .map_err(|e| at(format!("{}: {}", e.path(), e.inner())))?;
    let projected = refs::volumes(v).map_err(|e| at(inner(e)))?;
    let mut m = convert::convert(pod, &projected).map_err(|e| at(inner(e)))?;
    // every container's environment, with its references (init containers first, as
    // convert lists them)
    let spec = &v["spec"];
    let listed = ["initContainers", "containers"].into_iter().flat_map(|k| {
        spec[k]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(move |(i, c)| (format!("spec.{k}[{i}]"), c, k == "initContainers"))
    });
    for ((path, c, init), cfg) in listed.zip(m.containers.iter_mut()) {
        cfg.env_spec = Some(refs::env(c, &path).map_err(|e| at(inner(e)))?);
        cfg.probes = probes::of(c, &path, init).map_err(|e| at(inner(e)))?;
    }
    m.source = v.clone();
    Ok(m)
}

/// Every Pod of a file: YAML (several `---` documents) or JSON.
pub fn parse(text: &str) -> Result<Vec<PodManifest>> {
    let mut out = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc)
            .map_err(|e| Error::Manifest(format!("document {}: {e}", i + 1)))?;
        if v.is_null() {
            continue; // an empty document (a trailing `---`)
        }
        out.push(pod_from_value(&v, i)?);
    }
    if out.is_empty() {
        return Err(Error::Manifest("no Pod in the file".into()));
    }
    Ok(out)
}
