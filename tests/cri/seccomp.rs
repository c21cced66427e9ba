//! Which seccomp filter a container gets, as containerd chooses it: none when none is asked
//! (the config's `default_seccomp`), berth's default profile for RuntimeDefault, and that
//! profile keyed on the container's capabilities.

use k8s_cri::v1 as cri;

use super::daemon::{Daemon, add_container, block_on, container, pid, pull, remove_pod, sandbox};

fn seccomp_mode(p: i32) -> String {
    std::fs::read_to_string(format!("/proc/{p}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .unwrap()
        .trim()
        .to_string()
}

fn security(
    f: impl FnOnce(&mut cri::LinuxContainerSecurityContext),
) -> Option<cri::LinuxContainerConfig> {
    let mut s = cri::LinuxContainerSecurityContext::default();
    f(&mut s);
    Some(cri::LinuxContainerConfig {
        resources: None,
        security_context: Some(s),
    })
}

fn runtime_default() -> Option<cri::SecurityProfile> {
    Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    })
}

/// Run containers of these configs in one pod; returns (pod, their init pids, their ids).
async fn run_all(
    d: &Daemon,
    name: &str,
    ctrs: Vec<cri::ContainerConfig>,
) -> (String, Vec<i32>, Vec<String>) {
    let cfg = sandbox(name);
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
    let mut pids = Vec::new();
    let mut ids = Vec::new();
    for c in ctrs {
        let id = add_container(&mut rt, &pod, &cfg, c).await;
        pids.push(pid(d, &id).await);
        ids.push(id);
    }
    (pod, pids, ids)
}

#[test]
fn no_profile_asked_means_unconfined_and_runtime_default_means_berths_profile() {
    let d = Daemon::start("cri-seccomp");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let sleep = |n: &str| container(n, &image_ref, &["sleep", "1000"]);
        let none = sleep("none");
        let mut message = sleep("message");
        message.linux = security(|s| s.seccomp = runtime_default());
        let mut path = sleep("path");
        #[allow(deprecated)]
        {
            path.linux = security(|s| s.seccomp_profile_path = "runtime/default".into());
        }
        let mut docker = sleep("docker");
        #[allow(deprecated)]
        {
            docker.linux = security(|s| s.seccomp_profile_path = "docker/default".into());
        }
        let (pod, pids, _) = run_all(&d, "sc", vec![none, message, path, docker]).await;
        let modes: Vec<String> = pids.iter().map(|p| seccomp_mode(*p)).collect();
        assert_eq!(modes, ["0", "2", "2", "2"]);
        remove_pod(&d, &pod).await;
    });
    // the config's default_seccomp applies to what asks for nothing
    let d = Daemon::start_with("cri-seccomp-cfg", "default_seccomp = \"runtime/default\"");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let (pod, pids, _) = run_all(
            &d,
            "sc2",
            vec![container("none", &image_ref, &["sleep", "1000"])],
        )
        .await;
        assert_eq!(seccomp_mode(pids[0]), "2");
        remove_pod(&d, &pod).await;
    });
}

#[test]
fn the_default_profile_follows_the_capabilities() {
    let d = Daemon::start("cri-seccomp-caps");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let with_caps = |n: &str, caps: &[&str]| {
            let mut c = container(n, &image_ref, &["sleep", "1000"]);
            let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
            c.linux = security(|s| {
                s.seccomp = runtime_default();
                s.capabilities = Some(cri::Capability {
                    add_capabilities: caps,
                    ..Default::default()
                });
            });
            c
        };
        let (pod, pids, ids) = run_all(
            &d,
            "caps",
            vec![with_caps("plain", &[]), with_caps("admin", &["SYS_ADMIN"])],
        )
        .await;
        assert_eq!(seccomp_mode(pids[0]), "2");
        assert_eq!(seccomp_mode(pids[1]), "2");
        let run = |id: String, cmd: &str| {
            let d = &d;
            let cmd = cmd.to_string();
            async move {
                d.rt()
                    .await
                    .exec_sync(cri::ExecSyncRequest {
                        container_id: id,
                        cmd: vec!["sh".into(), "-c".into(), cmd],
                        timeout: 10,
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
        // without CAP_SYS_ADMIN: EPERM (from the filter and the capability check alike)
        let r = run(ids[0].clone(), "hostname x").await;
        assert_ne!(r.exit_code, 0);
        // with it, the profile lets sethostname and mount through
        let r = run(
            ids[1].clone(),
            "hostname renamed && hostname && mount -t tmpfs t /mnt && echo mounted",
        )
        .await;
        assert_eq!(
            (r.exit_code, String::from_utf8_lossy(&r.stdout).into_owned()),
            (0, "renamed\nmounted\n".to_string()),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        // two programs in the shared cache: one per capability set that changes the filter
        let cache = d.env.root.join("seccomp-cache");
        let n = std::fs::read_dir(&cache).map(|r| r.count()).unwrap_or(0);
        assert_eq!(n, 2, "{}", cache.display());
        remove_pod(&d, &pod).await;
    });
}
