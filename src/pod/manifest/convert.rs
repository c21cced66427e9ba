//! Kubernetes' Pod fields → berth's [`PodConfig`] and [`ContainerConfig`]s: quantities,
//! resources, names, containers, volumes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::PodManifest;
use super::k8s::*;
use crate::pod::config::*;
use crate::pod::error::{Error, Result};

/// A Kubernetes quantity (`500m`, `1.5`, `128Mi`, `1G`, `2e3`) scaled by `unit` (1000 for
/// millicores of a CPU count, 1 for bytes), rounded up.
pub fn quantity(v: &Value, unit: f64, path: &str) -> Result<u64> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(Error::Manifest(format!("{path}: expected a quantity"))),
    };
    let bad = || Error::Manifest(format!("{path}: {s:?} is not a quantity"));
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let mut n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    n *= mult * unit;
    if !n.is_finite() || !(0.0..=9.2e18).contains(&n) {
        return Err(bad());
    }
    Ok(n.ceil() as u64)
}

/// Kubernetes' conversion of CPU to cgroup settings: shares from the request, quota from the
/// limit (period 100 ms).
fn resources(r: &K8sResources, path: &str) -> Result<Resources> {
    let mut out = Resources::default();
    if let Some(v) = &r.requests.cpu {
        let milli = quantity(v, 1000.0, &format!("{path}.requests.cpu"))?;
        out.cpu_shares = Some(Resources::cpu_shares_of(milli));
    }
    if let Some(v) = &r.limits.cpu {
        let milli = quantity(v, 1000.0, &format!("{path}.limits.cpu"))?;
        out.cpu_period = Some(100_000);
        out.cpu_quota = Some(((milli * 100_000) / 1000).max(1000) as i64);
        if out.cpu_shares.is_none() {
            // a limit without a request requests the limit, as Kubernetes defaults it
            out.cpu_shares = Some(Resources::cpu_shares_of(milli));
        }
    }
    if let Some(v) = &r.limits.memory {
        out.memory_limit = Some(quantity(v, 1.0, &format!("{path}.limits.memory"))? as i64);
    }
    if let Some(v) = &r.requests.memory {
        out.memory_reservation = Some(quantity(v, 1.0, &format!("{path}.requests.memory"))? as i64);
    }
    Ok(out)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// One container of the manifest.
/// One container, and the host ports it asks for.
fn container(
    c: Container,
    path: &str,
    init: bool,
    ps: &PodSecurity,
    volumes: &[Volume],
) -> Result<(ContainerConfig, Vec<PortMapping>)> {
    let err = |field: &str, m: String| Error::Manifest(format!("{path}.{field}: {m}"));
    if !is_dns_label(&c.name) {
        return Err(err(
            "name",
            format!(
                "{:?} is not a DNS label (lowercase letters, digits, '-')",
                c.name
            ),
        ));
    }
    if c.image.is_empty() {
        return Err(err("image", "required".into()));
    }
    crate::image::model::parse_reference(&c.image).map_err(|e| err("image", e.to_string()))?;
    let pull = match c.image_pull_policy.as_deref() {
        None => {
            // Kubernetes' default: Always for :latest or no tag, else IfNotPresent
            let r = crate::image::model::parse_reference(&c.image)
                .map_err(|e| err("image", e.to_string()))?;
            if r.digest().is_none() && (r.tag() == Some("latest") || !c.image.contains(':')) {
                PullPolicy::Always
            } else {
                PullPolicy::IfNotPresent
            }
        }
        Some("Always") => PullPolicy::Always,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        Some("Never") => PullPolicy::Never,
        Some(o) => {
            return Err(err(
                "imagePullPolicy",
                format!("{o:?}: expected Always, IfNotPresent or Never"),
            ));
        }
    };
    let mut env = Vec::new();
    for (i, e) in c.env.into_iter().enumerate() {
        if e.name.is_empty() || e.name.contains('=') {
            return Err(err(
                &format!("env[{i}].name"),
                format!("{:?} is not a variable name", e.name),
            ));
        }
        env.push((e.name, e.value.unwrap_or_default()));
    }
    let mut mounts = Vec::new();
    for (i, m) in c.volume_mounts.into_iter().enumerate() {
        let p = format!("volumeMounts[{i}]");
        if !volumes.iter().any(|v| v.name == m.name) {
            return Err(err(
                &format!("{p}.name"),
                format!("no volume {:?} in spec.volumes", m.name),
            ));
        }
        if !m.mount_path.starts_with('/') {
            return Err(err(
                &format!("{p}.mountPath"),
                format!("{:?} is not absolute", m.mount_path),
            ));
        }
        if let Some(sp) = &m.sub_path {
            if sp.starts_with('/') || sp.split('/').any(|c| c == "..") {
                return Err(err(
                    &format!("{p}.subPath"),
                    format!("{sp:?} must be relative and stay inside the volume"),
                ));
            }
        }
        let propagation = match m.mount_propagation.as_deref() {
            None | Some("None") => "rprivate",
            Some("HostToContainer") => "rslave",
            Some("Bidirectional") => "rshared",
            Some(o) => {
                return Err(err(
                    &format!("{p}.mountPropagation"),
                    format!("{o:?}: expected None, HostToContainer or Bidirectional"),
                ));
            }
        };
        mounts.push(Mount {
            container_path: m.mount_path,
            source: MountSource::Volume {
                name: m.name,
                sub_path: m.sub_path.filter(|s| !s.is_empty()),
            },
            readonly: m.read_only,
            propagation: propagation.into(),
        });
    }
    let mut ports = Vec::new();
    let mut host = Vec::new();
    for (i, p) in c.ports.iter().enumerate() {
        if p.container_port == 0 {
            return Err(err(
                &format!("ports[{i}].containerPort"),
                "must be 1-65535".into(),
            ));
        }
        let protocol = match p.protocol.as_deref() {
            None | Some("TCP") => "tcp",
            Some("UDP") => "udp",
            Some("SCTP") => "sctp",
            Some(o) => {
                return Err(err(
                    &format!("ports[{i}].protocol"),
                    format!("{o:?}: expected TCP, UDP or SCTP"),
                ));
            }
        };
        ports.push(p.container_port);
        if let Some(hp) = p.host_port.filter(|h| *h != 0) {
            host.push(PortMapping {
                container_port: p.container_port,
                host_port: hp,
                protocol: protocol.into(),
                host_ip: p.host_ip.clone(),
            });
        }
    }
    if c.tty || c.stdin {
        let f = if c.tty { "tty" } else { "stdin" };
        return Err(err(
            f,
            "not supported yet (pod containers write to their log; use `berth pod exec -it`)"
                .into(),
        ));
    }
    let sc = c.security_context;
    let norm = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|c| {
                c.to_ascii_uppercase()
                    .trim_start_matches("CAP_")
                    .to_string()
            })
            .collect()
    };
    let cfg = ContainerConfig {
        name: c.name,
        image: c.image,
        pull,
        command: c.command,
        args: c.args,
        env,
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        mounts,
        resources: resources(&c.resources, &format!("{path}.resources"))?,
        security: Security {
            run_as_user: sc.run_as_user.or(ps.run_as_user),
            run_as_group: sc.run_as_group.or(ps.run_as_group),
            run_as_non_root: sc.run_as_non_root.or(ps.run_as_non_root).unwrap_or(false),
            caps_add: norm(sc.capabilities.add),
            caps_drop: norm(sc.capabilities.drop),
            privileged: sc.privileged,
            readonly_rootfs: sc.read_only_root_filesystem,
            allow_privilege_escalation: sc.allow_privilege_escalation.unwrap_or(true),
            ..Default::default()
        },
        log_path: None,
        tty: c.tty,
        stdin: c.stdin,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        init,
        stop_signal: None,
        ports,
        ..Default::default()
    };
    Ok((cfg, host))
}

