//! cgroups as the host sees them: limit files, membership, the cgroup namespace and mount, the
//! limits' effect, and removal. Runs on cgroup v1 (hybrid) hosts and, in the qemu VM of
//! `make test-cgroupv2`, on a pure v2 kernel.

mod common;

use std::fs;

use common::*;
use serde_json::json;

#[test]
fn limits_are_written_to_the_cgroup() {
    let mut c = Ctr::new("cg-limits");
    c.set("/linux/resources", example("resources.json"));
    let pid = c.start();
    wait_comm(pid, "sleep");
    if cgroup_v2() {
        assert_eq!(c.cgroup_file("", "memory.max"), "67108864");
        assert_eq!(c.cgroup_file("", "memory.low"), "33554432");
        assert_eq!(c.cgroup_file("", "cpu.weight"), "20");
        assert_eq!(c.cgroup_file("", "cpu.max"), "50000 100000");
        assert_eq!(c.cgroup_file("", "cpuset.cpus"), "0");
        assert_eq!(c.cgroup_file("", "pids.max"), "64");
    } else {
        assert_eq!(c.cgroup_file("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(
            c.cgroup_file("memory", "memory.soft_limit_in_bytes"),
            "33554432"
        );
        assert_eq!(c.cgroup_file("cpu", "cpu.shares"), "512");
        assert_eq!(c.cgroup_file("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(c.cgroup_file("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(c.cgroup_file("cpuset", "cpuset.cpus"), "0");
        assert_eq!(c.cgroup_file("pids", "pids.max"), "64");
    }
    // the init is a member of the container's cgroup in every hierarchy
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cg
        .lines()
        .filter(|l| !l.contains("name=systemd") && !l.starts_with("0::/") || cgroup_v2())
    {
        assert!(line.ends_with(&c.cgroup), "{line} not in {}", c.cgroup);
    }
    c.ok(&["delete", "--force", &c.id]);
    c.assert_gone();
}

#[test]
fn cgroup_namespace_and_mount_show_the_container_cgroup() {
    let mut c = Ctr::new("cg-ns");
    c.set("/linux/resources", json!({"memory": {"limit": 50331648}}));
    let file = if cgroup_v2() {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    c.args(&["sh", "-c", &format!("cat /proc/self/cgroup; cat {file}")]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let (limit, cgroups) = lines.split_last().unwrap();
    assert_eq!(*limit, "50331648");
    for l in cgroups {
        if l.contains("name=systemd") || (!cgroup_v2() && l.starts_with("0::")) {
            continue;
        }
        assert!(
            l.ends_with(":/"),
            "cgroup namespace root should be the container's: {l}"
        );
    }
    c.assert_gone();
}

#[test]
fn relative_cgroups_path_is_below_berths_own_cgroup() {
    let mut c = Ctr::new("cg-rel");
    let rel = format!("rel-{}", c.id);
    c.set("/linux/cgroupsPath", json!(rel));
    let pid = c.start();
    wait_comm(pid, "sleep");
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let host = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let pick = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.split(':').nth(1) == Some(key))
            .map(|l| l.splitn(3, ':').nth(2).unwrap().to_string())
    };
    let key = if cgroup_v2() { "" } else { "memory" };
    let mine = pick(&own, key).unwrap();
    let theirs = pick(&host, key).unwrap();
    let want = format!("{}/{rel}", mine.trim_end_matches('/'));
    assert_eq!(theirs, want);
    c.ok(&["delete", "--force", &c.id]);
    let dir = if cgroup_v2() {
        format!("/sys/fs/cgroup{want}")
    } else {
        format!("/sys/fs/cgroup/memory{want}")
    };
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left");
}

#[test]
fn pids_limit_is_enforced() {
    let mut c = Ctr::new("cg-pids");
    c.set("/linux/resources", json!({"pids": {"limit": 4}}));
    c.args(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done 2>&1; wait",
    ]);
    let (_, out, err) = c.run();
    let all = format!("{out}{err}");
    assert!(
        all.contains("can't fork") || all.contains("Resource temporarily unavailable"),
        "{all}"
    );
    c.assert_gone();
}

#[test]
fn memory_limit_is_enforced() {
    let mut c = Ctr::new("cg-oom");
    c.set(
        "/linux/resources",
        json!({"memory": {"limit": 16777216, "swap": 16777216}}),
    );
    let tmpfs =
        json!({"destination": "/big", "type": "tmpfs", "source": "tmpfs", "options": ["size=64m"]});
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(tmpfs);
    c.set("/mounts", json!(ms));
    // tmpfs pages are charged to the cgroup: 32 MiB cannot fit in 16 MiB
    c.args(&[
        "sh",
        "-c",
        "dd if=/dev/zero of=/big/f bs=1M count=32 2>/dev/null; echo dd=$?",
    ]);
    let (_, out, _) = c.run();
    // dd is OOM-killed (SIGKILL: 128+9)
    assert_eq!(out.trim(), "dd=137");
    c.assert_gone();
}

#[test]
fn v1_device_rules_are_written() {
    let mut c = Ctr::new("cg-devices");
    c.set(
        "/linux/resources",
        json!({"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 4, "minor": 64, "access": "rw"}]}),
    );
    // CAP_MKNOD: creating nodes is allowed ("c *:* m"); using one outside the list is not
    let caps = json!(["CAP_MKNOD", "CAP_DAC_OVERRIDE"]);
    c.set(
        "/process/capabilities",
        json!({"bounding": caps, "effective": caps, "permitted": caps}),
    );
    c.args(&["sleep", "1000"]);
    let pid = c.start();
    wait_comm(pid, "sleep");
    if !cgroup_v2() {
        let list = c.cgroup_file("devices", "devices.list");
        let rules: Vec<&str> = list.lines().collect();
        for want in ["c 4:64 rw", "c 1:3 rwm", "c 136:* rwm", "c *:* m"] {
            assert!(rules.contains(&want), "{want} missing in {rules:?}");
        }
        assert!(
            !rules.contains(&"a *:* rwm"),
            "deny-all not applied: {rules:?}"
        );
    }
}

#[test]
fn device_rules_deny_outside_the_list() {
    let mut c = Ctr::new("cg-devices-deny");
    c.set(
        "/linux/resources",
        json!({"devices": [{"allow": false, "access": "rwm"}]}),
    );
    let caps = json!(["CAP_MKNOD", "CAP_DAC_OVERRIDE"]);
    c.set(
        "/process/capabilities",
        json!({"bounding": caps, "effective": caps, "permitted": caps}),
    );
    // /dev/kmsg (1:11) takes writes from root without any capability: only the rules stop it
    c.args(&["sh", "-c", "rm -f /tmp/kmsg; mknod /tmp/kmsg c 1 11 && echo made; echo berth-device-test > /tmp/kmsg 2>/dev/null || echo kmsg-denied; head -c1 /dev/zero | wc -c; echo x > /dev/null && echo null-ok"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "made\nkmsg-denied\n1\nnull-ok\n");
    c.assert_gone();
    // control: without the rules the same write goes through
    c.set("/linux/resources", json!({}));
    let (_, out, _) = c.run();
    assert!(
        out.starts_with("made\n") && !out.contains("kmsg-denied"),
        "{out}"
    );
    c.assert_gone();
}
