//! The parts of a Pod that refer to other objects or to the pod itself, read from the
//! document: `configMap`, `secret`, `downwardAPI` and `projected` volumes, and a container's
//! `env[].valueFrom` and `envFrom`. Checked as Kubernetes does (item paths relative without
//! `..`, modes at most 0777, keys and names well formed); resolved when containers are made.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::pod::config::VolumeSource;
use crate::pod::error::{Error, Result};
use crate::pod::refs::*;

/// The elements of list `field` of `v`, numbered (none when it is absent).
fn items_of<'a>(v: &'a Value, field: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    v.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn bad(path: &str, m: impl std::fmt::Display) -> Error {
    Error::Manifest(format!("{path}: {m}"))
}

fn str_of<'a>(v: &'a Value, field: &str, path: &str) -> Result<Option<&'a str>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(&format!("{path}.{field}"), "expected a string")),
    }
}

fn bool_of(v: &Value, field: &str, path: &str) -> Result<bool> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(&format!("{path}.{field}"), "expected true or false")),
    }
}

/// A file mode: at most 0777. YAML 1.1, which kubectl reads, takes `0644` as octal; this
/// YAML reader gives such a number as the string "0644", read here as octal as well (and
/// `0o644`); JSON writes modes in decimal (420).
fn mode_of(v: &Value, field: &str, path: &str) -> Result<Option<u32>> {
    let p = format!("{path}.{field}");
    let n = match v.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => {
            let octal = s.strip_prefix("0o").or_else(|| s.strip_prefix('0'));
            match octal {
                Some("") => Some(0),
                Some(o) => u64::from_str_radix(o, 8).ok(),
                None => s.parse().ok(),
            }
        }
        Some(_) => return Err(bad(&p, "expected a number")),
    };
    match n {
        Some(m) if m <= 0o777 => Ok(Some(m as u32)),
        _ => Err(bad(
            &p,
            format!("{} is not a file mode (0 to 0777)", v[field]),
        )),
    }
}

fn name_ref(v: &Value, field: &str, path: &str) -> Result<String> {
    let n = str_of(v, field, path)?.unwrap_or_default();
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !ok {
        return Err(bad(
            &format!("{path}.{field}"),
            format!("{n:?} is not a valid object name"),
        ));
    }
    Ok(n.to_string())
}

/// A volume file's path: relative, no `..` element, not empty.
fn file_path(v: &Value, path: &str) -> Result<String> {
    let p = str_of(v, "path", path)?.unwrap_or_default();
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|e| e == "..") {
        return Err(bad(
            &format!("{path}.path"),
            format!("{p:?} must be a relative path without '..'"),
        ));
    }
    Ok(p.to_string())
}

fn items(v: &Value, path: &str) -> Result<Vec<KeyToPath>> {
    let mut out = Vec::new();
    for (i, it) in items_of(v, "items") {
        let p = format!("{path}.items[{i}]");
        let key = str_of(it, "key", &p)?.unwrap_or_default().to_string();
        crate::configmap::manifest::check_key(&key, &format!("{p}.key"))
            .map_err(|e| Error::Manifest(e.to_string()))?;
        out.push(KeyToPath {
            key,
            path: file_path(it, &p)?,
            mode: mode_of(it, "mode", &p)?,
        });
    }
    Ok(out)
}

