//! StorageClass, PersistentVolume and PersistentVolumeClaim documents → berth's records. Each
//! is checked against what berth implements first: an unknown field is refused with its path.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::error::{Error, Result};
use super::model::*;
use crate::pod::manifest::schema::{self, Shape, Shape::*};

pub(crate) use crate::pod::manifest::schema::META;
const MODES: Shape = List(&Scalar);

const CLASS: Shape = Obj(&[
    ("apiVersion", Scalar),
    ("kind", Scalar),
    ("metadata", META),
    ("provisioner", Scalar),
    ("reclaimPolicy", Scalar),
    ("allowVolumeExpansion", Scalar),
    ("volumeBindingMode", Scalar),
    (
        "parameters",
        Obj(&[("backend", Scalar), ("fsType", Scalar)]),
    ),
]);

const PV: Shape = Obj(&[
    ("apiVersion", Scalar),
    ("kind", Scalar),
    ("metadata", META),
    (
        "spec",
        Obj(&[
            ("capacity", Obj(&[("storage", Scalar)])),
            ("accessModes", MODES),
            ("volumeMode", Scalar),
            ("persistentVolumeReclaimPolicy", Scalar),
            ("storageClassName", Scalar),
            (
                "csi",
                Obj(&[
                    ("driver", Scalar),
                    ("volumeHandle", Scalar),
                    ("fsType", Scalar),
                    (
                        "volumeAttributes",
                        Obj(&[("backend", Scalar), ("fsType", Scalar)]),
                    ),
                ]),
            ),
            ("local", Obj(&[("path", Scalar), ("fsType", Scalar)])),
            ("hostPath", Obj(&[("path", Scalar), ("type", Scalar)])),
            (
                "claimRef",
                Obj(&[
                    ("apiVersion", Scalar),
                    ("kind", Scalar),
                    ("namespace", Scalar),
                    ("name", Scalar),
                    ("uid", Scalar),
                ]),
            ),
            // one node: every volume is on it
            ("nodeAffinity", Any),
        ]),
    ),
]);

const PVC: Shape = Obj(&[
    ("apiVersion", Scalar),
    ("kind", Scalar),
    ("metadata", META),
    (
        "spec",
        Obj(&[
            ("accessModes", MODES),
            (
                "resources",
                Obj(&[
                    ("requests", Obj(&[("storage", Scalar)])),
                    ("limits", Obj(&[("storage", Scalar)])),
                ]),
            ),
            ("volumeMode", Scalar),
            ("storageClassName", Scalar),
            ("volumeName", Scalar),
            ("selector", Obj(&[("matchLabels", StrMap)])),
        ]),
    ),
]);

/// A storage object of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Class(StorageClass),
    Volume(Volume),
    Claim(Claim),
}

impl Object {
    /// `kind/name` as kubectl prints it.
    pub fn describe(&self) -> String {
        match self {
            Object::Class(c) => format!("storageclass/{}", c.name),
            Object::Volume(v) => format!("persistentvolume/{}", v.name),
            Object::Claim(c) => format!("persistentvolumeclaim/{}", c.name),
        }
    }
}

pub(crate) fn check(v: &Value, shape: &Shape) -> Result<()> {
    schema::check(v, shape, "").map_err(|e| match e {
        crate::pod::Error::Manifest(m) => Error::Invalid(m),
        other => Error::Invalid(other.to_string()),
    })
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

pub(crate) fn string(v: &Value, path: &str) -> Result<Option<String>> {
    match path.split('.').try_fold(v, |v, k| v.get(k)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::Invalid(format!("{path}: expected a string"))),
    }
}

pub(crate) fn map(v: &Value, path: &str) -> BTreeMap<String, String> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn name_of(v: &Value) -> Result<String> {
    let n = string(v, "metadata.name")?
        .ok_or_else(|| Error::Invalid("metadata.name: required".into()))?;
    check_name(&n, "metadata.name")?;
    Ok(n)
}

