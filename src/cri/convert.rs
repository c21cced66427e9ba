//! CRI messages ↔ berth's pod types, and errors → gRPC codes.

use std::collections::HashMap;
use std::path::PathBuf;

use k8s_cri::v1 as cri;
use tonic::Status;

use crate::pod::store::{ContainerState, PodRecord, PodState};
use crate::pod::{self, ContainerInfo};

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

fn map(m: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn btree(m: &HashMap<String, String>) -> std::collections::BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Does every `selector` label match?
pub fn labels_match(
    labels: &std::collections::BTreeMap<String, String>,
    selector: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

// ----- pods

/// A PodSandboxConfig as berth's PodConfig. Fields berth cannot honour are refused by name.
pub fn pod_config(c: &cri::PodSandboxConfig) -> Result<pod::PodConfig, Status> {
    let md = c
        .metadata
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("config.metadata: missing"))?;
    if md.name.is_empty() {
        return Err(Status::invalid_argument("config.metadata.name: empty"));
    }
    let mut p = pod::PodConfig {
        name: md.name.clone(),
        namespace: md.namespace.clone(),
        uid: md.uid.clone(),
        attempt: md.attempt,
        labels: btree(&c.labels),
        annotations: btree(&c.annotations),
        hostname: (!c.hostname.is_empty()).then(|| c.hostname.clone()),
        log_directory: (!c.log_directory.is_empty()).then(|| PathBuf::from(&c.log_directory)),
        dns: c.dns_config.as_ref().map(|d| pod::DnsConfig {
            nameservers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
        restart_policy: pod::RestartPolicy::Never,
        ..Default::default()
    };
    for (i, m) in c.port_mappings.iter().enumerate() {
        let port = |v: i32, f: &str| {
            u16::try_from(v).map_err(|_| {
                Status::invalid_argument(format!(
                    "config.port_mappings[{i}].{f}: {v} is not a port"
                ))
            })
        };
        let (container_port, host_port) = (
            port(m.container_port, "container_port")?,
            port(m.host_port, "host_port")?,
        );
        // kubelet lists every containerPort; only those with a hostPort are mapped
        if host_port == 0 {
            continue;
        }
        p.port_mappings.push(pod::PortMapping {
            container_port,
            host_port,
            protocol: match cri::Protocol::try_from(m.protocol) {
                Ok(cri::Protocol::Tcp) => "tcp",
                Ok(cri::Protocol::Udp) => "udp",
                Ok(cri::Protocol::Sctp) => "sctp",
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "config.port_mappings[{i}].protocol: unknown value {}",
                        m.protocol
                    )));
                }
            }
            .into(),
            host_ip: (!m.host_ip.is_empty()).then(|| m.host_ip.clone()),
        });
    }
    if let Some(l) = &c.linux {
        if !l.cgroup_parent.is_empty() {
            p.cgroup_parent = Some(l.cgroup_parent.clone());
        }
        p.sysctls = btree(&l.sysctls);
        if let Some(r) = &l.resources {
            p.resources = Some(resources(r, "config.linux.resources")?);
        }
        if let Some(sc) = &l.security_context {
            if let Some(ns) = &sc.namespace_options {
                p.host_network = ns.network == cri::NamespaceMode::Node as i32;
                p.host_ipc = ns.ipc == cri::NamespaceMode::Node as i32;
                p.host_pid = ns.pid == cri::NamespaceMode::Node as i32;
                p.share_pid = ns.pid == cri::NamespaceMode::Pod as i32;
                if ns
                    .userns_options
                    .as_ref()
                    .is_some_and(|u| u.mode != cri::NamespaceMode::Node as i32)
                {
                    return Err(Status::invalid_argument(
                        "config.linux.security_context.namespace_options.userns_options: pods in user namespaces are not supported",
                    ));
                }
            }
        }
    }
    Ok(p)
}

pub fn pod_state(s: PodState) -> i32 {
    match s {
        PodState::Ready => cri::PodSandboxState::SandboxReady as i32,
        PodState::NotReady => cri::PodSandboxState::SandboxNotready as i32,
    }
}

