//! Removal leaves nothing, and neither do bad manifests or failures part way through creating
//! a pod: no namespace files, veths, IPAM leases, iptables rules, cgroups, mounts, processes,
//! state or logs.

use std::fs;

use super::common::{cgroup_dirs_of, processes_mentioning};
use super::env::*;

/// What a pod leaves on the host while it exists.
struct Traces {
    id: String,
    ip: String,
    cgroup: String,
    monitor: i32,
    pids: Vec<i32>,
    veths_before: usize,
}

fn veths() -> usize {
    links().iter().filter(|l| l.starts_with("veth")).count()
}

fn assert_gone(e: &PodEnv, t: &Traces) {
    assert!(!e.pod_dir(&t.id).exists(), "state dir left");
    assert!(
        !e.dir
            .join("ipam")
            .join(format!("t{}", e.net.rsplit('.').next().unwrap()))
            .join(&t.ip)
            .exists(),
        "IPAM lease of {} left",
        t.ip
    );
    assert_eq!(
        iptables_mentioning(&t.id),
        Vec::<String>::new(),
        "iptables rules of the pod left"
    );
    assert_eq!(
        iptables_mentioning(&format!("{}/32", t.ip)),
        Vec::<String>::new(),
        "iptables rules of the pod's IP left"
    );
    assert_eq!(e.bridge_ports(), 0, "a veth was left on the bridge");
    let _ = t.veths_before;
    for d in cgroup_dirs_of(&t.cgroup) {
        assert!(!d.exists(), "cgroup {} left", d.display());
    }
    for p in std::iter::once(t.monitor).chain(t.pids.iter().copied()) {
        assert!(!running(p), "process {p} left");
    }
    assert_eq!(
        processes_mentioning(&t.id),
        Vec::<i32>::new(),
        "processes mentioning the pod left"
    );
    assert_eq!(
        super::harness::mounts_under(&e.root),
        Vec::<String>::new(),
        "mounts left"
    );
    let logs = e.dir.join("logs");
    assert!(
        fs::read_dir(&logs)
            .map(|mut r| r.next().is_none())
            .unwrap_or(true),
        "logs left"
    );
}

