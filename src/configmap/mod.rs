//! ConfigMaps and Secrets: named key/value data, per namespace, kept in berth's data root
//! (they outlive reboots), that pods read as files (`configMap`, `secret` and `projected`
//! volumes) and environment (`valueFrom`, `envFrom`).
//!
//! - [`manifest`] reads and validates the Kubernetes objects (keys, sizes, types);
//! - [`store`] keeps them (Secrets as files of mode 0600 in a 0700 directory: plaintext at
//!   rest, as etcd without encryption);
//! - [`project`] writes a volume's files with kubelet's atomic-writer layout;
//! - [`resolve`] turns a pod's references into files and variables when a container is made.
//!
//! Errors are the volumes' ([`crate::volume::Error`]): bad input names its field's path.

pub mod manifest;
pub mod project;
pub mod resolve;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub use crate::volume::{Applied, Error, Result};

/// The records' version.
pub const VERSION: u32 = 1;

/// Which kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataKind {
    ConfigMap,
    Secret,
}

impl DataKind {
    /// `configmap`, `secret` (as kubectl prints them in errors).
    pub fn word(self) -> &'static str {
        match self {
            DataKind::ConfigMap => "configmap",
            DataKind::Secret => "secret",
        }
    }
}

/// A ConfigMap or a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub version: u32,
    pub kind: DataKind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// A Secret's type (`Opaque`, `kubernetes.io/tls`, ...); empty for ConfigMaps.
    #[serde(default)]
    pub secret_type: String,
    /// Every key's value, base64 (a ConfigMap's `data` and `binaryData`, a Secret's `data`
    /// and `stringData` alike).
    pub data: BTreeMap<String, String>,
    /// The keys that came from a ConfigMap's `binaryData` (printed back there).
    #[serde(default)]
    pub binary_keys: Vec<String>,
    #[serde(default)]
    pub immutable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub created: String,
}

impl Object {
    /// A key's bytes.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.data
            .get(key)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
    }

    /// `kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.kind.word(), self.namespace, self.name)
    }

    /// Same content (what `apply` compares; uid and creation time aside).
    fn same_as(&self, o: &Object) -> bool {
        self.data == o.data
            && self.binary_keys == o.binary_keys
            && self.immutable == o.immutable
            && self.labels == o.labels
            && self.secret_type == o.secret_type
    }
}

/// ConfigMaps and Secrets of a data root.
#[derive(Debug, Clone)]
pub struct ConfigData {
    store: store::Store,
}

impl ConfigData {
    pub fn new(data_root: &Path) -> ConfigData {
        ConfigData {
            store: store::Store::new(data_root),
        }
    }

    /// Create or update. An immutable object refuses any change (delete and re-create it),
    /// as Kubernetes does.
    pub fn apply(&self, mut o: Object) -> Result<Applied> {
        let _lock = self.store.lock()?;
        match self.store.read(o.kind, &o.namespace, &o.name)? {
            Some(old) if old.same_as(&o) => Ok(Applied::Unchanged),
            Some(old) if old.immutable => Err(Error::Precondition(format!(
                "{} is immutable: delete it, then apply",
                old.describe()
            ))),
            Some(old) => {
                o.uid = old.uid;
                o.created = old.created;
                self.store.write(&o)?;
                Ok(Applied::Configured)
            }
            None => {
                if o.uid.is_empty() {
                    o.uid = crate::pod::store::new_uid();
                }
                o.created = crate::pod::store::now();
                self.store.write(&o)?;
                Ok(Applied::Created)
            }
        }
    }

    pub fn get(&self, kind: DataKind, namespace: &str, name: &str) -> Result<Object> {
        self.store
            .read(kind, namespace, name)?
            .ok_or_else(|| Error::NotFound(format!("{} {namespace}/{name}", kind.word())))
    }

    /// Every object of a kind (of one namespace, or all).
    pub fn list(&self, kind: DataKind, namespace: Option<&str>) -> Result<Vec<Object>> {
        self.store.list(kind, namespace)
    }

    pub fn delete(&self, kind: DataKind, namespace: &str, name: &str) -> Result<()> {
        let _lock = self.store.lock()?;
        if !self.store.remove(kind, namespace, name)? {
            return Err(Error::NotFound(format!(
                "{} {namespace}/{name}",
                kind.word()
            )));
        }
        Ok(())
    }
}
