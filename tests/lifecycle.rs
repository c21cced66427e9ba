//! The runc lifecycle as the kernel sees it: create → start → kill → delete, run, list, ps,
//! exit codes and signals, and concurrent commands on one container.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn create_start_kill_delete_with_state_at_each_step() {
    let c = Ctr::new("lifecycle");
    let pid = c.create();
    let st = c.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], c.id.as_str());
    assert_eq!(st["pid"], pid);
    assert_eq!(st["ociVersion"], "1.2.0");
    assert_eq!(st["bundle"], c.bundle.to_str().unwrap());
    // created: the init waits, the user's program has not run yet
    assert_ne!(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "sleep"
    );
    assert!(c.root.join(&c.id).join("exec.fifo").exists());

    c.ok(&["start", &c.id]);
    wait_comm(pid, "sleep");
    assert_eq!(c.status(), "running");
    assert!(!c.root.join(&c.id).join("exec.fifo").exists());
    let err = c.fails(&["start", &c.id]);
    assert!(
        err.contains("only a created container can be started"),
        "{err}"
    );

    c.ok(&["kill", &c.id, "KILL"]);
    c.wait_status("stopped");
    assert_eq!(c.state()["pid"], 0);
    let err = c.fails(&["kill", &c.id, "KILL"]);
    assert!(err.contains("container not running"), "{err}");

    c.ok(&["delete", &c.id]);
    c.assert_gone();
    let err = c.fails(&["state", &c.id]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn run_foreground_returns_the_exit_code_and_cleans_up() {
    let mut c = Ctr::new("run-exit");
    c.args(&["sh", "-c", "echo out; echo err >&2; exit 42"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 42, "stderr: {err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err"), "{err}");
    c.assert_gone();
}

#[test]
fn run_foreground_killed_container_exits_128_plus_signal() {
    let mut c = Ctr::new("run-signal");
    c.args(&["sleep", "1000"]);
    let child = c.spawn_run();
    c.wait_status("running");
    c.ok(&["kill", &c.id, "9"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137));
    c.assert_gone();
}

#[test]
fn run_foreground_forwards_signals_to_the_container() {
    let mut c = Ctr::new("run-forward");
    // pid 1 of a pid namespace only gets signals it has a handler for
    c.args(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.05; done",
    ]);
    let child = c.spawn_run();
    c.wait_status("running");
    std::thread::sleep(Duration::from_millis(100)); // let the shell install its trap
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    c.assert_gone();
}

#[test]
fn run_detached_keeps_running_until_deleted() {
    let c = Ctr::new("run-detach");
    let b = c.bundle_arg();
    let pidfile = c.dir.join("run.pid");
    c.ok_detached(&[
        "run",
        "--detach",
        "--bundle",
        &b,
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
    ]);
    let pid = read_pid(&pidfile);
    wait_comm(pid, "sleep");
    assert_eq!(c.status(), "running");
    let err = c.fails(&["delete", &c.id]);
    assert!(err.contains("cannot delete a running container"), "{err}");
    assert_eq!(c.status(), "running", "a refused delete changes nothing");
    c.ok(&["delete", "--force", &c.id]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || status_field(pid, "State").starts_with('Z')
    );
    c.assert_gone();
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    let c = Ctr::new("delete-created");
    let pid = c.create();
    c.ok(&["delete", &c.id]);
    let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists()
        || status_field(pid, "State").starts_with('Z');
    assert!(gone, "init {pid} still alive");
    c.assert_gone();
}

