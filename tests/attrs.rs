//! Process attributes beyond ids and capabilities, as the kernel reports them: personality,
//! I/O priority, scheduling policy and nice; AppArmor/SELinux refused on a host without them.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use serde_json::json;

#[test]
fn personality_ioprio_and_scheduler() {
    let mut c = Ctr::new("attrs");
    c.set("/linux/personality", json!({"domain": "LINUX32"}));
    c.set(
        "/process/ioPriority",
        json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
    );
    c.set(
        "/process/scheduler",
        json!({"policy": "SCHED_BATCH", "nice": 7}),
    );
    let pid = c.start();
    wait_comm(pid, "sleep");
    // PER_LINUX32 is 0x0008
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/personality"))
            .unwrap()
            .trim(),
        "00000008"
    );
    let ionice = Command::new("ionice")
        .args(["-p", &pid.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ionice.stdout).trim(),
        "best-effort: prio 6"
    );
    // /proc/<pid>/stat: field 19 is nice, field 41 the policy (SCHED_BATCH = 3)
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(fields[19 - 3], "7", "nice");
    assert_eq!(fields[41 - 3], "3", "policy");
}

#[test]
fn bad_scheduler_values_name_the_field() {
    let mut c = Ctr::new("attrs-bad");
    c.set("/process/scheduler", json!({"policy": "SCHED_FIFO"}));
    let (code, _, err) = c.run();
    assert_eq!(code, 1);
    assert!(err.contains("process.scheduler.priority"), "{err}");
    c.set("/process/scheduler", Value::Null);
    c.set(
        "/process/ioPriority",
        json!({"class": "IOPRIO_CLASS_RT", "priority": 9}),
    );
    let (_, _, err) = c.run();
    assert!(err.contains("process.ioPriority.priority"), "{err}");
    c.assert_gone();
}

#[test]
fn lsm_labels_are_refused_where_the_host_has_no_lsm() {
    let apparmor = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    let mut c = Ctr::new("attrs-lsm");
    if !apparmor {
        c.set("/process/apparmorProfile", json!("berth-test-profile"));
        let (code, _, err) = c.run();
        assert_eq!(code, 1);
        assert!(
            err.contains("process.apparmorProfile: AppArmor is not enabled on this host"),
            "{err}"
        );
        c.assert_gone();
        c.set("/process/apparmorProfile", Value::Null);
    }
    if !selinux {
        c.set(
            "/process/selinuxLabel",
            json!("system_u:system_r:container_t:s0"),
        );
        let (code, _, err) = c.run();
        assert_eq!(code, 1);
        assert!(
            err.contains("process.selinuxLabel: SELinux is not enabled on this host"),
            "{err}"
        );
        c.assert_gone();
    }
}

use serde_json::Value;
