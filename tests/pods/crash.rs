//! kill -9 of berth's own processes at chosen points (`BERTH_FAULT`, read by debug builds:
//! src/fault.rs) and of a pod's monitor and keeper: what berth reports afterwards matches the
//! kernel, and a removal leaves nothing.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use super::common::{cgroup_dirs_of, processes_mentioning, status_field};
use super::env::*;

/// Nothing of any pod is left in this test's world: no pod directory, name reservation,
/// operation marker, veth, IPAM lease, iptables rule, cgroup, mount or process.
fn assert_clean(e: &PodEnv, after: &str) {
    let entries = |d: &std::path::Path| -> Vec<String> {
        fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|x| x.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for sub in ["pods", "names", "inflight"] {
        assert_eq!(
            entries(&e.root.join(sub)),
            Vec::<String>::new(),
            "{sub} left after {after}"
        );
    }
    assert_eq!(e.bridge_ports(), 0, "a veth was left after {after}");
    let leases: Vec<String> = entries(&e.dir.join("ipam"))
        .iter()
        .flat_map(|n| entries(&e.dir.join("ipam").join(n)))
        .filter(|f| f.starts_with("10."))
        .collect();
    assert_eq!(leases, Vec::<String>::new(), "leases left after {after}");
    assert_eq!(
        iptables_mentioning(&format!("{}.", e.net)),
        Vec::<String>::new(),
        "rules left after {after}"
    );
    for d in cgroup_dirs_of(&e.cgroup_parent()) {
        assert!(!d.exists(), "cgroup {} left after {after}", d.display());
    }
    assert_eq!(
        super::harness::mounts_under(&e.root),
        Vec::<String>::new(),
        "mounts left after {after}"
    );
    assert_eq!(
        processes_mentioning(&e.root.display().to_string()),
        Vec::<i32>::new(),
        "processes left after {after}"
    );
}

/// `berth pod run` of a manifest with `BERTH_FAULT=point`: it must die there.
fn run_killed_at(e: &PodEnv, yaml: &std::path::Path, point: &str) {
    let out = e
        .cmd(&["pod", "run", yaml.to_str().unwrap()])
        .env("BERTH_FAULT", point)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "pod run did not die at {point}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_creation_killed_anywhere_is_rolled_back_by_the_next_command() {
    let e = PodEnv::new("crash-create");
    let yaml = e.dir.join("p.yaml");
    // two containers: the second one's creation is cut short after the first one runs
    fs::write(
        &yaml,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: half}}\nspec:\n  containers:\n  - {{name: a, image: {img}, command: [sleep, \"1000\"]}}\n  - {{name: b, image: {img}, command: [sleep, \"1000\"]}}\n",
            img = e.image("base")
        ),
    )
    .unwrap();
    let points = [
        "pod-create:named",
        "pod-create:namespaces",
        "pod-create:cgroup",
        "pod-create:network",
        "pod-create:monitor",
        "container-create:unpacked",
        "container-create:spec",
    ];
    for (i, point) in points.iter().enumerate() {
        run_killed_at(&e, &yaml, point);
        // the next command, whatever it is, rolls back first; `pod rm -f NAME` finds nothing
        // left under the name
        let said = if i % 2 == 0 {
            let out = e.berth(&["pod", "ls"]);
            let ls = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && !ls.contains("half"),
                "{point}: {ls}"
            );
            String::from_utf8_lossy(&out.stderr).into_owned()
        } else {
            let out = e.berth(&["pod", "rm", "-f", "half"]);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                out.status.success() || err.contains("not found"),
                "{point}: {err}"
            );
            err
        };
        assert!(said.contains("rolled back"), "{point}: {said}");
        assert_clean(&e, &format!("{point} ({said})"));
        // and the name is free
        let id = e.ok(&["pod", "run", yaml.to_str().unwrap()]);
        e.ok(&["pod", "rm", "-f", id.trim()]);
        assert_clean(&e, &format!("removing the pod made after {point}"));
    }
}

