//! What containers of one pod share (network, IPC, UTS; /dev/shm; optionally PID) and what
//! they do not (mount, PID), as /proc shows it.

use std::fs;

use super::env::*;

fn two_containers(img: &str, share_pid: bool) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: duo}}
spec:
  shareProcessNamespace: {share_pid}
  containers:
  - name: server
    image: {img}
    command: [sh, -c, "echo served > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
  - name: client
    image: {img}
    command: [sleep, "1000"]
"#
    )
}

#[test]
fn containers_share_network_ipc_and_uts_but_not_mount_or_pid() {
    let e = PodEnv::new("ns");
    let pod = e.run(&two_containers(&e.image("base"), false));
    let (a, b) = (e.pid(&pod, "server"), e.pid(&pod, "client"));
    let dir = e.pod_dir(&pod);
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns(a, kind),
            ns(b, kind),
            "{kind} differs between the containers"
        );
        assert_ne!(
            ns(a, kind),
            ns(std::process::id() as i32, kind),
            "{kind} is the host's"
        );
        // the pinned namespace file of the pod is that namespace
        let pinned = std::os::unix::fs::MetadataExt::ino(&fs::metadata(dir.join(kind)).unwrap());
        assert_eq!(ns(a, kind), format!("{kind}:[{pinned}]"));
    }
    for kind in ["mnt", "pid"] {
        assert_ne!(ns(a, kind), ns(b, kind), "{kind} is shared");
    }
    // B reaches A's server on 127.0.0.1; one hostname; one /dev/shm
    e.wait_exec(
        &pod,
        "client",
        &["wget", "-qO-", "http://127.0.0.1:8080/index.html"],
        "served",
    );
    assert_eq!(
        e.ok(&["pod", "exec", "-c", "client", &pod, "--", "hostname"])
            .trim(),
        "duo"
    );
    assert_eq!(
        e.ok(&["pod", "exec", "-c", "server", &pod, "--", "hostname"])
            .trim(),
        "duo"
    );
    e.ok(&[
        "pod",
        "exec",
        "-c",
        "server",
        &pod,
        "--",
        "sh",
        "-c",
        "echo shared > /dev/shm/x",
    ]);
    assert_eq!(
        e.ok(&[
            "pod",
            "exec",
            "-c",
            "client",
            &pod,
            "--",
            "cat",
            "/dev/shm/x"
        ])
        .trim(),
        "shared"
    );
    // every container's init is a child of the pod's one monitor
    let v = e.inspect(&pod);
    let monitor = v["monitor_pid"].as_i64().unwrap() as i32;
    for pid in [a, b] {
        assert_eq!(
            super::common::status_field(pid, "PPid"),
            monitor.to_string()
        );
    }
    assert_eq!(
        fs::read_to_string(format!("/proc/{monitor}/comm"))
            .unwrap()
            .trim(),
        "berth-monitor"
    );
    // each sees only itself in its own PID namespace
    let ps = e.ok(&[
        "pod", "exec", "-c", "client", &pod, "--", "ps", "-o", "comm",
    ]);
    assert!(!ps.contains("httpd"), "{ps}");
}

#[test]
fn share_process_namespace_puts_the_pod_in_one_pid_namespace() {
    let e = PodEnv::new("pidns");
    let pod = e.run(&two_containers(&e.image("base"), true));
    let (a, b) = (e.pid(&pod, "server"), e.pid(&pod, "client"));
    assert_eq!(ns(a, "pid"), ns(b, "pid"));
    assert_ne!(ns(a, "pid"), ns(std::process::id() as i32, "pid"));
    // the holder of the namespace is its PID 1, a pause stub owned by the monitor
    let pause: i32 = fs::read_to_string(e.pod_dir(&pod).join("pause.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(ns(pause, "pid"), ns(a, "pid"));
    assert_eq!(
        super::common::status_field(pause, "NSpid")
            .split_whitespace()
            .last(),
        Some("1")
    );
    let ps = e.wait_exec(&pod, "client", &["ps", "-o", "pid,comm"], "httpd");
    assert!(ps.lines().any(|l| l.trim_start().starts_with("1 ")), "{ps}");
    // removal takes the pause process too
    e.ok(&["pod", "rm", "-f", &pod]);
    assert!(!running(pause), "the pause process outlived its pod");
}

#[test]
fn host_network_pods_use_the_hosts_network() {
    let e = PodEnv::new("hostnet");
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hn}}\nspec:\n  hostNetwork: true\n  containers:\n  - {{name: c, image: {}, command: [sleep, \"1000\"]}}\n",
        e.image("base")
    ));
    let pid = e.pid(&pod, "c");
    assert_eq!(ns(pid, "net"), ns(std::process::id() as i32, "net"));
    assert_ne!(
        ns(pid, "uts"),
        ns(std::process::id() as i32, "uts"),
        "UTS stays the pod's own"
    );
    assert!(!exists(&e.pod_dir(&pod).join("net")));
    assert_eq!(e.inspect(&pod)["ips"], serde_json::json!([]));
}
