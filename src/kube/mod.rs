//! `berth kube`: multi-document Kubernetes YAML (or JSON) of several kinds — Pods,
//! PersistentVolumes, PersistentVolumeClaims, StorageClasses, ConfigMaps, Secrets — applied,
//! listed and deleted as kubectl users expect, on one node. `apply` creates in dependency
//! order (classes, volumes, claims, ConfigMaps and Secrets, then pods); `get` prints
//! kubectl's tables or the objects; `delete` removes in the reverse order.

mod apply;
mod delete;
mod get;
mod objects;

use serde::Deserialize;
use serde_json::Value;

pub use apply::{ApplyOptions, Outcome, apply, start_pending};
pub use delete::{delete, delete_named};
pub use get::{Kind, Listing, Show, get};

use crate::pod::PodManifest;
use crate::volume::manifest::Object as Storage;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, naming the document and field.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Pod(#[from] crate::pod::Error),
    #[error(transparent)]
    Volume(#[from] crate::volume::Error),
}

impl From<crate::image::Error> for Error {
    fn from(e: crate::image::Error) -> Self {
        Error::Pod(e.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One object of a file.
#[derive(Debug, Clone)]
pub enum Object {
    Pod(Box<PodManifest>),
    Storage(Box<Storage>),
    /// A ConfigMap or Secret.
    Data(Box<crate::configmap::Object>),
    /// A Service and how it asks for its IP.
    Service(Box<(crate::service::Service, crate::service::IpRequest)>),
}

/// An object with where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based, in the file.
    pub index: usize,
    pub kind: Kind,
    /// Empty for cluster-wide kinds (volumes, classes).
    pub namespace: String,
    pub name: String,
    pub object: Object,
}

impl Document {
    /// `kind/name`, as kubectl prints it.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.kind.singular(), self.name)
    }
}

/// Read every object of a file (`---`-separated YAML documents, or JSON; a `kind: List`'s
/// items count as documents). A kind berth does not know, a bad field or two objects of one
/// kind and name are refused naming the document.
pub fn parse(text: &str) -> Result<Vec<Document>> {
    let mut values = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc)
            .map_err(|e| Error::Invalid(format!("document {}: {e}", i + 1)))?;
        if v.is_null() {
            continue;
        }
        if v["kind"] == "List" {
            for item in v["items"].as_array().cloned().unwrap_or_default() {
                values.push((i + 1, item));
            }
        } else {
            values.push((i + 1, v));
        }
    }
    let mut out: Vec<Document> = Vec::new();
    for (index, v) in values {
        let at = |m: String| Error::Invalid(format!("document {index}: {m}"));
        let kind_name = v["kind"].as_str().unwrap_or_default().to_string();
        let kind = Kind::of_manifest(&kind_name).ok_or_else(|| {
            at(format!(
                "kind: {kind_name:?} is not supported (Pod, Service, PersistentVolume, PersistentVolumeClaim, StorageClass, ConfigMap, Secret)"
            ))
        })?;
        let want_api = kind.api_version();
        let api = v["apiVersion"].as_str().unwrap_or_default();
        if api != want_api {
            return Err(at(format!(
                "apiVersion: {api:?}: {kind_name} is {want_api:?}"
            )));
        }
        let object = match kind {
            Kind::Pod => Object::Pod(Box::new(
                crate::pod::manifest::pod_from_value(&v, 0).map_err(|e| at(inner(e)))?,
            )),
            Kind::Service => Object::Service(Box::new(
                crate::service::manifest::read(&v).map_err(|e| at(e.to_string()))?,
            )),
            Kind::ConfigMap | Kind::Secret => Object::Data(Box::new(
                crate::configmap::manifest::read(&v, kind.data_kind().expect("a data kind"))
                    .map_err(|e| at(e.to_string()))?,
            )),
            _ => Object::Storage(Box::new(
                crate::volume::manifest::read(&v, &kind_name).map_err(|e| at(e.to_string()))?,
            )),
        };
        let (namespace, name) = match &object {
            Object::Pod(m) if m.pod.namespace.is_empty() => ("default".into(), m.pod.name.clone()),
            Object::Pod(m) => (m.pod.namespace.clone(), m.pod.name.clone()),
            Object::Data(o) => (o.namespace.clone(), o.name.clone()),
            Object::Service(s) => (s.0.namespace.clone(), s.0.name.clone()),
            Object::Storage(s) => match &**s {
                Storage::Claim(c) => (c.namespace.clone(), c.name.clone()),
                Storage::Volume(x) => (String::new(), x.name.clone()),
                Storage::Class(c) => (String::new(), c.name.clone()),
            },
        };
        if let Some(first) = out
            .iter()
            .find(|d| d.kind == kind && d.namespace == namespace && d.name == name)
        {
            return Err(at(format!(
                "{}/{name} is already document {}",
                kind.singular(),
                first.index
            )));
        }
        out.push(Document {
            index,
            kind,
            namespace,
            name,
            object,
        });
    }
    if out.is_empty() {
        return Err(Error::Invalid("no object in the file".into()));
    }
    Ok(out)
}

