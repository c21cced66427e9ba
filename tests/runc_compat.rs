//! Where berth's OCI runtime must behave as runc's clients expect of runc: runc's own default
//! config, error text, `exec`'s flags, hook environments, deletes racing hooks, relative
//! masked paths, containers without a mount namespace.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

#[test]
fn the_config_runc_spec_writes_runs_with_a_warning_for_ambient_capabilities() {
    let mut c = Ctr::new("runc-spec");
    fs::remove_file(c.bundle.join("config.json")).unwrap();
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&c.bundle)
        .status()
        .expect("runc (installed by make setup)");
    assert!(st.success());
    c.config =
        serde_json::from_str(&fs::read_to_string(c.bundle.join("config.json")).unwrap()).unwrap();
    // runc's config lists ambient capabilities that are not inheritable
    assert!(c.config["process"]["capabilities"]["ambient"].is_array());
    assert!(
        c.config["process"]["capabilities"]
            .get("inheritable")
            .is_none()
    );
    c.set("/process/terminal", json!(false));
    c.set("/linux/cgroupsPath", json!(c.cgroup.clone()));
    c.args(&["sh", "-c", "grep CapAmb /proc/self/status"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "CapAmb:\t0000000000000000\n");
    assert!(
        err.contains("warning: cannot raise ambient capability CAP_"),
        "{err}"
    );
    c.assert_gone();
}

/// Is any segment of `a: b: c` repeated, or the start of the next one?
fn repeats_a_prefix(msg: &str) -> bool {
    let parts: Vec<&str> = msg.split(": ").collect();
    parts.windows(2).any(|w| w[1].starts_with(w[0]))
}

#[test]
fn failures_say_error_once_in_text_and_json() {
    let c = Ctr::new("errors");
    let log = c.dir.join("log.json");
    fs::write(c.bundle.join("bad.json"), "{").unwrap();
    let b = c.bundle_arg();
    let bad_bundle = c.dir.join("badbundle");
    fs::create_dir_all(&bad_bundle).unwrap();
    fs::write(bad_bundle.join("config.json"), "{\"ociVersion\": ").unwrap();
    let manifest = c.dir.join("pod.yaml");
    fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, bogus: 1}]}\n",
    )
    .unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["start".into(), "nosuch".into()],
        vec!["state".into(), "nosuch".into()],
        vec![
            "create".into(),
            "--bundle".into(),
            bad_bundle.display().to_string(),
            "x1".into(),
        ],
        vec!["exec".into(), "nosuch".into(), "true".into()],
        vec!["kill".into(), "nosuch".into(), "NOSIG".into()],
        vec!["delete".into(), "bad/id".into()],
        vec!["pod".into(), "run".into(), manifest.display().to_string()],
        vec!["image".into(), "inspect".into(), "nosuch:1".into()],
        vec!["run".into(), "--bundle".into(), b.clone(), "..".into()],
    ];
    for args in &cases {
        let _ = fs::remove_file(&log);
        let mut full = vec!["--log-format", "json", "--log", log.to_str().unwrap()];
        full.extend(args.iter().map(String::as_str));
        let out = c.berth(&full);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or_else(|| panic!("{args:?}: no \"error\" in its stderr: {err}"));
        assert!(
            !repeats_a_prefix(line),
            "{args:?}: a repeated prefix: {line}"
        );
        // the log file: JSON lines, the failure at level error (clap's usage errors aside)
        if let Ok(text) = fs::read_to_string(&log) {
            let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
            assert_eq!(last["level"], "error", "{args:?}: {text}");
            assert!(!repeats_a_prefix(last["msg"].as_str().unwrap()), "{text}");
        }
    }
    c.assert_gone();
}

