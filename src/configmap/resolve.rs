//! A pod's references made concrete when a container is made: a projected volume's files,
//! and a container's environment with `$(VAR)` expanded in it and in its command and args,
//! as kubelet does. A missing object or key that is not `optional` fails, with kubelet's
//! words (`CreateContainerConfigError: configmap "x" not found`).

use std::collections::BTreeMap;

use super::project::File;
use super::{ConfigData, DataKind, Error, Result};
use crate::pod::{ContainerConfig, EnvValue, PodField, PodRecord, Projection, Resources};

/// What resolving needs to know of the pod: its record and its containers' resources (by
/// name, for `resourceFieldRef`).
pub struct Pod<'a> {
    pub record: &'a PodRecord,
    pub resources: &'a dyn Fn(&str) -> Option<Resources>,
}

fn config_error(m: String) -> Error {
    Error::Precondition(format!("CreateContainerConfigError: {m}"))
}

fn object(
    data: &ConfigData,
    kind: DataKind,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<Option<super::Object>> {
    match data.get(kind, ns, name) {
        Ok(o) => Ok(Some(o)),
        Err(Error::NotFound(_)) if optional => Ok(None),
        Err(Error::NotFound(_)) => Err(config_error(format!("{} {name:?} not found", kind.word()))),
        Err(e) => Err(e),
    }
}

/// The files of a projected volume.
pub fn files(
    data: &ConfigData,
    pod: &Pod,
    sources: &[Projection],
    default_mode: u32,
) -> Result<Vec<File>> {
    let ns = &pod.record.config.namespace;
    let mut out: Vec<File> = Vec::new();
    for s in sources {
        match s {
            Projection::Data {
                kind,
                name,
                items,
                optional,
            } => {
                let Some(o) = object(data, *kind, ns, name, *optional)? else {
                    continue;
                };
                if items.is_empty() {
                    for k in o.data.keys() {
                        out.push(File {
                            path: k.clone(),
                            bytes: o.value(k).unwrap_or_default(),
                            mode: default_mode,
                        });
                    }
                }
                for i in items {
                    match o.value(&i.key) {
                        Some(bytes) => out.push(File {
                            path: i.path.clone(),
                            bytes,
                            mode: i.mode.unwrap_or(default_mode),
                        }),
                        None if *optional => {}
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in {} {ns}/{name}",
                                i.key,
                                kind.word()
                            )));
                        }
                    }
                }
            }
            Projection::Downward { items } => {
                for (path, field, mode) in items {
                    out.push(File {
                        path: path.clone(),
                        bytes: field_value(pod, field, "")?.into_bytes(),
                        mode: mode.unwrap_or(default_mode),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The first reference of pod `m` (not `optional`) to a ConfigMap, Secret or key that does
/// not exist, in kubelet's words; None when all do.
pub fn missing(data: &ConfigData, m: &crate::pod::PodManifest) -> Option<String> {
    let ns = &m.pod.namespace;
    let check = |kind: DataKind, name: &str, key: Option<&str>| -> Option<String> {
        match data.get(kind, ns, name) {
            Err(_) => Some(format!("{} {name:?} not found", kind.word())),
            Ok(o) => key
                .filter(|k| !o.data.contains_key(*k))
                .map(|k| format!("couldn't find key {k} in {} {ns}/{name}", kind.word())),
        }
    };
    for v in &m.pod.volumes {
        if let crate::pod::VolumeSource::Projected { sources, .. } = &v.source {
            for s in sources {
                if let Projection::Data {
                    kind,
                    name,
                    items,
                    optional: false,
                } = s
                {
                    if let Some(w) = check(*kind, name, None) {
                        return Some(w);
                    }
                    for i in items {
                        if let Some(w) = check(*kind, name, Some(&i.key)) {
                            return Some(w);
                        }
                    }
                }
            }
        }
    }
    for c in &m.containers {
        let Some(spec) = &c.env_spec else { continue };
        for f in spec.from.iter().filter(|f| !f.optional) {
            if let Some(w) = check(f.kind, &f.name, None) {
                return Some(w);
            }
        }
        for (_, v) in &spec.vars {
            if let EnvValue::Key {
                kind,
                name,
                key,
                optional: false,
            } = v
                && let Some(w) = check(*kind, name, Some(key))
            {
                return Some(w);
            }
        }
    }
    None
}

/// Is `n` a name kubelet accepts from `envFrom` (`[-._a-zA-Z][-._a-zA-Z0-9]*`)?
fn env_name_ok(n: &str) -> bool {
    n.starts_with(|c: char| c.is_ascii_alphabetic() || "-._".contains(c))
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// The container with its environment resolved and `$(VAR)` expanded (env, command, args);
/// the names `envFrom` skipped as invalid come back for a warning.
pub fn container(
    data: &ConfigData,
    pod: &Pod,
    cfg: &ContainerConfig,
) -> Result<(ContainerConfig, Vec<String>)> {
    let Some(spec) = &cfg.env_spec else {
        return Ok((cfg.clone(), Vec::new()));
    };
    let ns = &pod.record.config.namespace;
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(n, _)| *n == k)
    {
        Some(e) => e.1 = v,
        None => env.push((k, v)),
    };
    let mut skipped = Vec::new();
    for f in &spec.from {
        let Some(o) = object(data, f.kind, ns, &f.name, f.optional)? else {
            continue;
        };
        // a ConfigMap's binaryData is for files only, as kubelet has it
        for k in o.data.keys().filter(|k| !o.binary_keys.contains(k)) {
            let name = format!("{}{k}", f.prefix);
            if !env_name_ok(&name) {
                skipped.push(format!("{name} (from {})", o.describe()));
                continue;
            }
            let v = String::from_utf8_lossy(&o.value(k).unwrap_or_default()).into_owned();
            set(&mut env, name, v);
        }
    }
    for (name, value) in &spec.vars {
        let v = match value {
            EnvValue::Literal(s) => {
                let known: BTreeMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(s, &known)
            }
            EnvValue::Key {
                kind,
                name: obj,
                key,
                optional,
            } => match object(data, *kind, ns, obj, *optional)? {
                None => continue,
                Some(o) => match o.value(key).filter(|_| !o.binary_keys.contains(key)) {
                    Some(b) => String::from_utf8_lossy(&b).into_owned(),
                    None if *optional => continue,
                    None => {
                        return Err(config_error(format!(
                            "couldn't find key {key} in {} {ns}/{obj}",
                            kind.word()
                        )));
                    }
                },
            },
            EnvValue::Field(f) => field_value(pod, f, &cfg.name)?,
        };
        set(&mut env, name.clone(), v);
    }
    let known: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = cfg.clone();
    out.command = cfg.command.iter().map(|a| expand(a, &known)).collect();
    out.args = cfg.args.iter().map(|a| expand(a, &known)).collect();
    out.env = env;
    out.env_spec = None;
    Ok((out, skipped))
}

/// Kubernetes' `$(VAR)` expansion: a defined name is replaced, `$$` is `$`, anything else
/// (an unknown name, an unclosed `$(`) stays as written.
pub fn expand(s: &str, known: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            match r.find(')') {
                Some(end) => {
                    let name = &r[..end];
                    match known.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &r[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = r;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `k="v"` lines, as kubelet writes labels and annotations.
fn pairs(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The host's address towards `ip` (the source of its route), or its first global address.
fn host_ip(towards: Option<&str>) -> String {
    let target = towards.unwrap_or("192.0.2.1"); // TEST-NET-1: a route lookup, no traffic
    std::process::Command::new("ip")
        .args(["-o", "route", "get", target])
        .output()
        .ok()
        .and_then(|o| {
            let t = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut w = t.split_whitespace();
            w.by_ref().find(|x| *x == "src")?;
            w.next().map(String::from)
        })
        .unwrap_or_default()
}

/// A fact about the pod (`asking`: the container that asks, for a resourceFieldRef with no
/// container name).
pub fn field_value(pod: &Pod, f: &PodField, asking: &str) -> Result<String> {
    let c = &pod.record.config;
    let key = |s: &str, prefix: &str| {
        s.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(String::from)
    };
    Ok(match f {
        PodField::Field(p) => match p.as_str() {
            "metadata.name" => c.name.clone(),
            "metadata.namespace" => c.namespace.clone(),
            "metadata.uid" => c.uid.clone(),
            "metadata.labels" => pairs(&c.labels),
            "metadata.annotations" => pairs(&c.annotations),
            "spec.nodeName" => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            "status.podIP" => pod.record.ips.first().cloned().unwrap_or_default(),
            "status.podIPs" => pod.record.ips.join(","),
            "status.hostIP" => host_ip(pod.record.ips.first().map(String::as_str)),
            p => {
                if let Some(k) = key(p, "metadata.labels['") {
                    c.labels.get(&k).cloned().unwrap_or_default()
                } else if let Some(k) = key(p, "metadata.annotations['") {
                    c.annotations.get(&k).cloned().unwrap_or_default()
                } else {
                    return Err(Error::Invalid(format!("fieldRef {p:?} is not supported")));
                }
            }
        },
        PodField::Resource {
            container,
            resource,
            divisor,
        } => {
            let name = if container.is_empty() {
                asking
            } else {
                container
            };
            let r = (pod.resources)(name).ok_or_else(|| {
                Error::Invalid(format!("resourceFieldRef: no container {name:?}"))
            })?;
            resource_value(&r, resource, divisor)?.to_string()
        }
    })
}

/// A container's resource in units of `divisor`, rounded up; an unset limit is the node's
/// allocatable (the host's CPUs and memory), as kubelet does.
fn resource_value(r: &Resources, resource: &str, divisor: &str) -> Result<u64> {
    let host_cpus_milli = || {
        std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1)
            * 1000
    };
    let host_memory = || {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    };
    let cpu_limit = || match (r.cpu_quota, r.cpu_period) {
        (Some(q), Some(p)) if q > 0 && p > 0 => (q as u64 * 1000).div_ceil(p),
        _ => host_cpus_milli(),
    };
    let (amount, is_cpu) = match resource {
        "limits.cpu" => (cpu_limit(), true),
        "requests.cpu" => (
            r.cpu_shares.map(|s| (s * 1000).div_ceil(1024)).unwrap_or(0),
            true,
        ),
        "limits.memory" => (
            r.memory_limit.map(|m| m as u64).unwrap_or_else(host_memory),
            false,
        ),
        "requests.memory" => (r.memory_reservation.unwrap_or(0) as u64, false),
        o => {
            return Err(Error::Invalid(format!(
                "resourceFieldRef.resource: {o:?} is not supported (limits.cpu, requests.cpu, limits.memory, requests.memory)"
            )));
        }
    };
    let d = if divisor.is_empty() { "1" } else { divisor };
    let unit = if is_cpu { 1000.0 } else { 1.0 };
    let div = crate::pod::manifest::quantity(&serde_json::Value::String(d.into()), unit, "divisor")
        .map_err(|e| Error::Invalid(format!("resourceFieldRef.divisor: {e}")))?;
    if div == 0 {
        return Err(Error::Invalid(
            "resourceFieldRef.divisor: must be more than 0".into(),
        ));
    }
    Ok(amount.div_ceil(div))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let known: BTreeMap<&str, &str> = [("A", "1"), ("B", "two")].into();
        for (input, want) in [
            ("$(A)", "1"),
            ("x$(A)y$(B)z", "x1ytwoz"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$1"),
            ("$(C)", "$(C)"),
            ("$(A", "$(A"),
            ("$A", "$A"),
            ("cost: $5", "cost: $5"),
            ("", ""),
        ] {
            assert_eq!(expand(input, &known), want, "{input}");
        }
    }

    #[test]
    fn resource_values_round_up_in_divisor_units() {
        let r = Resources {
            cpu_quota: Some(150_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
            cpu_shares: Some(512),
            ..Resources::default()
        };
        assert_eq!(resource_value(&r, "limits.cpu", "1").unwrap(), 2);
        assert_eq!(resource_value(&r, "limits.cpu", "1m").unwrap(), 1500);
        assert_eq!(resource_value(&r, "requests.cpu", "1m").unwrap(), 500);
        assert_eq!(resource_value(&r, "limits.memory", "1Mi").unwrap(), 64);
        assert_eq!(resource_value(&r, "limits.memory", "").unwrap(), 64 << 20);
        let none = Resources::default();
        let cpus = std::thread::available_parallelism().unwrap().get() as u64;
        assert_eq!(resource_value(&none, "limits.cpu", "1").unwrap(), cpus);
        assert!(resource_value(&none, "limits.memory", "1").unwrap() > 0);
        assert!(resource_value(&r, "limits.ephemeral-storage", "1").is_err());
    }
}
