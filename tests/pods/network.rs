//! Pod networking through real CNI plugins: one IP per pod, pods reaching each other and the
//! host reaching them over the bridge, hostPort through portmap, sysctls, DNS files.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::env::*;

fn server(name: &str, img: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: web
    image: {img}
    command: [sh, -c, "echo hello from {name} > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
{extra}"#
    )
}

/// An HTTP GET from the host, retried while the server starts.
fn http_get(addr: &str) -> String {
    let t = Instant::now();
    loop {
        if let Ok(mut s) =
            TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
        {
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.contains("200") {
                return out;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no HTTP answer from {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pods_get_their_own_ips_and_reach_each_other_and_the_host_reaches_them() {
    let e = PodEnv::new("net");
    let a = e.run(&server("alpha", &e.image("base"), ""));
    let b = e.run(&server("beta", &e.image("base"), ""));
    let ip = |p: &str| e.inspect(p)["ips"][0].as_str().unwrap().to_string();
    let (ia, ib) = (ip(&a), ip(&b));
    assert_ne!(ia, ib);
    assert!(
        ia.starts_with(&format!("{}.", e.net)) && ib.starts_with(&format!("{}.", e.net)),
        "{ia} {ib}"
    );
    // inside: eth0 carries the pod's IP; /etc/hosts names it
    let addr = e.ok(&["pod", "exec", &a, "--", "ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {ia}/24")), "{addr}");
    let hosts = e.ok(&["pod", "exec", &a, "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ia}\talpha")), "{hosts}");
    reach_each_other(&e, &b, &ia, &ib);
}

/// Pod beta reaches alpha's server over the bridge, and the host reaches beta's (both serve
/// `hello from <name>` on 8080, see [`server`]).
fn reach_each_other(e: &PodEnv, beta: &str, alpha_ip: &str, beta_ip: &str) {
    e.wait_exec(
        beta,
        "web",
        &[
            "wget",
            "-qO-",
            &format!("http://{alpha_ip}:8080/index.html"),
        ],
        "hello from alpha",
    );
    assert!(http_get(&format!("{beta_ip}:8080")).contains("hello from beta"));
}

#[test]
fn a_host_port_reaches_the_pod() {
    let e = PodEnv::new("hostport");
    let port = 20000 + (std::process::id() % 10000) as u16;
    let pod = e.run(&server(
        "hp",
        &e.image("base"),
        &format!("    ports: [{{containerPort: 8080, hostPort: {port}}}]\n"),
    ));
    // the host's address on the pod bridge, DNATed by portmap's rules to the pod
    let gw = format!("{}.1:{port}", e.net);
    assert!(http_get(&gw).contains("hello from hp"));
    let ip = e.inspect(&pod)["ips"][0].as_str().unwrap().to_string();
    assert!(
        !iptables_mentioning(&format!("{ip}:8080")).is_empty()
            || !iptables_mentioning(&port.to_string()).is_empty(),
        "no portmap rule"
    );
    e.ok(&["pod", "rm", "-f", &pod]);
    assert_eq!(
        iptables_mentioning(&format!("dport {port} ")),
        Vec::<String>::new(),
        "portmap rules left"
    );
}

#[test]
fn sysctls_and_dns_are_the_pods_own() {
    let e = PodEnv::new("sysctl");
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let pod = e.run(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: tuned}}
spec:
  securityContext:
    sysctls: [{{name: net.ipv4.ip_unprivileged_port_start, value: "80"}}, {{name: kernel.shmmni, value: "1234"}}]
  dnsPolicy: None
  dnsConfig: {{nameservers: [10.0.0.53], searches: [svc.example], options: [{{name: ndots, value: "2"}}]}}
  containers:
  - {{name: c, image: {}, command: [sleep, "1000"]}}
"#,
        e.image("base")
    ));
    assert_eq!(
        e.ok(&[
            "pod",
            "exec",
            &pod,
            "--",
            "cat",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start"
        ])
        .trim(),
        "80"
    );
    assert_eq!(
        e.ok(&["pod", "exec", &pod, "--", "cat", "/proc/sys/kernel/shmmni"])
            .trim(),
        "1234"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host,
        "the host's sysctl changed"
    );
    let resolv = e.ok(&["pod", "exec", &pod, "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        "nameserver 10.0.0.53\nsearch svc.example\noptions ndots:2\n"
    );
    // a sysctl that is not namespaced is refused, and the pod is not created
    let err = e.run_fails(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec:\n  securityContext: {{sysctls: [{{name: kernel.panic, value: \"1\"}}]}}\n  containers: [{{name: c, image: {}}}]\n",
        e.image("base")
    ));
    assert!(
        err.contains("kernel.panic") && err.contains("not a namespaced sysctl"),
        "{err}"
    );
    assert_eq!(e.ok(&["pod", "ls", "-q"]).lines().count(), 1);
}

/// A veth of the test's own, deleted when dropped (its peer goes with it).
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn ip(args: &[&str]) {
    let st = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "ip {args:?}: {st}");
}

/// "Outside": a network namespace of this test's own (a thread's), reached from the host over
/// a veth (`PREFIX.1` on the host, `PREFIX.2` inside, default route back through the host).
/// It answers one HTTP request on port 8080 and reports the address the connection came from.
fn outside_server(prefix: &str, host_if: &str) -> (Veth, std::sync::mpsc::Receiver<String>) {
    use std::sync::mpsc::channel;
    let (tid_tx, tid_rx) = channel();
    let (go_tx, go_rx) = channel::<()>();
    let (seen_tx, seen_rx) = channel();
    let peer = format!("{host_if}i");
    let (inner, inner_prefix) = (peer.clone(), prefix.to_string());
    std::thread::spawn(move || {
        let prefix = inner_prefix;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
        if go_rx.recv().is_err() {
            return;
        }
        // commands spawned by this thread run in its network namespace
        ip(&["link", "set", "lo", "up"]);
        ip(&["addr", "add", &format!("{prefix}.2/24"), "dev", &inner]);
        ip(&["link", "set", &inner, "up"]);
        ip(&["route", "add", "default", "via", &format!("{prefix}.1")]);
        let l = std::net::TcpListener::bind(format!("{prefix}.2:8080")).unwrap();
        l.set_nonblocking(true).unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok((mut s, from)) = l.accept() {
                s.set_nonblocking(false).unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ =
                    s.write_all(format!("HTTP/1.0 200 OK\r\n\r\nfrom {}\n", from.ip()).as_bytes());
                let _ = seen_tx.send(from.ip().to_string());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let tid = tid_rx.recv().unwrap().to_string();
    ip(&[
        "link", "add", host_if, "type", "veth", "peer", "name", &peer, "netns", &tid,
    ]);
    let veth = Veth(host_if.to_string());
    ip(&["addr", "add", &format!("{prefix}.1/24"), "dev", host_if]);
    ip(&["link", "set", host_if, "up"]);
    go_tx.send(()).unwrap();
    (veth, seen_rx)
}

/// The default network's host rules: (jumps from POSTROUTING/FORWARD, all lines naming its chains).
fn host_rules(e: &PodEnv) -> (Vec<String>, Vec<String>) {
    let jumps = iptables_mentioning(&e.rules_comment());
    let all = iptables_mentioning(&format!("-{}", e.bridge))
        .into_iter()
        .filter(|l| l.contains("BERTH-"))
        .collect();
    (jumps, all)
}

fn leases(e: &PodEnv) -> Vec<String> {
    std::fs::read_dir(e.ipam_default().join("berth"))
        .map(|rd| {
            rd.flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_default_network_masquerades_with_rules_per_network_not_per_pod() {
    let e = PodEnv::default_network("defnet");
    let port = 20000 + (std::process::id() % 10000) as u16 + 1;
    let a = e.run(&server(
        "alpha",
        &e.image("base"),
        &format!("    ports: [{{containerPort: 8080, hostPort: {port}}}]\n"),
    ));
    let b = e.run(&server("beta", &e.image("base"), ""));
    let ip_of = |p: &str| e.inspect(p)["ips"][0].as_str().unwrap().to_string();
    let (ia, ib) = (ip_of(&a), ip_of(&b));
    assert!(ia.starts_with(&format!("{}.", e.net)) && ib.starts_with(&format!("{}.", e.net)));
    assert_ne!(ia, ib);
    assert_eq!(e.bridge_ports(), 2);
    // one jump per table for the network, whatever the number of pods; nothing names a pod
    let (jumps, chains) = host_rules(&e);
    assert_eq!(jumps.len(), 2, "{jumps:?}");
    assert!(
        jumps.iter().any(|j| j.starts_with("-A POSTROUTING -s ")),
        "{jumps:?}"
    );
    assert!(
        jumps.iter().any(|j| j.starts_with("-A FORWARD ")),
        "{jumps:?}"
    );
    assert!(
        chains.iter().any(|l| l.ends_with("-j MASQUERADE")),
        "{chains:?}"
    );
    for ip in [&ia, &ib] {
        assert_eq!(
            iptables_mentioning(&format!("{ip}/32")),
            Vec::<String>::new()
        );
    }
    // pod to pod, host to pod, and a hostPort (portmap runs for the pod that has one)
    reach_each_other(&e, &b, &ia, &ib);
    assert!(http_get(&format!("{}.1:{port}", e.net)).contains("hello from alpha"));
    // out of the pod's subnet, connections are masqueraded to the host's address
    let outside = e.net.replacen("10.79.", "10.78.", 1);
    let (_veth, seen) = outside_server(&outside, &format!("{}o", e.bridge));
    let got = e.wait_exec(
        &b,
        "web",
        &["wget", "-qO-", &format!("http://{outside}.2:8080/")],
        "from ",
    );
    let from = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(from, format!("{outside}.1"), "not masqueraded: {got}");
    // the rules stay while a pod is on the network, and go with the last one, with the bridge
    e.ok(&["pod", "rm", "-f", &a]);
    assert_eq!(host_rules(&e).0.len(), 2);
    assert!(links().contains(&e.bridge));
    assert_eq!(
        iptables_mentioning(&format!("dport {port} ")),
        Vec::<String>::new()
    );
    e.ok(&["pod", "rm", "-f", &b]);
    assert_eq!(host_rules(&e), (vec![], vec![]));
    assert!(!links().contains(&e.bridge), "bridge {} left", e.bridge);
    assert_eq!(leases(&e), Vec::<String>::new());
    assert_eq!(e.network_files(), Vec::<String>::new());
}

#[test]
fn pods_joining_and_leaving_the_default_network_at_once_leave_one_set_of_rules_then_none() {
    let e = PodEnv::default_network("defnet-race");
    // the image is pulled once, before the race
    e.run(&e.sleeper("p0", true));
    let ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=6)
            .map(|i| {
                let e = &e;
                s.spawn(move || e.run(&e.sleeper(&format!("p{i}"), false)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(leases(&e).len(), 6);
    assert_eq!(e.bridge_ports(), 6);
    assert_eq!(host_rules(&e).0.len(), 2, "{:?}", host_rules(&e));
    assert_eq!(
        e.network_files(),
        [format!("{}.lock", e.bridge), format!("{}.rules", e.bridge)]
    );
    std::thread::scope(|s| {
        for id in &ids {
            let e = &e;
            s.spawn(move || e.ok(&["pod", "rm", "-f", id]));
        }
    });
    assert_eq!(host_rules(&e), (vec![], vec![]));
    assert!(!links().contains(&e.bridge));
    assert_eq!(leases(&e), Vec::<String>::new());
    assert_eq!(e.network_files(), Vec::<String>::new());
}

#[test]
fn the_default_network_stays_while_another_state_root_has_a_pod_on_it() {
    let e = PodEnv::default_network("defnet-roots");
    let mine = e.run(&e.sleeper("mine", false));
    // another berth on the host (its own state root) with a pod on the same network
    let other_root = e.dir.join("run-other");
    let f = e.dir.join("other.yaml");
    std::fs::write(&f, e.sleeper("theirs", false)).unwrap();
    let theirs = e
        .ok_in(&other_root, &["pod", "run", f.to_str().unwrap()])
        .trim()
        .to_string();
    assert_eq!(e.bridge_ports(), 2);
    // the last pod of this root leaves: the other's keeps the bridge and the rules
    e.ok(&["pod", "rm", "-f", &mine]);
    assert_eq!(e.bridge_ports(), 1);
    assert_eq!(host_rules(&e).0.len(), 2);
    e.ok_in(&other_root, &["pod", "rm", "-f", &theirs]);
    assert_eq!(host_rules(&e), (vec![], vec![]));
    assert!(!links().contains(&e.bridge));
    assert_eq!(e.network_files(), Vec::<String>::new());
}
