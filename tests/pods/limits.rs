//! Pod and container cgroups: limits in the cgroup files, OOM kills recorded as such,
//! security settings as /proc/<pid>/status shows them, volumes as mounts.

use std::fs;
use std::path::PathBuf;

use super::common::{cgroup_dirs_of, cgroup_v2, status_field};
use super::env::*;

/// A cgroup file of an absolute cgroup path (the controller's hierarchy on v1).
fn cg_file(path: &str, controller: &str, file: &str) -> String {
    let rel = path.trim_start_matches('/');
    let dir: PathBuf = if cgroup_v2() {
        PathBuf::from("/sys/fs/cgroup").join(rel)
    } else {
        fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .split(',')
                    .any(|c| c == controller)
            })
            .map(|e| e.path().join(rel))
            .unwrap_or_else(|| panic!("no {controller} hierarchy"))
    };
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
fn limits_land_in_the_pod_and_container_cgroups() {
    let e = PodEnv::new("limits");
    let img = e.image("base");
    let pod = e.run(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: limited}}
spec:
  containers:
  - name: a
    image: {img}
    command: [sleep, "1000"]
    resources: {{limits: {{cpu: 500m, memory: 64Mi}}, requests: {{cpu: 250m}}}}
  - name: b
    image: {img}
    command: [sleep, "1000"]
    resources: {{limits: {{cpu: "1", memory: 32Mi}}}}
"#
    ));
    let v = e.inspect(&pod);
    let pod_cg = v["cgroup"].as_str().unwrap().to_string();
    let a = e.container(&pod, "a");
    let a_cg = a["cgroup"].as_str().unwrap().to_string();
    assert!(
        a_cg.starts_with(&format!("{pod_cg}/")),
        "{a_cg} not below {pod_cg}"
    );
    let pid = e.pid(&pod, "a");
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(&a_cg), "{own}");
    if cgroup_v2() {
        assert_eq!(
            cg_file(&a_cg, "memory", "memory.max"),
            (64u64 << 20).to_string()
        );
        assert_eq!(cg_file(&a_cg, "cpu", "cpu.max"), "50000 100000");
        assert_eq!(
            cg_file(&pod_cg, "memory", "memory.max"),
            (96u64 << 20).to_string()
        );
        assert_eq!(cg_file(&pod_cg, "cpu", "cpu.max"), "150000 100000");
    } else {
        assert_eq!(
            cg_file(&a_cg, "memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(cg_file(&a_cg, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cg_file(&a_cg, "cpu", "cpu.shares"), "256");
        assert_eq!(
            cg_file(&pod_cg, "memory", "memory.limit_in_bytes"),
            (96u64 << 20).to_string()
        );
        assert_eq!(cg_file(&pod_cg, "cpu", "cpu.cfs_quota_us"), "150000");
    }
    e.ok(&["pod", "rm", "-f", &pod]);
    for d in cgroup_dirs_of(&pod_cg) {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn an_allocation_over_the_memory_limit_ends_as_oom_killed() {
    let e = PodEnv::new("oom");
    let pod = e.run(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: {}
    command: [sh, -c, "echo start; exec dd if=/dev/zero of=/dev/null bs=200M count=1"]
    resources: {{limits: {{memory: 32Mi}}}}
"#,
        e.image("base")
    ));
    let c = e.wait(&pod, "hog", "Exited");
    assert_eq!(c["status"]["reason"], "OOMKilled", "{c}");
    assert_eq!(c["status"]["exit_code"], 137);
    let logs = e.ok(&["pod", "logs", &pod]);
    assert!(
        logs.contains("start") && !logs.contains("survived"),
        "{logs}"
    );
}

#[test]
fn security_context_as_the_kernel_sees_it() {
    let e = PodEnv::new("sec");
    let img = e.image("base");
    let pod = e.run(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: sec}}
spec:
  containers:
  - name: user
    image: {img}
    command: [sleep, "1000"]
    securityContext: {{runAsUser: 1000, runAsGroup: 1000, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL], add: [NET_ADMIN]}}}}
  - name: priv
    image: {img}
    command: [sleep, "1000"]
    securityContext: {{privileged: true}}
  - name: plain
    image: {img}
    command: [sleep, "1000"]
