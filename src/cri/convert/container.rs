//! ContainerConfig → berth's; container records → Container and ContainerStatus; limits.

use k8s_cri::v1 as cri;
use tonic::Status;

use super::*;
use crate::pod::store::ContainerState;
use crate::pod::{self, ContainerInfo};

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
            sec.seccomp = super::security::seccomp(sc.seccomp.as_ref(), path, unset_seccomp, at)?;
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
