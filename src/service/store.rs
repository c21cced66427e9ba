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
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{Error, Result, Service, VERSION};
use crate::volume::error_io as io;

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

/// The service range: `BERTH_SERVICE_CIDR`, else the default.
pub fn range() -> Result<Cidr> {
    let s = std::env::var("BERTH_SERVICE_CIDR").unwrap_or_else(|_| DEFAULT_CIDR.into());
    Cidr::parse(&s).ok_or_else(|| {
        Error::Invalid(format!(
            "BERTH_SERVICE_CIDR: {s:?} is not an IPv4 range a.b.c.d/8..30"
        ))
    })
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The records' lock, held while it lives.
pub struct Locked(#[allow(dead_code)] Flock<fs::File>);

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
        fs::create_dir_all(&self.root).map_err(io(format!("create {}", self.root.display())))?;
        let p = self.root.join("lock");
        let f = fs::File::create(&p).map_err(io(format!("create {}", p.display())))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map(Locked)
            .map_err(|(_, e)| io(format!("lock {}", p.display()))(e.into()))
    }

    fn path(&self, ns: &str, name: &str) -> PathBuf {
        self.root
            .join("records")
            .join(ns)
            .join(format!("{name}.json"))
    }

    /// An address for a new service (`want`: that one, if free and in range).
    pub fn claim_ip(&self, _lock: &Locked, want: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        let range = range()?;
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
        let p = self.path(&s.namespace, &s.name);
        let dir = p.parent().expect("a record has a directory");
        fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let text = serde_json::to_vec_pretty(s).expect("a record serializes");
        crate::linux::fs::write_atomic(&p, &text).map_err(io(format!("write {}", p.display())))
    }

    pub fn read(&self, ns: &str, name: &str) -> Result<Option<Service>> {
        let p = self.path(ns, name);
        let text = match fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("read {}", p.display()))(e)),
        };
        let s: Service = serde_json::from_slice(&text)
            .map_err(|e| Error::Failed(format!("{}: {e}", p.display())))?;
        if s.version > VERSION {
            return Err(Error::Failed(format!(
                "{}: version {} is newer than this berth's {VERSION}",
                p.display(),
                s.version
            )));
        }
        Ok(Some(s))
    }

    pub fn remove(&self, _lock: &Locked, ns: &str, name: &str) -> Result<bool> {
        let p = self.path(ns, name);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(format!("remove {}", p.display()))(e)),
        }
    }

    pub fn list(&self, ns: Option<&str>) -> Result<Vec<Service>> {
        let base = self.root.join("records");
        let namespaces: Vec<String> = match ns {
            Some(n) => vec![n.to_string()],
            None => fs::read_dir(&base)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut out = Vec::new();
        for n in namespaces {
            let Ok(rd) = fs::read_dir(base.join(&n)) else {
                continue;
            };
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                if let Some(name) = f.strip_suffix(".json").filter(|_| !f.starts_with('.')) {
                    if let Some(s) = self.read(&n, name)? {
                        out.push(s);
                    }
                }
            }
        }
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
        }
    }
}