pub fn pod_metadata(r: &PodRecord) -> cri::PodSandboxMetadata {
    cri::PodSandboxMetadata {
        name: r.config.name.clone(),
        uid: r.config.uid.clone(),
        namespace: r.config.namespace.clone(),
        attempt: r.config.attempt,
    }
}

pub fn pod_sandbox(r: &PodRecord) -> cri::PodSandbox {
    cri::PodSandbox {
        id: r.id.clone(),
        metadata: Some(pod_metadata(r)),
        state: pod_state(r.state),
        created_at: nanos(Some(&r.created)),
        labels: map(&r.config.labels),
        annotations: map(&r.config.annotations),
        runtime_handler: String::new(),
    }
}

pub fn namespace_options(c: &pod::PodConfig) -> cri::NamespaceOption {
    let mode = |node: bool| {
        if node {
            cri::NamespaceMode::Node as i32
        } else {
            cri::NamespaceMode::Pod as i32
        }
    };
    cri::NamespaceOption {
        network: mode(c.host_network),
        ipc: mode(c.host_ipc),
        pid: if c.host_pid {
            cri::NamespaceMode::Node as i32
        } else if c.share_pid {
            cri::NamespaceMode::Pod as i32
        } else {
            cri::NamespaceMode::Container as i32
        },
        ..Default::default()
    }
}

pub fn pod_sandbox_status(r: &PodRecord) -> cri::PodSandboxStatus {
    let mut ips = r.ips.iter();
    cri::PodSandboxStatus {
        id: r.id.clone(),
        metadata: Some(pod_metadata(r)),
        state: pod_state(r.state),
        created_at: nanos(Some(&r.created)),
        network: Some(cri::PodSandboxNetworkStatus {
            ip: ips.next().cloned().unwrap_or_default(),
            additional_ips: ips.map(|ip| cri::PodIp { ip: ip.clone() }).collect(),
        }),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace {
                options: Some(namespace_options(&r.config)),
            }),
        }),
        labels: map(&r.config.labels),
        annotations: map(&r.config.annotations),
        runtime_handler: String::new(),
    }
}

// ----- containers

/// LinuxContainerResources as berth's limits.
pub fn resources(r: &cri::LinuxContainerResources, at: &str) -> Result<pod::Resources, Status> {
    if !r.hugepage_limits.is_empty() && r.hugepage_limits.iter().any(|h| h.limit > 0) {
        return Err(Status::invalid_argument(format!(
            "{at}.hugepage_limits: hugepage limits of pod containers are not supported"
        )));
    }
    if !r.unified.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{at}.unified: cgroup v2 unified keys are not supported"
        )));
    }
    let pos = |v: i64| (v > 0).then_some(v);
    Ok(pod::Resources {
        cpu_shares: pos(r.cpu_shares).map(|v| v as u64),
        cpu_quota: pos(r.cpu_quota),
        cpu_period: pos(r.cpu_period).map(|v| v as u64),
        cpuset_cpus: (!r.cpuset_cpus.is_empty()).then(|| r.cpuset_cpus.clone()),
        cpuset_mems: (!r.cpuset_mems.is_empty()).then(|| r.cpuset_mems.clone()),
        memory_limit: pos(r.memory_limit_in_bytes),
        memory_reservation: None,
        pids_limit: None,
    })
}

