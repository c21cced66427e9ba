//! Mount propagation and the process's user and groups as containerd sets them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_cri::v1 as cri;

use super::daemon::{Daemon, add_container, block_on, container, pid, pull, remove_pod, sandbox};

/// tmpfs mounts of the test's own on the host, unmounted (with whatever propagated into
/// them) on drop.
struct HostMounts(Vec<PathBuf>);

impl HostMounts {
    /// A tmpfs at `dir` with the propagation `how` (`shared`, `private`, `slave`).
    fn tmpfs(&mut self, dir: &Path, how: &str) {
        let run = |args: &[&str]| {
            let st = Command::new("mount").args(args).status().unwrap();
            assert!(st.success(), "mount {args:?}");
        };
        let d = dir.to_str().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        if how == "slave" {
            // a slave of a shared master: the master's bind, then cut the way back
            let master = format!("{d}.master");
            self.tmpfs(Path::new(&master), "shared");
            run(&["--bind", &master, d]);
            self.0.push(dir.to_path_buf());
            run(&["--make-slave", d]);
            return;
        }
        run(&["-t", "tmpfs", "t", d]);
        self.0.push(dir.to_path_buf());
        run(&[&format!("--make-{how}"), d]);
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-R").arg(d).status();
        }
    }
}

fn mounted_on_host(p: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
}

fn mount_of(host: &Path, path: &str, propagation: cri::MountPropagation) -> cri::Mount {
    cri::Mount {
        container_path: path.into(),
        host_path: host.display().to_string(),
        propagation: propagation as i32,
        ..Default::default()
    }
}

fn privileged() -> Option<cri::LinuxContainerConfig> {
    Some(cri::LinuxContainerConfig {
        resources: None,
        security_context: Some(cri::LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        }),
    })
}

async fn sh(d: &Daemon, id: &str, script: &str) -> String {
    let r = d
        .rt()
        .await
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.exit_code,
        0,
        "{script}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[test]
fn bidirectional_and_host_to_container_propagation() {
    let d = Daemon::start("cri-propagation");
    let image = d.env.image("base");
    let mut host = HostMounts(Vec::new());
    let shared = d.env.dir.join("shared");
    let private = d.env.dir.join("private");
    let slave = d.env.dir.join("slave");
    host.tmpfs(&shared, "shared");
    host.tmpfs(&private, "private");
    host.tmpfs(&slave, "slave");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let cfg = sandbox("prop");
        let mut rt = d.rt().await;
        let pod = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(cfg.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id;
        use cri::MountPropagation::{
            PropagationBidirectional as Bi, PropagationHostToContainer as H2C,
        };
        let mut bi = container("bi", &image_ref, &["sleep", "1000"]);
        bi.mounts = vec![mount_of(&shared, "/mnt/vol", Bi)];
        bi.linux = privileged();
        let bi = add_container(&mut rt, &pod, &cfg, bi).await;
        let mut h2c = container("h2c", &image_ref, &["sleep", "1000"]);
        h2c.mounts = vec![mount_of(&slave, "/mnt/vol", H2C)];
        let h2c = add_container(&mut rt, &pod, &cfg, h2c).await;
        // the Bidirectional container's root is rshared; each volume has its propagation
        let line = |p: i32, at: &str| {
            std::fs::read_to_string(format!("/proc/{p}/mountinfo"))
                .unwrap()
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(at))
                .unwrap_or_else(|| panic!("{at} is not a mount point of {p}"))
                .to_string()
        };
        let (pbi, ph2c) = (pid(&d, &bi).await, pid(&d, &h2c).await);
        assert!(line(pbi, "/").contains(" shared:"), "{}", line(pbi, "/"));
        assert!(
            line(pbi, "/mnt/vol").contains(" shared:"),
            "{}",
            line(pbi, "/mnt/vol")
        );
        assert!(
            line(ph2c, "/mnt/vol").contains(" master:"),
            "{}",
            line(ph2c, "/mnt/vol")
        );
        // container -> host
        sh(
            &d,
            &bi,
            "mkdir -p /mnt/vol/inner && mount -t tmpfs inside /mnt/vol/inner",
        )
        .await;
        let inner = shared.join("inner");
        let t = std::time::Instant::now();
        while !mounted_on_host(&inner) && t.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            mounted_on_host(&inner),
            "a mount made in a Bidirectional volume did not reach the host"
        );
        // host -> container, for both (the slave's mounts come from its master)
        let master = d.env.dir.join("slave.master");
        for (dir, id) in [(&shared, &bi), (&master, &h2c)] {
            let from = dir.join("fromhost");
            std::fs::create_dir_all(&from).unwrap();
            assert!(
                Command::new("mount")
                    .args(["-t", "tmpfs", "fromhost"])
                    .arg(&from)
                    .status()
                    .unwrap()
                    .success()
            );
            let seen = sh(
                &d,
                id,
                "grep -c ' /mnt/vol/fromhost ' /proc/self/mountinfo || true",
            )
            .await;
            assert_eq!(
                seen.trim(),
                "1",
                "{id}: the host's mount is not seen inside"
            );
        }
        // refusals: Bidirectional needs a shared source, HostToContainer a shared or slave one
        for (prop, name, want) in [
            (Bi, "bad-bi", "shared mount"),
            (H2C, "bad-h2c", "shared or slave mount"),
        ] {
            let mut c = container(name, &image_ref, &["sleep", "1000"]);
            c.mounts = vec![mount_of(&private, "/mnt/vol", prop)];
            c.linux = privileged();
            let e = rt
                .create_container(cri::CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(c),
                    sandbox_config: Some(cfg.clone()),
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
            assert!(
                e.message().contains(private.to_str().unwrap()) && e.message().contains(want),
                "{e}"
            );
        }
        let n = rt
            .list_containers(cri::ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers
            .len();
        assert_eq!(n, 2, "a refused container was left");
        remove_pod(&d, &pod).await;
    });
    drop(host);
    assert!(!mounted_on_host(&shared.join("inner")));
}

