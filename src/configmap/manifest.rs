//! ConfigMap and Secret documents → records, validated as Kubernetes does: keys of
//! `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`; a key in both `data` and
//! `binaryData` (or `data` and `stringData`) once only; at most 1 MiB per object; a Secret's
//! type with the keys it requires. Unknown fields are refused with their path.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use super::{DataKind, Error, Object, Result, VERSION};
use crate::pod::manifest::schema::{Shape, Shape::*};
use crate::volume::manifest::{META, check, map, name_of, string};

const CONFIGMAP: Shape = Obj(&[
    ("apiVersion", Scalar),
    ("kind", Scalar),
    ("metadata", META),
    ("data", StrMap),
    ("binaryData", StrMap),
    ("immutable", Scalar),
]);

const SECRET: Shape = Obj(&[
    ("apiVersion", Scalar),
    ("kind", Scalar),
    ("metadata", META),
    ("data", StrMap),
    ("stringData", StrMap),
    ("type", Scalar),
    ("immutable", Scalar),
]);

/// Kubernetes' limit on one object's data.
pub const MAX_SIZE: usize = 1 << 20;

/// The Secret types berth knows, with the keys each requires (any one of them for
/// basic-auth).
const TYPES: &[(&str, &[&str])] = &[
    ("Opaque", &[]),
    ("kubernetes.io/dockerconfigjson", &[".dockerconfigjson"]),
    ("kubernetes.io/tls", &["tls.crt", "tls.key"]),
    ("kubernetes.io/basic-auth", &[]),
];

/// Is `k` a key Kubernetes accepts (`path` names it in the error)?
pub fn check_key(k: &str, path: &str) -> Result<()> {
    let ok = !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{path}: {k:?} is not a valid key (letters, digits, '-', '_' or '.', at most 253, not '.' or '..')"
        )))
    }
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Read a ConfigMap or Secret document (`kind` says which).
pub fn read(v: &Value, kind: DataKind) -> Result<Object> {
    check(
        v,
        match kind {
            DataKind::ConfigMap => &CONFIGMAP,
            DataKind::Secret => &SECRET,
        },
    )?;
    let name = name_of(v)?;
    let namespace = string(v, "metadata.namespace")?.unwrap_or_else(|| "default".into());
    crate::volume::model::check_name(&namespace, "metadata.namespace")?;
    let mut data = BTreeMap::new();
    let mut binary_keys = Vec::new();
    let put = |k: &str, bytes: &[u8], path: &str, data: &mut BTreeMap<String, String>| {
        check_key(k, path)?;
        if data.insert(k.to_string(), b64(bytes)).is_some() {
            return Err(Error::Invalid(format!(
                "{path}: key {k:?} is given twice (data and {})",
                if kind == DataKind::Secret {
                    "stringData"
                } else {
                    "binaryData"
                }
            )));
        }
        Ok(())
    };
    let decode = |s: &str, path: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| Error::Invalid(format!("{path}: not base64 ({e})")))
    };
    let secret_type = match kind {
        DataKind::ConfigMap => {
            for (k, s) in map(v, "data") {
                put(&k, s.as_bytes(), &format!("data.{k}"), &mut data)?;
            }
            for (k, s) in map(v, "binaryData") {
                let p = format!("binaryData.{k}");
                put(&k, &decode(&s, &p)?, &p, &mut data)?;
                binary_keys.push(k);
            }
            String::new()
        }
        DataKind::Secret => {
            for (k, s) in map(v, "data") {
                let p = format!("data.{k}");
                put(&k, &decode(&s, &p)?, &p, &mut data)?;
            }
            // stringData wins over data, as in Kubernetes (it is merged into data)
            for (k, s) in map(v, "stringData") {
                let p = format!("stringData.{k}");
                check_key(&k, &p)?;
                data.insert(k, b64(s.as_bytes()));
            }
            let t = string(v, "type")?.unwrap_or_else(|| "Opaque".into());
            let Some((_, needs)) = TYPES.iter().find(|(n, _)| *n == t) else {
                return Err(Error::Invalid(format!(
                    "type: {t:?} is not supported (Opaque, kubernetes.io/dockerconfigjson, kubernetes.io/tls, kubernetes.io/basic-auth)"
                )));
            };
            if let Some(k) = needs.iter().find(|k| !data.contains_key(**k)) {
                return Err(Error::Invalid(format!("data.{k}: required by type {t}")));
            }
            if t == "kubernetes.io/basic-auth"
                && !data.contains_key("username")
                && !data.contains_key("password")
            {
                return Err(Error::Invalid(format!(
                    "data: {t} requires username or password"
                )));
            }
            t
        }
    };
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len() * 3 / 4).sum();
    if size > MAX_SIZE {
        return Err(Error::Invalid(format!(
            "data: {size} bytes, more than the {MAX_SIZE} an object may hold"
        )));
    }
    let immutable = match v.get("immutable") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Error::Invalid("immutable: expected true or false".into())),
    };
    Ok(Object {
        version: VERSION,
        kind,
        namespace,
        name,
        uid: string(v, "metadata.uid")?.unwrap_or_default(),
        secret_type,
        data,
        binary_keys,
        immutable,
        labels: map(v, "metadata.labels"),
        created: String::new(),
    })
}