#[test]
fn kill_by_name_number_and_all() {
    let mut c = Ctr::new("kill");
    c.args(&["sh", "-c", "trap 'exit 3' USR1; sleep 1000 & wait"]);
    let pid = c.start();
    wait_comm(pid, "sh");
    std::thread::sleep(Duration::from_millis(100));
    let pids = c.pids();
    assert_eq!(pids.len(), 2, "sh and sleep: {pids:?}");
    assert!(pids.contains(&pid));
    let err = c.fails(&["kill", &c.id, "NOSUCHSIG"]);
    assert!(err.contains("invalid signal \"NOSUCHSIG\""), "{err}");
    c.ok(&["kill", &c.id, "SIGUSR1"]);
    c.wait_status("stopped");

    let mut c2 = Ctr::new("kill-all");
    c2.args(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    // share the host pid namespace so the children survive the shell: only --all gets them
    let ns: Vec<_> = c2.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "pid")
        .cloned()
        .collect();
    c2.set("/linux/namespaces", json!(ns));
    c2.start();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while serde_json::from_str::<Vec<i32>>(&c2.ok(&["ps", "--format", "json", &c2.id]))
        .unwrap()
        .len()
        < 3
    {
        assert!(std::time::Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    }
    c2.ok(&["kill", "--all", &c2.id, "15"]);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<i32> =
            serde_json::from_str(&c2.ok(&["ps", "--format", "json", &c2.id])).unwrap();
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < end, "left: {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    c2.ok(&["delete", &c2.id]);
    c2.assert_gone();
}

#[test]
fn list_and_ps_formats() {
    let c = Ctr::new("list");
    let pid = c.start();
    wait_comm(pid, "sleep");
    let list: serde_json::Value =
        serde_json::from_str(&c.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], c.id.as_str());
    assert_eq!(list[0]["status"], "running");
    let table = c.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&c.id) && table.contains("running"),
        "{table}"
    );
    assert_eq!(c.ok(&["list", "-q"]).trim(), c.id);
    let ps = c.ok(&["ps", &c.id]);
    assert!(ps.lines().next().unwrap().contains("PID"), "{ps}");
    assert!(
        ps.contains(&pid.to_string()) && ps.contains("sleep 1000"),
        "{ps}"
    );
}

#[test]
fn duplicate_create_is_refused_and_leaves_the_first_untouched() {
    let c = Ctr::new("dup");
    let pid = c.create();
    let b = c.bundle_arg();
    let out = c.berth_detached(&["create", "--bundle", &b, &c.id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(c.status(), "created");
    assert_eq!(c.state()["pid"], pid);
}

#[test]
fn concurrent_commands_on_one_container_are_serialised() {
    let c = Ctr::new("concurrent");
    c.start();
    let root = c.root.to_str().unwrap().to_string();
    let mut handles = Vec::new();
    for i in 0..8 {
        let (root, id) = (root.clone(), c.id.clone());
        handles.push(std::thread::spawn(move || {
            let args: Vec<&str> = if i == 0 {
                vec!["delete", "--force"]
            } else {
                vec!["state"]
            };
            let out = Command::new(BERTH)
                .arg("--root")
                .arg(&root)
                .args(&args)
                .arg(&id)
                .output()
                .unwrap();
            (i, out)
        }));
    }
    for h in handles {
        let (i, out) = h.join().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if i == 0 {
            assert!(out.status.success(), "delete: {err}");
        } else if out.status.success() {
            // a state read before the delete sees a whole, valid record
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["id"], c.id.as_str());
        } else {
            assert!(err.contains("does not exist"), "{err}");
        }
    }
    c.assert_gone();
}

#[test]
fn spec_features_and_version() {
    let c = Ctr::new("spec");
    let d = c.dir.join("specdir");
    fs::create_dir_all(&d).unwrap();
    c.ok(&["spec", "--bundle", d.to_str().unwrap()]);
    let spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_eq!(spec["process"]["terminal"], true);
    let err = c.fails(&["spec", "--bundle", d.to_str().unwrap()]);
    assert!(err.contains("exists"), "{err}");
    let f: serde_json::Value = serde_json::from_str(&c.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMax"], "1.2.0");
    assert!(
        f["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!("pid"))
    );
    assert!(c.ok(&["--version"]).starts_with("berth version "));
    let err = c.fails(&["--systemd-cgroup", "state", "x"]);
    assert!(
        err.contains("systemd cgroup driver is not supported"),
        "{err}"
    );
}

#[test]
fn json_log_file_gets_errors() {
    let c = Ctr::new("log");
    let log = c.dir.join("log.json");
    let out = Command::new(BERTH)
        .args([
            "--root",
            c.root.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&log).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
    assert!(line["time"].as_str().unwrap().starts_with("20"));
}