pub fn cri_resources(r: &pod::Resources) -> cri::LinuxContainerResources {
    cri::LinuxContainerResources {
        cpu_period: r.cpu_period.unwrap_or(0) as i64,
        cpu_quota: r.cpu_quota.unwrap_or(0),
        cpu_shares: r.cpu_shares.unwrap_or(0) as i64,
        memory_limit_in_bytes: r.memory_limit.unwrap_or(0),
        memory_swap_limit_in_bytes: r.memory_limit.unwrap_or(0),
        cpuset_cpus: r.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: r.cpuset_mems.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// A container's seccomp filter from its security context, as containerd chooses it: the
/// `seccomp` message when present (RuntimeDefault, its zero value, is berth's default profile),
/// else the deprecated `seccomp_profile_path`, else `unset` (the config's `default_seccomp`,
/// unconfined unless changed).
fn seccomp(
    p: Option<&cri::SecurityProfile>,
    path: &str,
    unset: &pod::Seccomp,
    at: &str,
) -> Result<pod::Seccomp, Status> {
    if let Some(p) = p {
        return match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => {
                Ok(pod::Seccomp::RuntimeDefault)
            }
            Ok(cri::security_profile::ProfileType::Unconfined) => Ok(pod::Seccomp::Unconfined),
            Ok(cri::security_profile::ProfileType::Localhost) => {
                if !p.localhost_ref.starts_with('/') {
                    return Err(Status::invalid_argument(format!(
                        "{at}.seccomp.localhost_ref: {:?} is not an absolute path",
                        p.localhost_ref
                    )));
                }
                Ok(pod::Seccomp::Localhost(p.localhost_ref.clone().into()))
            }
            Err(_) => Err(Status::invalid_argument(format!(
                "{at}.seccomp.profile_type: unknown value {}",
                p.profile_type
            ))),
        };
    }
    match path {
        "" => Ok(unset.clone()),
        "runtime/default" | "docker/default" => Ok(pod::Seccomp::RuntimeDefault),
        "unconfined" => Ok(pod::Seccomp::Unconfined),
        p if p.starts_with("localhost/") => Ok(pod::Seccomp::Localhost(p[10..].into())),
        p => Err(Status::invalid_argument(format!(
            "{at}.seccomp_profile_path: {p:?} is not runtime/default, docker/default, unconfined or localhost/PATH"
        ))),
    }
}

/// A CRI ContainerConfig as berth's. `log_dir`: the sandbox's log directory, which the CRI's
/// relative log_path is under; `unset_seccomp`: the filter of a container that asks for none.
pub fn container_config(
    c: &cri::ContainerConfig,
    log_dir: &std::path::Path,
    unset_seccomp: &pod::Seccomp,
) -> Result<pod::ContainerConfig, Status> {
    let md = c
        .metadata
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("config.metadata: missing"))?;
    if md.name.is_empty() {
        return Err(Status::invalid_argument("config.metadata.name: empty"));
    }
    let image = c
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default();
    if image.is_empty() {
        return Err(Status::invalid_argument("config.image.image: empty"));
    }
    if !c.cdi_devices.is_empty() {
        return Err(Status::invalid_argument(
            "config.cdi_devices: CDI devices are not supported",
        ));
    }
    let mut out = pod::ContainerConfig {
        name: md.name.clone(),
        attempt: md.attempt,
        image,
        pull: pod::PullPolicy::Never,
        command: c.command.clone(),
        args: c.args.clone(),
        env: c
            .envs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        working_dir: (!c.working_dir.is_empty()).then(|| c.working_dir.clone()),
        labels: btree(&c.labels),
        annotations: btree(&c.annotations),
        log_path: (!c.log_path.is_empty()).then(|| log_dir.join(&c.log_path)),
        tty: c.tty,
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        ..Default::default()
    };
    for (i, m) in c.mounts.iter().enumerate() {
        let at = format!("config.mounts[{i}]");
        if m.recursive_read_only {
            return Err(Status::invalid_argument(format!(
                "{at}.recursive_read_only: not supported"
            )));
        }
        if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{at}.uid_mappings: idmapped mounts are not supported"
            )));
        }
        if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
            return Err(Status::invalid_argument(format!(
                "{at}.image: image volumes are not supported"
            )));
        }
        if !m.container_path.starts_with('/') || !m.host_path.starts_with('/') {
            return Err(Status::invalid_argument(format!(
                "{at}: container_path {:?} and host_path {:?} must be absolute",
                m.container_path, m.host_path
            )));
        }
        out.mounts.push(pod::Mount {
            container_path: m.container_path.clone(),
            source: pod::MountSource::Host(m.host_path.clone().into()),
            readonly: m.readonly,
            propagation: match cri::MountPropagation::try_from(m.propagation) {
                Ok(cri::MountPropagation::PropagationPrivate) => "rprivate",
                Ok(cri::MountPropagation::PropagationHostToContainer) => "rslave",
                Ok(cri::MountPropagation::PropagationBidirectional) => "rshared",
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "{at}.propagation: unknown value {}",
                        m.propagation
                    )));
                }
            }
            .into(),
        });
    }
    for d in &c.devices {
        out.devices.push(pod::Device {
            host_path: d.host_path.clone().into(),
            container_path: d.container_path.clone(),
            permissions: if d.permissions.is_empty() {
                "rwm".into()
            } else {
                d.permissions.clone()
            },
        });
    }
    let mut sec = pod::Security {
        allow_privilege_escalation: true,
        seccomp: unset_seccomp.clone(),
        ..Default::default()
    };
    if let Some(l) = &c.linux {
        if let Some(r) = &l.resources {
            out.resources = resources(r, "config.linux.resources")?;
        }
        if let Some(sc) = &l.security_context {
            let at = "config.linux.security_context";
            if let Some(caps) = &sc.capabilities {
                if !caps.add_ambient_capabilities.is_empty() {
                    return Err(Status::invalid_argument(format!(
                        "{at}.capabilities.add_ambient_capabilities: not supported"
                    )));
                }
                sec.caps_add = caps.add_capabilities.clone();
                sec.caps_drop = caps.drop_capabilities.clone();
            }
            sec.privileged = sc.privileged;
            sec.readonly_rootfs = sc.readonly_rootfs;
            sec.allow_privilege_escalation = !sc.no_new_privs;
            let id = |v: i64, f: &str| {
                u32::try_from(v)
                    .map_err(|_| Status::invalid_argument(format!("{at}.{f}: {v} is not a uid")))
            };
            if let Some(u) = &sc.run_as_user {
                sec.run_as_user = Some(id(u.value, "run_as_user")?);
            }
            if !sc.run_as_username.is_empty() {
                sec.run_as_username = Some(sc.run_as_username.clone());
            }
            if let Some(g) = &sc.run_as_group {
                if sec.run_as_user.is_none() && sec.run_as_username.is_none() {
                    return Err(Status::invalid_argument(format!(
                        "{at}.run_as_group: set without run_as_user or run_as_username"
                    )));
                }
                sec.run_as_group = Some(id(g.value, "run_as_group")?);
            }
            for g in &sc.supplemental_groups {
                sec.supplemental_groups.push(id(*g, "supplemental_groups")?);
            }
            if !sc.masked_paths.is_empty() {
                sec.masked_paths = Some(sc.masked_paths.clone());
            }
            if !sc.readonly_paths.is_empty() {
                sec.readonly_paths = Some(sc.readonly_paths.clone());
            }
            // kubelets before 1.25 send the deprecated path form only
            #[allow(deprecated)]
            let path = &sc.seccomp_profile_path;
            sec.seccomp = seccomp(sc.seccomp.as_ref(), path, unset_seccomp, at)?;
            if let Some(a) = &sc.apparmor
                && a.profile_type == cri::security_profile::ProfileType::Localhost as i32
            {
                return Err(Status::invalid_argument(format!(
                    "{at}.apparmor: this host has no AppArmor profiles to load"
                )));
            }
            if let Some(ns) = &sc.namespace_options
                && ns.pid == cri::NamespaceMode::Target as i32
            {
                if ns.target_id.is_empty() {
                    return Err(Status::invalid_argument(format!(
                        "{at}.namespace_options.target_id: empty with pid mode TARGET"
                    )));
                }
                out.pid_target = Some(ns.target_id.clone());
            }
        }
    }
    out.security = sec;
    Ok(out)
}

