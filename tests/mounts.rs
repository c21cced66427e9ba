//! The container's filesystem as the kernel reports it: its mount table, binds, read-only root,
//! propagation, /dev, masked and read-only paths, and mounts that cannot escape the rootfs.

mod common;

use std::fs;

use common::*;
use serde_json::json;

/// Mount points (field 5) and their options/fstype of a process's mountinfo.
fn mounts(pid: i32) -> Vec<(String, String, String, String)> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dash = f.iter().position(|x| *x == "-").unwrap();
            (
                f[4].to_string(),
                f[5].to_string(),
                f[dash + 1].to_string(),
                f[6..dash].join(" "),
            )
        })
        .collect()
}

fn find(m: &[(String, String, String, String)], point: &str) -> (String, String, String) {
    let e = m
        .iter()
        .rev()
        .find(|e| e.0 == point)
        .unwrap_or_else(|| panic!("no mount at {point}: {m:?}"));
    (e.1.clone(), e.2.clone(), e.3.clone())
}

#[test]
fn mount_table_inside_matches_the_config() {
    let c = Ctr::new("mnt-table");
    let pid = c.start();
    wait_comm(pid, "sleep");
    let m = mounts(pid);
    assert_eq!(find(&m, "/proc").1, "proc");
    let (opts, fstype, _) = find(&m, "/dev");
    assert_eq!(fstype, "tmpfs");
    assert!(opts.contains("nosuid"), "{opts}");
    assert_eq!(find(&m, "/dev/pts").1, "devpts");
    assert_eq!(find(&m, "/dev/shm").1, "tmpfs");
    assert_eq!(find(&m, "/dev/mqueue").1, "mqueue");
    let (opts, fstype, _) = find(&m, "/sys");
    assert_eq!(fstype, "sysfs");
    assert!(opts.starts_with("ro"), "{opts}");
    if cgroup_v2() {
        assert_eq!(find(&m, "/sys/fs/cgroup").1, "cgroup2");
    } else {
        assert_eq!(find(&m, "/sys/fs/cgroup").1, "tmpfs");
        assert_eq!(find(&m, "/sys/fs/cgroup/memory").1, "cgroup");
    }
    // the root is the bundle's rootfs, and no host path is visible
    assert_eq!(m[0].0, "/");
    assert!(
        !m.iter().any(|e| e.0.starts_with("/run/berth-test")),
        "{m:?}"
    );
    // mounts are private to the container: none of them reached the host
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(&c.id));
}