#[test]
fn a_removal_killed_anywhere_is_finished_by_the_next_command() {
    let e = PodEnv::new("crash-rm");
    for point in [
        "pod-remove:marked",
        "pod-remove:stopped",
        "pod-remove:cgroup",
    ] {
        let id = e.run(&e.sleeper("gone", false));
        let out = e
            .cmd(&["pod", "rm", "-f", &id])
            .env("BERTH_FAULT", point)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "pod rm -f survived {point}");
        let err = e.fails(&["pod", "inspect", &id]);
        assert!(err.contains("not found"), "{point}: {err}");
        assert_clean(&e, &format!("{point} ({err})"));
    }
}

#[test]
fn a_stop_killed_anywhere_leaves_the_pod_not_ready() {
    let e = PodEnv::new("crash-stop");
    for point in ["pod-stop:before-del", "pod-stop:after-del"] {
        let id = e.run(&e.sleeper("halt", false));
        let out = e
            .cmd(&["pod", "stop", "-t", "0", &id])
            .env("BERTH_FAULT", point)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "pod stop survived {point}");
        let v = e.inspect(&id);
        assert_eq!(v["state"], "NotReady", "{point}: {v}");
        // stopping again finishes the network's teardown
        e.ok(&["pod", "stop", "-t", "0", &id]);
        assert_eq!(e.bridge_ports(), 0, "{point}: the veth is still there");
        e.ok(&["pod", "rm", "-f", &id]);
        assert_clean(&e, point);
    }
}

