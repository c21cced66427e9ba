//! kill -9 the daemon: pods keep running, exits meanwhile are recorded, a restarted daemon
//! lists everything as before, and a creation cut off half way is rolled back.

use std::time::Duration;

use k8s_cri::v1 as cri;

use super::daemon::{
    Daemon, block_on, container, pid, pod_status, pod_with, pull, remove_pod, sandbox, status,
    wait_state,
};
use super::env::{exists, running};

#[test]
fn a_daemon_killed_and_started_again_sees_everything() {
    let mut d = Daemon::start("cri-restart");
    let image = d.env.image("base");
    let (pod, stays, exits, p) = block_on(async {
        let image_ref = pull(&d, &image).await;
        let cfg = sandbox("survivor");
        let (pod, stays) = pod_with(
            &d,
            "survivor",
            cfg.clone(),
            container("stays", &image_ref, &["sleep", "1000"]),
        )
        .await;
        let mut rt = d.rt().await;
        let exits = rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(container(
                    "exits",
                    &image_ref,
                    &["sh", "-c", "sleep 1; echo done; exit 3"],
                )),
                sandbox_config: Some(cfg),
            })
            .await
            .unwrap()
            .into_inner()
            .container_id;
        rt.start_container(cri::StartContainerRequest {
            container_id: exits.clone(),
        })
        .await
        .unwrap();
        let p = pid(&d, &stays).await;
        (pod, stays, exits, p)
    });
    d.kill9();
    // while no daemon runs, one container exits
    std::thread::sleep(Duration::from_millis(1800));
    assert!(running(p), "a container died with the daemon");
    d.restart();
    block_on(async {
        let mut rt = d.rt().await;
        let pods = rt
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].id, pod);
        assert_eq!(pods[0].state, cri::PodSandboxState::SandboxReady as i32);
        let s = status(&d, &stays).await;
        assert_eq!(s.state, cri::ContainerState::ContainerRunning as i32);
        assert_eq!(
            pid(&d, &stays).await,
            p,
            "the running container was restarted"
        );
        let s = wait_state(&d, &exits, cri::ContainerState::ContainerExited).await;
        assert_eq!(s.exit_code, 3, "{s:?}");
        assert_eq!(s.reason, "Error");
        let log = std::fs::read_to_string(&s.log_path).unwrap();
        assert!(log.contains(" stdout F done"), "{log}");
        remove_pod(&d, &pod).await;
        assert!(!running(p));
    });
}

#[test]
fn a_creation_cut_off_half_way_is_rolled_back_at_start() {
    let mut d = Daemon::start("cri-recover");
    d.kill9();
    // what a daemon killed inside RunPodSandbox leaves: a pod directory marked as being
    // created (nobody holds its lock), a pinned network namespace, a name reservation
    let dir = d.env.root.join("pods/0badc0ffee0badc0ffee0badc0ffee00");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("creating"), "").unwrap();
    std::fs::write(dir.join("net"), "").unwrap();
    let target = dir.join("net");
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
    })
    .join()
    .unwrap();
    assert!(!super::harness::mounts_under(&dir).is_empty());
    let names = d.env.root.join("names");
    std::fs::create_dir_all(&names).unwrap();
    std::fs::write(
        names.join("pod_test_half_uid_0"),
        "0badc0ffee0badc0ffee0badc0ffee00",
    )
    .unwrap();
    d.restart();
    assert!(!exists(&dir), "the half-made pod is still there");
    assert!(super::harness::mounts_under(&d.env.root).is_empty());
    assert!(!names.join("pod_test_half_uid_0").exists());
    assert!(d.log().contains("rolled back"), "{}", d.log());
    // and the name is free again
    block_on(async {
        let mut cfg = sandbox("half");
        cfg.metadata.as_mut().unwrap().uid = "uid".into();
        let id = d
            .rt()
            .await
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(cfg),
                runtime_handler: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id;
        remove_pod(&d, &id).await;
    });
}

#[test]
fn a_daemon_killed_inside_stop_pod_sandbox_reports_the_pod_not_ready() {
    let mut d = Daemon::start("cri-stopcut");
    let image = d.env.image("base");
    for point in ["pod-stop:before-del", "pod-stop:after-del"] {
        d.kill9();
        d.restart_with(&[("BERTH_FAULT", point)]);
        let pod = block_on(async {
            let image_ref = pull(&d, &image).await;
            let (pod, _) = pod_with(
                &d,
                "cut",
                sandbox("cut"),
                container("c", &image_ref, &["sleep", "1000"]),
            )
            .await;
            let r = d
                .rt()
                .await
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: pod.clone(),
                })
                .await;
            assert!(r.is_err(), "{point}: the daemon survived the stop");
            pod
        });
        d.kill9();
        d.restart();
        block_on(async {
            let s = pod_status(&d, &pod).await;
            assert_eq!(
                s.state,
                cri::PodSandboxState::SandboxNotready as i32,
                "{point}: {s:?}"
            );
            // kubelet stops it again and removes it
            d.rt()
                .await
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: pod.clone(),
                })
                .await
                .unwrap();
            remove_pod(&d, &pod).await;
        });
        assert_eq!(d.env.bridge_ports(), 0, "{point}: a veth is left");
        assert!(!exists(&d.env.pod_dir(&pod)), "{point}: the pod is left");
    }
}

#[test]
fn a_restarted_daemon_reports_a_pod_whose_network_is_gone_not_ready() {
    let mut d = Daemon::start("cri-netgone");
    let image = d.env.image("base");
    let pod = block_on(async {
        let image_ref = pull(&d, &image).await;
        pod_with(
            &d,
            "netgone",
            sandbox("netgone"),
            container("c", &image_ref, &["sleep", "1000"]),
        )
        .await
        .0
    });
    let net: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.env.pod_dir(&pod).join("network.json")).unwrap(),
    )
    .unwrap();
    let veth = net["result"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i.get("sandbox").is_none() && i["name"].as_str().unwrap().starts_with("veth"))
        .map(|i| i["name"].as_str().unwrap().to_string())
        .expect("no host veth in the CNI result");
    d.kill9();
    // while no daemon runs, the pod's interface goes (as a host's network reset does)
    let st = std::process::Command::new("ip")
        .args(["link", "delete", &veth])
        .status()
        .unwrap();
    assert!(st.success());
    d.restart();
    assert!(d.log().contains("NotReady"), "{}", d.log());
    block_on(async {
        let s = pod_status(&d, &pod).await;
        assert_eq!(
            s.state,
            cri::PodSandboxState::SandboxNotready as i32,
            "{s:?}"
        );
        d.rt()
            .await
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap();
        remove_pod(&d, &pod).await;
    });
    assert!(!exists(&d.env.pod_dir(&pod)));
}
