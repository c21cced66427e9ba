//! Failures answer with the gRPC codes kubelet expects, name the object, and leave nothing;
//! concurrent requests are served in parallel and names stay unique.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use tonic::Code;

use super::daemon::{Daemon, block_on, container, pod_with, pull, remove_pod, sandbox, status};

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, want: Code, mention: &str) {
    let e = r.expect_err("the call succeeded");
    assert_eq!(e.code(), want, "{e}");
    assert!(
        e.message().contains(mention),
        "{e} does not mention {mention:?}"
    );
}

#[test]
fn unknown_ids_bad_configs_and_wrong_states() {
    let d = Daemon::start("cri-fail");
    let image = d.env.image("base");
    block_on(async {
        let mut rt = d.rt().await;
        let ghost = "0123456789abcdef0123456789abcdef".to_string();
        code(
            rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: ghost.clone(),
                verbose: false,
            })
            .await,
            Code::NotFound,
            &ghost,
        );
        code(
            rt.container_status(cri::ContainerStatusRequest {
                container_id: ghost.clone(),
                verbose: false,
            })
            .await,
            Code::NotFound,
            &ghost,
        );
        code(
            rt.start_container(cri::StartContainerRequest {
                container_id: ghost.clone(),
            })
            .await,
            Code::NotFound,
            &ghost,
        );
        code(
            rt.stop_container(cri::StopContainerRequest {
                container_id: ghost.clone(),
                timeout: 1,
            })
            .await,
            Code::NotFound,
            &ghost,
        );
        code(
            rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: ghost.clone(),
            })
            .await,
            Code::NotFound,
            &ghost,
        );
        // removal of what is not there is done already
        rt.remove_container(cri::RemoveContainerRequest {
            container_id: ghost.clone(),
        })
        .await
        .unwrap();
        remove_pod(&d, &ghost).await;
        code(
            rt.exec_sync(cri::ExecSyncRequest {
                container_id: ghost.clone(),
                cmd: vec!["true".into()],
                timeout: 1,
            })
            .await,
            Code::NotFound,
            &ghost,
        );
        code(
            rt.container_stats(cri::ContainerStatsRequest {
                container_id: ghost.clone(),
            })
            .await,
            Code::NotFound,
            &ghost,
        );
        // bad configs: named fields, nothing made
        code(
            rt.run_pod_sandbox(cri::RunPodSandboxRequest::default())
                .await,
            Code::InvalidArgument,
            "config",
        );
        let mut no_name = sandbox("x");
        no_name.metadata.as_mut().unwrap().name.clear();
        code(
            rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(no_name),
                runtime_handler: String::new(),
            })
            .await,
            Code::InvalidArgument,
            "metadata.name",
        );
        let mut bad_port = sandbox("x");
        bad_port.port_mappings = vec![cri::PortMapping {
            container_port: 70000,
            ..Default::default()
        }];
        code(
            rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(bad_port),
                runtime_handler: String::new(),
            })
            .await,
            Code::InvalidArgument,
            "port_mappings[0].container_port",
        );
        code(
            rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(sandbox("x")),
                runtime_handler: "kata".into(),
            })
            .await,
            Code::InvalidArgument,
            "runtime_handler",
        );
        let mut bad_sysctl = sandbox("x");
        bad_sysctl.linux = Some(cri::LinuxPodSandboxConfig {
            sysctls: [("kernel.panic".to_string(), "1".to_string())].into(),
            ..Default::default()
        });
        code(
            rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(bad_sysctl),
                runtime_handler: String::new(),
            })
            .await,
            Code::InvalidArgument,
            "kernel.panic",
        );
        assert!(
            rt.list_pod_sandbox(cri::ListPodSandboxRequest::default())
                .await
                .unwrap()
                .into_inner()
                .items
                .is_empty(),
            "a refused sandbox was left"
        );
        assert_eq!(d.env.bridge_ports(), 0);

        // a real pod for the container cases
        let image_ref = pull(&d, &image).await;
        let cfg = sandbox("p");
        let (pod, id) = pod_with(
            &d,
            "p",
            cfg.clone(),
            container("c", &image_ref, &["sleep", "100"]),
        )
        .await;
        code(
            rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(cfg.clone()),
                runtime_handler: String::new(),
            })
            .await,
            Code::AlreadyExists,
            "test/p",
        );
        let create = |c: cri::ContainerConfig| cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(c),
            sandbox_config: Some(cfg.clone()),
        };
        code(
            rt.create_container(create(container("c", &image_ref, &["true"])))
                .await,
            Code::AlreadyExists,
            "container c",
        );
        code(
            rt.create_container(create(container("d", "nosuch/image:1", &["true"])))
                .await,
            Code::NotFound,
            "nosuch/image",
        );
        let mut cdi = container("t", &image_ref, &["sh"]);
        cdi.cdi_devices = vec![cri::CdiDevice {
            name: "vendor.com/gpu=0".into(),
        }];
        code(
            rt.create_container(create(cdi)).await,
            Code::InvalidArgument,
            "config.cdi_devices",
        );
        let mut bad_mount = container("m", &image_ref, &["true"]);
        bad_mount.mounts = vec![cri::Mount {
            container_path: "relative".into(),
            host_path: "/tmp".into(),
            ..Default::default()
        }];
        code(
            rt.create_container(create(bad_mount)).await,
            Code::InvalidArgument,
            "config.mounts[0]",
        );
        let mut bad_cap = container("k", &image_ref, &["true"]);
        bad_cap.linux = Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities: Some(cri::Capability {
                    add_capabilities: vec!["CAP_FLY".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        code(
            rt.create_container(create(bad_cap)).await,
            Code::InvalidArgument,
            "CAP_FLY",
        );
        // a new attempt of the same name is another container (kubelet restarts so)
        let mut again = container("c", &image_ref, &["true"]);
        again.metadata.as_mut().unwrap().attempt = 1;
        again.log_path = "c/1.log".into();
        let second = rt
            .create_container(create(again))
            .await
            .unwrap()
            .into_inner()
            .container_id;
        assert_ne!(second, id);
        // wrong states
        code(
            rt.start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await,
            Code::FailedPrecondition,
            &id,
        );
        code(
            rt.exec_sync(cri::ExecSyncRequest {
                container_id: second.clone(),
                cmd: vec!["true".into()],
                timeout: 1,
            })
            .await,
            Code::FailedPrecondition,
            "not running",
        );
        code(
            rt.exec_sync(cri::ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec!["sleep".into(), "30".into()],
                timeout: 1,
            })
            .await,
            Code::DeadlineExceeded,
            "",
        );
        // only the two containers and their pod exist
        let all = rt
            .list_containers(cri::ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(
            status(&d, &second).await.state,
            cri::ContainerState::ContainerCreated as i32
        );
        // a running container is removed forcibly
        rt.remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        remove_pod(&d, &pod).await;
        assert!(!d.env.pod_dir(&pod).exists());
    });
}

