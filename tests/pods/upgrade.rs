//! Upgrades in place: a pod made by the berth before the pod layer's rebuild (its records
//! without versions, its monitor speaking the earlier protocol) is inspected, stopped and
//! removed by this berth, leaving nothing; a record newer than this berth knows is refused.
//!
//! Needs the earlier binary: `make test-upgrade` builds it from git history and sets
//! `BERTH_OLD_BINARY` (part of `make test`).

use std::fs;
use std::path::PathBuf;
use std::process::Stdio;

use super::common::{cgroup_dirs_of, processes_mentioning};
use super::env::*;

#[test]
#[ignore = "needs BERTH_OLD_BINARY: run by `make test-upgrade`"]
fn a_pod_of_the_previous_berth_is_inspected_stopped_and_removed() {
    let old = PathBuf::from(std::env::var("BERTH_OLD_BINARY").expect("BERTH_OLD_BINARY"));
    assert_eq!(
        old.file_name().unwrap(),
        "berth",
        "the monitor is started as this binary"
    );
    let e = PodEnv::new("upgrade");
    let yaml = e.dir.join("pod.yaml");
    fs::write(
        &yaml,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: before}}\nspec:\n  containers:\n  - {{name: app, image: {}, command: [sh, -c, 'trap \"exit 3\" TERM; sleep 1000 & wait']}}\n",
            e.image("base")
        ),
    )
    .unwrap();
    let out = e
        .cmd_of(&old, &e.root, &["pod", "run", yaml.to_str().unwrap()])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // the old berth's records: no version field
    let pod_json = e.pod_dir(&id).join("pod.json");
    assert!(
        !fs::read_to_string(&pod_json)
            .unwrap()
            .contains("\"version\"")
    );
    let monitor = fs::read_to_string(e.pod_dir(&id).join("monitor.pid")).unwrap();
    let monitor: i32 = monitor.trim().parse().unwrap();
    assert_eq!(
        fs::read_link(format!("/proc/{monitor}/exe")).unwrap(),
        old.canonicalize().unwrap()
    );
    // this berth: inspect, stop through the old monitor (its exit recorded), remove
    let pid = e.pid(&id, "app");
    let c = e.wait(&id, "app", "Running");
    let cgroup = c["cgroup"].as_str().unwrap().to_string();
    e.ok(&["pod", "stop", "-t", "10", &id]);
    let c = e.wait(&id, "app", "Exited");
    assert_eq!(c["status"]["exit_code"], 3, "{c}");
    assert!(!running(pid));
    e.ok(&["pod", "rm", "-f", &id]);
    assert!(!e.pod_dir(&id).exists());
    assert!(!running(monitor));
    for d in cgroup_dirs_of(&cgroup) {
        assert!(!d.exists(), "{} left", d.display());
    }
    assert!(processes_mentioning(&id).is_empty());
}

#[test]
fn a_record_newer_than_this_berth_is_refused_not_misread() {
    let e = PodEnv::new("newer");
    let id = e.run(&e.sleeper("newer", true));
    let pod_json = e.pod_dir(&id).join("pod.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&pod_json).unwrap()).unwrap();
    v["version"] = 99.into();
    let saved = fs::read_to_string(&pod_json).unwrap();
    fs::write(&pod_json, v.to_string()).unwrap();
    let err = e.fails(&["pod", "inspect", &id]);
    assert!(err.contains("newer berth") && err.contains("99"), "{err}");
    fs::write(&pod_json, saved).unwrap();
    e.ok(&["pod", "rm", "-f", &id]);
}
