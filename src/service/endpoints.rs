//! A service's endpoints among the pods of one state root: pods of its namespace whose labels
//! match its selector and whose containers all run, each with the port every service port
//! targets (a named targetPort is looked up in the pod's own container ports). A pod that
//! matches but cannot serve is listed with why, for `service inspect`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::{Protocol, Service, TargetPort};
use crate::pod::{ContainerState, PodState, Runtime};

/// What a resync needs of a pod.
#[derive(Debug, Clone)]
pub struct PodView {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ip: Option<Ipv4Addr>,
    /// Why it cannot serve now (empty: it can).
    pub not_ready: String,
    /// Its containers' named ports: name → (port, protocol).
    pub named_ports: BTreeMap<String, (u16, Protocol)>,
    /// Where its `/etc/hosts` is (rewritten with the services' names).
    pub hosts_file: std::path::PathBuf,
}

/// An endpoint of a service (or a pod that matches but cannot serve: `why` says so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `namespace/name` of the pod.
    pub pod: String,
    pub pod_id: String,
    pub ip: Option<Ipv4Addr>,
    /// The target port of each service port, in the service's order.
    pub ports: Vec<u16>,
    /// Empty when it serves.
    pub why: String,
}

impl Endpoint {
    pub fn ready(&self) -> bool {
        self.why.is_empty()
    }
}

/// The named ports of a pod's manifest (`spec.containers[].ports[]`).
fn named_ports(manifest: &serde_json::Value) -> BTreeMap<String, (u16, Protocol)> {
    let mut out = BTreeMap::new();
    for c in manifest["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for p in c["ports"].as_array().into_iter().flatten() {
            let (Some(n), Some(port)) = (p["name"].as_str(), p["containerPort"].as_u64()) else {
                continue;
            };
            let proto = if p["protocol"] == "UDP" {
                Protocol::UDP
            } else {
                Protocol::TCP
            };
            out.insert(n.to_string(), (port as u16, proto));
        }
    }
    out
}

/// Every pod of the runtime's state root, as a resync sees it.
pub fn pods(rt: &Runtime) -> crate::pod::Result<Vec<PodView>> {
    let mut out = Vec::new();
    for rec in rt.list_pods()? {
        let st = match rt.pod_status(&rec.id) {
            Ok(s) => s,
            Err(_) => continue, // removed meanwhile
        };
        let apps: Vec<_> = st
            .containers
            .iter()
            .filter(|c| !c.record.config.init)
            .collect();
        let not_ready = if st.record.state != PodState::Ready {
            "the pod is not ready (stopping, stopped or being removed)".to_string()
        } else if rec.config.host_network {
            "a host-network pod has no address of its own".to_string()
        } else if apps.is_empty() {
            "it has no running container yet".to_string()
        } else if let Some(c) = apps
            .iter()
            .find(|c| c.status.state != ContainerState::Running)
        {
            format!("container {} is {:?}", c.record.config.name, c.status.state)
        } else if let Some(c) = apps.iter().find(|c| !c.status.ready) {
            format!("container {} is not ready", c.record.config.name)
        } else {
            String::new()
        };
        let manifest = rt.pod_manifest(&rec.id).ok().flatten().unwrap_or_default();
        out.push(PodView {
            id: rec.id.clone(),
            namespace: rec.config.namespace.clone(),
            name: rec.config.name.clone(),
            labels: rec.config.labels.clone(),
            ip: rec.ips.iter().find_map(|i| i.parse().ok()),
            not_ready,
            named_ports: named_ports(&manifest),
            hosts_file: rt.pod_etc_file(&rec.id, "hosts"),
        });
    }
    Ok(out)
}

/// The endpoints of `s` among `pods` (sorted by address; pods that cannot serve last).
pub fn of(s: &Service, pods: &[PodView]) -> Vec<Endpoint> {
    if s.selector.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Endpoint> = pods
        .iter()
        .filter(|p| {
            p.namespace == s.namespace && s.selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
        })
        .map(|p| {
            let mut why = p.not_ready.clone();
            if why.is_empty() && p.ip.is_none() {
                why = "it has no address".into();
            }
            let mut ports = Vec::new();
            for sp in &s.ports {
                match &sp.target {
                    TargetPort::Number(n) => ports.push(*n),
                    TargetPort::Name(n) => match p.named_ports.get(n) {
                        Some((port, proto)) if *proto == sp.protocol => ports.push(*port),
                        _ => {
                            if why.is_empty() {
                                why = format!("no container port named {n:?} ({:?})", sp.protocol);
                            }
                            ports.push(0);
                        }
                    },
                }
            }
            Endpoint {
                pod: format!("{}/{}", p.namespace, p.name),
                pod_id: p.id.clone(),
                ip: p.ip,
                ports,
                why,
            }
        })
        .collect();
    out.sort_by_key(|e| (!e.ready(), e.ip, e.pod.clone()));
    out
}
