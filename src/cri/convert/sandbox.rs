//! PodSandboxConfig → PodConfig; pod records → PodSandbox and PodSandboxStatus.

use std::path::PathBuf;

use k8s_cri::v1 as cri;
use tonic::Status;

use super::*;
use crate::pod::store::{PodRecord, PodState};
use crate::pod::{self};

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
