//! Service names inside pods, with no daemon: each pod's `/etc/hosts` (a file berth makes and
//! bind-mounts into its containers) gets a section of the services' names, rewritten in place
//! at every resync, so names of services created after the pod resolve too. Any resolver that
//! reads `/etc/hosts` sees them (glibc's and musl's `getaddrinfo`, so `wget`, `curl`,
//! language runtimes); DNS-only tools (busybox `nslookup`, `dig`) do not.
//!
//! A ClusterIP service is `VIP  svc.ns.svc.cluster.local svc.ns.svc svc.ns` (and `svc` in its
//! own namespace); a headless one lists each ready endpoint's address under those names.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use super::Service;
use super::endpoints::Endpoint;

/// Where berth's section starts; what follows it is berth's.
const MARK: &str = "# services (berth rewrites what follows)\n";

/// The lines of the services' names, as a pod of `namespace` sees them.
pub fn section(namespace: &str, services: &[(Service, Vec<Endpoint>)]) -> String {
    let mut out = String::new();
    for (s, eps) in services {
        let mut names = format!(
            "{n}.{ns}.svc.cluster.local {n}.{ns}.svc {n}.{ns}",
            n = s.name,
            ns = s.namespace
        );
        if s.namespace == namespace {
            names.push(' ');
            names.push_str(&s.name);
        }
        match s.cluster_ip {
            Some(ip) => out.push_str(&format!("{ip}\t{names}\n")),
            None => {
                for e in eps.iter().filter(|e| e.ready()) {
                    if let Some(ip) = e.ip {
                        out.push_str(&format!("{ip}\t{names}\n"));
                    }
                }
            }
        }
    }
    out
}

/// Replace the services' section of the hosts file at `path`, in place (the file is
/// bind-mounted: a new file would not be seen); false when it was already so.
pub fn rewrite(path: &Path, section: &str) -> std::io::Result<bool> {
    let old = fs::read_to_string(path)?;
    let base = old.split(MARK).next().unwrap_or_default();
    let new = if section.is_empty() {
        base.to_string()
    } else {
        format!("{base}{MARK}{section}")
    };
    if new == old {
        return Ok(false);
    }
    // written over the old bytes, then cut: a reader never sees an empty file
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(new.as_bytes())?;
    f.set_len(new.len() as u64)?;
    Ok(true)
}
