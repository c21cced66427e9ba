//! Container lifecycle in a pod: init containers in order, restart policies with back-off,
//! exit codes and logs recorded by the monitor while no berth command runs (and after berth
//! processes are killed), logs -f, exec exit codes, stop with a grace period, ls/ps/stats.

use std::fs;
use std::time::{Duration, Instant};

use super::env::*;

#[test]
fn init_containers_run_to_completion_in_order_before_the_apps() {
    let e = PodEnv::new("init");
    let img = e.image("base");
    let pod = e.run(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: staged}}
spec:
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
  - {{name: first, image: {img}, command: [sh, -c, "echo one >> /work/order; sleep 0.3"], volumeMounts: [{{name: work, mountPath: /work}}]}}
  - {{name: second, image: {img}, command: [sh, -c, "echo two >> /work/order"], volumeMounts: [{{name: work, mountPath: /work}}]}}
  containers:
  - {{name: app, image: {img}, command: [sh, -c, "echo app >> /work/order; cat /work/order; sleep 1000"], volumeMounts: [{{name: work, mountPath: /work}}]}}
"#
    ));
    let app = e.wait(&pod, "app", "Running");
    let first = e.container(&pod, "first");
    let second = e.container(&pod, "second");
    for c in [&first, &second] {
        assert_eq!(c["status"]["state"], "Exited", "{c}");
        assert_eq!(c["status"]["exit_code"], 0);
        assert_eq!(c["status"]["reason"], "Completed");
    }
    let t = |c: &serde_json::Value, k: &str| {
        humantime::parse_rfc3339(c["status"][k].as_str().unwrap()).unwrap()
    };
    assert!(t(&first, "finished_at") <= t(&second, "started_at"));
    assert!(t(&second, "finished_at") <= t(&app, "started_at"));
    let t0 = Instant::now();
    loop {
        let logs = e.ok(&["pod", "logs", "-c", "app", &pod]);
        if logs == "one\ntwo\napp\n" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{logs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failed_init_container_with_restart_policy_never_fails_the_pod() {
    let e = PodEnv::new("initfail");
    let img = e.image("base");
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: f}}\nspec:\n  restartPolicy: Never\n  initContainers: [{{name: bad, image: {img}, command: [sh, -c, \"exit 7\"]}}]\n  containers: [{{name: app, image: {img}, command: [sleep, \"1000\"]}}]\n"
    ));
    let bad = e.wait(&pod, "bad", "Exited");
    assert_eq!(bad["status"]["exit_code"], 7);
    assert_eq!(bad["status"]["reason"], "Error");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        e.container(&pod, "app")["status"]["state"],
        "Pending",
        "the app ran after a failed init container"
    );
}

#[test]
fn restart_policies_restart_with_back_off_and_keep_each_attempts_log() {
    // each attempt starts from the image with a fresh writable layer, as kubelet's would
    let e = PodEnv::new("restart");
    let img = e.image("base");
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: flappy}}\nspec:\n  restartPolicy: OnFailure\n  containers:\n  - {{name: fails, image: {img}, command: [sh, -c, \"if [ -e /left ]; then echo reused; else echo attempt; fi; touch /left; exit 3\"]}}\n  - {{name: done, image: {img}, command: [sh, -c, \"echo finished\"]}}\n"
    ));
    let t = Instant::now();
    let c = loop {
        let c = e.container(&pod, "fails");
        if c["status"]["restart_count"].as_u64().unwrap_or(0) >= 2 {
            break c;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no restarts: {c}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = c["status"]["log_path"].as_str().unwrap();
    assert!(
        log.ends_with("/fails/2.log") || log.ends_with("/fails/3.log"),
        "{log}"
    );
    let dir = std::path::Path::new(log).parent().unwrap();
    for n in 0..2 {
        let text = fs::read_to_string(dir.join(format!("{n}.log"))).unwrap();
        assert!(text.contains(" stdout F attempt"), "attempt {n}: {text}");
    }
    // a container that succeeded is not restarted with OnFailure
    let done = e.wait(&pod, "done", "Exited");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        e.container(&pod, "done")["status"]["restart_count"],
        done["status"]["restart_count"]
    );
    assert_eq!(done["status"]["restart_count"], 0);
}

#[test]
fn exits_and_logs_are_recorded_while_no_berth_runs_and_survive_killed_berth_processes() {
    let e = PodEnv::new("survive");
    let img = e.image("base");
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: late}}\nspec:\n  restartPolicy: Never\n  containers:\n  - {{name: late, image: {img}, command: [sh, -c, \"echo before; echo oops >&2; sleep 1; echo after; exit 5\"]}}\n  - {{name: long, image: {img}, command: [sleep, \"1000\"]}}\n"
    ));
    // a berth process following the logs, killed with SIGKILL
    let mut follower = e
        .cmd(&["pod", "logs", "-f", "-c", "late", &pod])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    follower.kill().unwrap();
    follower.wait().unwrap();
    // no berth command runs while the container exits
    std::thread::sleep(Duration::from_millis(1800));
    let c = e.container(&pod, "late");
    assert_eq!(c["status"]["state"], "Exited", "{c}");
    assert_eq!(c["status"]["exit_code"], 5);
    assert_eq!(c["status"]["reason"], "Error");
    assert!(c["status"]["finished_at"].is_string());
    assert_eq!(
        e.ok(&["pod", "logs", "-c", "late", &pod]),
        "before\noops\nafter\n"
    );
    let raw = fs::read_to_string(c["status"]["log_path"].as_str().unwrap()).unwrap();
    assert!(raw.lines().any(|l| l.ends_with(" stderr F oops")), "{raw}");
    assert_eq!(
        e.ok(&["pod", "logs", "--tail", "1", "-c", "late", &pod]),
        "after\n"
    );
    // the other container still runs under the same monitor
    assert_eq!(e.container(&pod, "long")["status"]["state"], "Running");
}