#[test]
fn exec_flags_as_runc_has_them() {
    let mut c = Ctr::new("exec-flags");
    c.set(
        "/process/env",
        json!(["PATH=/bin:/usr/bin", "VAR=from-config"]),
    );
    c.set("/linux/personality", json!({"domain": "LINUX32"}));
    c.start();
    c.wait_status("running");
    // -e replaces a variable the process already has; the personality applies to exec too
    let out = c.ok(&[
        "exec",
        "-e",
        "VAR=given",
        &c.id,
        "sh",
        "-c",
        "env | grep ^VAR=; uname -m",
    ]);
    assert_eq!(out, "VAR=given\ni686\n");
    // --cap adds to bounding, effective and permitted
    let out = c.ok(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        "-c",
        "CAP_NET_ADMIN",
        &c.id,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    let eff = u64::from_str_radix(out.trim().trim_start_matches("CapEff:").trim(), 16).unwrap();
    assert_eq!(eff & (1 << 21 | 1 << 12), 1 << 21 | 1 << 12, "{out}");
    let err = c.fails(&["exec", "--cap", "CAP_NOPE", &c.id, "true"]);
    assert!(err.contains("--cap \"CAP_NOPE\""), "{err}");
    // LSM labels: refused by name on a host without the LSM, or because no such profile is
    // loaded where it has one (the cgroup v2 VM's kernel has AppArmor)
    let err = c.fails(&["exec", "--apparmor", "nosuchprofile", &c.id, "true"]);
    assert!(
        err.contains("error") && err.to_lowercase().contains("apparmor"),
        "{err}"
    );
    let err = c.fails(&["exec", "--process-label", "nosuchlabel", &c.id, "true"]);
    assert!(
        err.contains("error") && err.to_lowercase().contains("selinux"),
        "{err}"
    );
    // --cgroup: an existing sub-cgroup of the container's
    let sub = "sub1";
    for d in c.cgroup_dirs() {
        fs::create_dir_all(d.join(sub)).unwrap();
        // a v1 cpuset child takes no task until it has cpus and mems of its own
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if cgroup_v2() {
                break;
            }
            if let Ok(v) = fs::read_to_string(d.join(f)) {
                fs::write(d.join(sub).join(f), v.trim()).unwrap();
            }
        }
    }
    let pidfile = c.dir.join("sub.pid");
    c.ok_detached(&[
        "exec",
        "-d",
        "--cgroup",
        sub,
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
        "sleep",
        "100",
    ]);
    let pid = read_pid(&pidfile);
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines()
            .filter(|l| !l.contains("name=") && !l.ends_with("::/"))
            .all(|l| l.ends_with(&format!("{}/{sub}", c.cgroup))),
        "{cg}"
    );
    let err = c.fails(&["exec", "--cgroup", "nosuch", &c.id, "true"]);
    assert!(
        err.contains("--cgroup nosuch") && err.contains("does not exist"),
        "{err}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    // a paused container: refused, unless --ignore-paused (the process runs once resumed)
    c.ok(&["pause", &c.id]);
    let err = c.fails(&["exec", &c.id, "true"]);
    assert!(
        err.contains("paused") && err.contains("--ignore-paused"),
        "{err}"
    );
    let marker = c.bundle.join("rootfs/tmp/resumed");
    c.ok_detached(&[
        "exec",
        "-d",
        "--ignore-paused",
        &c.id,
        "touch",
        "/tmp/resumed",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "the exec ran in a frozen container");
    c.ok(&["resume", &c.id]);
    let t = Instant::now();
    while !marker.exists() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(marker.exists(), "the exec never ran after resume");
    c.ok(&["delete", "--force", &c.id]);
    for d in c.cgroup_dirs() {
        let _ = fs::remove_dir(d.join(sub));
    }
    c.assert_gone();
}

#[test]
fn hooks_without_env_inherit_the_container_process_environment() {
    let mut c = Ctr::new("hook-env");
    let out = c.dir.join("create-container.env");
    c.set("/process/env", json!(["PATH=/bin", "FROM_PROCESS=yes"]));
    c.set(
        "/hooks",
        json!({
            // before pivot_root, in the container's mount namespace: the host's paths
            "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", format!("env > {}", out.display())]}],
            // after pivot_root: the container's
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "env > /tmp/start-container.env"]},
                               {"path": "/bin/sh", "args": ["sh", "-c", "env > /tmp/own.env"], "env": ["ONLY=this"]}]
        }),
    );
    c.args(&["true"]);
    let (code, _, err) = c.run();
    assert_eq!(code, 0, "{err}");
    for f in [out, c.bundle.join("rootfs/tmp/start-container.env")] {
        let env = fs::read_to_string(&f).unwrap();
        assert!(env.contains("FROM_PROCESS=yes\n"), "{}: {env}", f.display());
    }
    let own = fs::read_to_string(c.bundle.join("rootfs/tmp/own.env")).unwrap();
    assert!(
        own.contains("ONLY=this") && !own.contains("FROM_PROCESS"),
        "{own}"
    );
    c.assert_gone();
}