/// A pod error's own text (not "manifest: ..." twice).
fn inner(e: crate::pod::Error) -> String {
    match e {
        crate::pod::Error::Manifest(m) => m,
        other => other.to_string(),
    }
}

/// The first field where two documents differ, in kubectl's path notation
/// (`spec.containers[0].image`); None when they are the same. Fields a server writes
/// (status, uid, resourceVersion, creationTimestamp, kubectl's last-applied annotation) do
/// not count.
pub fn first_change(old: &Value, new: &Value) -> Option<String> {
    fn clean(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                for k in [
                    "uid",
                    "resourceVersion",
                    "creationTimestamp",
                    "generation",
                    "managedFields",
                ] {
                    m.remove(k);
                }
                if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
                    a.remove("kubectl.kubernetes.io/last-applied-configuration");
                    if a.is_empty() {
                        m.remove("annotations");
                    }
                }
            }
        }
        v
    }
    fn walk(a: &Value, b: &Value, path: &str) -> Option<String> {
        let here = |p: &str| {
            if p.is_empty() {
                "(the whole object)".to_string()
            } else {
                p.to_string()
            }
        };
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let (va, vb) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    if let Some(d) = walk(va, vb, &p) {
                        return Some(d);
                    }
                }
                None
            }
            (Value::Array(x), Value::Array(y)) => {
                for i in 0..x.len().max(y.len()) {
                    let p = format!("{path}[{i}]");
                    match (x.get(i), y.get(i)) {
                        (Some(va), Some(vb)) => {
                            if let Some(d) = walk(va, vb, &p) {
                                return Some(d);
                            }
                        }
                        _ => return Some(p),
                    }
                }
                None
            }
            _ if a == b => None,
            _ => Some(here(path)),
        }
    }
    walk(&clean(old), &clean(new), "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_change_is_named_by_its_path() {
        let a = json!({"metadata": {"name": "p", "uid": "1"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let mut b = a.clone();
        b["metadata"]["uid"] = json!("2");
        b["status"] = json!({"phase": "Running"});
        assert_eq!(first_change(&a, &b), None);
        b["spec"]["containers"][0]["image"] = json!("y");
        assert_eq!(
            first_change(&a, &b).as_deref(),
            Some("spec.containers[0].image")
        );
        let mut c = a.clone();
        c["spec"]["containers"] = json!([{"name": "c", "image": "x"}, {"name": "d"}]);
        assert_eq!(first_change(&a, &c).as_deref(), Some("spec.containers[1]"));
    }

    #[test]
    fn files_of_several_kinds_are_read_and_bad_ones_named() {
        let text = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 64Mi}}}\n---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: berth.io/local\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].describe(), "persistentvolumeclaim/data");
        assert_eq!(docs[0].namespace, "default");
        let e = parse("apiVersion: v1\nkind: Deployment\nmetadata: {name: s}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("document 1") && e.contains("Deployment"), "{e}");
        let twice = format!("{text}---\n{}", text.split("---").next().unwrap());
        let e = parse(&twice).unwrap_err().to_string();
        assert!(
            e.contains("document 3") && e.contains("already document 1"),
            "{e}"
        );
        let e = parse("apiVersion: v2\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: berth.io/local\n").unwrap_err().to_string();
        assert!(e.contains("apiVersion"), "{e}");
    }
}
