//! Regression tests for known container-runtime CVE classes:
//! - CVE-2019-5736: a container must not run (and so cannot later rewrite) berth's binary
//!   through `/proc/self/exe`, nor open the `exe` of berth's processes in its pid namespace.
//! - CVE-2024-21626: no fd of berth reaches the container, and `process.cwd` cannot resolve to
//!   a host directory through `/proc/self/fd/N`.
//! - CVE-2021-30465: mount targets are resolved inside the rootfs (see also mounts.rs).
//! - CVE-2019-16884 / CVE-2019-19921: proc and sysfs are mounted only on real directories,
//!   never through a symlink the image planted (it could redirect masked paths and labels).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::json;

fn digest(p: &str) -> Vec<u8> {
    fs::read(p).unwrap()
}

#[test]
fn proc_self_exe_as_interpreter_cannot_run_berth() {
    let before = digest(BERTH);
    let mut c = Ctr::new("cve-5736-shebang");
    let payload = c.bundle.join("rootfs/payload");
    fs::write(&payload, "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o755)).unwrap();
    c.args(&["/payload"]);
    let (code, out, err) = c.run();
    // the stub refuses to be an interpreter: 126, and berth's own code never ran
    assert_eq!(code, 126, "stdout {out} stderr {err}");
    assert!(
        !err.contains("Usage") && !err.contains("subcommand"),
        "berth ran in the container: {err}"
    );
    c.assert_gone();

    // the same through exec
    c.args(&["sleep", "1000"]);
    let init = c.start();
    wait_comm(init, "sleep");
    let out = c.berth(&["exec", &c.id, "/payload"]);
    assert_eq!(
        out.status.code(),
        Some(126),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(digest(BERTH), before, "berth's binary changed");
}

#[test]
fn berth_processes_in_a_container_pid_namespace_are_not_dumpable() {
    // A runs; B joins A's pid namespace and stays created: its init is still berth's code,
    // visible from A. Both have the same uid and capabilities, so only non-dumpability keeps
    // A from opening B's /proc/<pid>/exe.
    let a = Ctr::new("cve-5736-a");
    let pa = a.start();
    wait_comm(pa, "sleep");
    let mut b = Ctr::new("cve-5736-b");
    let mut nss = b.config["linux"]["namespaces"].as_array().unwrap().clone();
    nss.retain(|n| n["type"] != "pid");
    nss.push(json!({"type": "pid", "path": format!("/proc/{pa}/ns/pid")}));
    b.set("/linux/namespaces", json!(nss));
    let pb = b.create();
    let in_a: i32 = status_field(pb, "NSpid")
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    let out = a.berth(&["exec", &a.id, "sh", "-c", &format!("readlink /proc/{in_a}/exe || echo exe-denied; cat /proc/{in_a}/environ >/dev/null 2>&1 || echo environ-denied")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("berth"),
        "a container could reach berth's binary: {text}"
    );
    assert_eq!(text, "exe-denied\nenviron-denied\n");
}

#[test]
fn cwd_through_a_leaked_fd_is_refused() {
    for n in 3..12 {
        let mut c = Ctr::new(&format!("cve-21626-{n}"));
        c.set("/process/cwd", json!(format!("/proc/self/fd/{n}")));
        c.args(&["sh", "-c", "pwd; ls"]);
        let (code, out, err) = c.run();
        // the chdir fails (no such fd, not a directory) or lands outside the root and is refused
        assert_ne!(code, 0, "cwd /proc/self/fd/{n} was accepted: {out}");
        assert!(
            err.contains(&format!("chdir to cwd /proc/self/fd/{n}")),
            "{err}"
        );
        c.assert_gone();
    }
    let c = Ctr::new("cve-21626-exec");
    c.start();
    c.wait_status("running");
    for n in 3..12 {
        let out = c.berth(&["exec", "--cwd", &format!("/proc/self/fd/{n}"), &c.id, "pwd"]);
        assert!(
            !out.status.success(),
            "exec with cwd /proc/self/fd/{n}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn the_container_sees_only_its_stdio() {
    let mut c = Ctr::new("cve-21626-fds");
    c.args(&["sh", "-c", "ls /proc/self/fd; readlink /proc/self/fd/* | grep -v pipe | grep -v null | grep -v '^/proc' || true"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let fds: Vec<&str> = out
        .lines()
        .take_while(|l| l.parse::<u32>().is_ok())
        .collect();
    // 0, 1, 2 and the one ls opened for the directory
    assert_eq!(fds, ["0", "1", "2", "3"], "{out}");
    c.assert_gone();
}

#[test]
fn proc_and_sysfs_are_never_mounted_through_a_symlink() {
    for (dir, fstype) in [("proc", "proc"), ("sys", "sysfs")] {
        let c = Ctr::new(&format!("cve-16884-{dir}"));
        let root = c.bundle.join("rootfs");
        fs::create_dir_all(root.join("tmp/elsewhere")).unwrap();
        fs::remove_dir_all(root.join(dir)).unwrap();
        std::os::unix::fs::symlink("/tmp/elsewhere", root.join(dir)).unwrap();
        let err = c.fails(&["run", "--bundle", &c.bundle_arg(), &c.id]);
        assert!(
            err.contains(&format!(
                "filesystem \"{fstype}\" must be mounted on ordinary directory"
            )),
            "{err}"
        );
        // nothing was mounted where the link points, and nothing is left
        assert_eq!(fs::read_dir(root.join("tmp/elsewhere")).unwrap().count(), 0);
        c.assert_gone();
    }
}
