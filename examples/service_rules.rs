//! Rules for the Services benchmark (tests/bench/services.sh): for N services of M endpoints
//! each (synthetic addresses, nothing runs), writes into DIR
//!
//! - `full.nft`: berth's whole-table transaction;
//! - `partial.nft`: berth's partial transaction for one endpoint replaced in one service;
//! - `iptables.txt`: the same services in kube-proxy's iptables layout, for
//!   `iptables-restore --noflush` (chains of its own, referenced by nothing: no traffic is
//!   affected), and `iptables-clean.txt` to remove them.
//!
//! Usage: service_rules N M TABLE DIR

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use berth::service::endpoints::Endpoint;
use berth::service::{Protocol, Service, ServicePort, TargetPort, VERSION, nft};

fn services(n: usize, m: usize, shift: bool) -> Vec<(Service, Vec<Endpoint>)> {
    (0..n)
        .map(|i| {
            let s = Service {
                version: VERSION,
                namespace: "bench".into(),
                name: format!("svc{i}"),
                uid: String::new(),
                labels: Default::default(),
                selector: [("app".to_string(), format!("svc{i}"))].into(),
                ports: vec![ServicePort {
                    name: String::new(),
                    protocol: Protocol::TCP,
                    port: 80,
                    target: TargetPort::Number(8080),
                }],
                cluster_ip: Some(Ipv4Addr::from(0x0a4e_0000 + i as u32 + 1)),
                created: String::new(),
            };
            let eps = (0..m)
                .map(|j| {
                    // the partial case: service 0's first endpoint replaced by another pod
                    let k = if shift && i == 0 && j == 0 { m } else { j };
                    Endpoint {
                        pod: format!("bench/p{i}-{k}"),
                        pod_id: String::new(),
                        ip: Some(Ipv4Addr::from(0x0a50_0000 + (i * 64 + k) as u32)),
                        ports: vec![8080],
                        why: String::new(),
                    }
                })
                .collect();
            (s, eps)
        })
        .collect()
}

fn iptables(all: &[(Service, Vec<Endpoint>)]) -> (String, String) {
    let mut decl = String::from("*nat\n:BB-SERVICES - [0:0]\n");
    let mut rules = String::new();
    let mut clean = String::from("*nat\n-F BB-SERVICES\n");
    let mut drop = String::from("-X BB-SERVICES\n");
    for (i, (s, eps)) in all.iter().enumerate() {
        let vip = s.cluster_ip.unwrap();
        let svc = format!("BB-SVC-{i}");
        let _ = writeln!(decl, ":{svc} - [0:0]");
        let _ = writeln!(
            rules,
            "-A BB-SERVICES -d {vip}/32 -p tcp -m comment --comment \"{}:80 cluster IP\" -m tcp --dport 80 -j {svc}",
            s.key()
        );
        let _ = writeln!(clean, "-F {svc}");
        let _ = writeln!(drop, "-X {svc}");
        let n = eps.len();
        for (j, e) in eps.iter().enumerate() {
            let sep = format!("BB-SEP-{i}-{j}");
            let _ = writeln!(decl, ":{sep} - [0:0]");
            let ip = e.ip.unwrap();
            // kube-proxy's probabilities: 1/n, 1/(n-1), ..., the last unconditional
            if j + 1 < n {
                let _ = writeln!(
                    rules,
                    "-A {svc} -m comment --comment \"{}\" -m statistic --mode random --probability {:.11} -j {sep}",
                    e.pod,
                    1.0 / (n - j) as f64
                );
            } else {
                let _ = writeln!(
                    rules,
                    "-A {svc} -m comment --comment \"{}\" -j {sep}",
                    e.pod
                );
            }
            let _ = writeln!(
                rules,
                "-A {sep} -s {ip}/32 -j MARK --set-xmark 0x4000/0x4000"
            );
            let _ = writeln!(
                rules,
                "-A {sep} -p tcp -m comment --comment \"{}\" -m tcp -j DNAT --to-destination {ip}:8080",
                e.pod
            );
            let _ = writeln!(clean, "-F {sep}");
            let _ = writeln!(drop, "-X {sep}");
        }
    }
    (
        format!("{decl}{rules}COMMIT\n"),
        format!("{clean}{drop}COMMIT\n"),
    )
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let [_, n, m, table, dir] = a.as_slice() else {
        eprintln!("usage: service_rules N M TABLE DIR");
        std::process::exit(2);
    };
    let (n, m): (usize, usize) = (n.parse().unwrap(), m.parse().unwrap());
    let dir = std::path::Path::new(dir);
    let before = nft::model(&services(n, m, false));
    let after = nft::model(&services(n, m, true));
    let full = nft::transaction(table, nft::full(table, &before).as_deref());
    std::fs::write(dir.join("full.nft"), full).unwrap();
    std::fs::write(
        dir.join("partial.nft"),
        nft::partial(table, &before, &after),
    )
    .unwrap();
    std::fs::write(
        dir.join("partial-back.nft"),
        nft::partial(table, &after, &before),
    )
    .unwrap();
    let (ipt, clean) = iptables(&services(n, m, false));
    std::fs::write(dir.join("iptables.txt"), ipt).unwrap();
    std::fs::write(dir.join("iptables-clean.txt"), clean).unwrap();
}
