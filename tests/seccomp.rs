//! seccomp as the kernel applies it: denied syscalls return the configured errno, kill or trap;
//! argument conditions; the notify listener gets the fd and the state; the default profile;
//! the on-disk cache; exec'd processes are filtered too.

mod common;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;

use common::*;
use serde_json::{Value, json};

fn with_seccomp(name: &str, profile: Value, script: &str) -> Ctr {
    let mut c = Ctr::new(name);
    c.set("/linux/seccomp", profile);
    c.args(&["sh", "-c", script]);
    c
}

#[test]
fn errno_action_returns_the_configured_errno() {
    let c = with_seccomp(
        "sc-errno",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]}),
        "mkdir /tmp/x; mkdir /tmp/y 2>/dev/null; echo mk=$?; rmdir /proc 2>&1; grep Seccomp: /proc/self/status",
    );
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Function not implemented"),
        "ENOSYS (38) expected: {err}"
    );
    assert!(out.contains("mk=1"), "{out}");
    assert!(
        out.contains("Operation not permitted"),
        "default errnoRet is EPERM: {out}"
    );
    assert!(out.contains("Seccomp:\t2"), "{out}");
    c.assert_gone();
}

#[test]
fn kill_and_trap_actions_end_the_process_with_sigsys() {
    for (name, action) in [
        ("sc-kill", "SCMP_ACT_KILL_PROCESS"),
        ("sc-killthread", "SCMP_ACT_KILL"),
        ("sc-trap", "SCMP_ACT_TRAP"),
    ] {
        let c = with_seccomp(
            name,
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": action}]}),
            "exec sh -c 'echo $PPID'",
        );
        let (code, _, err) = c.run();
        // SIGSYS is 31: 128 + 31
        assert_eq!(code, 159, "{action}: {err}");
        c.assert_gone();
    }
}

#[test]
fn argument_conditions_select_calls() {
    let c = with_seccomp(
        "sc-args",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": 511, "op": "SCMP_CMP_EQ"}]},
            {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 2, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]}]}),
        "touch /tmp/f; chmod 644 /tmp/f && echo 644-ok; chmod 777 /tmp/f 2>&1; stat -c %a /tmp/f",
    );
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("644-ok\n"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.ends_with("644\n"), "{out}");
    c.assert_gone();
}

#[test]
fn log_action_allows() {
    let c = with_seccomp(
        "sc-log",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_LOG"}]}),
        "echo ppid=$PPID",
    );
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ppid=0\n");
    c.assert_gone();
}

#[test]
fn notify_sends_the_listener_fd_and_state_to_listener_path() {
    let mut c = Ctr::new("sc-notify");
    let sock = c.dir.join("listener.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    c.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock, "listenerMetadata": "test-meta",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    c.args(&["sh", "-c", "mkdir /tmp/d 2>&1; echo done"]);
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (fd, payload) = berth::linux::channel::recv_fd(conn.as_fd()).unwrap();
        let state: Value = serde_json::from_slice(&payload).unwrap();
        // answer the container's mkdir with EACCES
        use std::os::fd::AsRawFd;
        let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).unwrap();
        libseccomp::ScmpNotifResp::new_error(
            req.id,
            -libc::EACCES,
            libseccomp::ScmpNotifRespFlags::empty(),
        )
        .respond(fd.as_raw_fd())
        .unwrap();
        state
    });
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "mkdir: can't create directory '/tmp/d': Permission denied\ndone\n"
    );
    let state = agent.join().unwrap();
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "test-meta");
    assert_eq!(state["state"]["id"], c.id.as_str());
    assert!(state["pid"].as_i64().unwrap() > 1);
    c.assert_gone();
}