#[test]
fn parallel_requests_and_unique_names() {
    let d = Daemon::start("cri-par");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        // eight pods at once, each with a container: all run, each with its own IP
        let t = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let ch = d.channel().await;
            let image_ref = image_ref.clone();
            tasks.push(tokio::spawn(async move {
                let mut rt = k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(ch);
                let cfg = sandbox(&format!("par{i}"));
                let pod = rt
                    .run_pod_sandbox(cri::RunPodSandboxRequest {
                        config: Some(cfg.clone()),
                        runtime_handler: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .pod_sandbox_id;
                let c = rt
                    .create_container(cri::CreateContainerRequest {
                        pod_sandbox_id: pod.clone(),
                        config: Some(container("c", &image_ref, &["sleep", "100"])),
                        sandbox_config: Some(cfg),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .container_id;
                rt.start_container(cri::StartContainerRequest { container_id: c })
                    .await
                    .unwrap();
                pod
            }));
        }
        let mut pods = Vec::new();
        for t in tasks {
            pods.push(t.await.unwrap());
        }
        eprintln!("8 pods in parallel: {:?}", t.elapsed());
        let mut rt = d.rt().await;
        let mut ips = std::collections::BTreeSet::new();
        for p in &pods {
            let st = rt
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: p.clone(),
                    verbose: false,
                })
                .await
                .unwrap()
                .into_inner();
            ips.insert(st.status.unwrap().network.unwrap().ip);
            assert_eq!(
                st.containers_statuses[0].state,
                cri::ContainerState::ContainerRunning as i32
            );
        }
        assert_eq!(ips.len(), 8, "{ips:?}");
        // one name, four racing creators: exactly one wins
        let mut racers = Vec::new();
        for _ in 0..4 {
            let ch = d.channel().await;
            racers.push(tokio::spawn(async move {
                let mut rt = k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(ch);
                rt.run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(sandbox("same")),
                    runtime_handler: String::new(),
                })
                .await
                .map(|r| r.into_inner().pod_sandbox_id)
            }));
        }
        let mut won = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(_) => won += 1,
                Err(e) => assert_eq!(e.code(), Code::AlreadyExists, "{e}"),
            }
        }
        assert_eq!(won, 1);
        // a slow stop does not hold up other requests
        let ch = d.channel().await;
        let first = pods[0].clone();
        let c0 = rt
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    pod_sandbox_id: first,
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .containers[0]
            .id
            .clone();
        let exec = tokio::spawn(async move {
            let mut rt = k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(ch);
            // `sleep` as its PID namespace's init ignores SIGTERM: the stop takes its whole
            // grace period, then SIGKILL
            let t = Instant::now();
            rt.stop_container(cri::StopContainerRequest {
                container_id: c0,
                timeout: 2,
            })
            .await
            .unwrap();
            t.elapsed()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        rt.version(cri::VersionRequest::default()).await.unwrap();
        rt.list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
            .unwrap();
        let quick = t.elapsed();
        let stop_took = exec.await.unwrap();
        assert!(
            quick < Duration::from_secs(1),
            "requests waited for a stop: {quick:?}"
        );
        assert!(
            stop_took >= Duration::from_millis(1500),
            "the grace period was cut: {stop_took:?}"
        );
    });
}