"#
    ));
    let u = e.pid(&pod, "user");
    assert_eq!(
        status_field(u, "Uid").split_whitespace().next(),
        Some("1000")
    );
    assert_eq!(
        status_field(u, "Gid").split_whitespace().next(),
        Some("1000")
    );
    assert_eq!(status_field(u, "NoNewPrivs"), "1");
    // CAP_NET_ADMIN is bit 12, nothing else
    assert_eq!(
        u64::from_str_radix(&status_field(u, "CapBnd"), 16).unwrap(),
        1 << 12
    );
    let err = e.berth(&["pod", "exec", "-c", "user", &pod, "--", "touch", "/newfile"]);
    assert!(!err.status.success(), "a read-only root was written");
    let p = e.pid(&pod, "priv");
    // every capability berth itself has
    let all = u64::from_str_radix(&status_field(std::process::id() as i32, "CapBnd"), 16).unwrap();
    assert_eq!(
        u64::from_str_radix(&status_field(p, "CapEff"), 16).unwrap(),
        all
    );
    assert_eq!(status_field(p, "Seccomp"), "0");
    let plain = e.pid(&pod, "plain");
    // Kubernetes' default capability set (14 capabilities), and the default seccomp filter
    assert_eq!(
        u64::from_str_radix(&status_field(plain, "CapEff"), 16)
            .unwrap()
            .count_ones(),
        14
    );
    assert_eq!(status_field(plain, "Seccomp"), "2");
}

#[test]
fn volumes_empty_dir_memory_host_path_read_only_and_sub_path() {
    let e = PodEnv::new("vol");
    let host = e.dir.join("hostdata");
    fs::create_dir_all(host.join("sub")).unwrap();
    fs::write(host.join("sub/hello"), "from the host").unwrap();
    let pod = e.run(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: vol}}
spec:
  volumes:
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
  - {{name: disk, emptyDir: {{}}}}
  - {{name: host, hostPath: {{path: {}, type: Directory}}}}
  containers:
  - name: a
    image: {img}
    command: [sleep, "1000"]
    volumeMounts: [{{name: mem, mountPath: /mem}}, {{name: disk, mountPath: /disk}}, {{name: host, mountPath: /host, readOnly: true, subPath: sub}}]
  - name: b
    image: {img}
    command: [sleep, "1000"]
    volumeMounts: [{{name: disk, mountPath: /shared}}]
"#,
        host.display(),
        img = e.image("base")
    ));
    let a = e.pid(&pod, "a");
    let mi = fs::read_to_string(format!("/proc/{a}/mountinfo")).unwrap();
    let mem = mi
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/mem"))
        .expect("/mem mounted");
    assert!(
        mem.contains(" - tmpfs ") && mem.contains("size=8192k"),
        "{mem}"
    );
    let hostline = mi
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/host"))
        .expect("/host mounted");
    assert!(
        hostline
            .split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{hostline}"
    );
    assert_eq!(
        e.ok(&["pod", "exec", "-c", "a", &pod, "--", "cat", "/host/hello"]),
        "from the host"
    );
    assert!(
        !e.berth(&["pod", "exec", "-c", "a", &pod, "--", "touch", "/host/x"])
            .status
            .success(),
        "a readOnly volume was written"
    );
    e.ok(&[
        "pod",
        "exec",
        "-c",
        "a",
        &pod,
        "--",
        "sh",
        "-c",
        "echo between > /disk/f",
    ]);
    assert_eq!(
        e.ok(&["pod", "exec", "-c", "b", &pod, "--", "cat", "/shared/f"])
            .trim(),
        "between"
    );
    e.ok(&["pod", "rm", "-f", &pod]);
    assert_eq!(
        fs::read_to_string(host.join("sub/hello")).unwrap(),
        "from the host",
        "hostPath content was removed"
    );
    assert_eq!(super::harness::mounts_under(&e.root), Vec::<String>::new());
}