fn modes(v: &Value, path: &str) -> Result<Vec<AccessMode>> {
    let list = path
        .split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        return Err(Error::Invalid(format!(
            "{path}: at least one access mode is required"
        )));
    }
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let s = m
            .as_str()
            .ok_or_else(|| Error::Invalid(format!("{p}: expected a string")))?;
        out.push(AccessMode::parse(s, &p)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn filesystem_only(v: &Value, path: &str) -> Result<()> {
    match str_at(v, path) {
        None | Some("Filesystem") => Ok(()),
        Some("Block") => Err(Error::Invalid(format!(
            "{path}: Block is not supported yet (Filesystem only)"
        ))),
        Some(o) => Err(Error::Invalid(format!(
            "{path}: unknown volume mode {o:?} (Filesystem)"
        ))),
    }
}

/// Read a StorageClass, PersistentVolume or PersistentVolumeClaim document (`kind` says which).
pub fn read(v: &Value, kind: &str) -> Result<Object> {
    match kind {
        "StorageClass" => class(v).map(Object::Class),
        "PersistentVolume" => volume(v).map(Object::Volume),
        "PersistentVolumeClaim" => claim(v).map(Object::Claim),
        other => Err(Error::Invalid(format!(
            "kind: {other:?} is not a storage kind"
        ))),
    }
}

fn class(v: &Value) -> Result<StorageClass> {
    check(v, &CLASS)?;
    let name = name_of(v)?;
    let provisioner = string(v, "provisioner")?.unwrap_or_default();
    if provisioner != PROVISIONER {
        return Err(Error::Invalid(format!(
            "provisioner: {provisioner:?}: berth provisions with {PROVISIONER:?}"
        )));
    }
    let binding_mode = match str_at(v, "volumeBindingMode") {
        None | Some("Immediate") => BindingMode::Immediate,
        Some("WaitForFirstConsumer") => BindingMode::WaitForFirstConsumer,
        Some(o) => {
            return Err(Error::Invalid(format!(
                "volumeBindingMode: unknown mode {o:?} (Immediate, WaitForFirstConsumer)"
            )));
        }
    };
    let fs_type = string(v, "parameters.fsType")?.unwrap_or_else(|| "ext4".into());
    if fs_type != "ext4" {
        return Err(Error::Invalid(format!(
            "parameters.fsType: {fs_type:?} is not supported (ext4)"
        )));
    }
    let expansion = match v.get("allowVolumeExpansion") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(Error::Invalid(
                "allowVolumeExpansion: expected a boolean".into(),
            ));
        }
    };
    Ok(StorageClass {
        version: VERSION,
        name,
        provisioner,
        reclaim_policy: match str_at(v, "reclaimPolicy") {
            None => ReclaimPolicy::Delete,
            Some(s) => ReclaimPolicy::parse(s, "reclaimPolicy")?,
        },
        allow_volume_expansion: expansion,
        binding_mode,
        backend: BackendKind::parse(
            str_at(v, "parameters.backend").unwrap_or("loopfile"),
            "parameters.backend",
        )?,
        fs_type,
        is_default: map(v, "metadata.annotations")
            .get("storageclass.kubernetes.io/is-default-class")
            .is_some_and(|d| d == "true"),
        labels: map(v, "metadata.labels"),
        created: String::new(),
    })
}