pub fn container_state(c: &ContainerInfo) -> i32 {
    match c.status.state {
        ContainerState::Pending | ContainerState::Created => {
            cri::ContainerState::ContainerCreated as i32
        }
        ContainerState::Running => cri::ContainerState::ContainerRunning as i32,
        ContainerState::Exited => cri::ContainerState::ContainerExited as i32,
    }
}

fn image_spec(c: &ContainerInfo) -> cri::ImageSpec {
    cri::ImageSpec {
        image: c.record.image.clone(),
        user_specified_image: c.record.config.image.clone(),
        ..Default::default()
    }
}

pub fn container_metadata(c: &ContainerInfo) -> cri::ContainerMetadata {
    cri::ContainerMetadata {
        name: c.record.config.name.clone(),
        attempt: c.record.config.attempt,
    }
}

pub fn container(c: &ContainerInfo) -> cri::Container {
    cri::Container {
        id: c.record.id.clone(),
        pod_sandbox_id: c.record.pod_id.clone(),
        metadata: Some(container_metadata(c)),
        image: Some(image_spec(c)),
        image_ref: c.record.image_id.clone(),
        state: container_state(c),
        created_at: nanos(Some(&c.record.created)),
        labels: map(&c.record.config.labels),
        annotations: map(&c.record.config.annotations),
        image_id: c.record.image_id.clone(),
    }
}

