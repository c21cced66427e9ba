//! The ruleset of berth's own table (kube-proxy's nftables design): a verdict map from
//! VIP · protocol · port to a chain per service port that marks the packet for masquerade
//! and DNATs to an endpoint picked by `numgen random mod N` from a map in the rule (no chain
//! per endpoint, unlike kube-proxy's: see [`model`]); a second map sends
//! traffic for a service without endpoints to a chain that rejects it (a TCP reset, an ICMP
//! port unreachable for UDP), so clients fail at once instead of timing out.
//!
//! Pod → VIP → pod on one bridge: berth masquerades the service connections of pods (the mark
//! set in the service chain) rather than turning on `br_netfilter` host-wide: replies then
//! come back through the host, where conntrack undoes the DNAT, and a pod reaching its own
//! service (hairpin) works too. The endpoint sees the host's bridge address as the client.
//! Connections the host makes (a local source address) need none: their replies come to the
//! host anyway.
//!
//! The text is pure (golden-tested, and checked by `nft -c` in the tests); [`apply`] runs it
//! as one transaction that replaces the whole table, or deletes it when no service is left.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

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

/// What berth's table holds besides its fixed chains: the two maps' elements and the chains
/// of each service port and endpoint (name → comment and rules). A resync compares the model
/// it wants with the last one applied and sends only the difference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// `VIP . proto . port` → `goto svc_…`.
    pub services: BTreeMap<String, String>,
    /// `VIP . proto . port` → `goto reject-service`, for services without endpoints.
    pub rejects: BTreeMap<String, String>,
    /// Chain name → (comment, rules).
    pub chains: BTreeMap<String, (String, Vec<String>)>,
}

impl Model {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.rejects.is_empty()
    }
}

/// The model for `services` (each with its endpoints): one chain per service port, whose
/// rule holds the endpoints, so one endpoint more or less changes one chain.
pub fn model(services: &[(Service, Vec<Endpoint>)]) -> Model {
    let mut m = Model::default();
    for (s, eps) in services {
        let Some(vip) = s.cluster_ip else { continue };
        let ready: Vec<&Endpoint> = eps.iter().filter(|e| e.ready()).collect();
        for (i, p) in s.ports.iter().enumerate() {
            let key = format!("{vip} . {} . {}", p.protocol.lower(), p.port);
            if ready.is_empty() {
                m.rejects.insert(key, "goto reject-service".into());
                continue;
            }
            let id = chain_id(s, i);
            m.services.insert(key, format!("goto svc_{id}"));
            let what = if p.name.is_empty() {
                format!("{}:{}", s.key(), p.port)
            } else {
                format!("{}:{}", s.key(), p.name)
            };
            // the endpoints in the service's own rule (an anonymous map picked by numgen),
            // not a chain each: nft reads every chain of the host before any change, so a
            // partial resync costs in proportion to the chains (kube-proxy's per-endpoint
            // chains made it 70-90 ms at 1,000 services x 10 endpoints; this, 30-45 ms)
            let proto = p.protocol.lower();
            let dnat = match ready.as_slice() {
                [e] => format!(
                    "meta l4proto {proto} dnat to {}:{}",
                    e.ip.expect("a ready endpoint has an address"),
                    e.ports[i]
                ),
                _ => {
                    let picks: Vec<String> = ready
                        .iter()
                        .enumerate()
                        .map(|(n, e)| {
                            let ip = e.ip.expect("a ready endpoint has an address");
                            format!("{n} : {ip} . {}", e.ports[i])
                        })
                        .collect();
                    format!(
                        "meta l4proto {proto} dnat ip to numgen random mod {} map {{ {} }}",
                        ready.len(),
                        picks.join(", ")
                    )
                }
            };
            m.chains.insert(
                format!("svc_{id}"),
                (
                    format!("{what} {proto}"),
                    vec![format!("meta mark set meta mark | {MARK}"), dnat],
                ),
            );
        }
    }
    m
}

/// The whole table of model `m`; None when it needs none.
pub fn full(table: &str, m: &Model) -> Option<String> {
    if m.is_empty() {
        return None;
    }
    let elements = |v: &BTreeMap<String, String>| {
        if v.is_empty() {
            String::new()
        } else {
            let e: Vec<String> = v.iter().map(|(k, x)| format!("{k} : {x}")).collect();
            format!("\t\telements = {{ {} }}\n", e.join(",\n\t\t\t"))
        }
    };
    let mut chains = String::new();
    for (name, (comment, rules)) in &m.chains {
        let _ = write!(chains, "\tchain {name} {{\n\t\tcomment \"{comment}\"\n");
        for r in rules {
            let _ = writeln!(chains, "\t\t{r}");
        }
        chains.push_str("\t}\n");
    }
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
         \tchain nat-postrouting {{\n\t\ttype nat hook postrouting priority 100; policy accept;\n\t\tmeta mark & {MARK} == {MARK} fib saddr type != local masquerade\n\t}}\n\
         \tchain filter-forward {{\n\t\ttype filter hook forward priority 0; policy accept;\n\t\t{lookup} vmap @no-endpoints\n\t}}\n\
         \tchain filter-output {{\n\t\ttype filter hook output priority 0; policy accept;\n\t\t{lookup} vmap @no-endpoints\n\t}}\n\
         \tchain reject-service {{\n\t\tmeta l4proto tcp reject with tcp reset\n\t\treject\n\t}}\n\
         {chains}}}\n",
        elements(&m.services),
        elements(&m.rejects),
    );
    Some(out)
}