/// `projected`: the volumes that take files from ConfigMaps, Secrets or the pod, by index
/// (read by `refs`).
pub(super) fn convert(
    p: Pod,
    projected: &std::collections::BTreeMap<usize, VolumeSource>,
) -> Result<PodManifest> {
    let err = |path: &str, m: String| Error::Manifest(format!("{path}: {m}"));
    if p.api_version != "v1" {
        return Err(err(
            "apiVersion",
            format!("{:?}: expected v1", p.api_version),
        ));
    }
    if p.kind != "Pod" {
        return Err(err("kind", format!("{:?}: expected Pod", p.kind)));
    }
    if !is_dns_subdomain(&p.metadata.name) {
        return Err(err(
            "metadata.name",
            format!("{:?} is not a DNS subdomain name", p.metadata.name),
        ));
    }
    let namespace = p
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    if !is_dns_label(&namespace) {
        return Err(err(
            "metadata.namespace",
            format!("{namespace:?} is not a DNS label"),
        ));
    }
    let s = &p.spec;
    if s.containers.is_empty() {
        return Err(err(
            "spec.containers",
            "a pod needs at least one container".into(),
        ));
    }
    let mut volumes = Vec::new();
    for (i, v) in s.volumes.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        if !is_dns_label(&v.name) {
            return Err(err(
                &format!("{path}.name"),
                format!("{:?} is not a DNS label", v.name),
            ));
        }
        if volumes.iter().any(|o: &Volume| o.name == v.name) {
            return Err(err(
                &format!("{path}.name"),
                format!("{:?} is defined twice", v.name),
            ));
        }
        if let Some(src) = projected.get(&i) {
            let others = v.empty_dir.is_some()
                || v.host_path.is_some()
                || v.persistent_volume_claim.is_some();
            if others {
                return Err(err(&path, "needs exactly one volume source".into()));
            }
            volumes.push(Volume {
                name: v.name.clone(),
                source: src.clone(),
            });
            continue;
        }
        let source = match (&v.empty_dir, &v.host_path) {
            (None, None) if v.persistent_volume_claim.is_some() => {
                let c = v.persistent_volume_claim.as_ref().expect("checked");
                if !is_dns_subdomain(&c.claim_name) {
                    return Err(err(
                        &format!("{path}.persistentVolumeClaim.claimName"),
                        format!("{:?} is not a valid claim name", c.claim_name),
                    ));
                }
                VolumeSource::Claim {
                    claim: c.claim_name.clone(),
                    read_only: c.read_only,
                    path: None,
                }
            }
            (Some(e), None) if v.persistent_volume_claim.is_none() => VolumeSource::EmptyDir {
                memory: match e.medium.as_deref() {
                    None | Some("") => false,
                    Some("Memory") => true,
                    Some(o) => {
                        return Err(err(
                            &format!("{path}.emptyDir.medium"),
                            format!("{o:?}: expected \"\" or Memory"),
                        ));
                    }
                },
                size_limit: e
                    .size_limit
                    .as_ref()
                    .map(|q| quantity(q, 1.0, &format!("{path}.emptyDir.sizeLimit")))
                    .transpose()?,
            },
            (None, Some(h)) if v.persistent_volume_claim.is_none() => {
                if !h.path.starts_with('/') {
                    return Err(err(
                        &format!("{path}.hostPath.path"),
                        format!("{:?} is not absolute", h.path),
                    ));
                }
                let kind = h.kind.clone().unwrap_or_default();
                if ![
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ]
                .contains(&kind.as_str())
                {
                    return Err(err(
                        &format!("{path}.hostPath.type"),
                        format!("{kind:?} is not a hostPath type"),
                    ));
                }
                VolumeSource::HostPath {
                    path: PathBuf::from(&h.path),
                    kind,
                }
            }
            _ => {
                return Err(err(
                    &path,
                    "needs exactly one of emptyDir, hostPath, persistentVolumeClaim, configMap, secret, downwardAPI and projected".into(),
                ));
            }
        };
        volumes.push(Volume {
            name: v.name.clone(),
            source,
        });
    }
    let spec = p.spec;
    let mut containers = Vec::new();
    let mut port_mappings: Vec<PortMapping> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (list, key, init) in [
        (spec.init_containers, "initContainers", true),
        (spec.containers, "containers", false),
    ] {
        for (i, c) in list.into_iter().enumerate() {
            let path = format!("spec.{key}[{i}]");
            if !names.insert(c.name.clone()) {
                return Err(err(
                    &format!("{path}.name"),
                    format!("{:?} is used twice", c.name),
                ));
            }
            let (cfg, host) = container(c, &path, init, &spec.security_context, &volumes)?;
            for h in host {
                if port_mappings
                    .iter()
                    .any(|o| o.host_port == h.host_port && o.protocol == h.protocol)
                {
                    return Err(err(
                        &format!("{path}.ports"),
                        format!("hostPort {}/{} is used twice", h.host_port, h.protocol),
                    ));
                }
                port_mappings.push(h);
            }
            containers.push(cfg);
        }
    }
    let dns = match (spec.dns_policy.as_deref(), spec.dns_config) {
        (None | Some("ClusterFirst") | Some("Default") | Some("ClusterFirstWithHostNet"), cfg)
        | (Some("None"), cfg @ Some(_)) => cfg.map(|d| DnsConfig {
            nameservers: d.nameservers,
            searches: d.searches,
            options: d
                .options
                .into_iter()
                .map(|o| match o.value {
                    Some(v) => format!("{}:{v}", o.name),
                    None => o.name,
                })
                .collect(),
        }),
        (Some("None"), None) => {
            return Err(err("spec.dnsConfig", "required with dnsPolicy None".into()));
        }
        (Some(o), _) => {
            return Err(err(
                "spec.dnsPolicy",
                format!("{o:?}: expected ClusterFirst, Default or None"),
            ));
        }
    };
    let mut sysctls = BTreeMap::new();
    for (i, sc) in spec.security_context.sysctls.into_iter().enumerate() {
        if sc.name.is_empty() {
            return Err(err(
                &format!("spec.securityContext.sysctls[{i}].name"),
                "required".into(),
            ));
        }
        sysctls.insert(sc.name, sc.value.unwrap_or_default());
    }
    if let Some(h) = &spec.hostname {
        if !is_dns_label(h) {
            return Err(err("spec.hostname", format!("{h:?} is not a DNS label")));
        }
    }
    let restart_policy = match spec.restart_policy.as_deref() {
        None | Some("Always") => RestartPolicy::Always,
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        Some(o) => {
            return Err(err(
                "spec.restartPolicy",
                format!("{o:?}: expected Always, OnFailure or Never"),
            ));
        }
    };
    let pod = PodConfig {
        name: p.metadata.name,
        namespace,
        uid: p.metadata.uid.unwrap_or_default(),
        labels: p.metadata.labels,
        annotations: p.metadata.annotations,
        hostname: spec.hostname,
        host_network: spec.host_network,
        share_pid: spec.share_process_namespace,
        dns,
        port_mappings,
        sysctls,
        cgroup_parent: None,
        log_directory: None,
        resources: None,
        volumes,
        termination_grace_seconds: spec.termination_grace_period_seconds.unwrap_or(30),
        restart_policy,
        image_pull_secrets: spec
            .image_pull_secrets
            .into_iter()
            .map(|s| s.name)
            .collect(),
        ..Default::default()
    };
    Ok(PodManifest {
        pod,
        containers,
        source: Value::Null,
    })
}