fn volume(v: &Value) -> Result<Volume> {
    check(v, &PV)?;
    let name = name_of(v)?;
    let capacity = size(
        v.pointer("/spec/capacity/storage")
            .ok_or_else(|| Error::Invalid("spec.capacity.storage: required".into()))?,
        "spec.capacity.storage",
    )?;
    filesystem_only(v, "spec.volumeMode")?;
    let sources = ["csi", "local", "hostPath"]
        .iter()
        .filter(|k| {
            v.pointer(&format!("/spec/{k}"))
                .is_some_and(|x| !x.is_null())
        })
        .count();
    if sources != 1 {
        return Err(Error::Invalid(
            "spec: exactly one of csi (driver berth.io/local), local or hostPath is required"
                .into(),
        ));
    }
    let source = if v.pointer("/spec/csi").is_some_and(|x| !x.is_null()) {
        let driver = str_at(v, "spec.csi.driver").unwrap_or_default();
        if driver != PROVISIONER {
            return Err(Error::Invalid(format!(
                "spec.csi.driver: {driver:?}: berth's volumes are {PROVISIONER:?}"
            )));
        }
        let handle = string(v, "spec.csi.volumeHandle")?
            .ok_or_else(|| Error::Invalid("spec.csi.volumeHandle: required".into()))?;
        check_name(&handle, "spec.csi.volumeHandle")?;
        let fs_type = str_at(v, "spec.csi.volumeAttributes.fsType")
            .or_else(|| str_at(v, "spec.csi.fsType"))
            .unwrap_or("ext4")
            .to_string();
        if fs_type != "ext4" {
            return Err(Error::Invalid(format!(
                "spec.csi.volumeAttributes.fsType: {fs_type:?} is not supported (ext4)"
            )));
        }
        Source::Csi {
            handle,
            backend: BackendKind::parse(
                str_at(v, "spec.csi.volumeAttributes.backend").unwrap_or("loopfile"),
                "spec.csi.volumeAttributes.backend",
            )?,
            fs_type,
        }
    } else {
        let (key, path) = match str_at(v, "spec.local.path") {
            Some(p) => ("spec.local.path", p),
            None => (
                "spec.hostPath.path",
                str_at(v, "spec.hostPath.path").unwrap_or_default(),
            ),
        };
        if !path.starts_with('/') {
            return Err(Error::Invalid(format!(
                "{key}: {path:?} is not an absolute path"
            )));
        }
        Source::Path {
            path: PathBuf::from(path),
        }
    };
    let claim_ref = match (
        string(v, "spec.claimRef.namespace")?,
        string(v, "spec.claimRef.name")?,
    ) {
        (ns, Some(n)) => Some(ClaimRef {
            namespace: ns.unwrap_or_else(|| "default".into()),
            name: n,
            uid: string(v, "spec.claimRef.uid")?.unwrap_or_default(),
        }),
        (_, None) => None,
    };
    Ok(Volume {
        version: VERSION,
        name,
        capacity,
        access_modes: modes(v, "spec.accessModes")?,
        // a volume someone made keeps its data unless told otherwise
        reclaim_policy: match str_at(v, "spec.persistentVolumeReclaimPolicy") {
            None => ReclaimPolicy::Retain,
            Some(s) => ReclaimPolicy::parse(s, "spec.persistentVolumeReclaimPolicy")?,
        },
        class: string(v, "spec.storageClassName")?.unwrap_or_default(),
        labels: map(v, "metadata.labels"),
        source,
        claim_ref,
        phase: VolumePhase::Available,
        reason: String::new(),
        provisioned: false,
        terminating: false,
        created: String::new(),
    })
}