#[test]
fn notified_syscalls_of_the_init_itself_do_not_deadlock() {
    // getcwd, chdir and openat are what the init calls after loading the filter (its cwd
    // check, the program's lookup): the listener must have the fd before any of them
    let mut c = Ctr::new("sc-notify-init");
    let sock = c.dir.join("listener.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    c.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock,
               "syscalls": [{"names": ["getcwd", "chdir", "openat"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    c.set("/process/cwd", json!("/tmp"));
    c.args(&["sh", "-c", "cd /etc && pwd && cat hostname"]);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    let agent = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let (conn, _) = listener.accept().unwrap();
        let (fd, _) = berth::linux::channel::recv_fd(conn.as_fd()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        // let every notified call through until the container is gone (older kernels do
        // not report that on the fd: the test says so)
        while !finished.load(std::sync::atomic::Ordering::SeqCst) {
            let mut p = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut p, nix::poll::PollTimeout::from(50u8)) {
                Ok(0) => continue,
                Ok(_)
                    if p[0]
                        .revents()
                        .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLIN)) => {}
                _ => break,
            }
            let Ok(req) = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()) else {
                break;
            };
            seen.insert(req.data.syscall.get_name().unwrap_or_default());
            let _ = libseccomp::ScmpNotifResp::new_continue(
                req.id,
                libseccomp::ScmpNotifRespFlags::CONTINUE,
            )
            .respond(fd.as_raw_fd());
        }
        seen
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let c2 = std::thread::spawn(move || {
        let r = c.run();
        let _ = tx.send(r);
        c
    });
    let (code, out, err) = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the container hung: init, berth and listener wait on each other");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "/etc\nberth\n");
    let seen = agent.join().unwrap();
    for name in ["getcwd", "chdir", "openat"] {
        assert!(seen.contains(name), "{name} was not notified: {seen:?}");
    }
    c2.join().unwrap().assert_gone();
}

#[test]
fn default_profile_blocks_namespace_and_mount_calls() {
    let mut c = Ctr::new("sc-default");
    let spec_dir = c.dir.join("spec");
    fs::create_dir_all(&spec_dir).unwrap();
    c.ok(&["spec", "--bundle", spec_dir.to_str().unwrap()]);
    let spec: Value =
        serde_json::from_str(&fs::read_to_string(spec_dir.join("config.json")).unwrap()).unwrap();
    c.set("/linux/seccomp", spec["linux"]["seccomp"].clone());
    // root with every capability: only seccomp stands in the way
    let all = json!([
        "CAP_SYS_ADMIN",
        "CAP_SYS_CHROOT",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_KILL"
    ]);
    c.set(
        "/process/capabilities",
        json!({"bounding": all, "effective": all, "permitted": all}),
    );
    c.args(&["sh", "-c", "unshare -n true 2>&1; mount -t tmpfs t /mnt 2>&1; echo ok > /tmp/f && cat /tmp/f; grep Seccomp_filters /proc/self/status"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("Operation not permitted"),
        "unshare: {out}"
    );
    // busybox words EPERM from mount(2) its own way
    assert!(lines[1].contains("permission denied"), "mount: {out}");
    assert_eq!(lines[2], "ok");
    assert_eq!(lines[3], "Seccomp_filters:\t1");
    c.assert_gone();
    // control: without the profile the same calls succeed, so seccomp was what refused them
    c.set("/linux/seccomp", Value::Null);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("not permitted") && !out.contains("permission denied"),
        "{out}"
    );
    c.assert_gone();
}

#[test]
fn compiled_programs_are_cached_by_profile() {
    let c = with_seccomp(
        "sc-cache",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}),
        "true",
    );
    let (code, _, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let cache = c.root.join(".seccomp-cache");
    let entries: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let before = fs::metadata(&entries[0]).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, _, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let after = fs::metadata(&entries[0]).unwrap().modified().unwrap();
    assert_eq!(before, after, "a cache hit must not rewrite the program");
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 1);
    // `list` does not mistake the cache for a container
    assert_eq!(c.ok(&["list", "-q"]), "");
}

#[test]
fn exec_processes_get_the_containers_filter() {
    let mut c = with_seccomp(
        "sc-exec",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}),
        "",
    );
    c.args(&["sleep", "1000"]);
    let init = c.start();
    wait_comm(init, "sleep");
    assert_eq!(status_field(init, "Seccomp"), "2");
    let out = c.berth(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "mkdir /tmp/z 2>&1; grep Seccomp: /proc/self/status",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
}

#[test]
fn without_no_new_privs_the_filter_is_loaded_before_capabilities_drop() {
    let mut c = with_seccomp(
        "sc-nonnp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
        "mkdir /tmp/q 2>&1; grep -E 'NoNewPrivs|Seccomp:' /proc/self/status",
    );
    c.set("/process/noNewPrivileges", json!(false));
    c.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(
        out.contains("NoNewPrivs:\t0") && out.contains("Seccomp:\t2"),
        "{out}"
    );
    c.assert_gone();
}
