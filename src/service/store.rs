//! Where Services live, in berth's data root:
//!
//! ```text
//! <data-root>/services/lock                          held (flock) by every change
//! <data-root>/services/records/<namespace>/<name>.json
//! ```
//!
//! A ClusterIP is part of its service's record: allocation reads every record under the
//! lock (a range of 65,534 addresses and at most thousands of services make that cheap).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::{Error, Result, Service, VERSION};
use crate::records::{self, Versioned};

pub use crate::records::Locked;

impl Versioned for Service {
    const NEWEST: u32 = VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

/// The default service range.
pub const DEFAULT_CIDR: &str = "10.78.0.0/16";

/// An IPv4 range `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = s.split_once('/')?;
        let base: Ipv4Addr = a.parse().ok()?;
        let len: u8 = l.parse().ok().filter(|l| (8..=30).contains(l))?;
        let mask = u32::MAX << (32 - len);
        Some(Cidr {
            base: Ipv4Addr::from(u32::from(base) & mask),
            len,
        })
    }

    fn mask(self) -> u32 {
        u32::MAX << (32 - self.len)
    }

    pub fn contains(self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.base)
    }

    pub fn overlaps(self, o: Cidr) -> bool {
        self.contains(o.base) || o.contains(self.base)
    }

    /// The usable addresses (not the network's or the broadcast address).
    fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.base) + 1;
        let last = u32::from(self.base) | !self.mask();
        (first..last).map(Ipv4Addr::from)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.len)
    }
}

/// A service range as given by `field` (`--service-cidr`, `service_cidr`, ...).
pub fn parse_range(s: &str, field: &str) -> Result<Cidr> {
    Cidr::parse(s)
        .ok_or_else(|| Error::Invalid(format!("{field}: {s:?} is not an IPv4 range a.b.c.d/8..30")))
}

/// A service range that must not overlap the pod network `pods` (a VIP would shadow a pod).
pub fn check_range(range: &str, field: &str, pods: &str) -> Result<Cidr> {
    let r = parse_range(range, field)?;
    if let Some(p) = Cidr::parse(pods)
        && r.overlaps(p)
    {
        return Err(Error::Invalid(format!(
            "{field}: the service range {r} overlaps the pod network {pods}"
        )));
    }
    Ok(r)
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(data_root: &Path) -> Store {
        Store {
            root: data_root.join("services"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock(&self) -> Result<Locked> {
        records::lock(&self.root)
    }

    fn path(&self, ns: &str, name: &str) -> PathBuf {
        self.root
            .join("records")
            .join(ns)
            .join(format!("{name}.json"))
    }

    /// An address for a new service (`want`: that one, if free and in range).
    pub fn claim_ip(
        &self,
        _lock: &Locked,
        range: Cidr,
        want: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        let taken: BTreeSet<Ipv4Addr> = self
            .list(None)?
            .into_iter()
            .filter_map(|s| s.cluster_ip)
            .collect();
        if let Some(a) = want {
            if !range.hosts().any(|h| h == a) {
                return Err(Error::Invalid(format!(
                    "spec.clusterIP: {a} is not in the service range {range}"
                )));
            }
            if taken.contains(&a) {
                let holder = self
                    .list(None)?
                    .into_iter()
                    .find(|s| s.cluster_ip == Some(a))
                    .map(|s| s.key())
                    .unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "spec.clusterIP: {a} is already the address of service {holder}"
                )));
            }
            return Ok(a);
        }
        range
            .hosts()
            .find(|a| !taken.contains(a))
            .ok_or_else(|| Error::Precondition(format!("the service range {range} is full")))
    }

    pub fn write(&self, _lock: &Locked, s: &Service) -> Result<()> {
        records::write(&self.path(&s.namespace, &s.name), s)
    }

    pub fn read(&self, ns: &str, name: &str) -> Result<Option<Service>> {
        records::read(&self.path(ns, name))
    }

    pub fn remove(&self, _lock: &Locked, ns: &str, name: &str) -> Result<bool> {
        records::remove(&self.path(ns, name))
    }

    pub fn list(&self, ns: Option<&str>) -> Result<Vec<Service>> {
        let mut out: Vec<Service> = records::list_namespaced(&self.root.join("records"), ns)?;
        out.sort_by_key(|s| s.key());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_contain_and_overlap() {
        let r = Cidr::parse("10.78.3.4/16").unwrap();
        assert_eq!(r.to_string(), "10.78.0.0/16");
        assert!(r.contains("10.78.255.1".parse().unwrap()));
        assert!(!r.contains("10.79.0.1".parse().unwrap()));
        assert!(r.overlaps(Cidr::parse("10.78.9.0/24").unwrap()));
        assert!(!r.overlaps(Cidr::parse("10.79.0.0/24").unwrap()));
        assert_eq!(r.hosts().next(), Some("10.78.0.1".parse().unwrap()));
        assert_eq!(r.hosts().count(), 65534);
        for bad in ["10.78.0.0", "10.78.0.0/33", "x/16", "10.78.0.0/4"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
            let e = parse_range(bad, "--service-cidr").unwrap_err().to_string();
            assert!(e.starts_with("--service-cidr: "), "{e}");
        }
        let e = check_range("10.77.128.0/17", "service_cidr", "10.77.0.0/16");
        assert_eq!(
            e.unwrap_err().to_string(),
            "service_cidr: the service range 10.77.128.0/17 overlaps the pod network 10.77.0.0/16"
        );
        assert_eq!(check_range(DEFAULT_CIDR, "x", "10.77.0.0/16").unwrap(), r);
    }
}