fn claim(v: &Value) -> Result<Claim> {
    check(v, &PVC)?;
    let name = name_of(v)?;
    let namespace = string(v, "metadata.namespace")?.unwrap_or_else(|| "default".into());
    check_name(&namespace, "metadata.namespace")?;
    filesystem_only(v, "spec.volumeMode")?;
    let request = size(
        v.pointer("/spec/resources/requests/storage")
            .ok_or_else(|| Error::Invalid("spec.resources.requests.storage: required".into()))?,
        "spec.resources.requests.storage",
    )?;
    if let Some(l) = v.pointer("/spec/resources/limits/storage") {
        let limit = size(l, "spec.resources.limits.storage")?;
        if limit < request {
            return Err(Error::Invalid(
                "spec.resources.limits.storage: less than the request".into(),
            ));
        }
    }
    let class = string(v, "spec.storageClassName")?;
    if let Some(c) = class.as_deref().filter(|c| !c.is_empty()) {
        check_name(c, "spec.storageClassName")?;
    }
    Ok(Claim {
        version: VERSION,
        uid: string(v, "metadata.uid")?.unwrap_or_else(crate::pod::store::new_uid),
        namespace,
        name,
        spec: ClaimSpec {
            request,
            access_modes: modes(v, "spec.accessModes")?,
            class,
            volume_name: string(v, "spec.volumeName")?,
            selector: map(v, "spec.selector.matchLabels"),
        },
        labels: map(v, "metadata.labels"),
        phase: ClaimPhase::Pending,
        reason: String::new(),
        volume: None,
        terminating: false,
        created: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_are_read_and_bad_fields_named() {
        let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1", "labels": {"tier": "gold"}},
            "spec": {"capacity": {"storage": "64Mi"}, "accessModes": ["ReadWriteOnce"],
                     "csi": {"driver": "berth.io/local", "volumeHandle": "pv1", "volumeAttributes": {"backend": "loopfile", "fsType": "ext4"}}}});
        let Object::Volume(v) = read(&pv, "PersistentVolume").unwrap() else {
            panic!()
        };
        assert_eq!(v.capacity, 64 << 20);
        assert_eq!(v.reclaim_policy, ReclaimPolicy::Retain);
        assert_eq!(v.labels["tier"], "gold");
        let bad = |mut doc: Value, ptr: &str, val: Value, want: &str| {
            *doc.pointer_mut(ptr).unwrap() = val;
            let e = read(&doc, doc["kind"].as_str().unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        };
        bad(
            pv.clone(),
            "/spec/capacity/storage",
            json!("10Gb"),
            "spec.capacity.storage",
        );
        bad(
            pv.clone(),
            "/spec/accessModes/0",
            json!("RWO"),
            "spec.accessModes[0]",
        );
        bad(
            pv.clone(),
            "/metadata/name",
            json!("Bad_Name"),
            "metadata.name",
        );
        bad(
            pv.clone(),
            "/spec/csi/driver",
            json!("ebs.csi.aws.com"),
            "spec.csi.driver",
        );
        let mut block = pv.clone();
        block["spec"]["volumeMode"] = json!("Block");
        assert!(
            read(&block, "PersistentVolume")
                .unwrap_err()
                .to_string()
                .contains("spec.volumeMode")
        );
        let mut nfs = pv.clone();
        nfs["spec"]["nfs"] = json!({"server": "x"});
        assert!(
            read(&nfs, "PersistentVolume")
                .unwrap_err()
                .to_string()
                .contains("spec.nfs: not supported")
        );
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOncePod"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": ""}});
        let Object::Claim(c) = read(&pvc, "PersistentVolumeClaim").unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                c.namespace.as_str(),
                c.spec.request,
                c.spec.class.as_deref()
            ),
            ("default", 1 << 30, Some(""))
        );
        bad(
            pvc.clone(),
            "/spec/resources/requests/storage",
            json!("-1Gi"),
            "spec.resources.requests.storage",
        );
        bad(
            pvc.clone(),
            "/spec/resources/requests/storage",
            json!("0"),
            "more than 0",
        );
        let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "berth.io/local", "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer", "parameters": {"backend": "dir"}});
        let Object::Class(k) = read(&sc, "StorageClass").unwrap() else {
            panic!()
        };
        assert!(
            k.is_default
                && k.backend == BackendKind::Dir
                && k.binding_mode == BindingMode::WaitForFirstConsumer
        );
        bad(sc.clone(), "/reclaimPolicy", json!("Keep"), "reclaimPolicy");
        bad(
            sc.clone(),
            "/parameters/backend",
            json!("zfs"),
            "parameters.backend",
        );
    }
}
