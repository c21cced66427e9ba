//! Bad input gets a clear error naming the field or step, a non-zero exit, and leaves nothing:
//! no state, cgroup, process or mount.

mod common;

use std::fs;

use common::*;
use serde_json::json;

/// Run the container expecting failure; returns stderr after checking nothing is left.
fn fails_cleanly(c: &Ctr) -> String {
    let b = c.bundle_arg();
    for verb in ["create", "run"] {
        let out = c.berth_detached(&[verb, "--bundle", &b, &c.id]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{verb} should fail: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.assert_gone();
        if verb == "run" {
            return String::from_utf8(out.stderr).unwrap();
        }
    }
    unreachable!()
}

#[test]
fn malformed_json() {
    let c = Ctr::new("bad-json");
    fs::write(c.bundle.join("config.json"), "{\"ociVersion\": \"1.0.2\", ").unwrap();
    let err = fails_cleanly(&c);
    assert!(
        err.contains("error: config.json: invalid JSON")
            && !err.contains("config.json: config.json"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_field() {
    let mut c = Ctr::new("bad-type");
    c.set("/process/user/uid", json!("root"));
    let err = fails_cleanly(&c);
    assert!(err.contains("process.user.uid"), "{err}");
}

#[test]
fn unknown_namespace_type() {
    let mut c = Ctr::new("bad-ns");
    c.set(
        "/linux/namespaces",
        json!([{"type": "mount"}, {"type": "bogus"}]),
    );
    let err = fails_cleanly(&c);
    assert!(err.contains("linux.namespaces[1].type"), "{err}");
}

#[test]
fn user_namespace_without_mappings() {
    let mut c = Ctr::new("bad-userns");
    c.set(
        "/linux/namespaces",
        json!([{"type": "mount"}, {"type": "uts"}, {"type": "user"}]),
    );
    let err = fails_cleanly(&c);
    assert!(
        err.contains("linux.uidMappings: required with a new user namespace"),
        "{err}"
    );
}

#[test]
fn missing_rootfs() {
    let mut c = Ctr::new("bad-rootfs");
    c.set("/root/path", json!("no-such-rootfs"));
    let err = fails_cleanly(&c);
    assert!(
        err.contains("root.path:") && err.contains("no-such-rootfs"),
        "{err}"
    );
}

#[test]
fn nonexistent_binary() {
    let mut c = Ctr::new("bad-binary");
    c.args(&["/no/such/binary"]);
    let err = fails_cleanly(&c);
    assert!(
        err.contains("exec: \"/no/such/binary\": stat /no/such/binary"),
        "{err}"
    );
    let mut c = Ctr::new("bad-binary-path");
    c.args(&["nosuchcmd"]);
    let err = fails_cleanly(&c);
    assert!(err.contains("executable file not found in $PATH"), "{err}");
}

#[test]
fn bad_mount_names_the_step() {
    let mut c = Ctr::new("bad-mount");
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    c.set("/mounts", json!(ms));
    let err = fails_cleanly(&c);
    assert!(
        err.contains("mount nosuchfs on /x: No such device"),
        "{err}"
    );

    let mut c = Ctr::new("bad-bind");
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(json!({"destination": "/y", "type": "bind", "source": "/no/such/source"}));
    c.set("/mounts", json!(ms));
    let err = fails_cleanly(&c);
    assert!(err.contains("stat bind source /no/such/source"), "{err}");
}

#[test]
fn unsupported_field_is_named() {
    let mut c = Ctr::new("bad-seccomp");
    c.set("/linux/intelRdt", json!({"closID": "x"}));
    let err = fails_cleanly(&c);
    assert!(err.contains("linux.intelRdt: not supported"), "{err}");
}

#[test]
fn bad_resource_value_is_named() {
    let mut c = Ctr::new("bad-memory");
    c.set("/linux/resources", json!({"memory": {"limit": -7}}));
    let err = fails_cleanly(&c);
    assert!(err.contains("linux.resources.memory.limit"), "{err}");
}

#[test]
fn cgroup_write_rejected_by_the_kernel() {
    let mut c = Ctr::new("bad-cpus");
    c.set("/linux/resources", json!({"cpu": {"cpus": "63"}}));
    let err = fails_cleanly(&c);
    assert!(err.contains("cpuset.cpus"), "{err}");
}

#[test]
fn bad_cli_arguments() {
    let c = Ctr::new("bad-cli");
    let err = c.fails(&["kill", "x", "SIGNOPE"]);
    assert!(err.contains("invalid signal \"SIGNOPE\""), "{err}");
    let out = c.berth(&["create"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let err = c.fails(&["state", "../etc"]);
    assert!(err.contains("invalid container id \"../etc\""), "{err}");
    let b = c.bundle_arg();
    let out = c.berth_detached(&["create", "--bundle", &b, "a/b"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid container id"));
    assert!(!c.root.join("a").exists());
}

#[test]
fn init_killed_during_setup_is_cleaned_up() {
    // a failing sysctl write happens after mounts: the rollback must undo a half-built container
    let mut c = Ctr::new("bad-sysctl");
    c.set("/linux/sysctl", json!({"net.ipv4.no_such_sysctl": "1"}));
    let err = fails_cleanly(&c);
    assert!(
        err.contains("write sysctl /proc/sys/net/ipv4/no_such_sysctl"),
        "{err}"
    );
}

#[test]
fn a_killed_create_leaves_no_orphan_and_delete_cleans_up() {
    // The init blocks in setup: /dev/console is a FIFO (no /dev tmpfs), which it opens to bind
    // the terminal over it. Killing `berth create` then must take the half-built init with it.
    let mut c = Ctr::from_config("killed-create", example("terminal.json"));
    let ms: Vec<_> = c.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] != "/dev")
        .cloned()
        .collect();
    c.set("/mounts", json!(ms));
    let console = c.bundle.join("rootfs/dev/console");
    let _ = fs::remove_file(&console);
    nix::unistd::mkfifo(&console, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let sock = c.dir.join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut child = std::process::Command::new(BERTH)
        .args([
            "--root",
            c.root.to_str().unwrap(),
            "create",
            "--bundle",
            &c.bundle_arg(),
            "--console-socket",
            sock.to_str().unwrap(),
            &c.id,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while processes_mentioning(&c.id).len() < 2 {
        assert!(std::time::Instant::now() < end, "init never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200)); // the init reaches the FIFO
    child.kill().unwrap();
    child.wait().unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning(&c.id).is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "orphaned init survives: {:?}",
            processes_mentioning(&c.id)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // what the killed create acquired is recorded: delete removes it all
    assert_eq!(c.status(), "stopped");
    c.ok(&["delete", &c.id]);
    c.assert_gone();
}