/// The object as Kubernetes shows it; a Secret's values only when `show_secrets`.
pub fn to_value(o: &Object, show_secrets: bool) -> Value {
    let mut meta = serde_json::json!({
        "name": o.name, "namespace": o.namespace, "uid": o.uid, "creationTimestamp": o.created,
    });
    if !o.labels.is_empty() {
        meta["labels"] = serde_json::json!(o.labels);
    }
    let mut out = serde_json::json!({
        "apiVersion": "v1",
        "kind": match o.kind { DataKind::ConfigMap => "ConfigMap", DataKind::Secret => "Secret" },
        "metadata": meta,
    });
    match o.kind {
        DataKind::ConfigMap => {
            let (mut data, mut bin) = (serde_json::Map::new(), serde_json::Map::new());
            for (k, v) in &o.data {
                if o.binary_keys.contains(k) {
                    bin.insert(k.clone(), Value::String(v.clone()));
                } else {
                    let text =
                        String::from_utf8_lossy(&o.value(k).unwrap_or_default()).into_owned();
                    data.insert(k.clone(), Value::String(text));
                }
            }
            if !data.is_empty() {
                out["data"] = Value::Object(data);
            }
            if !bin.is_empty() {
                out["binaryData"] = Value::Object(bin);
            }
        }
        DataKind::Secret => {
            out["type"] = Value::String(o.secret_type.clone());
            let data: serde_json::Map<String, Value> = o
                .data
                .iter()
                .map(|(k, v)| {
                    let shown = if show_secrets {
                        v.clone()
                    } else {
                        format!("<hidden: {} bytes; --show-secrets>", v.len() * 3 / 4)
                    };
                    (k.clone(), Value::String(shown))
                })
                .collect();
            out["data"] = Value::Object(data);
        }
    }
    if o.immutable {
        out["immutable"] = Value::Bool(true);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sizes_and_types_are_checked_by_path() {
        let cm = |data: Value| {
            read(
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}),
                DataKind::ConfigMap,
            )
        };
        assert!(cm(json!({"a.b_c-1": "x"})).is_ok());
        for bad in ["..", ".", "a/b", "a b", ""] {
            let e = cm(json!({ bad: "x" })).unwrap_err().to_string();
            assert!(e.starts_with(&format!("data.{bad}:")), "{e}");
        }
        let e = cm(json!({"k": "x".repeat(MAX_SIZE + 1)}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1048576"), "{e}");
        let both = read(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                    "data": {"k": "x"}, "binaryData": {"k": "eA=="}}),
            DataKind::ConfigMap,
        )
        .unwrap_err()
        .to_string();
        assert!(
            both.starts_with("binaryData.k:") && both.contains("twice"),
            "{both}"
        );
        let secret = |extra: Value| {
            let mut v = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            read(&v, DataKind::Secret)
        };
        let s = secret(json!({"data": {"a": "aGk="}, "stringData": {"b": "there"}})).unwrap();
        assert_eq!(s.value("a").unwrap(), b"hi");
        assert_eq!(s.value("b").unwrap(), b"there");
        assert_eq!(s.secret_type, "Opaque");
        let e = secret(json!({"data": {"a": "not base64!"}}))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("data.a: not base64"), "{e}");
        let e = secret(json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}}))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("data.tls.key: required"), "{e}");
        let e = secret(json!({"type": "bogus"})).unwrap_err().to_string();
        assert!(e.starts_with("type:"), "{e}");
        let e = secret(json!({"stringdata": {}})).unwrap_err().to_string();
        assert!(e.contains("stringdata"), "{e}");
        // values hidden unless asked
        let shown = to_value(&s, false).to_string();
        assert!(
            !shown.contains("aGk=") && !shown.contains("dGhlcmU="),
            "{shown}"
        );
        assert!(to_value(&s, true).to_string().contains("aGk="));
    }
}