#[test]
fn removal_leaves_nothing() {
    let e = PodEnv::new("rm");
    let veths_before = veths();
    let img = e.image("base");
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: gone}}\nspec:\n  shareProcessNamespace: true\n  volumes: [{{name: m, emptyDir: {{medium: Memory}}}}]\n  containers:\n  - {{name: a, image: {img}, command: [sleep, \"1000\"], volumeMounts: [{{name: m, mountPath: /m}}], ports: [{{containerPort: 80, hostPort: {}}}]}}\n  - {{name: b, image: {img}, command: [sleep, \"1000\"]}}\n",
        21000 + std::process::id() % 9000
    ));
    let v = e.inspect(&pod);
    let t = Traces {
        id: pod.clone(),
        ip: v["ips"][0].as_str().unwrap().to_string(),
        cgroup: v["cgroup"].as_str().unwrap().to_string(),
        monitor: v["monitor_pid"].as_i64().unwrap() as i32,
        pids: vec![
            e.pid(&pod, "a"),
            e.pid(&pod, "b"),
            fs::read_to_string(e.pod_dir(&pod).join("pause.pid"))
                .unwrap()
                .trim()
                .parse()
                .unwrap(),
        ],
        veths_before,
    };
    assert_eq!(e.bridge_ports(), 1);
    assert!(
        !iptables_mentioning(&pod).is_empty(),
        "no iptables rules to check"
    );
    // a running pod needs --force
    let err = e.fails(&["pod", "rm", &pod]);
    assert!(
        err.contains("running containers") && err.contains("--force"),
        "{err}"
    );
    e.ok(&["pod", "rm", "-f", &pod]);
    assert_gone(&e, &t);
    let err = e.fails(&["pod", "inspect", &pod]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn bad_manifests_are_refused_before_anything_is_made() {
    let e = PodEnv::new("badman");
    let img = e.image("base");
    let cases = [
        (format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {{name: a, image: {img}}}\n  - {{name: b, image: {img}, lifecycle: {{postStart: {{}}}}}}\n"), "spec.containers[1].lifecycle: not supported"),
        (format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: a, image: {img}, resources: {{limits: {{memory: lots}}}}}}]\n"), "spec.containers[0].resources.limits.memory"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: \"127.0.0.1:1/nothing/here\"}]}\n".to_string(), "127.0.0.1:1"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: [not, a, map]\n".to_string(), "spec: expected an object"),
    ];
    for (yaml, want) in cases {
        let err = e.run_fails(&yaml);
        assert!(err.contains(want), "{yaml}\n→ {err}");
        // as clients judge a failure: the word error, and no prefix said twice
        assert!(
            err.contains("error: ") && !err.contains("manifest: manifest:"),
            "{err}"
        );
    }
    assert!(
        !e.root.join("pods").exists()
            || fs::read_dir(e.root.join("pods")).unwrap().next().is_none(),
        "a pod was made"
    );
    // a second pod of one name: the name once
    let yaml = e.sleeper("twice", true);
    let id = e.run(&yaml);
    let err = e.run_fails(&yaml);
    assert!(
        err.contains("error: pod default/twice already exists") && !err.contains("twice: pod"),
        "{err}"
    );
    e.ok(&["pod", "rm", "-f", &id]);
    assert!(
        !links().contains(&e.bridge),
        "CNI ran for a refused manifest"
    );
}

#[test]
fn a_failure_part_way_through_creation_leaves_nothing() {
    let e = PodEnv::new("midfail");
    let veths_before = veths();
    let img = e.image("base");
    // the image runs as root; runAsNonRoot is checked after the sandbox and network exist
    let err = e.run_fails(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: mid}}\nspec:\n  containers:\n  - {{name: ok, image: {img}, command: [sleep, \"1000\"]}}\n  - {{name: root, image: {img}, securityContext: {{runAsNonRoot: true}}}}\n"
    ));
    assert!(err.contains("runAsNonRoot"), "{err}");
    assert!(
        fs::read_dir(e.root.join("pods")).unwrap().next().is_none(),
        "a pod dir was left"
    );
    assert_eq!(e.bridge_ports(), 0, "a veth was left on the bridge");
    let _ = veths_before;
    let ipam = e.dir.join("ipam");
    let leases: Vec<String> = fs::read_dir(&ipam)
        .map(|rd| {
            rd.flatten()
                .flat_map(|n| {
                    fs::read_dir(n.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|f| f.file_name().to_string_lossy().into_owned())
                })
                .filter(|f| f.starts_with("10."))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(leases, Vec::<String>::new(), "IPAM leases left");
    assert_eq!(
        super::harness::mounts_under(&e.root),
        Vec::<String>::new(),
        "mounts left"
    );
    assert_eq!(
        processes_mentioning(&e.root.display().to_string()),
        Vec::<i32>::new(),
        "a monitor was left"
    );
    for d in cgroup_dirs_of(&e.cgroup_parent()) {
        let left: Vec<String> = fs::read_dir(&d)
            .map(|rd| {
                rd.flatten()
                    .filter(|x| x.path().is_dir())
                    .map(|x| x.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            left,
            Vec::<String>::new(),
            "cgroups left in {}",
            d.display()
        );
    }
    // a hostPath that must exist but does not: refused after namespaces and cgroup were made
    let err = e.run_fails(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: mid2}}\nspec:\n  volumes: [{{name: h, hostPath: {{path: /nonexistent/berth-test, type: Directory}}}}]\n  containers: [{{name: a, image: {img}, volumeMounts: [{{name: h, mountPath: /h}}]}}]\n"
    ));
    assert!(
        err.contains("/nonexistent/berth-test") && err.contains("does not exist"),
        "{err}"
    );
    assert!(
        fs::read_dir(e.root.join("pods")).unwrap().next().is_none(),
        "a pod dir was left"
    );
    assert_eq!(
        super::harness::mounts_under(&e.root),
        Vec::<String>::new(),
        "mounts left"
    );
}

#[test]
fn failures_on_the_default_network_leave_no_rules_nor_bridge() {
    let e = PodEnv::default_network("defnet-fail");
    let img = e.image("base");
    let no_rules = |what: &str| {
        assert_eq!(
            iptables_mentioning(&format!("BERTH-NAT-{}", e.bridge)),
            Vec::<String>::new(),
            "nat rules left after {what}"
        );
        assert_eq!(
            iptables_mentioning(&format!("BERTH-FWD-{}", e.bridge)),
            Vec::<String>::new(),
            "forward rules left after {what}"
        );
        assert!(!links().contains(&e.bridge), "bridge left after {what}");
        assert!(
            e.network_files().is_empty(),
            "{:?} left after {what}",
            e.network_files()
        );
        assert!(
            fs::read_dir(e.root.join("pods")).unwrap().next().is_none(),
            "a pod dir was left after {what}"
        );
    };
    // the CNI ADD fails after the network's rules were written (its plugin is missing)
    let f = e.dir.join("np.yaml");
    fs::write(&f, e.sleeper("np", false)).unwrap();
    let empty = e.dir.join("no-plugins");
    fs::create_dir_all(&empty).unwrap();
    // `berth pod run` of the manifest, with an environment variable: its error
    let run_with = |key: &str, value: &str| {
        let out = e
            .cmd(&["pod", "run", f.to_str().unwrap()])
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value}: the pod ran");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run_with("BERTH_CNI_PLUGIN_DIRS", empty.to_str().unwrap());
    assert!(err.contains("plugin \"bridge\" not found"), "{err}");
    no_rules("a failed CNI ADD");
    // a failure after the pod joined the network (runAsNonRoot is checked at container creation)
    let err = e.run_fails(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: mid}}\nspec:\n  containers:\n  - {{name: root, image: {img}, securityContext: {{runAsNonRoot: true}}}}\n"
    ));
    assert!(err.contains("runAsNonRoot"), "{err}");
    no_rules("a failed container creation");
    // a bad default subnet is refused by name, before anything is made
    let err = run_with("BERTH_DEFAULT_SUBNET", "10.79.0.0/33");
    assert!(
        err.contains("default network subnet \"10.79.0.0/33\""),
        "{err}"
    );
    no_rules("a bad subnet");
}
