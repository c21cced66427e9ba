//! Hooks: each kind runs at its point of the lifecycle, in its namespace, with the state JSON on
//! stdin, its env and args; failures fail create (or warn, for poststart/poststop); timeouts.

mod common;

use std::fs;

use common::*;
use serde_json::{Value, json};

/// A hook that appends "<name> <state json>" to `log` (a host path), running the host's sh.
fn host_hook(name: &str, log: &std::path::Path) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo \"{name} $(cat) $(readlink /proc/self/ns/mnt) $X\" >> {}", log.display())], "env": ["X=env-ok"]})
}

#[test]
fn every_hook_runs_in_order_with_the_state() {
    let mut c = Ctr::new("hooks-order");
    let logdir = c.dir.join("hooklog");
    fs::create_dir_all(&logdir).unwrap();
    let log = logdir.join("log");
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(
        json!({"destination": "/hooklog", "type": "bind", "source": logdir, "options": ["bind"]}),
    );
    c.set("/mounts", json!(ms));
    c.set(
        "/hooks",
        json!({
            "prestart": [host_hook("prestart", &log)],
            "createRuntime": [host_hook("createRuntime", &log)],
            "createContainer": [host_hook("createContainer", &log)],
            // resolved and run inside the container (after pivot_root): the rootfs's sh
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo \"startContainer $(cat) $(readlink /proc/self/ns/mnt) $X\" >> /hooklog/log"], "env": ["X=env-ok"]}],
            "poststart": [host_hook("poststart", &log)],
            "poststop": [host_hook("poststop", &log)]
        }),
    );
    let pid = c.create();
    let host_mnt = fs::read_link("/proc/self/ns/mnt").unwrap();
    let ctr_mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    c.ok(&["start", &c.id]);
    wait_comm(pid, "sleep");
    c.ok(&["delete", "--force", &c.id]);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let names: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    let want_status = [
        "creating", "creating", "creating", "created", "running", "stopped",
    ];
    for (line, status) in lines.iter().zip(want_status) {
        let json_start = line.find('{').unwrap();
        let json_end = line.rfind('}').unwrap();
        let st: Value = serde_json::from_str(&line[json_start..=json_end]).unwrap();
        assert_eq!(st["status"], status, "{line}");
        assert_eq!(st["id"], c.id.as_str());
        assert_eq!(st["pid"], pid, "{line}");
        assert_eq!(st["bundle"], c.bundle.to_str().unwrap());
        let rest: Vec<&str> = line[json_end + 1..].split_whitespace().collect();
        assert_eq!(rest[1], "env-ok", "{line}");
        let mnt = std::path::PathBuf::from(rest[0]);
        // runtime hooks in the host's mount namespace, container hooks in the container's
        let want = if line.starts_with("createContainer") || line.starts_with("startContainer") {
            &ctr_mnt
        } else {
            &host_mnt
        };
        assert_eq!(&mnt, want, "{line}");
    }
    c.assert_gone();
}

#[test]
fn failing_create_hooks_fail_create_and_leave_nothing() {
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut c = Ctr::new(&format!("hooks-fail-{}", kind.to_lowercase()));
        c.set(
            "/hooks",
            json!({kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 7"]}]}),
        );
        let b = c.bundle_arg();
        let out = c.berth_detached(&["create", "--bundle", &b, &c.id]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{kind} hook #0 (/bin/sh): exit status: 7: broken")),
            "{err}"
        );
        c.assert_gone();
    }
}

#[test]
fn failing_start_container_hook_stops_the_container() {
    let mut c = Ctr::new("hooks-fail-start");
    c.set(
        "/hooks",
        json!({"startContainer": [{"path": "/bin/false"}]}),
    );
    let (code, _, err) = c.run();
    assert_ne!(code, 0);
    assert!(err.contains("startContainer hook #0 (/bin/false)"), "{err}");
    c.assert_gone();
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    let mut c = Ctr::new("hooks-warn");
    c.set(
        "/hooks",
        json!({
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}],
            "poststop": [{"path": "/no/such/hook"}]
        }),
    );
    c.create();
    let out = c.berth(&["start", &c.id]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: poststart hook #0"));
    assert_eq!(c.status(), "running");
    let out = c.berth(&["delete", "--force", &c.id]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: poststop hook #0 (/no/such/hook)")
    );
    c.assert_gone();
}

#[test]
fn hook_timeout_fails_create() {
    let mut c = Ctr::new("hooks-timeout");
    c.set(
        "/hooks",
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}),
    );
    let b = c.bundle_arg();
    let start = std::time::Instant::now();
    let out = c.berth_detached(&["create", "--bundle", &b, &c.id]);
    assert!(!out.status.success());
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out after 1s"));
    c.assert_gone();
}
