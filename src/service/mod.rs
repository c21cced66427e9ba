//! Services: a stable virtual IP and name for the pods a selector picks, on one node, with no
//! daemon. kube-proxy's nftables design, as berth needs it:
//!
//! - [`manifest`] reads and checks `kind: Service` (ClusterIP and headless);
//! - [`store`] keeps the records and allocates ClusterIPs from the service range
//!   (`--service-cidr`/`BERTH_SERVICE_CIDR`, default 10.78.0.0/16) in berth's data root, so an IP outlives
//!   re-applies, restarts and reboots;
//! - [`endpoints`] finds each service's endpoints among a state root's pods;
//! - [`nft`] writes the ruleset of `table ip berth` (one table of berth's own);
//! - [`resync`] applies it in one `nft -f` transaction and rewrites the pods' `/etc/hosts`
//!   (the names), under one host-wide lock. Pod creation and removal, `kube apply|delete` of
//!   a Service, and each pod monitor at a container's start or exit run it (`berth
//!   __resync-services`).
//!
//! Errors are the volumes' ([`crate::volume::Error`]): bad input names its field's path.

pub mod endpoints;
pub mod hosts;
pub mod manifest;
pub mod nft;
pub mod resync;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::volume::{Applied, Error, Result};
pub use resync::{ServiceConfig, resync};

/// The records' version.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    TCP,
    UDP,
}

impl Protocol {
    /// `tcp`, `udp` (nft's words).
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::TCP => "tcp",
            Protocol::UDP => "udp",
        }
    }
}

/// Where a service port goes on a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetPort {
    Number(u16),
    /// A container port's name, resolved per pod.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Empty only for a service's single port.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub target: TargetPort,
}

/// A Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub version: u32,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Empty: the service has no endpoints berth manages (as in Kubernetes).
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
    /// The virtual IP; None for a headless service (`clusterIP: None`).
    pub cluster_ip: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    pub created: String,
}

impl Service {
    /// Same spec (what `apply` compares; the IP counts only when the manifest gives one).
    fn same_as(&self, o: &Service) -> bool {
        self.selector == o.selector && self.ports == o.ports && self.labels == o.labels
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// How a manifest asks for the IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRequest {
    /// Allocate one (or keep the one it has).
    Any,
    /// This one.
    Given(std::net::Ipv4Addr),
    /// Headless.
    None,
}

/// The Services of a data root.
#[derive(Debug, Clone)]
pub struct Services {
    store: store::Store,
    range: store::Cidr,
}

impl Services {
    /// The Services of `data_root`, allocating from the default range.
    pub fn new(data_root: &std::path::Path) -> Services {
        Services {
            store: store::Store::new(data_root),
            range: store::Cidr::parse(store::DEFAULT_CIDR).expect("the default range parses"),
        }
    }

    /// Allocate new ClusterIPs from `range` (addresses given before stay theirs).
    pub fn with_range(mut self, range: store::Cidr) -> Services {
        self.range = range;
        self
    }

    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// Create or update a Service; its IP is allocated once and kept. A changed `clusterIP`
    /// is refused (as Kubernetes: it is immutable).
    pub fn apply(&self, mut s: Service, ip: IpRequest) -> Result<Applied> {
        let lock = self.store.lock()?;
        let old = self.store.read(&s.namespace, &s.name)?;
        if let Some(old) = &old {
            let changed_ip = match ip {
                IpRequest::Any => false,
                IpRequest::Given(a) => old.cluster_ip != Some(a),
                IpRequest::None => old.cluster_ip.is_some(),
            };
            if changed_ip {
                return Err(Error::Invalid(format!(
                    "spec.clusterIP: service {} has {}; it cannot change (delete the service first)",
                    s.key(),
                    old.cluster_ip
                        .map_or("none (headless)".into(), |a| a.to_string())
                )));
            }
            if old.same_as(&s) {
                return Ok(Applied::Unchanged);
            }
            s.cluster_ip = old.cluster_ip;
            s.uid = old.uid.clone();
            s.created = old.created.clone();
            self.store.write(&lock, &s)?;
            return Ok(Applied::Configured);
        }
        s.cluster_ip = match ip {
            IpRequest::None => None,
            IpRequest::Given(a) => Some(self.store.claim_ip(&lock, self.range, Some(a))?),
            IpRequest::Any => Some(self.store.claim_ip(&lock, self.range, None)?),
        };
        if s.uid.is_empty() {
            s.uid = crate::pod::store::new_uid();
        }
        s.created = crate::pod::store::now();
        self.store.write(&lock, &s)?;
        Ok(Applied::Created)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Result<Service> {
        self.store
            .read(namespace, name)?
            .ok_or_else(|| Error::NotFound(format!("service {namespace}/{name}")))
    }

    pub fn list(&self, namespace: Option<&str>) -> Result<Vec<Service>> {
        self.store.list(namespace)
    }

    pub fn delete(&self, namespace: &str, name: &str) -> Result<()> {
        let lock = self.store.lock()?;
        if !self.store.remove(&lock, namespace, name)? {
            return Err(Error::NotFound(format!("service {namespace}/{name}")));
        }
        Ok(())
    }
}
