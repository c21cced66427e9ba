//! The plan's rules, one `assert_eq!` each.

use super::*;
use crate::linux::cgroup::Hierarchy;

fn v1() -> Layout {
    Layout::V1(vec![
        Hierarchy {
            controllers: vec!["memory".into()],
            mountpoint: "/sys/fs/cgroup/memory".into(),
            own: "/".into(),
        },
        Hierarchy {
            controllers: vec!["pids".into()],
            mountpoint: "/sys/fs/cgroup/pids".into(),
            own: "/".into(),
        },
    ])
}

fn v2() -> Layout {
    Layout::V2 {
        mountpoint: "/sys/fs/cgroup".into(),
        own: "/".into(),
    }
}

const BASE: &str = r#"{
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs", "readonly": true},
    "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 1, "gid": 2, "additionalGids": [3]},
                "env": ["PATH=/bin"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]},
    "hostname": "h",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        {"destination": "/data", "type": "bind", "source": "data", "options": ["ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
    ],
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "cgroup"},
                       {"type": "network", "path": "/var/run/netns/x"}],
        "cgroupsPath": "/pods/c1",
        "resources": {"memory": {"limit": 1048576}}
    }
}"#;

fn plan(json: &str, layout: &Layout) -> R<Plan> {
    let spec = super::super::spec::parse(json)?;
    build(
        &spec,
        &Input {
            id: "c1",
            bundle: Path::new("/b"),
            layout,
            no_pivot: false,
        },
    )
}

#[test]
fn namespaces_created_and_joined() {
    let p = plan(BASE, &v1()).unwrap();
    assert_eq!(
        p.namespaces.clone_flags,
        CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS
    );
    assert!(
        p.namespaces.unshare_cgroup,
        "v1: cgroupns after the cgroup join"
    );
    assert_eq!(
        p.namespaces.join,
        vec![(CloneFlags::CLONE_NEWNET, PathBuf::from("/var/run/netns/x"))]
    );
    let p = plan(BASE, &v2()).unwrap();
    assert!(
        p.namespaces
            .clone_flags
            .contains(CloneFlags::CLONE_NEWCGROUP)
    );
    assert!(!p.namespaces.unshare_cgroup);
}

#[test]
fn rootfs_mounts_devices_process() {
    let p = plan(BASE, &v1()).unwrap();
    assert_eq!(p.rootfs, PathBuf::from("/b/rootfs"));
    assert!(p.readonly_root);
    assert_eq!(p.mounts[2].kind, Kind::Bind);
    assert_eq!(p.mounts[2].source, Some(PathBuf::from("/b/data")));
    assert_eq!(p.mounts[2].options.flags, MsFlags::MS_RDONLY);
    assert_eq!(p.devices.len(), 6);
    assert!(p.dev_symlinks);
    assert_eq!((p.process.uid, p.process.gid), (1, 2));
    assert_eq!(p.process.additional_gids, vec![3]);
    assert_eq!(p.process.rlimits[0].hard, 20);
    assert_eq!(p.hostname.as_deref(), Some("h"));
    assert_eq!(
        p.cgroup.dirs.v1_dir("memory"),
        Some(Path::new("/sys/fs/cgroup/memory/pods/c1"))
    );
    assert_eq!(p.cgroup.writes[0].file, "memory.limit_in_bytes");
    let Some(CgroupMount::V1 {
        hierarchies,
        namespaced,
    }) = &p.cgroup_mount
    else {
        panic!()
    };
    assert!(namespaced);
    assert_eq!(hierarchies.len(), 2);
}

