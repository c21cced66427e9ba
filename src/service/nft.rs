//! The ruleset of berth's own table (kube-proxy's nftables design): a verdict map from
//! VIP · protocol · port to a chain per service port that marks the packet for masquerade
//! and picks an endpoint chain (`numgen random mod N`) that DNATs; a second map sends
//! traffic for a service without endpoints to a chain that rejects it (a TCP reset, an ICMP
//! port unreachable for UDP), so clients fail at once instead of timing out.
//!
//! Pod → VIP → pod on one bridge: berth masquerades every service connection (the mark set in
//! the service chain) rather than turning on `br_netfilter` host-wide: replies then come back
//! through the host, where conntrack undoes the DNAT, and a pod reaching its own service
//! (hairpin) works too. The endpoint sees the host's bridge address as the client.
//!
//! The text is pure (golden-tested, and checked by `nft -c` in the tests); [`apply`] runs it
//! as one transaction that replaces the whole table, or deletes it when no service is left.

use std::fmt::Write as _;
use std::process::{Command, Stdio};

use super::endpoints::Endpoint;
use super::{Error, Result, Service};

/// The masquerade mark (kube-proxy's bit).
const MARK: &str = "0x00004000";

/// A short stable name for a service port's chains.
fn chain_id(s: &Service, port: usize) -> String {
    // FNV-1a over namespace/name/port index: stable across runs and berth versions
    let mut h: u32 = 0x811c_9dc5;
    for b in format!("{}/{}/{}", s.namespace, s.name, port).bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The whole table for `services` (each with its endpoints); None when no service needs a
/// rule (headless ones need none).
pub fn ruleset(table: &str, services: &[(Service, Vec<Endpoint>)]) -> Option<String> {
    let mut map = Vec::new();
    let mut reject = Vec::new();
    let mut chains = String::new();
    for (s, eps) in services {
        let Some(vip) = s.cluster_ip else { continue };
        let ready: Vec<&Endpoint> = eps.iter().filter(|e| e.ready()).collect();
        for (i, p) in s.ports.iter().enumerate() {
            let key = format!("{vip} . {} . {}", p.protocol.lower(), p.port);
            if ready.is_empty() {
                reject.push(format!("{key} : goto reject-service"));
                continue;
            }
            let id = chain_id(s, i);
            map.push(format!("{key} : goto svc_{id}"));
            let what = if p.name.is_empty() {
                format!("{}:{}", s.key(), p.port)
            } else {
                format!("{}:{}", s.key(), p.name)
            };
            let picks: Vec<String> = (0..ready.len())
                .map(|n| format!("{n} : goto ep_{id}_{n}"))
                .collect();
            let _ = write!(
                chains,
                "\tchain svc_{id} {{\n\t\tcomment \"{what} {}\"\n\t\tmeta mark set meta mark | {MARK}\n\t\tnumgen random mod {} vmap {{ {} }}\n\t}}\n",
                p.protocol.lower(),
                ready.len(),
                picks.join(", ")
            );
            for (n, e) in ready.iter().enumerate() {
                let ip = e.ip.expect("a ready endpoint has an address");
                let _ = write!(
                    chains,
                    "\tchain ep_{id}_{n} {{\n\t\tcomment \"{}\"\n\t\tmeta l4proto {} dnat to {ip}:{}\n\t}}\n",
                    e.pod,
                    p.protocol.lower(),
                    e.ports[i]
                );
            }
        }
    }
    if map.is_empty() && reject.is_empty() {
        return None;
    }
    let elements = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!("\t\telements = {{ {} }}\n", v.join(",\n\t\t\t"))
        }
    };
    let lookup = "ip daddr . meta l4proto . th dport";
    let mut out = String::new();
    let _ = write!(
        out,
        "table ip {table} {{\n\
         \tcomment \"berth services: rewritten by berth at every change; do not edit\"\n\
         \tmap service-ips {{\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n{}\t}}\n\
         \tmap no-endpoints {{\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n{}\t}}\n\
         \tchain nat-prerouting {{\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\t{lookup} vmap @service-ips\n\t}}\n\
         \tchain nat-output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t\t{lookup} vmap @service-ips\n\t}}\n\
         \tchain nat-postrouting {{\n\t\ttype nat hook postrouting priority 100; policy accept;\n\t\tmeta mark & {MARK} == {MARK} masquerade\n\t}}\n\
         \tchain filter-forward {{\n\t\ttype filter hook forward priority 0; policy accept;\n\t\t{lookup} vmap @no-endpoints\n\t}}\n\
         \tchain filter-output {{\n\t\ttype filter hook output priority 0; policy accept;\n\t\t{lookup} vmap @no-endpoints\n\t}}\n\
         \tchain reject-service {{\n\t\tmeta l4proto tcp reject with tcp reset\n\t\treject\n\t}}\n\
         {chains}}}\n",
        elements(&map),
        elements(&reject),
    );
    Some(out)
}

