//! pause/resume (freezer), update (flags and JSON), events (--stats and the stream, with OOM),
//! block I/O throttling and hugetlb.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A container that counts into a bind-mounted host file every 10 ms.
fn counter(name: &str) -> (Ctr, std::path::PathBuf) {
    let mut c = Ctr::new(name);
    let dir = c.dir.join("count");
    fs::create_dir_all(&dir).unwrap();
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(json!({"destination": "/count", "type": "bind", "source": dir, "options": ["bind"]}));
    c.set("/mounts", json!(ms));
    c.args(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /count/n; sleep 0.01; done",
    ]);
    (c, dir.join("n"))
}

fn read_count(p: &std::path::Path) -> u64 {
    fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let (c, n) = counter("pause");
    let pid = c.start();
    wait_comm(pid, "sh");
    wait_file(&n);
    c.ok(&["pause", &c.id]);
    assert_eq!(c.status(), "paused");
    if cgroup_v2() {
        assert!(c.cgroup_file("", "cgroup.events").contains("frozen 1"));
    } else {
        assert_eq!(c.cgroup_file("freezer", "freezer.state"), "FROZEN");
    }
    // The count stays put. One step may land after the first read (seen once on the
    // emulated cgroup v2 VM: a write already under way when the freeze began), never more.
    let before = read_count(&n);
    std::thread::sleep(Duration::from_millis(300));
    let mid = read_count(&n);
    std::thread::sleep(Duration::from_millis(300));
    let after = read_count(&n);
    assert!(
        mid == after && after <= before + 1,
        "a paused container kept running: {before} -> {mid} -> {after}"
    );
    let err = c.fails(&["pause", &c.id]);
    assert!(err.contains("container not running"), "{err}");
    let err = c.fails(&["exec", &c.id, "true"]);
    assert!(err.contains("paused"), "{err}");
    c.ok(&["resume", &c.id]);
    assert_eq!(c.status(), "running");
    // thawed, it counts on (given CPU time: a loaded machine may take a while)
    // (one read decides: the file is empty for a moment at each write, and reads as 0 then)
    let t = std::time::Instant::now();
    let mut now = read_count(&n);
    while now <= before && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
        now = read_count(&n);
    }
    assert!(
        now > before,
        "a resumed container did not continue: {before} -> {now}"
    );
    let err = c.fails(&["resume", &c.id]);
    assert!(err.contains("container not paused"), "{err}");
    // a paused container can be force-deleted
    c.ok(&["pause", &c.id]);
    c.ok(&["delete", "--force", &c.id]);
    c.assert_gone();
}

#[test]
fn update_with_flags_and_json() {
    let c = Ctr::new("update");
    let pid = c.start();
    wait_comm(pid, "sleep");
    c.ok(&[
        "update",
        "--memory",
        "100m",
        "--pids-limit",
        "50",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        "--cpu-share",
        "256",
        &c.id,
    ]);
    let res = c.dir.join("res.json");
    fs::write(
        &res,
        json!({"memory": {"reservation": 10485760}}).to_string(),
    )
    .unwrap();
    c.ok(&["update", "-r", res.to_str().unwrap(), &c.id]);
    if cgroup_v2() {
        assert_eq!(c.cgroup_file("", "memory.max"), "104857600");
        assert_eq!(c.cgroup_file("", "memory.low"), "10485760");
        assert_eq!(c.cgroup_file("", "pids.max"), "50");
        assert_eq!(c.cgroup_file("", "cpu.max"), "20000 100000");
    } else {
        assert_eq!(
            c.cgroup_file("memory", "memory.limit_in_bytes"),
            "104857600"
        );
        assert_eq!(
            c.cgroup_file("memory", "memory.soft_limit_in_bytes"),
            "10485760"
        );
        assert_eq!(c.cgroup_file("pids", "pids.max"), "50");
        assert_eq!(c.cgroup_file("cpu", "cpu.cfs_quota_us"), "20000");
        assert_eq!(c.cgroup_file("cpu", "cpu.shares"), "256");
    }
    // from stdin
    let mut child = Command::new(BERTH)
        .args([
            "--root",
            c.root.to_str().unwrap(),
            "update",
            "-r",
            "-",
            &c.id,
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids": {"limit": 77}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(c.cgroup_file("pids", "pids.max"), "77");
    let err = c.fails(&["update", "--memory", "lots", &c.id]);
    assert!(err.contains("--memory: \"lots\" is not a size"), "{err}");
    fs::write(&res, r#"{"memory": {"limit": "x"}}"#).unwrap();
    let err = c.fails(&["update", "-r", res.to_str().unwrap(), &c.id]);
    assert!(err.contains("memory.limit"), "{err}");
    c.ok(&["kill", &c.id, "KILL"]);
    c.wait_status("stopped");
    let err = c.fails(&["update", "--pids-limit", "5", &c.id]);
    assert!(err.contains("cannot update a stopped container"), "{err}");
}

#[test]
fn events_stats_report_usage() {
    let mut c = Ctr::new("events-stats");
    c.set(
        "/linux/resources",
        json!({"memory": {"limit": 134217728}, "pids": {"limit": 99}}),
    );
    c.args(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000",
    ]);
    let pid = c.start();
    std::thread::sleep(Duration::from_millis(300));
    let _ = pid;
    let ev: Value = serde_json::from_str(&c.ok(&["events", "--stats", &c.id])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], c.id.as_str());
    let d = &ev["data"];
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{d}");
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["memory"]["usage"]["limit"], 134217728);
    assert!(d["pids"]["current"].as_u64().unwrap() >= 1);
    assert_eq!(d["pids"]["limit"], 99);
    assert!(d["memory"]["raw"].as_object().unwrap().len() > 5);
}