/// A `fieldRef` or `resourceFieldRef` (`for_env`: the fields env may use and volumes not).
fn pod_field(v: &Value, path: &str, for_env: bool) -> Result<PodField> {
    if let Some(f) = v.get("fieldRef") {
        let p = format!("{path}.fieldRef");
        let fp = str_of(f, "fieldPath", &p)?.unwrap_or_default();
        let plain = [
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "metadata.labels",
            "metadata.annotations",
        ];
        let env_only = [
            "spec.nodeName",
            "status.podIP",
            "status.podIPs",
            "status.hostIP",
        ];
        let keyed = (fp.starts_with("metadata.labels['")
            || fp.starts_with("metadata.annotations['"))
            && fp.ends_with("']");
        let ok = plain.contains(&fp) || keyed || (for_env && env_only.contains(&fp));
        if !ok {
            return Err(bad(
                &format!("{p}.fieldPath"),
                format!("{fp:?} is not supported here"),
            ));
        }
        return Ok(PodField::Field(fp.to_string()));
    }
    if let Some(r) = v.get("resourceFieldRef") {
        let p = format!("{path}.resourceFieldRef");
        let resource = str_of(r, "resource", &p)?.unwrap_or_default();
        if ![
            "limits.cpu",
            "requests.cpu",
            "limits.memory",
            "requests.memory",
        ]
        .contains(&resource)
        {
            return Err(bad(
                &format!("{p}.resource"),
                format!(
                    "{resource:?} is not supported (limits.cpu, requests.cpu, limits.memory, requests.memory)"
                ),
            ));
        }
        let container = str_of(r, "containerName", &p)?.unwrap_or_default();
        if !for_env && container.is_empty() {
            return Err(bad(&format!("{p}.containerName"), "required in a volume"));
        }
        let divisor = match r.get("divisor") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(bad(&format!("{p}.divisor"), "expected a quantity")),
        };
        if !divisor.is_empty() {
            let unit = if resource.ends_with("cpu") {
                1000.0
            } else {
                1.0
            };
            let d = crate::pod::manifest::quantity(
                &Value::String(divisor.clone()),
                unit,
                &format!("{p}.divisor"),
            )?;
            if d == 0 {
                return Err(bad(&format!("{p}.divisor"), "must be more than 0"));
            }
        }
        return Ok(PodField::Resource {
            container: container.to_string(),
            resource: resource.to_string(),
            divisor,
        });
    }
    Err(bad(path, "needs fieldRef or resourceFieldRef"))
}

fn downward_items(v: &Value, path: &str) -> Result<Vec<(String, PodField, Option<u32>)>> {
    let mut out = Vec::new();
    for (i, it) in items_of(v, "items") {
        let p = format!("{path}.items[{i}]");
        out.push((
            file_path(it, &p)?,
            pod_field(it, &p, false)?,
            mode_of(it, "mode", &p)?,
        ));
    }
    Ok(out)
}

fn data_source(v: &Value, kind: DataKind, name_field: &str, path: &str) -> Result<Projection> {
    Ok(Projection::Data {
        kind,
        name: name_ref(v, name_field, path)?,
        items: items(v, path)?,
        optional: bool_of(v, "optional", path)?,
    })
}

/// The volume `v` (at `path`) if it is one of these kinds.
pub fn volume(v: &Value, path: &str) -> Result<Option<VolumeSource>> {
    let default =
        |x: &Value, p: &str| -> Result<u32> { Ok(mode_of(x, "defaultMode", p)?.unwrap_or(0o644)) };
    if let Some(c) = v.get("configMap") {
        let p = format!("{path}.configMap");
        return Ok(Some(VolumeSource::Projected {
            sources: vec![data_source(c, DataKind::ConfigMap, "name", &p)?],
            default_mode: default(c, &p)?,
            tmpfs: false,
        }));
    }
    if let Some(s) = v.get("secret") {
        let p = format!("{path}.secret");
        return Ok(Some(VolumeSource::Projected {
            sources: vec![data_source(s, DataKind::Secret, "secretName", &p)?],
            default_mode: default(s, &p)?,
            tmpfs: true,
        }));
    }
    if let Some(d) = v.get("downwardAPI") {
        let p = format!("{path}.downwardAPI");
        return Ok(Some(VolumeSource::Projected {
            sources: vec![Projection::Downward {
                items: downward_items(d, &p)?,
            }],
            default_mode: default(d, &p)?,
            tmpfs: true,
        }));
    }
    if let Some(pr) = v.get("projected") {
        let p = format!("{path}.projected");
        let mut sources = Vec::new();
        for (i, s) in items_of(pr, "sources") {
            let sp = format!("{p}.sources[{i}]");
            if let Some(c) = s.get("configMap") {
                sources.push(data_source(
                    c,
                    DataKind::ConfigMap,
                    "name",
                    &format!("{sp}.configMap"),
                )?);
            } else if let Some(c) = s.get("secret") {
                sources.push(data_source(
                    c,
                    DataKind::Secret,
                    "name",
                    &format!("{sp}.secret"),
                )?);
            } else if let Some(d) = s.get("downwardAPI") {
                sources.push(Projection::Downward {
                    items: downward_items(d, &format!("{sp}.downwardAPI"))?,
                });
            } else {
                return Err(bad(&sp, "needs one of configMap, secret and downwardAPI"));
            }
        }
        return Ok(Some(VolumeSource::Projected {
            sources,
            default_mode: default(pr, &p)?,
            tmpfs: true,
        }));
    }
    Ok(None)
}