/// The transaction that makes the table `rules` (None: no table): the old table goes in the
/// same transaction, so a failure leaves it as it was.
pub fn transaction(table: &str, rules: Option<&str>) -> String {
    // `table ip T {}` first makes the delete valid when the table does not exist yet
    format!(
        "table ip {table} {{}}\ndelete table ip {table}\n{}",
        rules.unwrap_or_default()
    )
}

/// Run `nft -f -` (`check`: `nft -c`, nothing is changed).
pub fn run(text: &str, check: bool) -> Result<()> {
    use std::io::Write as _;
    let mut cmd = Command::new("nft");
    if check {
        cmd.arg("-c");
    }
    let mut child = cmd
        .args(["-f", "-"])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Failed(format!("run nft: {e}")))?;
    let _ = child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes());
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Failed(format!("run nft: {e}")))?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "nft refused the services' rules (the previous ones stay): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Protocol, ServicePort, TargetPort, VERSION};

    fn svc(name: &str, ip: Option<&str>, ports: &[(&str, Protocol, u16)]) -> Service {
        Service {
            version: VERSION,
            namespace: "default".into(),
            name: name.into(),
            uid: String::new(),
            labels: Default::default(),
            selector: [("app".to_string(), name.to_string())].into(),
            ports: ports
                .iter()
                .map(|(n, p, port)| ServicePort {
                    name: n.to_string(),
                    protocol: *p,
                    port: *port,
                    target: TargetPort::Number(port + 8000),
                })
                .collect(),
            cluster_ip: ip.map(|i| i.parse().unwrap()),
            created: String::new(),
        }
    }

    fn ep(pod: &str, ip: &str, ports: &[u16], why: &str) -> Endpoint {
        Endpoint {
            pod: format!("default/{pod}"),
            pod_id: pod.into(),
            ip: Some(ip.parse().unwrap()),
            ports: ports.to_vec(),
            why: why.into(),
        }
    }

    fn golden() -> Vec<(Service, Vec<Endpoint>)> {
        vec![
            (
                svc(
                    "web",
                    Some("10.78.0.1"),
                    &[("http", Protocol::TCP, 80), ("dns", Protocol::UDP, 53)],
                ),
                vec![
                    ep("a", "10.79.1.2", &[8080, 8053], ""),
                    ep("b", "10.79.1.3", &[8080, 8053], ""),
                    ep("c", "10.79.1.4", &[8080, 8053], "the pod is not ready"),
                ],
            ),
            (
                svc("empty", Some("10.78.0.2"), &[("", Protocol::TCP, 80)]),
                vec![],
            ),
            (
                svc("headless", None, &[("", Protocol::TCP, 80)]),
                vec![ep("h", "10.79.1.9", &[80], "")],
            ),
        ]
    }

    #[test]
    fn the_ruleset_is_what_kube_proxy_would_write() {
        let text = ruleset("berth_golden", &golden()).unwrap();
        if std::env::var_os("BERTH_WRITE_GOLDEN").is_some() {
            std::fs::write(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/src/service/testdata/golden.nft"
                ),
                &text,
            )
            .unwrap();
        }
        let want = include_str!("testdata/golden.nft");
        assert_eq!(
            text, want,
            "if the change is meant: BERTH_WRITE_GOLDEN=1 cargo test --lib service::nft"
        );
        // not ready and headless: no chain of theirs
        assert!(!text.contains("10.79.1.4") && !text.contains("10.79.1.9"));
        assert!(text.contains("10.78.0.2 . tcp . 80 : goto reject-service"));
        // nothing to do: no table
        assert_eq!(ruleset("t", &golden()[2..]), None);
        // nft itself accepts it (as root, with nft installed: the test suite's machine)
        if nix::unistd::Uid::effective().is_root() && std::path::Path::new("/usr/sbin/nft").exists()
        {
            run(&transaction("berth_golden", Some(&text)), true).unwrap();
            run(&transaction("berth_golden", None), true).unwrap();
        }
    }
}
