//! What a manifest pod takes from elsewhere, kept as references in its records and resolved
//! when a container is made ([`crate::configmap::resolve`]): files from ConfigMaps, Secrets
//! and the pod itself (the downward API), and environment variables from the same. Secret
//! values are never copied into pod or container records.

use serde::{Deserialize, Serialize};

pub use crate::configmap::DataKind;

/// A key of a ConfigMap or Secret as a file of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    pub mode: Option<u32>,
}

/// A fact about the pod or a container (Kubernetes' `fieldRef` and `resourceFieldRef`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodField {
    /// `metadata.name`, `metadata.namespace`, `metadata.uid`, `metadata.labels['k']`,
    /// `metadata.annotations['k']`, `metadata.labels`, `metadata.annotations`,
    /// `spec.nodeName`, `spec.serviceAccountName`, `status.podIP`, `status.podIPs`,
    /// `status.hostIP`.
    Field(String),
    /// `limits.cpu`, `requests.memory`, ... of a container (empty: the one asking), in
    /// units of `divisor`, rounded up.
    Resource {
        container: String,
        resource: String,
        divisor: String,
    },
}

/// One source of a volume's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    /// A ConfigMap's or Secret's keys (all, or `items`).
    Data {
        kind: DataKind,
        name: String,
        items: Vec<KeyToPath>,
        optional: bool,
    },
    /// Facts about the pod, a file each.
    Downward {
        items: Vec<(String, PodField, Option<u32>)>,
    },
}

/// A container's environment from a manifest, in Kubernetes' order: `envFrom` first, then
/// `env`, each later name replacing an earlier one; `$(VAR)` in values, command and args is
/// expanded with what is defined before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvSpec {
    pub from: Vec<EnvFrom>,
    pub vars: Vec<(String, EnvValue)>,
}

/// Every key of a ConfigMap or Secret as a variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFrom {
    pub kind: DataKind,
    pub name: String,
    pub prefix: String,
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvValue {
    Literal(String),
    Key {
        kind: DataKind,
        name: String,
        key: String,
        optional: bool,
    },
    Field(PodField),
}