/// A container's `envFrom` and `env` (at `path`).
pub fn env(c: &Value, path: &str) -> Result<EnvSpec> {
    let mut spec = EnvSpec::default();
    for (i, f) in items_of(c, "envFrom") {
        let p = format!("{path}.envFrom[{i}]");
        let prefix = str_of(f, "prefix", &p)?.unwrap_or_default().to_string();
        let (kind, r, rp) = match (f.get("configMapRef"), f.get("secretRef")) {
            (Some(r), None) => (DataKind::ConfigMap, r, format!("{p}.configMapRef")),
            (None, Some(r)) => (DataKind::Secret, r, format!("{p}.secretRef")),
            _ => return Err(bad(&p, "needs exactly one of configMapRef and secretRef")),
        };
        spec.from.push(EnvFrom {
            kind,
            name: name_ref(r, "name", &rp)?,
            prefix,
            optional: bool_of(r, "optional", &rp)?,
        });
    }
    for (i, e) in items_of(c, "env") {
        let p = format!("{path}.env[{i}]");
        let name = str_of(e, "name", &p)?.unwrap_or_default().to_string();
        let value = match (e.get("value"), e.get("valueFrom")) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    &format!("{p}.valueFrom"),
                    "may not be given with value",
                ));
            }
            (_, Some(vf)) => {
                let vp = format!("{p}.valueFrom");
                let key_ref = |r: &Value, kind: DataKind, rp: String| -> Result<EnvValue> {
                    let key = str_of(r, "key", &rp)?.unwrap_or_default().to_string();
                    crate::configmap::manifest::check_key(&key, &format!("{rp}.key"))
                        .map_err(|e| Error::Manifest(e.to_string()))?;
                    Ok(EnvValue::Key {
                        kind,
                        name: name_ref(r, "name", &rp)?,
                        key,
                        optional: bool_of(r, "optional", &rp)?,
                    })
                };
                if let Some(r) = vf.get("configMapKeyRef") {
                    key_ref(r, DataKind::ConfigMap, format!("{vp}.configMapKeyRef"))?
                } else if let Some(r) = vf.get("secretKeyRef") {
                    key_ref(r, DataKind::Secret, format!("{vp}.secretKeyRef"))?
                } else {
                    EnvValue::Field(pod_field(vf, &vp, true)?)
                }
            }
            (Some(Value::String(s)), None) => EnvValue::Literal(s.clone()),
            (Some(Value::Number(n)), None) => EnvValue::Literal(n.to_string()),
            (Some(Value::Bool(b)), None) => EnvValue::Literal(b.to_string()),
            _ => EnvValue::Literal(String::new()),
        };
        spec.vars.push((name, value));
    }
    Ok(spec)
}

/// The projected volumes of a Pod document, by index in `spec.volumes`.
pub fn volumes(v: &Value) -> Result<BTreeMap<usize, VolumeSource>> {
    let mut out = BTreeMap::new();
    for (i, vol) in v["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(s) = volume(vol, &format!("spec.volumes[{i}]"))? {
            out.insert(i, s);
        }
    }
    Ok(out)
}
