//! `exec`: a new process in a running container, in its namespaces and cgroup, with its own
//! attributes.

mod common;

use std::fs;

use common::*;
use serde_json::json;

#[test]
fn exec_joins_the_namespaces_and_cgroup_of_the_container() {
    let c = Ctr::new("exec-join");
    let init = c.start();
    wait_comm(init, "sleep");
    let pidfile = c.dir.join("exec.pid");
    c.ok_detached(&[
        "exec",
        "--detach",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
        "sleep",
        "999",
    ]);
    let pid = read_pid(&pidfile);
    wait_comm(pid, "sleep");
    for link in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        assert_eq!(ns(pid, link), ns(init, link), "{link}");
    }
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap()
    );
    // same root: the container's rootfs
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (
        fs::metadata(format!("/proc/{pid}/root")).unwrap(),
        fs::metadata(format!("/proc/{init}/root")).unwrap(),
    );
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    // process attributes come from the container's config (base.json: no_new_privs, caps)
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "CapBnd"), status_field(init, "CapBnd"));
    let pids = c.pids();
    assert!(pids.contains(&pid) && pids.contains(&init), "{pids:?}");
    // its fds: stdio only
    let n = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    assert_eq!(n, 3);
}

#[test]
fn exec_foreground_output_exit_code_env_cwd_user() {
    let c = Ctr::new("exec-fg");
    c.start();
    c.wait_status("running");
    let out = c.berth(&[
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/home",
        "--user",
        "1000:1000",
        &c.id,
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u):$(id -g); exit 5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 /home 1000:1000\n");
}

#[test]
fn exec_with_a_process_file() {
    let c = Ctr::new("exec-process");
    c.start();
    c.wait_status("running");
    let process = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
        "args": ["sh", "-c", "echo $A; id -G; grep CapEff /proc/self/status"],
        "env": ["PATH=/bin", "A=from-process-json"],
        "cwd": "/tmp",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": [], "permitted": [], "inheritable": [], "ambient": []},
        "noNewPrivileges": true
    });
    let p = c.dir.join("process.json");
    fs::write(&p, process.to_string()).unwrap();
    let out = c.berth(&["exec", "--process", p.to_str().unwrap(), &c.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from-process-json\n1000 5\nCapEff:\t0000000000000000\n"
    );

    // a bad process.json names the field
    fs::write(
        &p,
        r#"{"args": ["true"], "cwd": "/", "user": {"uid": "x"}}"#,
    )
    .unwrap();
    let err = c.fails(&["exec", "--process", p.to_str().unwrap(), &c.id]);
    assert!(err.contains("user.uid"), "{err}");
}

#[test]
fn exec_failures_are_reported_and_leave_nothing() {
    let c = Ctr::new("exec-fail");
    let init = c.start();
    wait_comm(init, "sleep");
    let err = c.fails(&["exec", &c.id, "no-such-program"]);
    assert!(
        err.contains("exec: \"no-such-program\": executable file not found in $PATH"),
        "{err}"
    );
    let err = c.fails(&["exec", "--cwd", "/nonexistent", &c.id, "true"]);
    assert!(err.contains("chdir to cwd /nonexistent"), "{err}");
    assert_eq!(c.pids(), vec![init], "failed execs left processes");
    c.ok(&["kill", &c.id, "KILL"]);
    c.wait_status("stopped");
    let err = c.fails(&["exec", &c.id, "true"]);
    assert!(err.contains("cannot exec in a stopped container"), "{err}");
    let err = c.fails(&["exec", "nonexistent-ctr", "true"]);
    assert!(err.contains("does not exist"), "{err}");
}
