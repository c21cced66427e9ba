//! Name reservations: a pod's `namespace/name` (or the CRI's `namespace/name/uid/attempt`)
//! and a container's `name/attempt` in its pod are files made with `O_EXCL` in
//! `<root>/names`, so that of concurrent requests for one name exactly one succeeds. A file
//! holds its owner's ID once the owner is recorded.

use std::fs;
use std::path::PathBuf;

use super::Runtime;
use super::config::PortMapping;
use super::error::{Error, Result, io};

impl Runtime {
    /// The reservation file of `key`.
    pub(crate) fn name_path(&self, key: &str) -> PathBuf {
        // the key holds names from the caller: one file name whatever they contain
        self.store
            .names()
            .join(key.replace('%', "%25").replace('/', "%2F"))
    }

    /// Reserve `key` for `owner` (a pod or container ID); `what` is named in the AlreadyExists
    /// error. The file appears with its owner in it (a link of a written temporary file), so
    /// no reservation is ever ownerless.
    pub(crate) fn reserve_name(&self, key: &str, what: &str, owner: &str) -> Result<PathBuf> {
        let names = self.store.names();
        fs::create_dir_all(&names).map_err(io(format!("create {}", names.display())))?;
        let path = self.name_path(key);
        let tmp = names.join(format!(".{owner}.tmp"));
        fs::write(&tmp, owner).map_err(io(format!("write {}", tmp.display())))?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // a reservation whose owner is gone and that nothing in flight holds is stale
                let holder = fs::read_to_string(&path).unwrap_or_default();
                // (empty: made by a berth before owners were written in, whose creator died)
                let stale = holder.is_empty()
                    || !self.store.pods().join(&holder).exists()
                        && !self.container_exists(&holder)
                        && !self.in_flight().iter().any(|op| op.concerns(&holder));
                if stale && fs::remove_file(&path).is_ok() {
                    return self.reserve_name(key, what, owner);
                }
                Err(Error::AlreadyExists(what.to_string()))
            }
            Err(e) => Err(Error::Io {
                step: format!("reserve the name {key}"),
                err: e,
            }),
        }
    }

    /// The owner of a name reservation, if there is one.
    pub(crate) fn name_owner(&self, key: &str) -> Option<String> {
        fs::read_to_string(self.name_path(key))
            .ok()
            .filter(|o| !o.is_empty())
    }

    /// Reserve a pod's host ports for `owner` with Kubernetes' conflict key (hostIP, hostPort,
    /// protocol), where an empty or wildcard hostIP conflicts with every IP (as kubelet's
    /// admission and kube-scheduler's NodePorts filter decide); a port held by another pod of
    /// this state root is refused, naming it. Released with the pod's names.
    pub(crate) fn reserve_host_ports(
        &self,
        owner: &str,
        ports: &[PortMapping],
    ) -> Result<Vec<PathBuf>> {
        let mut wanted: Vec<HostPort> = ports
            .iter()
            .filter(|p| p.host_port != 0)
            .map(HostPort::of)
            .collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let names = self.store.names();
        fs::create_dir_all(&names).map_err(io(format!("create {}", names.display())))?;
        // one pod's check-and-reserve at a time (wildcards conflict across keys)
        let lock =
            fs::File::create(names.join(".hostports.lock")).map_err(io("lock the host ports"))?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| super::error::sys("lock the host ports")(e))?;
        let held: Vec<(HostPort, String)> = fs::read_dir(&names)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let key = e.file_name().to_string_lossy().into_owned();
                let port = HostPort::parse(&key)?;
                let holder = fs::read_to_string(e.path()).ok()?;
                Some((port, holder))
            })
            .filter(|(_, holder)| holder != owner)
            .collect();
        for w in &wanted {
            for (h, holder) in &held {
                if w.conflicts(h) && self.holds(holder) {
                    let pod = self
                        .read_pod(holder)
                        .map(|r| format!("{}/{}", r.config.namespace, r.config.name))
                        .unwrap_or_else(|_| holder.clone());
                    return Err(Error::Precondition(format!(
                        "hostPort {}/{} (hostIP {}) is already held by pod {pod}",
                        w.port,
                        w.protocol.to_uppercase(),
                        w.ip
                    )));
                }
            }
        }
        let mut made = Vec::new();
        for w in &wanted {
            match self.reserve_name(&w.key(), &format!("hostPort {}", w.port), owner) {
                Ok(p) => made.push(p),
                Err(e) => {
                    for p in &made {
                        let _ = fs::remove_file(p);
                    }
                    return Err(e);
                }
            }
        }
        Ok(made)
    }

    /// Does `holder` (a pod's ID) hold what it reserved: it exists, or its creation runs?
    fn holds(&self, holder: &str) -> bool {
        self.store.pods().join(holder).exists()
            || self.in_flight().iter().any(|op| op.concerns(holder))
    }

    /// Release the names `owner` (a pod or container ID) holds.
    pub(crate) fn release_names(&self, owner: &str) {
        if let Ok(rd) = fs::read_dir(self.store.names()) {
            for e in rd.flatten() {
                if fs::read_to_string(e.path()).is_ok_and(|o| o == owner) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    fn container_exists(&self, id: &str) -> bool {
        self.store
            .pod_ids()
            .iter()
            .any(|p| self.pod_dir(p).container(id).0.exists())
    }
}

/// A reserved host port: Kubernetes' conflict key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct HostPort {
    protocol: String,
    port: u16,
    /// `0.0.0.0` for any.
    ip: String,
}

impl HostPort {
    fn of(p: &PortMapping) -> HostPort {
        let ip = match p.host_ip.as_deref() {
            None | Some("") | Some("::") => "0.0.0.0".to_string(),
            Some(ip) => ip.to_string(),
        };
        HostPort {
            protocol: p.protocol.to_lowercase(),
            port: p.host_port,
            ip,
        }
    }

    fn key(&self) -> String {
        format!("hostport_{}_{}_{}", self.protocol, self.port, self.ip)
    }

    fn parse(key: &str) -> Option<HostPort> {
        let mut it = key.strip_prefix("hostport_")?.splitn(3, '_');
        Some(HostPort {
            protocol: it.next()?.to_string(),
            port: it.next()?.parse().ok()?,
            ip: it.next()?.to_string(),
        })
    }

    fn conflicts(&self, other: &HostPort) -> bool {
        self.protocol == other.protocol
            && self.port == other.port
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(protocol: &str, port: u16, ip: Option<&str>) -> HostPort {
        HostPort::of(&PortMapping {
            container_port: 80,
            host_port: port,
            protocol: protocol.into(),
            host_ip: ip.map(String::from),
        })
    }

    #[test]
    fn host_ports_conflict_as_kubernetes_decides() {
        let any = hp("TCP", 8080, None);
        assert!(any.conflicts(&hp("tcp", 8080, Some("10.0.0.1"))));
        assert!(hp("tcp", 8080, Some("10.0.0.1")).conflicts(&hp("tcp", 8080, Some("0.0.0.0"))));
        assert!(!hp("tcp", 8080, Some("10.0.0.1")).conflicts(&hp("tcp", 8080, Some("10.0.0.2"))));
        assert!(!any.conflicts(&hp("udp", 8080, None)));
        assert!(!any.conflicts(&hp("tcp", 8081, None)));
        assert_eq!(HostPort::parse(&any.key()), Some(any));
        assert_eq!(HostPort::parse("pod_default_x"), None);
    }
}
