//! Services on the host's kernel: a VIP balanced over two pods from the host and from a third
//! pod on the same bridge, hairpin, names in the pods' /etc/hosts, endpoints that follow pods
//! (removal, stop at the start of the grace period), a reset at once without endpoints, VIPs
//! kept across re-apply and a lost table, and bad input leaving nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::env::*;

/// A pod serving `reply` over HTTP on its port named `http` (8080).
fn web(e: &PodEnv, name: &str, reply: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: web}}}}\nspec:\n  terminationGracePeriodSeconds: 5\n  containers:\n  - name: c\n    image: {}\n    ports: [{{name: http, containerPort: 8080}}]\n    command: [sh, -c, 'mkdir -p /www && echo {reply} > /www/index.html && exec httpd -f -p 8080 -h /www']\n",
        e.image("base")
    )
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n";

/// The service's record and endpoints (`service inspect`).
fn inspect(e: &PodEnv) -> Value {
    serde_json::from_str(&e.ok(&["service", "inspect", "web"])).unwrap()
}

fn vip(e: &PodEnv) -> String {
    inspect(e)["service"]["cluster_ip"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Wait until the service has `n` ready endpoints and the rules send to each of them (the
/// monitors' resyncs run after `inspect` can see the containers running).
fn wait_endpoints(e: &PodEnv, n: usize) -> Value {
    let t = Instant::now();
    loop {
        let v = inspect(e);
        let ready: Vec<String> = v["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["ready"] == true)
            .map(|x| x["ip"].as_str().unwrap().to_string())
            .collect();
        let rules = table(e);
        // one endpoint: `dnat to IP:PORT`; more: `N : IP . PORT` in the rule's map
        let in_rules = |ip: &String| {
            rules.contains(&format!("dnat to {ip}:")) || rules.contains(&format!(": {ip} . "))
        };
        if ready.len() == n && ready.iter().all(in_rules) {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{n} endpoints never: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The table's rules (empty: no table).
fn table(e: &PodEnv) -> String {
    let out = Command::new("nft")
        .args(["list", "table", "ip", &e.nft_table])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP GET from the host; the body's first line.
fn get(addr: &str) -> std::io::Result<String> {
    let a: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut r = String::new();
    s.read_to_string(&mut r)?;
    Ok(r.split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string())
}

fn counts(replies: impl Iterator<Item = String>) -> (usize, usize, usize) {
    let (mut a, mut b, mut other) = (0, 0, 0);
    for r in replies {
        match r.as_str() {
            "from-a" => a += 1,
            "from-b" => b += 1,
            _ => other += 1,
        }
    }
    (a, b, other)
}

#[test]
fn a_service_balances_over_its_pods_from_the_host_and_from_pods() {
    let e = PodEnv::new("svc-lb");
    e.apply(&format!(
        "{SERVICE}---\n{}---\n{}",
        web(&e, "a", "from-a"),
        web(&e, "b", "from-b")
    ));
    wait_endpoints(&e, 2);
    let ip = vip(&e);
    assert!(ip.starts_with("10.78."), "{ip}");
    let t = table(&e);
    assert!(t.contains(&format!("{ip} . tcp . 80")), "{t}");
    // from the host: 200 connections, both pods get at least a quarter
    let (a, b, other) = counts((0..200).map(|_| get(&format!("{ip}:80")).unwrap()));
    assert_eq!(other, 0);
    assert!(a >= 50 && b >= 50, "a {a}, b {b}");
    // from a third pod on the same bridge, by name (its /etc/hosts)
    e.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  containers: [{{name: c, image: {}, command: [sh, -c, 'grep web.default.svc.cluster.local /etc/hosts; echo byname $(wget -qO- http://web/) $(wget -qO- http://web.default.svc.cluster.local/); for i in $(seq 200); do wget -qO- http://{ip}/; done; echo finished; sleep 1000']}}]\n",
        e.image("base")
    ));
    let l = e.log_until("client", "finished");
    assert!(
        l.contains(&format!(
            "{ip}\tweb.default.svc.cluster.local web.default.svc web.default web"
        )),
        "{l}"
    );
    // names resolve through the image's libc (busybox's wget: getaddrinfo)
    assert!(
        l.lines().any(|x| x.starts_with("byname from-")
            && x.split(' ').filter(|w| w.starts_with("from-")).count() == 2),
        "{l}"
    );
    let (a, b, _) = counts(l.lines().map(String::from));
    assert!(a >= 50 && b >= 50 && a + b == 200, "a {a}, b {b}:\n{l}");
    // hairpin: a pod reaches its own service
    let out = e.ok(&[
        "pod",
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        &format!("for i in 1 2 3 4 5 6; do wget -qO- http://{ip}/; done"),
    ]);
    assert_eq!(out.lines().count(), 6, "{out}");
    // a removed pod leaves the rules when its removal returns
    let b_ip = inspect(&e)["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["pod"] == "default/b")
        .unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(table(&e).contains(&b_ip));
    e.ok(&["pod", "rm", "-f", "b"]);
    assert!(!table(&e).contains(&b_ip), "{}", table(&e));
    assert!((0..20).all(|_| get(&format!("{ip}:80")).unwrap() == "from-a"));
    // no endpoints: refused at once, not a time-out
    e.ok(&["pod", "rm", "-f", "a"]);
    let t = Instant::now();
    let err = get(&format!("{ip}:80")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    // the last service gone: the table too
    e.ok(&["kube", "delete", "svc", "web"]);
    assert_eq!(table(&e), "");
    e.ok(&["pod", "rm", "-f", "client"]);
}

#[test]
fn a_stopping_pod_leaves_the_endpoints_when_its_grace_period_starts() {
    let e = PodEnv::new("svc-stop");
    // the container ignores SIGTERM: it runs through its 5 s grace period
    let pod = web(&e, "a", "from-a").replace(
        "exec httpd -f -p 8080 -h /www",
        "trap \"\" TERM; httpd -f -p 8080 -h /www & while :; do sleep 1; done",
    );
    e.apply(&format!("{SERVICE}---\n{pod}"));
    let v = wait_endpoints(&e, 1);
    let a_ip = v["endpoints"][0]["ip"].as_str().unwrap().to_string();
    let mut stop = e
        .cmd(&["pod", "stop", "a"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while table(&e).contains(&a_ip) {
        assert!(t.elapsed() < Duration::from_secs(2), "still in the rules");
        std::thread::sleep(Duration::from_millis(20));
    }
    // it left while its container still ran
    assert!(
        stop.try_wait().unwrap().is_none(),
        "the stop was already over"
    );
    stop.wait().unwrap();
    e.ok(&["pod", "rm", "-f", "a"]);
    e.ok(&["kube", "delete", "svc", "web"]);
}

#[test]
fn vips_are_kept_and_bad_services_leave_nothing() {
    let e = PodEnv::new("svc-keep");
    e.apply(SERVICE);
    let ip = vip(&e);
    // re-applied: unchanged, same address; a lost table (a reboot) is put back
    Command::new("nft")
        .args(["delete", "table", "ip", &e.nft_table])
        .status()
        .unwrap();
    let _ = std::fs::remove_file(e.root.join("services.applied.json"));
    assert_eq!(e.apply(SERVICE).trim(), "service/web unchanged");
    assert_eq!(vip(&e), ip);
    // what `kube get -o yaml` shows applies back, unchanged (kubectl users do that)
    let shown = e.ok(&["kube", "get", "svc", "web", "-o", "yaml"]);
    assert_eq!(e.apply(&shown).trim(), "service/web unchanged", "{shown}");
    assert!(
        table(&e).contains(&format!("{ip} . tcp . 80")),
        "table not back"
    );
    // a taken clusterIP, one out of range, bad ports: refused by field, nothing made
    let other = |spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: other}}\nspec:\n{spec}")
    };
    for (spec, want) in [
        (
            format!("  clusterIP: {ip}\n  ports: [{{port: 80}}]\n"),
            format!("spec.clusterIP: {ip} is already the address of service default/web"),
        ),
        (
            "  clusterIP: 192.0.2.1\n  ports: [{port: 80}]\n".to_string(),
            "spec.clusterIP: 192.0.2.1 is not in the service range".to_string(),
        ),
        ("  ports: [{port: 0}]\n".into(), "spec.ports[0].port".into()),
        (
            "  ports: [{name: a, port: 80}, {port: 81}]\n".into(),
            "spec.ports[1].name: required".into(),
        ),
        (
            "  ports: [{port: 80}]\n  type: NodePort\n".into(),
            "spec.type".into(),
        ),
    ] {
        let err = e.apply_fails(&other(&spec));
        assert!(err.contains(&want), "{spec}: {err}");
    }
    // the range of the flag (over the env's), refused by the flag's name if it overlaps the
    // pod network
    let f = e.file(&other("  ports: [{port: 80}]\n"));
    let f = f.to_str().unwrap();
    let upper = e.service_cidr.replace(".0/24", ".128/25");
    let err = e.fails(&[
        "kube",
        "--service-cidr",
        &format!("{}.0/25", e.net),
        "apply",
        "-f",
        f,
    ]);
    assert!(
        err.contains(&format!(
            "--service-cidr: the service range {}.0/25 overlaps the pod network {}.0/24",
            e.net, e.net
        )),
        "{err}"
    );
    let t = e.ok(&["kube", "get", "svc"]);
    assert!(t.contains("web") && !t.contains("other"), "{t}");
    e.ok(&["kube", "apply", "--service-cidr", &upper, "-f", f]);
    let got = e.get_json(&["svc", "other"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let last: u8 = got.rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        got.starts_with(&e.service_cidr.replace(".0/24", ".")) && last > 128,
        "{got} not in {upper}"
    );
    e.ok(&["kube", "delete", "svc", "other"]);
    // a changed clusterIP is refused by name
    let err = e.apply_fails(&SERVICE.replace("spec:\n", "spec:\n  clusterIP: 10.78.0.250\n"));
    assert!(
        err.contains("spec.clusterIP") && err.contains("cannot change"),
        "{err}"
    );
    e.ok(&["kube", "delete", "svc", "web"]);
    assert_eq!(table(&e), "");
}

/// Conntrack entries of UDP flows to `vip:port`: the addresses they were DNATed to.
fn udp_flows_to(vip: &str, port: u16) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/net/nf_conntrack").unwrap();
    text.lines()
        .filter(|l| {
            l.contains(" udp ")
                && l.contains(&format!("dst={vip} "))
                && l.contains(&format!("dport={port} "))
        })
        .filter_map(|l| {
            // the reply direction's source is where the flow really goes
            let reply = l.split("src=").nth(2)?;
            let ip = reply.split(' ').next()?;
            let sport = l.split("sport=").nth(2)?.split(' ').next()?;
            Some(format!("{ip}:{sport}"))
        })
        .collect()
}

#[test]
fn udp_services_reach_every_endpoint_and_refuse_without_any() {
    let e = PodEnv::new("svc-udp");
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: dns, port: 5353, protocol: UDP, targetPort: 53}]\n";
    e.apply(&format!(
        "{svc}---\n{}---\n{}",
        web(&e, "a", "from-a"),
        web(&e, "b", "from-b")
    ));
    let v = wait_endpoints(&e, 2);
    let ip = vip(&e);
    let pods: Vec<String> = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}:53", x["ip"].as_str().unwrap()))
        .collect();
    // 60 datagrams from 60 source ports: conntrack shows where each went
    for _ in 0..60 {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"x", format!("{ip}:5353")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let flows = udp_flows_to(&ip, 5353);
    for p in &pods {
        let n = flows.iter().filter(|f| *f == p).count();
        assert!(n >= 10, "{p}: {n} of {flows:?}");
    }
    assert!(flows.iter().all(|f| pods.contains(f)), "{flows:?}");
    // without endpoints: refused at once. A local sender's datagram is rejected in the
    // output hook (the send fails: EPERM) or the ICMP port unreachable reaches the
    // connected socket (ECONNREFUSED); never a silent drop
    e.ok(&["pod", "rm", "-f", "a"]);
    e.ok(&["pod", "rm", "-f", "b"]);
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect(format!("{ip}:5353")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let err = match s.send(b"x") {
        Err(e) => e,
        Ok(_) => s.recv(&mut [0u8; 16]).unwrap_err(),
    };
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::PermissionDenied
        ),
        "{err}"
    );
    e.ok(&["kube", "delete", "svc", "web"]);
}

#[test]
fn a_resync_killed_anywhere_is_repaired_by_the_next_one() {
    let e = PodEnv::new("svc-crash");
    e.apply(&format!("{SERVICE}---\n{}", web(&e, "a", "from-a")));
    wait_endpoints(&e, 1);
    let ip = vip(&e);
    let two_ports = SERVICE.replace(
        "ports: [{port: 80, targetPort: http}]",
        "ports: [{name: web, port: 80, targetPort: http}, {name: alt, port: 81, targetPort: http}]",
    );
    // killed while applying `killed_in`, then `next` applied: the table must be `next`'s.
    // The second case is the trap: killed after nft replaced the table with one port but
    // before the record said so, a return to two ports must not be taken for "no change"
    for (point, killed_in, next, has_81) in [
        ("service-resync:computed", &two_ports, &two_ports, true),
        (
            "service-resync:applied",
            &SERVICE.to_string(),
            &two_ports,
            true,
        ),
    ] {
        let f = e.file(killed_in);
        let out = e
            .cmd(&["kube", "apply", "-f", f.to_str().unwrap()])
            .env("BERTH_FAULT", point)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{point}: {out:?}"
        );
        // the table is the old one or the new one, whole (nft transactions are atomic)
        let t = table(&e);
        assert!(t.contains(&format!("{ip} . tcp . 80")), "{point}: {t}");
        // the next command's resync makes it right
        e.apply(next);
        let t = table(&e);
        assert_eq!(
            t.contains(&format!("{ip} . tcp . 81")),
            has_81,
            "{point}: {t}"
        );
        assert!((0..5).all(|_| get(&format!("{ip}:80")).unwrap() == "from-a"));
    }
    e.ok(&["pod", "rm", "-f", "a"]);
    e.ok(&["kube", "delete", "svc", "web"]);
}

#[test]
fn names_of_services_made_after_the_pod_resolve_and_headless_names_list_endpoints() {
    let e = PodEnv::new("svc-names");
    let client = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  containers: [{{name: c, image: {}, command: [sleep, '1000']}}]\n",
        e.image("base")
    );
    e.apply(&format!("{}---\n{client}", web(&e, "a", "from-a")));
    e.wait("client", "c", "Running");
    // the services come after the client started
    let headless = "apiVersion: v1\nkind: Service\nmetadata: {name: direct}\nspec:\n  clusterIP: None\n  selector: {app: web}\n";
    e.apply(&format!("{SERVICE}---\n{headless}"));
    let v = wait_endpoints(&e, 1);
    let a_ip = v["endpoints"][0]["ip"].as_str().unwrap().to_string();
    let got = e.wait_exec("client", "c", &["wget", "-qO-", "http://web/"], "from-a");
    assert!(got.contains("from-a"), "{got}");
    let got = e.wait_exec(
        "client",
        "c",
        &["wget", "-qO-", "http://web.default.svc.cluster.local/"],
        "from-a",
    );
    assert!(got.contains("from-a"), "{got}");
    // a headless service's name lists its endpoints' addresses
    let hosts = e.ok(&["pod", "exec", "client", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!(
            "{a_ip}\tdirect.default.svc.cluster.local direct.default.svc direct.default direct"
        )),
        "{hosts}"
    );
    let got = e.wait_exec(
        "client",
        "c",
        &["wget", "-qO-", "http://direct:8080/"],
        "from-a",
    );
    assert!(got.contains("from-a"), "{got}");
    // the service gone: its names go too
    e.ok(&["kube", "delete", "svc", "web"]);
    let hosts = e.ok(&["pod", "exec", "client", "--", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("web.default"), "{hosts}");
    e.ok(&["kube", "delete", "svc", "direct"]);
}
