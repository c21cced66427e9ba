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
    // pod to pod, over the bridge
    e.wait_exec(
        &b,
        "web",
        &["wget", "-qO-", &format!("http://{ia}:8080/index.html")],
        "hello from alpha",
    );
    // host to pod
    assert!(http_get(&format!("{ib}:8080")).contains("hello from beta"));
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