#[test]
fn events_stream_reports_stats_and_oom_until_the_container_stops() {
    let mut c = Ctr::new("events-oom");
    c.set(
        "/linux/resources",
        json!({"memory": {"limit": 16777216, "swap": 16777216}}),
    );
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(
        json!({"destination": "/big", "type": "tmpfs", "source": "tmpfs", "options": ["size=64m"]}),
    );
    c.set("/mounts", json!(ms));
    c.args(&[
        "sh",
        "-c",
        "sleep 0.5; dd if=/dev/zero of=/big/f bs=1M count=32 2>/dev/null; sleep 0.5",
    ]);
    c.start();
    let mut child = Command::new(BERTH)
        .args([
            "--root",
            c.root.to_str().unwrap(),
            "events",
            "--interval",
            "100ms",
            &c.id,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    // the stream ended by itself when the container stopped
    assert!(child.wait().unwrap().success());
    assert!(
        lines.iter().filter(|l| l["type"] == "stats").count() >= 3,
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l["type"] == "oom"),
        "no oom event in {lines:?}"
    );
}

/// A block device of this machine: (major, minor).
fn some_block_device() -> Option<(u32, u32)> {
    let dev = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .find_map(|e| fs::read_to_string(e.path().join("dev")).ok())?;
    let (a, b) = dev.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[test]
fn block_io_throttling() {
    let Some((major, minor)) = some_block_device() else {
        return; // no block device (the v2 test VM runs from an initramfs)
    };
    let mut c = Ctr::new("blkio");
    c.set(
        "/linux/resources",
        json!({"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]}}),
    );
    let pid = c.start();
    wait_comm(pid, "sleep");
    let dev = format!("{major}:{minor}");
    if cgroup_v2() {
        let max = c.cgroup_file("", "io.max");
        assert!(
            max.contains(&format!("{dev} rbps=1048576")) && max.contains("wiops=100"),
            "{max}"
        );
    } else {
        assert_eq!(
            c.cgroup_file("blkio", "blkio.throttle.read_bps_device"),
            format!("{dev} 1048576")
        );
        assert_eq!(
            c.cgroup_file("blkio", "blkio.throttle.write_iops_device"),
            format!("{dev} 100")
        );
    }
}

#[test]
fn hugetlb_limits_or_a_clear_refusal() {
    let mut c = Ctr::new("hugetlb");
    c.set(
        "/linux/resources",
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
    );
    let b = c.bundle_arg();
    let out = c.berth_detached(&["create", "--bundle", &b, &c.id]);
    let v1_has_hugetlb = std::path::Path::new("/sys/fs/cgroup/hugetlb").exists();
    if cgroup_v2() || v1_has_hugetlb {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = if cgroup_v2() {
            "hugetlb.2MB.max"
        } else {
            "hugetlb.2MB.limit_in_bytes"
        };
        assert_eq!(c.cgroup_file("hugetlb", file), "4194304");
    } else {
        // this hybrid host keeps hugetlb in the unified hierarchy only
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("the hugetlb controller is not mounted on this host")
        );
        c.assert_gone();
    }
}

#[test]
fn a_memory_limit_too_small_for_the_init_is_named() {
    let mut c = Ctr::new("tiny-mem");
    c.set("/linux/resources", json!({"memory": {"limit": 4096}}));
    c.args(&["true"]);
    let (code, _, err) = c.run();
    assert_ne!(code, 0);
    assert!(
        err.contains("out-of-memory killer")
            && err.contains("memory limit of 4096 bytes")
            && err.contains("linux.resources.memory.limit"),
        "{err}"
    );
    c.assert_gone();
}