#[test]
fn bind_mounts_with_options() {
    let mut c = Ctr::new("mnt-bind");
    let data = c.dir.join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("hello"), "from host").unwrap();
    let file = c.dir.join("single");
    fs::write(&file, "one file").unwrap();
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "ro", "nosuid"]}));
    ms.push(json!({"destination": "/rw", "type": "none", "source": data, "options": ["bind"]}));
    ms.push(json!({"destination": "/etc/single", "type": "bind", "source": file, "options": ["bind", "ro"]}));
    ms.push(json!({"destination": "/new/dir/deep", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    c.set("/mounts", json!(ms));
    c.args(&["sh", "-c", "cat /data/hello; echo; cat /etc/single; echo; touch /data/x 2>/dev/null && echo WROTE-RO; touch /rw/y && echo rw-ok; touch /new/dir/deep/z && echo tmpfs-ok"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "from host\none file\nrw-ok\ntmpfs-ok\n");
    assert!(data.join("y").exists(), "rw bind writes reach the host dir");
    assert!(!data.join("x").exists());
    c.assert_gone();
}

#[test]
fn readonly_root_keeps_tmpfs_writable() {
    let mut c = Ctr::new("mnt-ro");
    c.set("/root/readonly", json!(true));
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    c.set("/mounts", json!(ms));
    c.args(&["sh", "-c", "touch /x 2>&1; touch /tmp/y && echo tmp-ok"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.ends_with("tmp-ok\n"), "{out}");
    c.assert_gone();
}

#[test]
fn devices_and_dev_symlinks() {
    let mut c = Ctr::new("mnt-dev");
    c.set(
        "/linux/devices",
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1000, "gid": 1000}]),
    );
    c.args(&["sh", "-c", "stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/tty /dev/fuse; for l in fd stdin ptmx; do readlink /dev/$l; done"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let want = "/dev/null character special file 1:3 666 0:0\n\
                /dev/zero character special file 1:5 666 0:0\n\
                /dev/tty character special file 5:0 666 0:0\n\
                /dev/fuse character special file a:e5 640 1000:1000\n\
                /proc/self/fd\n/proc/self/fd/0\npts/ptmx\n";
    assert_eq!(out, want);
    c.assert_gone();
}

#[test]
fn masked_and_readonly_paths() {
    let mut c = Ctr::new("mnt-mask");
    c.args(&["sh", "-c", "wc -c < /proc/keys; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>&1 || echo ro-ok"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "/proc/keys readable: {out}");
    assert_eq!(lines[1].trim(), "0", "/sys/firmware not masked: {out}");
    assert!(
        out.contains("Read-only file system") || out.contains("ro-ok"),
        "{out}"
    );
    c.assert_gone();
}

#[test]
fn mount_propagation_flags() {
    let mut c = Ctr::new("mnt-prop");
    let data = c.dir.join("shared");
    fs::create_dir_all(&data).unwrap();
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(json!({"destination": "/shared", "type": "bind", "source": data, "options": ["rbind", "rshared"]}));
    ms.push(
        json!({"destination": "/priv", "type": "tmpfs", "source": "tmpfs", "options": ["private"]}),
    );
    c.set("/mounts", json!(ms));
    c.set("/linux/rootfsPropagation", json!("rslave"));
    let pid = c.start();
    wait_comm(pid, "sleep");
    let m = mounts(pid);
    let (_, _, opt) = find(&m, "/shared");
    assert!(opt.contains("shared:"), "/shared not shared: {opt}");
    let (_, _, opt) = find(&m, "/priv");
    assert!(
        !opt.contains("shared:") && !opt.contains("master:"),
        "/priv not private: {opt}"
    );
    let (_, _, opt) = find(&m, "/");
    assert!(
        !opt.contains("shared:"),
        "/ must not share with the host: {opt}"
    );
}

#[test]
fn no_pivot_runs_in_the_rootfs() {
    let mut c = Ctr::new("mnt-nopivot");
    c.args(&[
        "sh",
        "-c",
        "cat /etc/hostname; ls /run/berth-test 2>&1 | head -1",
    ]);
    let b = c.bundle_arg();
    let out = c.berth(&["run", "--no-pivot", "--bundle", &b, &c.id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("berth\n"), "{text}");
    assert!(text.contains("No such file"), "host paths visible: {text}");
    c.assert_gone();
}

#[test]
fn symlinks_in_the_rootfs_cannot_redirect_mounts_to_the_host() {
    let mut c = Ctr::new("mnt-escape");
    let rootfs = c.bundle.join("rootfs");
    let victim = c.dir.join("victim");
    fs::create_dir_all(&victim).unwrap();
    // absolute and relative links that point outside the rootfs
    std::os::unix::fs::symlink(&victim, rootfs.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", rootfs.join("up")).unwrap();
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(json!({"destination": "/abs/x", "type": "tmpfs", "source": "tmpfs"}));
    let rel = victim.strip_prefix("/").unwrap().join("y");
    ms.push(json!({"destination": format!("/up/{}", rel.display()), "type": "tmpfs", "source": "tmpfs"}));
    c.set("/mounts", json!(ms));
    c.args(&["true"]);
    let (code, _, err) = c.run();
    assert_eq!(code, 0, "{err}");
    // both mounts were created inside the rootfs, the host directory is untouched
    assert!(
        fs::read_dir(&victim).unwrap().next().is_none(),
        "host dir written"
    );
    assert!(
        rootfs
            .join(victim.strip_prefix("/").unwrap())
            .join("x")
            .is_dir()
    );
    assert!(rootfs.join(&rel).is_dir());
    c.assert_gone();
}