#[test]
fn default_cgroup_path_is_relative_to_own_cgroup() {
    let json = BASE.replace(r#""cgroupsPath": "/pods/c1","#, "");
    let p = plan(&json, &v2()).unwrap();
    assert_eq!(p.cgroup.dirs, Dirs::V2("/sys/fs/cgroup/c1".into()));
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (BASE.replace(r#"{"type": "uts"}, "#, ""), "hostname"),
        (
            BASE.replace(r#"{"type": "mount"}, "#, "").replace(
                r#""cgroupsPath""#,
                r#""maskedPaths": ["/proc/kcore"], "cgroupsPath""#,
            ),
            "linux.maskedPaths",
        ),
        (
            BASE.replace(r#"{"type": "pid"}"#, r#"{"type": "user"}"#),
            "linux.namespaces",
        ),
        (
            BASE.replace(r#"{"type": "uts"}"#, r#"{"type": "pid"}"#),
            "linux.namespaces[2].type",
        ),
        (
            BASE.replace(r#""args": ["sh"]"#, r#""args": []"#),
            "process.args",
        ),
        (
            BASE.replace(r#""cwd": "/""#, r#""cwd": "rel""#),
            "process.cwd",
        ),
        (
            BASE.replace(r#""type": "bind", "source": "data""#, r#""type": "bind""#),
            "mounts[2].source",
        ),
        (BASE.replace(r#""type": "proc", "#, ""), "mounts[0].type"),
        (BASE.replace("1.0.2", "2.0.0"), "ociVersion"),
        (
            BASE.replace("/pods/c1", "/pods/../../x"),
            "linux.cgroupsPath",
        ),
        (
            BASE.replace(r#""limit": 1048576"#, r#""limit": -2"#),
            "linux.resources.memory.limit",
        ),
        (
            BASE.replace(r#""soft": 10"#, r#""soft": 30"#),
            "process.rlimits[0]",
        ),
        (
            BASE.replace(r#""options": ["ro"]"#, r#""options": ["idmap"]"#),
            "mounts[2].options",
        ),
    ];
    for (json, field) in cases {
        let e = plan(&json, &v1()).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn without_a_mount_namespace_nothing_is_mounted() {
    let p = plan(&BASE.replace(r#"{"type": "mount"}, "#, ""), &v1()).unwrap();
    assert!(!p.own_mounts);
    assert!(p.mounts.is_empty() && p.devices.is_empty() && !p.dev_symlinks);
}

#[test]
fn relative_masked_paths_are_taken_from_the_root_with_a_warning() {
    let json = BASE.replace(
        r#""cgroupsPath""#,
        r#""maskedPaths": ["proc/kcore", "/proc/keys"], "readonlyPaths": ["proc/sys"], "cgroupsPath""#,
    );
    let p = plan(&json, &v1()).unwrap();
    assert_eq!(
        p.masked_paths,
        vec![PathBuf::from("/proc/kcore"), "/proc/keys".into()]
    );
    assert_eq!(p.readonly_paths, vec![PathBuf::from("/proc/sys")]);
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(
        p.warnings[0].starts_with("linux.maskedPaths[0]"),
        "{:?}",
        p.warnings
    );
}

#[test]
fn user_and_time_namespaces() {
    let own = r#""namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "user"}, {"type": "time"}],"#;
    let json = BASE.replace(
        r#""namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "cgroup"},
                       {"type": "network", "path": "/var/run/netns/x"}],"#,
        own,
    );
    assert_eq!(plan(&json, &v1()).unwrap_err().field, "linux.uidMappings");
    let json = json.replace(
        own,
        &format!(
            r#"{own} "uidMappings": [{{"containerID": 0, "hostID": 100000, "size": 65536}}],
             "gidMappings": [{{"containerID": 0, "hostID": 200000, "size": 10}}],
             "timeOffsets": {{"monotonic": {{"secs": 86400, "nanosecs": 5}}}},"#
        ),
    );
    let p = plan(&json, &v1()).unwrap();
    assert!(p.namespaces.clone_flags.contains(CloneFlags::CLONE_NEWUSER));
    assert!(p.namespaces.new_time && p.namespaces.user && p.bind_devices);
    let maps = p.id_maps.unwrap();
    assert_eq!(maps.uid, vec![(0, 100000, 65536)]);
    assert_eq!(maps.gid, vec![(0, 200000, 10)]);
    assert_eq!(p.time_offsets, vec![("monotonic".to_string(), 86400, 5)]);
    let bad = json.replace("monotonic", "realtime");
    assert_eq!(
        plan(&bad, &v1()).unwrap_err().field,
        "linux.timeOffsets.realtime"
    );
}

#[test]
fn sysctls_must_be_namespaced() {
    let with = |k: &str| {
        BASE.replace(
            r#""cgroupsPath""#,
            &format!(r#""sysctl": {{"{k}": "1"}}, "cgroupsPath""#),
        )
    };
    let p = plan(&with("net.ipv4.ip_forward"), &v1()).unwrap();
    assert_eq!(
        p.sysctls,
        vec![(PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1".into())]
    );
    assert_eq!(
        plan(&with("vm.swappiness"), &v1()).unwrap_err().field,
        "linux.sysctl.vm.swappiness"
    );
    assert_eq!(
        plan(&with("kernel.shmmax"), &v1()).unwrap_err().field,
        "linux.sysctl.kernel.shmmax"
    );
}

#[test]
fn rootfs_propagation() {
    let p = plan(
        &BASE.replace(
            r#""cgroupsPath""#,
            r#""rootfsPropagation": "rshared", "cgroupsPath""#,
        ),
        &v1(),
    )
    .unwrap();
    // never a slave first: that would cut the container's mounts off from the host's
    assert_eq!(p.root_propagation, MsFlags::MS_SHARED | MsFlags::MS_REC);
    assert_eq!(
        p.final_propagation,
        Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
    );
    let p = plan(
        &BASE.replace(
            r#""cgroupsPath""#,
            r#""rootfsPropagation": "rslave", "cgroupsPath""#,
        ),
        &v1(),
    )
    .unwrap();
    assert_eq!(p.root_propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
    assert_eq!(p.final_propagation, None);
}