pub fn container_status(c: &ContainerInfo) -> cri::ContainerStatus {
    let s = &c.status;
    let exited = s.state == ContainerState::Exited;
    cri::ContainerStatus {
        id: c.record.id.clone(),
        metadata: Some(container_metadata(c)),
        state: container_state(c),
        created_at: nanos(Some(&c.record.created)),
        started_at: nanos(s.started_at.as_deref()),
        finished_at: nanos(s.finished_at.as_deref()),
        exit_code: if exited { s.exit_code.unwrap_or(0) } else { 0 },
        image: Some(image_spec(c)),
        image_ref: c.record.image_id.clone(),
        reason: if exited {
            s.reason.clone().unwrap_or_default()
        } else {
            String::new()
        },
        message: s.message.clone().unwrap_or_default(),
        labels: map(&c.record.config.labels),
        annotations: map(&c.record.config.annotations),
        mounts: c
            .record
            .config
            .mounts
            .iter()
            .filter_map(|m| match &m.source {
                pod::MountSource::Host(p) => Some(cri::Mount {
                    container_path: m.container_path.clone(),
                    host_path: p.display().to_string(),
                    readonly: m.readonly,
                    propagation: match m.propagation.as_str() {
                        "rslave" => cri::MountPropagation::PropagationHostToContainer as i32,
                        "rshared" => cri::MountPropagation::PropagationBidirectional as i32,
                        _ => cri::MountPropagation::PropagationPrivate as i32,
                    },
                    ..Default::default()
                }),
                pod::MountSource::Volume { .. } => None,
            })
            .collect(),
        log_path: c.record.log_path.display().to_string(),
        resources: Some(cri::ContainerResources {
            linux: Some(cri_resources(&c.record.config.resources)),
            windows: None,
        }),
        image_id: c.record.image_id.clone(),
        user: None,
    }
}

// ----- verbose info, shaped as containerd's (`crictl inspect` reads `.info.pid`)

/// ContainerStatus's verbose `info`: the sandbox, the init's pid, the container's config and
/// its runtime spec (the bundle's config.json), and berth's own status record.
pub fn container_verbose_info(c: &ContainerInfo) -> serde_json::Value {
    let spec: serde_json::Value = std::fs::read(c.record.bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "sandboxID": c.record.pod_id,
        "pid": c.status.pid,
        "removing": false,
        "runtimeType": "berth",
        "bundle": c.record.bundle,
        "config": c.record.config,
        "runtimeSpec": spec,
        "status": c.status,
    })
}