/// Gid and Groups of a process, as `/proc/<pid>/status` has them.
fn ids(p: i32) -> (String, String, String) {
    let st = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap();
    let field = |k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

#[test]
fn users_and_groups_come_from_the_image() {
    let d = Daemon::start("cri-users");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let cfg = sandbox("users");
        let mut rt = d.rt().await;
        let pod = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(cfg.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id;
        let with = |name: &str, f: &dyn Fn(&mut cri::LinuxContainerSecurityContext)| {
            let mut c = container(name, &image_ref, &["sleep", "1000"]);
            let mut s = cri::LinuxContainerSecurityContext::default();
            f(&mut s);
            c.linux = Some(cri::LinuxContainerConfig {
                resources: None,
                security_context: Some(s),
            });
            c
        };
        // run_as_user without run_as_group: the gid of the image's /etc/passwd entry, the
        // groups of its /etc/group (the fixture's user is in "extra", 1234), the supplemental
        let a = with("a", &|s| {
            s.run_as_user = Some(cri::Int64Value { value: 1000 });
            s.supplemental_groups = vec![50000];
        });
        let a = add_container(&mut rt, &pod, &cfg, a).await;
        assert_eq!(
            ids(pid(&d, &a).await),
            (
                "1000 1000 1000 1000".into(),
                "1000 1000 1000 1000".into(),
                "1000 1234 50000".into()
            )
        );
        // run_as_username, resolved in the image
        let b = with("b", &|s| s.run_as_username = "user".into());
        let b = add_container(&mut rt, &pod, &cfg, b).await;
        assert_eq!(
            ids(pid(&d, &b).await),
            (
                "1000 1000 1000 1000".into(),
                "1000 1000 1000 1000".into(),
                "1000 1234".into()
            )
        );
        // a uid the image does not know: gid 0
        let c = with("c", &|s| {
            s.run_as_user = Some(cri::Int64Value { value: 4242 })
        });
        let c = add_container(&mut rt, &pod, &cfg, c).await;
        assert_eq!(ids(pid(&d, &c).await).1, "0 0 0 0");
        // refusals
        for (name, f, field) in [
            (
                "g",
                &(|s: &mut cri::LinuxContainerSecurityContext| {
                    s.run_as_group = Some(cri::Int64Value { value: 5 })
                }) as &dyn Fn(&mut cri::LinuxContainerSecurityContext),
                "run_as_group",
            ),
            ("u", &|s| s.run_as_username = "ghost".into(), "ghost"),
        ] {
            let e = rt
                .create_container(cri::CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(with(name, f)),
                    sandbox_config: Some(cfg.clone()),
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
            assert!(e.message().contains(field), "{e}");
        }
        remove_pod(&d, &pod).await;
    });
}