#[test]
fn logs_follow_until_the_container_exits_and_exec_returns_its_exit_code() {
    let e = PodEnv::new("follow");
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: fl}}\nspec:\n  restartPolicy: Never\n  containers: [{{name: c, image: {}, command: [sh, -c, \"for i in 1 2 3; do echo line $i; sleep 0.2; done\"]}}]\n",
        e.image("base")
    ));
    let out = e.cmd(&["pod", "logs", "-f", &pod]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line 1\nline 2\nline 3\n"
    );
    let pod2 = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: ex}}\nspec:\n  containers: [{{name: c, image: {}, command: [sleep, \"1000\"]}}]\n",
        e.image("base")
    ));
    let st = e
        .cmd(&["pod", "exec", &pod2, "--", "sh", "-c", "exit 42"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(42));
    // ls, ps, stats, inspect
    let ls = e.ok(&["pod", "ls"]);
    assert!(ls.contains(" fl ") && ls.contains(" ex "), "{ls}");
    let ps = e.ok(&["ps"]);
    assert!(ps.contains("Running") && ps.contains("Exited"), "{ps}");
    let stats: serde_json::Value =
        serde_json::from_str(&e.ok(&["pod", "stats", "--format", "json", &pod2])).unwrap();
    assert!(
        stats[0]["stats"]["memory"]["usage"]["usage"]
            .as_u64()
            .unwrap()
            > 0,
        "{stats}"
    );
}

#[test]
fn stop_honours_the_grace_period_then_kills() {
    let e = PodEnv::new("stop");
    let img = e.image("base");
    let pod = e.run(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: polite, image: {img}, command: [sh, -c, "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"]}}
  - {{name: deaf, image: {img}, command: [sh, -c, "trap '' TERM; while true; do sleep 0.1; done"]}}
"#
    ));
    e.pid(&pod, "polite");
    e.pid(&pod, "deaf");
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    e.ok(&["pod", "stop", &pod]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let polite = e.container(&pod, "polite");
    assert_eq!(polite["status"]["exit_code"], 0, "{polite}");
    assert_eq!(e.container(&pod, "deaf")["status"]["exit_code"], 137);
    assert!(e.ok(&["pod", "logs", "-c", "polite", &pod]).contains("bye"));
    assert_eq!(e.inspect(&pod)["state"], "NotReady");
    // stopped containers are not restarted (restartPolicy Always)
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(e.container(&pod, "deaf")["status"]["state"], "Exited");
}

#[test]
fn events_stream_pod_and_container_changes() {
    let e = PodEnv::new("events");
    let watcher = super::harness::Spawned::new(
        e.cmd(&["pod", "events", "--interval", "20ms"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let pod = e.run(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: ev}}\nspec:\n  restartPolicy: Never\n  containers: [{{name: c, image: {}, command: [sh, -c, \"sleep 0.3\"]}}]\n",
        e.image("base")
    ));
    e.wait(&pod, "c", "Exited");
    std::thread::sleep(Duration::from_millis(100));
    e.ok(&["pod", "rm", "-f", &pod]);
    std::thread::sleep(Duration::from_millis(200));
    let pid = watcher.pid();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let out = String::from_utf8_lossy(&watcher.wait_with_output().stdout).into_owned();
    let kinds: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for want in ["pod_created", "container_stopped", "pod_removed"] {
        assert!(kinds.iter().any(|k| k == want), "no {want} in {kinds:?}");
    }
}

#[test]
fn pods_share_one_seccomp_cache_so_only_the_first_compiles() {
    let e = PodEnv::new("seccache");
    let cache = e.root.join("seccomp-cache");
    let programs = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut v: Vec<_> = fs::read_dir(&cache)
            .map(|rd| {
                rd.flatten()
                    .map(|f| (f.path(), f.metadata().unwrap().modified().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let first = e.run(&e.sleeper("first", true));
    e.pid(&first, "c");
    let after_first = programs();
    assert_eq!(after_first.len(), 1, "{after_first:?}");
    assert!(after_first[0].0.extension().is_some_and(|x| x == "bpf"));
    let second = e.run(&e.sleeper("second", true));
    let pid = e.pid(&second, "c");
    // the second pod's container is filtered, by the program the first compiled
    assert_eq!(super::common::status_field(pid, "Seccomp"), "2");
    assert_eq!(programs(), after_first, "the program was compiled again");
    // processes exec'd into the pods are filtered by the same cached program
    for p in [&first, &second] {
        let out = e.ok(&[
            "pod",
            "exec",
            p,
            "--",
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ]);
        assert_eq!(out.trim(), "Seccomp:\t2", "{out}");
    }
    assert_eq!(programs(), after_first, "exec compiled the program again");
    for p in [&first, &second] {
        assert!(
            !e.pod_dir(p).join("oci/.seccomp-cache").exists(),
            "a per-pod cache"
        );
    }
}