/// PodSandboxStatus's verbose `info`: the monitor's pid, whether the pod's network namespace
/// is still there and its path, the pod's config, its CNI result, and a runtime spec holding
/// the namespaces its containers join (berth runs no infra container).
pub fn pod_verbose_info(st: &pod::PodStatus, cni: Option<&serde_json::Value>) -> serde_json::Value {
    let ns: Vec<serde_json::Value> = ["network", "ipc", "uts"]
        .iter()
        .zip(["net", "ipc", "uts"])
        .filter_map(|(oci, kind)| {
            st.namespace_paths
                .get(kind)
                .map(|p| serde_json::json!({"type": oci, "path": p}))
        })
        .collect();
    let netns = st.namespace_paths.get("net");
    serde_json::json!({
        "pid": st.monitor_pid.unwrap_or(0),
        "processStatus": if st.monitor_pid.is_some() { "running" } else { "stopped" },
        "netNamespaceClosed": !st.record.config.host_network && !st.namespaces.contains_key("net"),
        "netNamespacePath": netns,
        "runtimeHandler": "",
        "runtimeType": "berth",
        "config": st.record.config,
        "cniResult": cni,
        "runtimeSpec": {"linux": {"namespaces": ns, "cgroupsPath": st.record.cgroup}},
        "record": st.record,
        "containers": st.containers,
    })
}

// ----- stats

fn u64v(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

pub fn cpu(s: &crate::linux::cgroup::stats::Stats, ts: i64) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: ts,
        usage_core_nano_seconds: u64v(s.cpu.usage.total),
        usage_nano_cores: None,
    }
}

pub fn memory(s: &crate::linux::cgroup::stats::Stats, ts: i64) -> cri::MemoryUsage {
    let m = &s.memory;
    let raw = |k: &str| m.raw.get(k).copied();
    // the working set as kubelet and cAdvisor count it: usage minus inactive file pages
    let inactive = raw("total_inactive_file")
        .or(raw("inactive_file"))
        .unwrap_or(0);
    let rss = raw("total_rss").or(raw("rss")).or(raw("anon")).unwrap_or(0);
    let available = (m.usage.limit != u64::MAX && m.usage.limit > 0 && m.usage.limit < 1 << 62)
        .then(|| {
            m.usage
                .limit
                .saturating_sub(m.usage.usage.saturating_sub(inactive))
        });
    cri::MemoryUsage {
        timestamp: ts,
        working_set_bytes: u64v(m.usage.usage.saturating_sub(inactive)),
        available_bytes: available.and_then(u64v),
        usage_bytes: u64v(m.usage.usage),
        rss_bytes: u64v(rss),
        page_faults: raw("total_pgfault").or(raw("pgfault")).and_then(u64v),
        major_page_faults: raw("total_pgmajfault").or(raw("pgmajfault")).and_then(u64v),
    }
}

pub fn container_stats(
    c: &ContainerInfo,
    s: &crate::linux::cgroup::stats::Stats,
) -> cri::ContainerStats {
    let ts = now_nanos();
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: c.record.id.clone(),
            metadata: Some(container_metadata(c)),
            labels: map(&c.record.config.labels),
            annotations: map(&c.record.config.annotations),
        }),
        cpu: Some(cpu(s, ts)),
        memory: Some(memory(s, ts)),
        writable_layer: None,
        swap: None,
    }
}

/// Interface counters of `/proc/<pid>/net/dev` (a process in the pod's network namespace).
pub fn network(pid: i32) -> Option<cri::NetworkUsage> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let mut ifs = Vec::new();
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let n: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if n.len() < 16 {
            continue;
        }
        ifs.push(cri::NetworkInterfaceUsage {
            name: name.to_string(),
            rx_bytes: u64v(n[0]),
            rx_errors: u64v(n[2]),
            tx_bytes: u64v(n[8]),
            tx_errors: u64v(n[10]),
        });
    }
    Some(cri::NetworkUsage {
        timestamp: now_nanos(),
        default_interface: ifs
            .iter()
            .find(|i| i.name == "eth0")
            .or(ifs.first())
            .cloned(),
        interfaces: ifs,
    })
}
