//! Table tests of a pod container's spec: each case changes the container's config and says
//! what the spec must then hold.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::build;
use crate::pod::config::{
    ContainerConfig, Mount, MountSource, PodConfig, Seccomp, Volume, VolumeSource,
};
use crate::pod::store::{ContainerRecord, PodDir, PodRecord, PodState, VERSION};

/// A change to a container's config.
type Change = Box<dyn Fn(&mut ContainerConfig)>;

struct World {
    dir: PathBuf,
}

impl World {
    fn new(name: &str) -> World {
        let dir = std::env::temp_dir().join(format!("berth-spec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let etc = dir.join("bundle/rootfs/etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(dir.join("pod/volumes/data")).unwrap();
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("group"),
            "root:x:0:\nuser:x:1000:\nextra:x:1234:user\n",
        )
        .unwrap();
        World { dir }
    }

    fn spec(&self, pc: &PodConfig, cfg: &ContainerConfig) -> crate::pod::error::Result<Spec> {
        // as `image unpack` writes it: the default spec with the image's environment
        let mut v = crate::oci::default_spec::default_spec();
        v["process"]["env"] = serde_json::json!(["PATH=/bin", "HOSTNAME=image"]);
        let base: Spec = serde_json::from_value(v).unwrap();
        let pod = PodRecord {
            version: VERSION,
            id: "p1".into(),
            config: pc.clone(),
            created: String::new(),
            state: PodState::Ready,
            ips: vec![],
            cgroup: "/berth/pod-p1".into(),
            log_dir: self.dir.join("logs"),
            supervised: false,
            restart_backoff_ms: 0,
            cni: None,
        };
        let rec = ContainerRecord {
            version: VERSION,
            id: "c1".into(),
            pod_id: "p1".into(),
            config: cfg.clone(),
            image: "img".into(),
            image_id: "sha256:x".into(),
            created: String::new(),
            bundle: self.dir.join("bundle"),
            log_path: self.dir.join("logs/c/0.log"),
            cgroup: "/berth/pod-p1/c1".into(),
            stop_signal: "SIGTERM".into(),
        };
        let image: oci_spec::image::ImageConfiguration = serde_json::from_str(
            r#"{"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                "config": {"Entrypoint": ["/entry"], "Cmd": ["default"], "Env": ["PATH=/bin", "HOSTNAME=image"]}}"#,
        )
        .unwrap();
        build(
            base,
            &pod,
            &PodDir(self.dir.join("pod")),
            &rec,
            &image,
            None,
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn caps(s: &Spec) -> Vec<String> {
    let mut v: Vec<String> = s
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_containers_settings_become_its_spec() {
    let w = World::new("table");
    let pc = PodConfig {
        name: "web".into(),
        volumes: vec![Volume {
            name: "data".into(),
            source: VolumeSource::EmptyDir {
                memory: false,
                size_limit: None,
            },
        }],
        ..Default::default()
    };
    let base = ContainerConfig {
        name: "c".into(),
        ..Default::default()
    };
    type Check = fn(&Spec);
    let cases: Vec<(&str, Change, Check)> = vec![
        (
            "image command, pod hostname, defaults",
            Box::new(|_| {}),
            |s| {
                let p = s.process().as_ref().unwrap();
                assert_eq!(p.args().clone().unwrap(), ["/entry", "default"]);
                assert_eq!(p.env().clone().unwrap(), ["PATH=/bin", "HOSTNAME=web"]);
                assert_eq!(caps(s).len(), super::process::DEFAULT_CAPS.len());
                assert!(s.linux().as_ref().unwrap().seccomp().is_some());
                assert_eq!(s.hostname(), &None);
                let l = s.linux().as_ref().unwrap();
                let kinds: Vec<LinuxNamespaceType> = l
                    .namespaces()
                    .clone()
                    .unwrap()
                    .iter()
                    .map(|n| n.typ())
                    .collect();
                assert_eq!(
                    kinds,
                    [
                        LinuxNamespaceType::Mount,
                        LinuxNamespaceType::Cgroup,
                        LinuxNamespaceType::Pid
                    ]
                );
                assert_eq!(
                    l.cgroups_path().clone().unwrap(),
                    Path::new("/berth/pod-p1/c1")
                );
                assert_eq!(
                    s.annotations().as_ref().unwrap()["io.kubernetes.pod.name"],
                    "web"
                );
            },
        ),
        (
            "command and args replace entrypoint and cmd; env over the image's",
            Box::new(|c| {
                c.command = vec!["sh".into()];
                c.args = vec!["-c".into(), "x".into()];
                c.env = vec![("PATH".into(), "/usr/bin".into())];
            }),
            |s| {
                let p = s.process().as_ref().unwrap();
                assert_eq!(p.args().clone().unwrap(), ["sh", "-c", "x"]);
                assert_eq!(p.env().clone().unwrap(), ["HOSTNAME=web", "PATH=/usr/bin"]);
            },
        ),
        (
            "a user of the image: its gid and groups",
            Box::new(|c| {
                c.security.run_as_user = Some(1000);
                c.security.supplemental_groups = vec![50000];
            }),
            |s| {
                let u = s.process().as_ref().unwrap().user();
                assert_eq!((u.uid(), u.gid()), (1000, 1000));
                assert_eq!(u.additional_gids().clone().unwrap(), [1000, 1234, 50000]);
            },
        ),
        (
            "drop ALL, add one",
            Box::new(|c| {
                c.security.caps_drop = vec!["ALL".into()];
                c.security.caps_add = vec!["net_admin".into()];
            }),
            |s| assert_eq!(caps(s), ["CAP_NET_ADMIN"]),
        ),
        (
            "privileged: no filter, no masks, every device, /sys writable",
            Box::new(|c| c.security.privileged = true),
            |s| {
                let l = s.linux().as_ref().unwrap();
                assert!(
                    l.seccomp().is_none()
                        && l.masked_paths().is_none()
                        && l.readonly_paths().is_none()
                );
                let d = l.resources().as_ref().unwrap().devices().clone().unwrap();
                assert!(d.len() == 1 && d[0].allow() && d[0].access().as_deref() == Some("rwm"));
                let sys = s
                    .mounts()
                    .as_ref()
                    .unwrap()
                    .iter()
                    .find(|m| m.destination() == Path::new("/sys"))
                    .unwrap();
                assert!(!sys.options().clone().unwrap().contains(&"ro".to_string()));
                assert_eq!(
                    s.process().as_ref().unwrap().no_new_privileges(),
                    Some(false)
                );
            },
        ),
        (
            "unconfined",
            Box::new(|c| c.security.seccomp = Seccomp::Unconfined),
            |s| assert!(s.linux().as_ref().unwrap().seccomp().is_none()),
        ),
        (
            "a read-only volume, the pod's /dev/shm and /etc files",
            Box::new(|c| {
                c.mounts = vec![Mount {
                    container_path: "/data".into(),
                    source: MountSource::Volume {
                        name: "data".into(),
                        sub_path: None,
                    },
                    readonly: true,
                    propagation: "rprivate".into(),
                }];
            }),
            |s| {
                let ms = s.mounts().as_ref().unwrap();
                let data = ms
                    .iter()
                    .find(|m| m.destination() == Path::new("/data"))
                    .unwrap();
                assert!(
                    data.source()
                        .as_ref()
                        .unwrap()
                        .ends_with("pod/volumes/data")
                );
                assert_eq!(data.options().clone().unwrap(), ["rbind", "rprivate", "ro"]);
                assert_eq!(
                    ms.iter()
                        .filter(|m| m.destination() == Path::new("/dev/shm"))
                        .count(),
                    1
                );
                for f in ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"] {
                    assert!(ms.iter().any(|m| m.destination() == Path::new(f)), "{f}");
                }
            },
        ),
        (
            "limits",
            Box::new(|c| {
                c.resources.memory_limit = Some(64 << 20);
                c.resources.cpu_quota = Some(50_000);
            }),
            |s| {
                let r = s.linux().as_ref().unwrap().resources().clone().unwrap();
                assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
                assert_eq!(r.memory().as_ref().unwrap().swap(), Some(64 << 20));
                assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
                assert_eq!(r.cpu().as_ref().unwrap().period(), Some(100_000));
            },
        ),
    ];
    for (what, change, check) in cases {
        let mut c = base.clone();
        change(&mut c);
        let s = w.spec(&pc, &c).unwrap_or_else(|e| panic!("{what}: {e}"));
        check(&s);
    }
}

#[test]
fn bad_settings_are_refused_by_name() {
    let w = World::new("bad");
    let pc = PodConfig {
        name: "web".into(),
        ..Default::default()
    };
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|c| c.security.caps_add = vec!["NOPE".into()]),
            "unknown capability \"NOPE\"",
        ),
        (
            Box::new(|c| c.security.run_as_non_root = true),
            "runAsNonRoot",
        ),
        (
            Box::new(|c| c.security.run_as_username = Some("ghost".into())),
            "run_as_username \"ghost\"",
        ),
        (
            Box::new(|c| {
                c.mounts = vec![Mount {
                    container_path: "/x".into(),
                    source: MountSource::Volume {
                        name: "none".into(),
                        sub_path: None,
                    },
                    readonly: false,
                    propagation: "rprivate".into(),
                }]
            }),
            "no volume \"none\"",
        ),
    ];
    for (change, want) in cases {
        let mut c = ContainerConfig {
            name: "c".into(),
            ..Default::default()
        };
        change(&mut c);
        let e = w.spec(&pc, &c).unwrap_err();
        assert_eq!(e.kind(), crate::pod::ErrorKind::Invalid, "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }
}