#[test]
fn a_waiting_pod_started_by_a_killed_command_runs_once() {
    let e = PodEnv::new("crash-pending");
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: w}}\nspec:\n  hostNetwork: true\n  containers: [{{name: c, image: {}, command: [sh, -c, 'echo got=$V; sleep 1000'], env: [{{name: V, valueFrom: {{configMapKeyRef: {{name: late, key: v}}}}}}]}}]\n",
        e.image("base")
    );
    let f = e.file(&pod);
    e.ok(&["kube", "apply", "--detach", "-f", f.to_str().unwrap()]);
    // the ConfigMap's apply dies right after making the waiting pod's containers
    let cm = e.file("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {v: here}\n");
    let out = e
        .cmd(&["kube", "apply", "-f", cm.to_str().unwrap()])
        .env("BERTH_FAULT", "pod-pending:started")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9), "kube apply survived");
    // the truth: the pod waits no more, its one container runs
    e.log_until("w", "got=here");
    let v = e.inspect("w");
    assert!(v.get("waiting").is_none(), "still waiting: {v}");
    assert_eq!(v["containers"].as_array().unwrap().len(), 1, "{v}");
    let row = e.ok(&["kube", "get", "pods"]);
    assert!(
        row.lines()
            .any(|l| l.starts_with("w ") && l.contains("1/1") && l.contains("Running")),
        "{row}"
    );
    // applying again starts nothing twice
    e.ok(&["kube", "apply", "-f", cm.to_str().unwrap()]);
    let v = e.inspect("w");
    assert_eq!(v["containers"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(e.ok(&["pod", "logs", "w"]).matches("got=here").count(), 1);
    e.ok(&["pod", "rm", "-f", "w"]);
    assert_clean(&e, "the pod started by a killed apply");
}

/// A child process killed when the test ends, even by a panic.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The pod's monitor and its keeper.
fn monitor_and_keeper(e: &PodEnv, pod: &str) -> (i32, i32) {
    let m = e.inspect(pod)["monitor_pid"].as_i64().unwrap() as i32;
    let k: i32 = fs::read_to_string(e.pod_dir(pod).join("keeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (m, k)
}

/// Wait until the pod's monitor is another process than `old`; returns it.
fn new_monitor(e: &PodEnv, pod: &str, old: i32) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(m) = e.inspect(pod)["monitor_pid"].as_i64()
            && m as i32 != old
        {
            return m as i32;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no new monitor");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_lines(e: &PodEnv, pod: &str) -> usize {
    e.ok(&["pod", "logs", "-c", "talk", pod])
        .lines()
        .filter(|l| l.starts_with("line"))
        .count()
}

/// Wait until the container's log has more than `n` lines.
fn log_grows(e: &PodEnv, pod: &str, n: usize) {
    let t = Instant::now();
    while log_lines(e, pod) <= n + 3 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the log stopped at {n} lines"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_monitor_is_replaced_and_loses_nothing() {
    let e = PodEnv::new("crash-monitor");
    let h = e.dir.join("h");
    fs::create_dir_all(&h).unwrap();
    let img = e.image("base");
    let waits = |file: &str, code: i32| {
        format!(
            "[sh, -c, \"while [ ! -e /h/{file} ]; do sleep 0.05; done; echo bye; exit {code}\"]"
        )
    };
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: kept}}\nspec:\n  restartPolicy: Never\n  volumes: [{{name: h, hostPath: {{path: {h}}}}}]\n  containers:\n  - {{name: talk, image: {img}, command: [sh, -c, \"i=0; while :; do echo line$i; i=$((i+1)); sleep 0.05; done\"]}}\n  - {{name: one, image: {img}, command: {one}, volumeMounts: [{{name: h, mountPath: /h}}]}}\n  - {{name: two, image: {img}, command: {two}, volumeMounts: [{{name: h, mountPath: /h}}]}}\n",
        h = h.display(),
        one = waits("one", 7),
        two = waits("two", 9),
    ));
    let mut events = KillOnDrop(Some(
        e.cmd(&["pod", "events", "--interval", "50ms"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let talk = e.pid(&pod, "talk");
    let (m, k) = monitor_and_keeper(&e, &pod);
    assert_eq!(
        status_field(m, "PPid"),
        k.to_string(),
        "the keeper is not the monitor's parent"
    );
    let before = log_lines(&e, &pod);

    // 1. the monitor alone: the keeper starts another at once, which takes the pod over
    kill(Pid::from_raw(m), Signal::SIGKILL).unwrap();
    let m2 = new_monitor(&e, &pod, m);
    assert_eq!(status_field(m2, "PPid"), k.to_string());
    assert!(running(talk), "the container died with its monitor");
    assert_eq!(e.pid(&pod, "talk"), talk);
    log_grows(&e, &pod, before);
    fs::write(h.join("one"), "").unwrap();
    let c = e.wait(&pod, "one", "Exited");
    assert_eq!(c["status"]["exit_code"], 7, "{c}");
    assert_eq!(c["status"]["reason"], "Error", "{c}");

    // 2. a container exits while no monitor runs (the keeper is stopped, the monitor killed):
    // the keeper collects its exit status and hands it to the next monitor
    kill(Pid::from_raw(k), Signal::SIGSTOP).unwrap();
    kill(Pid::from_raw(m2), Signal::SIGKILL).unwrap();
    let two = e.pid(&pod, "two");
    fs::write(h.join("two"), "").unwrap();
    let t = Instant::now();
    while !fs::read_to_string(format!("/proc/{two}/stat")).is_ok_and(|s| s.contains(") Z")) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "container two never exited"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(Pid::from_raw(k), Signal::SIGCONT).unwrap();
    let m3 = new_monitor(&e, &pod, m2);
    let c = e.wait(&pod, "two", "Exited");
    assert_eq!(c["status"]["exit_code"], 9, "{c}");
    let n = log_lines(&e, &pod);
    log_grows(&e, &pod, n);
    let v = e.inspect(&pod);
    assert_eq!(v["state"], "Ready", "{v}");

    // the replacements were announced
    std::thread::sleep(Duration::from_millis(300));
    let mut child = events.0.take().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let seen: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let replaced = seen
        .iter()
        .filter(|v| v["kind"] == "pod_monitor_replaced" && v["pod_id"] == pod.as_str())
        .count();
    assert!(replaced >= 2, "{seen:?}");

    e.ok(&["pod", "rm", "-f", &pod]);
    for p in [k, m3, talk] {
        assert!(!running(p), "process {p} left");
    }
    assert_clean(&e, "removing the pod");
}

#[test]
fn a_killed_monitor_and_keeper_leave_containers_killed_and_reported() {
    let e = PodEnv::new("crash-keeper");
    let img = e.image("base");
    for (policy, restarts) in [("Never", false), ("Always", true)] {
        let pod = e.run(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: lost}}\nspec:\n  restartPolicy: {policy}\n  containers:\n  - {{name: c, image: {img}, command: [sleep, \"1000\"]}}\n"
        ));
        let c = e.pid(&pod, "c");
        let (m, k) = monitor_and_keeper(&e, &pod);
        kill(Pid::from_raw(k), Signal::SIGKILL).unwrap();
        kill(Pid::from_raw(m), Signal::SIGKILL).unwrap();
        let t = Instant::now();
        while running(m) || running(k) {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(5));
        }
        // the next read finds them gone: the container is killed and reported, and a new
        // monitor takes the pod over
        let v = e.inspect(&pod);
        assert!(!running(c), "{policy}: the container still runs");
        let m2 = v["monitor_pid"].as_i64().expect("no new monitor") as i32;
        assert_ne!(m2, m);
        let ctr = &v["containers"][0]["status"];
        if restarts {
            let s = e.wait(&pod, "c", "Running");
            assert!(s["status"]["restart_count"].as_u64() >= Some(1), "{s}");
            assert_ne!(e.pid(&pod, "c"), c);
        } else {
            assert_eq!(ctr["state"], "Exited", "{v}");
            assert_eq!(ctr["exit_code"], 255, "{v}");
            assert_eq!(ctr["reason"], "Unknown", "{v}");
        }
        // the pod still works
        if restarts {
            e.ok(&["pod", "exec", "-c", "c", &pod, "--", "true"]);
        }
        e.ok(&["pod", "rm", "-f", &pod]);
        assert_clean(&e, policy);
    }
}

#[test]
fn every_oom_kill_reads_oom_killed_after_restarts() {
    let e = PodEnv::new("crash-oom");
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hog}}\nspec:\n  restartPolicy: Always\n  containers:\n  - name: hog\n    image: {}\n    command: [sh, -c, \"exec dd if=/dev/zero of=/dev/null bs=200M count=1\"]\n    resources: {{limits: {{memory: 32Mi}}}}\n",
        e.image("base")
    ));
    // each exit is seen (the back-off is 200 ms, doubling): the reason of every one
    let mut seen = Vec::new();
    let mut last = u64::MAX;
    let t = Instant::now();
    while seen.len() < 3 {
        assert!(t.elapsed() < Duration::from_secs(60), "{seen:?}");
        let c = e.container(&pod, "hog");
        let s = &c["status"];
        let n = s["restart_count"].as_u64().unwrap();
        if s["state"] == "Exited" && n != last {
            last = n;
            seen.push(s["reason"].as_str().unwrap().to_string());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(seen.iter().all(|r| r == "OOMKilled"), "{seen:?}");
    e.ok(&["pod", "rm", "-f", &pod]);
}

#[test]
fn a_memory_limit_too_small_to_start_is_named() {
    let e = PodEnv::new("crash-tiny");
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: tiny}}\nspec:\n  restartPolicy: Never\n  containers: [{{name: c, image: {}, command: [\"true\"], resources: {{limits: {{memory: 4Ki}}}}}}]\n",
        e.image("base")
    ));
    // the pod's limit (the sum of its containers') is below what the kernel charges for a
    // memory cgroup: the container's cannot be made, and the message says why
    let c = e.wait(&pod, "c", "Exited");
    let message = c["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Cannot allocate memory") && message.contains("memory limit above it"),
        "{c}"
    );
    e.ok(&["pod", "rm", "-f", &pod]);
    assert_clean(&e, "a failed start");
}

#[test]
fn overlapping_pods_leave_no_parent_cgroups() {
    let e = PodEnv::new("crash-parents");
    let parent = e.cgroup_parent();
    std::thread::scope(|s| {
        for i in 0..20 {
            let e = &e;
            s.spawn(move || {
                let id = e.run(&e.sleeper(&format!("p{i}"), true));
                std::thread::sleep(Duration::from_millis(50 * (i % 5)));
                e.ok(&["pod", "rm", "-f", &id]);
            });
        }
    });
    for d in cgroup_dirs_of(&parent) {
        assert!(!d.exists(), "{} left", d.display());
    }
}