/// The whole table for `services`; None when no service needs a rule (headless ones need
/// none).
pub fn ruleset(table: &str, services: &[(Service, Vec<Endpoint>)]) -> Option<String> {
    full(table, &model(services))
}

/// The transaction from `old` (what the table holds) to `new`, touching only what differs:
/// new chains made, changed ones flushed and refilled, map elements swapped, chains no longer
/// referenced deleted last. Empty when nothing differs. Both must be non-empty (a table must
/// exist before and after; the caller writes or deletes the whole table otherwise).
pub fn partial(table: &str, old: &Model, new: &Model) -> String {
    let mut out = String::new();
    let t = format!("ip {table}");
    // 1. chains that are new, then 2. the rules of new and changed ones (endpoints first)
    for (name, (comment, _)) in &new.chains {
        if !old.chains.contains_key(name) {
            let _ = writeln!(out, "add chain {t} {name} {{ comment \"{comment}\"; }}");
        }
    }
    for (name, (_, rules)) in &new.chains {
        match old.chains.get(name) {
            Some((_, o)) if o == rules => continue,
            Some(_) => {
                let _ = writeln!(out, "flush chain {t} {name}");
            }
            None => {}
        }
        for r in rules {
            let _ = writeln!(out, "add rule {t} {name} {r}");
        }
    }
    // 3. the maps
    for (map, o, n) in [
        ("service-ips", &old.services, &new.services),
        ("no-endpoints", &old.rejects, &new.rejects),
    ] {
        for (k, v) in o {
            if n.get(k) != Some(v) {
                let _ = writeln!(out, "delete element {t} {map} {{ {k} }}");
            }
        }
        for (k, v) in n {
            if o.get(k) != Some(v) {
                let _ = writeln!(out, "add element {t} {map} {{ {k} : {v} }}");
            }
        }
    }
    // 4. chains nothing refers to any more: services' before their endpoints'
    let gone: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in gone
        .iter()
        .filter(|n| n.starts_with("svc_"))
        .chain(gone.iter().filter(|n| !n.starts_with("svc_")))
    {
        let _ = writeln!(out, "delete chain {t} {name}");
    }
    out
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

    /// Scratch tables of a test, deleted when it ends (even by a panic).
    struct Tables(Vec<String>);
    impl Drop for Tables {
        fn drop(&mut self) {
            for t in &self.0 {
                let _ = run(&transaction(t, None), false);
            }
        }
    }

    /// The table's lines as nft lists them, sorted (creation order aside), without its name.
    fn listed(table: &str) -> Vec<String> {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "ip", table])
            .output()
            .unwrap();
        let mut l: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .flat_map(|l| {
                l.split(',')
                    .map(|x| x.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect();
        l.sort();
        l
    }

    #[test]
    fn a_partial_change_leaves_the_table_a_full_write_would() {
        if !nix::unistd::Uid::effective().is_root()
            || !std::path::Path::new("/usr/sbin/nft").exists()
        {
            panic!("this test needs root and nft (make setup installs it)");
        }
        let pid = std::process::id();
        let (t1, t2) = (format!("berth_unit_{pid}_a"), format!("berth_unit_{pid}_b"));
        let _cleanup = Tables(vec![t1.clone(), t2.clone()]);
        let a = golden();
        // b: web loses endpoint a and gains d, "empty" gets one, a new service appears
        let mut b = golden();
        b[0].1.remove(0);
        b[0].1.push(ep("d", "10.79.1.5", &[8080, 8053], ""));
        b[1].1.push(ep("e", "10.79.1.6", &[8080], ""));
        b.push((
            svc("new", Some("10.78.0.3"), &[("", Protocol::TCP, 443)]),
            vec![ep("f", "10.79.1.7", &[8443], "")],
        ));
        let (ma, mb) = (model(&a), model(&b));
        run(&transaction(&t1, full(&t1, &ma).as_deref()), false).unwrap();
        let p = partial(&t1, &ma, &mb);
        // only what changed: web's chains are refilled, not made again, and its map
        // elements (which still send to them) are untouched
        assert!(
            p.contains(&format!("flush chain ip {t1} svc_19b6aa24")),
            "{p}"
        );
        assert!(
            !p.contains(&format!("add chain ip {t1} svc_19b6aa24")),
            "{p}"
        );
        assert!(!p.contains("10.78.0.1 . tcp . 80"), "{p}");
        run(&p, false).unwrap();
        run(&transaction(&t2, full(&t2, &mb).as_deref()), false).unwrap();
        assert_eq!(listed(&t1), listed(&t2));
        // and back
        run(&partial(&t1, &mb, &ma), false).unwrap();
        run(&transaction(&t2, full(&t2, &ma).as_deref()), false).unwrap();
        assert_eq!(listed(&t1), listed(&t2));
        assert_eq!(partial(&t1, &ma, &ma), "");
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