#[test]
fn delete_completes_while_a_hook_runs_and_after_the_bundle_is_gone() {
    // a startContainer hook that hangs: `start` waits for it, `delete --force` does not
    let mut c = Ctr::new("del-hook");
    c.set(
        "/hooks",
        json!({"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "30"]}]}),
    );
    c.create();
    let mut start = Command::new(BERTH)
        .args(["--root", c.root.to_str().unwrap(), "start", &c.id])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    c.ok(&["delete", "--force", &c.id]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "delete waited {:?} for the hook",
        t.elapsed()
    );
    let _ = start.wait();
    c.assert_gone();

    // created, then the bundle removed: delete (no --force) still kills the waiting init and
    // removes the cgroup
    let c = Ctr::new("del-nobundle");
    let init = c.create();
    fs::remove_dir_all(&c.bundle).unwrap();
    c.ok(&["delete", &c.id]);
    assert!(
        !std::path::Path::new(&format!("/proc/{init}")).exists()
            || status_field(init, "State").starts_with('Z')
    );
    c.assert_gone();
}

#[test]
fn relative_masked_and_readonly_paths_are_taken_from_the_root() {
    let mut c = Ctr::new("rel-masked");
    c.set("/linux/maskedPaths", json!(["proc/timer_list"]));
    c.set("/linux/readonlyPaths", json!(["proc/sys"]));
    c.args(&[
        "sh",
        "-c",
        "wc -c < /proc/timer_list; echo 1 > /proc/sys/kernel/printk 2>&1 || echo ro",
    ]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("0\n") && out.contains("ro"), "{out}");
    assert!(
        err.contains("linux.maskedPaths[0]") && err.contains("warning"),
        "{err}"
    );
    c.assert_gone();
}

#[test]
fn without_a_mount_namespace_the_container_sees_the_hosts_root() {
    let mut c = Ctr::new("no-mntns");
    c.set(
        "/linux/namespaces",
        json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}]),
    );
    c.set("/linux/maskedPaths", json!([]));
    c.set("/linux/readonlyPaths", json!([]));
    // the host's /bin/sh, not the rootfs's busybox
    c.args(&[
        "/bin/sh",
        "-c",
        "readlink /proc/self/ns/mnt; stat -c %d:%i /",
    ]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let root = fs::metadata("/").unwrap();
    assert_eq!(
        out,
        format!(
            "{}\n{}:{}\n",
            ns(std::process::id() as i32, "mnt"),
            root.dev(),
            root.ino()
        )
    );
    c.assert_gone();
    // masked paths cannot be had without one: runc's message
    c.set("/linux/maskedPaths", json!(["/proc/kcore"]));
    let err = c.fails(&["run", "--bundle", &c.bundle_arg(), &c.id]);
    assert!(
        err.contains(
            "linux.maskedPaths: unable to restrict sys entries without a private MNT namespace"
        ),
        "{err}"
    );
    c.assert_gone();
}
