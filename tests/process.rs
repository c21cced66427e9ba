//! The container process's attributes as /proc reports them: ids, groups, umask, rlimits,
//! capabilities, no_new_privs, oom_score_adj, env, cwd, and fds.

mod common;

use std::fs;

use common::*;
use serde_json::json;

#[test]
fn user_groups_umask() {
    let mut c = Ctr::new("proc-user");
    c.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 65534], "umask": 63}),
    );
    let pid = c.start();
    wait_comm(pid, "sleep");
    assert_eq!(status_field(pid, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(pid, "Gid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(pid, "Groups"), "5 65534");
    assert_eq!(status_field(pid, "Umask"), "0077");
}

#[test]
fn rlimits_are_set_and_clamped_with_a_warning() {
    let mut c = Ctr::new("proc-rlimit");
    let (_, host_hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    c.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 777},
            {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]),
    );
    let pid = c.start();
    wait_comm(pid, "sleep");
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .rev()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("Max open files"), "777 512");
    assert_eq!(line("Max processes"), "200 100");
    assert_eq!(line("Max core file size"), "0 0");
    drop(c);

    // above the host's hard limit (this host has no CAP_SYS_RESOURCE): clamped, not fatal
    let mut c = Ctr::new("proc-rlimit-clamp");
    let want = host_hard + 1_000_000;
    c.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": want, "hard": want}]),
    );
    c.args(&["sh", "-c", "ulimit -n"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let got: u64 = out.trim().parse().unwrap();
    if got == want {
        // a host where berth may raise limits
        assert!(!err.contains("clamped"));
    } else {
        assert_eq!(got, host_hard);
        assert!(err.contains("warning: RLIMIT_NOFILE clamped"), "{err}");
    }
    c.assert_gone();
}

fn caps_hex(names: &[u32]) -> String {
    format!("{:016x}", names.iter().fold(0u64, |a, b| a | (1 << b)))
}

#[test]
fn capabilities_and_no_new_privs() {
    let mut c = Ctr::new("proc-caps");
    // CAP_CHOWN 0, CAP_KILL 5, CAP_NET_BIND_SERVICE 10, CAP_SYS_ADMIN 21
    c.set(
        "/process/capabilities",
        json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_KILL"]
        }),
    );
    c.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    let pid = c.start();
    wait_comm(pid, "sleep");
    assert_eq!(status_field(pid, "CapBnd"), caps_hex(&[0, 5, 10, 21]));
    // after exec as a non-root user: permitted/effective come from ambient only
    assert_eq!(status_field(pid, "CapAmb"), caps_hex(&[5]));
    assert_eq!(status_field(pid, "CapInh"), caps_hex(&[5, 10]));
    assert_eq!(status_field(pid, "CapEff"), caps_hex(&[5]));
    assert_eq!(status_field(pid, "CapPrm"), caps_hex(&[5]));
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    drop(c);

    let mut c = Ctr::new("proc-caps-root");
    c.set("/process/noNewPrivileges", json!(false));
    let pid = c.start();
    wait_comm(pid, "sleep");
    // base.json: AUDIT_WRITE 29, KILL 5, NET_BIND_SERVICE 10 for root
    let want = caps_hex(&[5, 10, 29]);
    for f in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(status_field(pid, f), want, "{f}");
    }
    assert_eq!(status_field(pid, "NoNewPrivs"), "0");
}

#[test]
fn env_cwd_and_home() {
    let mut c = Ctr::new("proc-env");
    c.set("/process/env", json!(["PATH=/bin", "FOO=bar baz"]));
    c.set("/process/cwd", json!("/home/user"));
    c.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    c.args(&["sh", "-c", "pwd; echo \"$FOO\"; echo $HOME; id -u"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "/home/user\nbar baz\n/home/user\n1000\n");
    c.assert_gone();
}

#[test]
fn oom_score_adj_is_set_or_clamped() {
    let mut c = Ctr::new("proc-oom");
    c.set("/process/oomScoreAdj", json!(500));
    let pid = c.start();
    wait_comm(pid, "sleep");
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim(),
        "500"
    );
    drop(c);

    let mut c = Ctr::new("proc-oom-neg");
    c.set("/process/oomScoreAdj", json!(-998));
    c.args(&["cat", "/proc/self/oom_score_adj"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    if out.trim() != "-998" {
        assert!(
            err.contains("warning: oomScoreAdj -998 not permitted"),
            "{err}"
        );
    }
    c.assert_gone();
}

#[test]
fn no_fd_of_berth_reaches_the_container() {
    let c = Ctr::new("proc-fds");
    let pid = c.start();
    wait_comm(pid, "sleep");
    let mut fds: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, vec!["0", "1", "2"]);
    // and the working directory is inside the container
    use std::os::unix::fs::MetadataExt;
    let cwd = fs::metadata(format!("/proc/{pid}/cwd")).unwrap();
    let rootfs = fs::metadata(c.bundle.join("rootfs")).unwrap();
    assert_eq!(
        (cwd.dev(), cwd.ino()),
        (rootfs.dev(), rootfs.ino()),
        "cwd is not the rootfs"
    );
}

#[test]
fn preserve_fds_passes_fds_through() {
    let mut c = Ctr::new("proc-preserve");
    c.args(&["sh", "-c", "echo through-fd3 >&3; ls /proc/self/fd | wc -l"]);
    let out_file = c.dir.join("fd3.out");
    // the shell opens fd 3 for berth, which passes it on
    let cmd = format!(
        "{BERTH} --root {} run --preserve-fds 1 --bundle {} {} 3>{}",
        c.root.display(),
        c.bundle.display(),
        c.id,
        out_file.display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&out_file).unwrap(), "through-fd3\n");
    // 0, 1, 2, 3 and the fd ls opens for the directory
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    c.assert_gone();
}
