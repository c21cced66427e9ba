//! A pod through the CRI from RunPodSandbox to RemovePodSandbox, checking the kernel's view.

use std::time::Duration;

use k8s_cri::v1 as cri;

use super::daemon::{
    Daemon, add_container, block_on, container, namespaces, pid, pod_status, pod_with, pull,
    remove_pod, sandbox, status, wait_state,
};
use super::env::{exists, ns, running};

#[test]
fn version_status_and_runtime_config() {
    let d = Daemon::start_with("cri-version", "log_level = \"debug\"");
    block_on(async {
        let mut rt = d.rt().await;
        let v = rt
            .version(cri::VersionRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.runtime_name, "berth");
        assert_eq!(v.runtime_api_version, "v1");
        assert_eq!(v.runtime_version, env!("CARGO_PKG_VERSION"));
        let s = rt
            .status(cri::StatusRequest { verbose: true })
            .await
            .unwrap()
            .into_inner();
        let conds = s.status.unwrap().conditions;
        for t in ["RuntimeReady", "NetworkReady"] {
            let c = conds.iter().find(|c| c.r#type == t).unwrap();
            assert!(c.status, "{t}: {c:?}");
        }
        assert!(s.info["config"].contains("stream"), "{:?}", s.info);
        let c = rt
            .runtime_config(cri::RuntimeConfigRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            c.linux.unwrap().cgroup_driver,
            cri::CgroupDriver::Cgroupfs as i32
        );
        rt.update_runtime_config(cri::UpdateRuntimeConfigRequest {
            runtime_config: Some(cri::RuntimeConfig {
                network_config: Some(cri::NetworkConfig {
                    pod_cidr: "10.244.0.0/24".into(),
                }),
            }),
        })
        .await
        .unwrap();
        let e = rt
            .checkpoint_container(cri::CheckpointContainerRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
        assert!(e.message().contains("CRIU"), "{e}");
    });
    // log_level = "debug": every RPC is logged
    let log = d.log();
    assert!(log.contains("info: serving CRI v1 on unix://"), "{log}");
    assert!(
        log.contains("debug: rpc /runtime.v1.RuntimeService/Version"),
        "{log}"
    );
}

#[test]
fn a_pod_from_run_to_remove() {
    let d = Daemon::start("cri-life");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        assert!(image_ref.starts_with("sha256:"), "{image_ref}");
        let mut rt = d.rt().await;
        let mut cfg = sandbox("web");
        cfg.dns_config = Some(cri::DnsConfig {
            servers: vec!["10.0.0.10".into()],
            searches: vec!["test.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        });
        cfg.linux = Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/kubepods", d.env.cgroup_parent()),
            sysctls: [(
                "net.ipv4.ip_unprivileged_port_start".to_string(),
                "80".to_string(),
            )]
            .into(),
            ..Default::default()
        });
        cfg.annotations = [("note".to_string(), "hello".to_string())].into();
        let mut ctr = container(
            "app",
            &image_ref,
            &[
                "sh",
                "-c",
                "trap 'exit 7' TERM; while true; do sleep 0.1; done",
            ],
        );
        ctr.envs = vec![cri::KeyValue {
            key: "GREETING".into(),
            value: "hi".into(),
        }];
        ctr.linux = Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                cpu_shares: 512,
                ..Default::default()
            }),
            security_context: Some(cri::LinuxContainerSecurityContext {
                run_as_user: Some(cri::Int64Value { value: 1000 }),
                no_new_privs: true,
                ..Default::default()
            }),
        });
        let host_dir = d.env.dir.join("hostdata");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("f"), "from the host").unwrap();
        ctr.mounts = vec![cri::Mount {
            container_path: "/data".into(),
            host_path: host_dir.display().to_string(),
            readonly: true,
            ..Default::default()
        }];
        let (pod, id) = pod_with(&d, "web", cfg.clone(), ctr).await;

        // the sandbox
        let ps = rt
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner();
        let st = ps.status.unwrap();
        assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
        assert_eq!(st.metadata.unwrap().name, "web");
        assert_eq!(st.annotations["note"], "hello");
        let ip = st.network.unwrap().ip;
        assert!(ip.starts_with(&format!("{}.", d.env.net)), "{ip}");
        assert_eq!(ps.containers_statuses.len(), 1);
        assert!(ps.info["info"].contains(&pod), "{:?}", ps.info);

        // the container, as the kernel shows it
        let s = wait_state(&d, &id, cri::ContainerState::ContainerRunning).await;
        assert!(s.started_at > 0 && s.created_at > 0, "{s:?}");
        assert_eq!(s.image_ref, image_ref);
        assert!(s.log_path.ends_with("app/0.log"), "{}", s.log_path);
        let p = pid(&d, &id).await;
        let proc_status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap();
        assert!(proc_status.contains("Uid:\t1000\t1000"), "{proc_status}");
        assert!(proc_status.contains("NoNewPrivs:\t1"), "{proc_status}");
        let pod_dir = d.env.pod_dir(&pod);
        assert_eq!(
            ns(p, "net"),
            format!("net:[{}]", inode(&pod_dir.join("net"))),
            "the container is not in the pod's network namespace"
        );
        assert_ne!(ns(p, "pid"), ns(std::process::id() as i32, "pid"));
        let cg = std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
        let mem_line = cg.lines().find(|l| l.contains(":memory:")).unwrap();
        assert!(mem_line.contains("/kubepods/"), "{mem_line}");
        let mem_dir = format!(
            "/sys/fs/cgroup/memory{}",
            mem_line.split(':').nth(2).unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(format!("{mem_dir}/memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            (64u64 << 20).to_string()
        );

        // exec: environment, hostname, DNS, mount, sysctl
        let ex = |cmd: &[&str]| cri::ExecSyncRequest {
            container_id: id.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 10,
        };
        let r = rt
            .exec_sync(ex(&[
                "sh",
                "-c",
                "echo $GREETING; hostname; cat /etc/resolv.conf; cat /data/f; echo; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; echo oops >&2; exit 3",
            ]))
            .await
            .unwrap()
            .into_inner();
        let out = String::from_utf8_lossy(&r.stdout);
        assert_eq!(r.exit_code, 3);
        assert_eq!(String::from_utf8_lossy(&r.stderr), "oops\n");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "hi");
        assert_eq!(lines[1], "web");
        assert!(out.contains("nameserver 10.0.0.10"), "{out}");
        assert!(out.contains("search test.svc.cluster.local"), "{out}");
        assert!(out.contains("options ndots:5"), "{out}");
        assert!(out.contains("from the host"), "{out}");
        assert!(out.trim_end().ends_with("80"), "{out}");
        let r = rt
            .exec_sync(ex(&["sh", "-c", "echo x > /data/g"]))
            .await
            .unwrap()
            .into_inner();
        assert_ne!(r.exit_code, 0, "a read-only mount was writable");

        // list with filters
        let l = rt
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    pod_sandbox_id: pod.clone(),
                    label_selector: [("ctr".to_string(), "app".to_string())].into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].id, id);
        let none = rt
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    state: Some(cri::ContainerStateValue {
                        state: cri::ContainerState::ContainerExited as i32,
                    }),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert!(none.is_empty());
        let pods = rt
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(cri::PodSandboxFilter {
                    label_selector: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].id, pod);

        // stats
        let cs = rt
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .stats
            .unwrap();
        assert!(cs.memory.unwrap().usage_bytes.unwrap().value > 0);
        assert!(cs.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);
        let ls = rt
            .list_container_stats(cri::ListContainerStatsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .stats;
        assert_eq!(ls.len(), 1);
        let pst = rt
            .pod_sandbox_stats(cri::PodSandboxStatsRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .stats
            .unwrap();
        let lx = pst.linux.unwrap();
        assert!(lx.process.unwrap().process_count.unwrap().value >= 1);
        assert_eq!(lx.network.unwrap().default_interface.unwrap().name, "eth0");
        assert_eq!(lx.containers.len(), 1);
        assert_eq!(
            rt.list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .stats
                .len(),
            1
        );

        // update resources: the cgroup file changes
        rt.update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 96 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(format!("{mem_dir}/memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            (96u64 << 20).to_string()
        );

        // logs: the container's output lands in its CRI log; reopen works while it runs
        rt.reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();

        // stop: its TERM trap ends it with 7
        rt.stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 5,
        })
        .await
        .unwrap();
        let s = status(&d, &id).await;
        assert_eq!(s.state, cri::ContainerState::ContainerExited as i32);
        assert_eq!(s.exit_code, 7, "{s:?}");
        assert!(s.finished_at >= s.started_at);
        assert!(!running(p));
        // stopping a stopped container is fine
        rt.stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
        rt.remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        assert!(
            status_err(&d, &id).await == tonic::Code::NotFound,
            "a removed container is still there"
        );

        // the sandbox: stop (network down, NotReady), remove (everything gone)
        let veths_before = d.env.bridge_ports();
        assert_eq!(veths_before, 1);
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
        assert_eq!(d.env.bridge_ports(), 0, "stop left the pod's veth");
        let st = pod_status(&d, &pod).await;
        assert_eq!(st.state, cri::PodSandboxState::SandboxNotready as i32);
        remove_pod(&d, &pod).await;
        remove_pod(&d, &pod).await;
        assert!(!exists(&pod_dir), "{} is left", pod_dir.display());
        let left = super::harness::mounts_under(&d.env.root);
        assert!(left.is_empty(), "mounts left: {left:?}");
        let names = std::fs::read_dir(d.env.root.join("names"))
            .map(|r| r.count())
            .unwrap_or(0);
        assert_eq!(names, 0, "name reservations left");
    });
}

async fn status_err(d: &Daemon, id: &str) -> tonic::Code {
    d.rt()
        .await
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .unwrap_err()
        .code()
}

fn inode(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

#[test]
fn shared_pid_namespace_host_network_and_events() {
    let d = Daemon::start("cri-ns");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let mut rt = d.rt().await;
        let mut events = rt
            .get_container_events(cri::GetEventsRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut cfg = sandbox("shared");
        use cri::NamespaceMode::{Node, Pod};
        cfg.linux = namespaces(Node, Pod, Pod);
        let (pod, a) = pod_with(
            &d,
            "shared",
            cfg.clone(),
            container("a", &image_ref, &["sleep", "1000"]),
        )
        .await;
        let b = add_container(
            &mut rt,
            &pod,
            &cfg,
            container("b", &image_ref, &["sleep", "1001"]),
        )
        .await;
        let (pa, pb) = (pid(&d, &a).await, pid(&d, &b).await);
        let me = std::process::id() as i32;
        assert_eq!(
            ns(pa, "pid"),
            ns(pb, "pid"),
            "containers do not share a PID namespace"
        );
        assert_ne!(ns(pa, "pid"), ns(me, "pid"));
        assert_eq!(
            ns(pa, "net"),
            ns(me, "net"),
            "a NODE network pod is not on the host's"
        );
        assert_eq!(ns(pa, "ipc"), ns(pb, "ipc"));
        assert_ne!(ns(pa, "ipc"), ns(me, "ipc"));
        let st = pod_status(&d, &pod).await;
        let o = st.linux.unwrap().namespaces.unwrap().options.unwrap();
        assert_eq!(o.network, cri::NamespaceMode::Node as i32);
        assert_eq!(o.pid, cri::NamespaceMode::Pod as i32);
        // events for a and b: created and started, each once at least
        let mut seen = std::collections::BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !(seen.contains(&(b.clone(), 1)) && seen.contains(&(a.clone(), 1))) {
            let e = tokio::time::timeout_at(deadline, events.message())
                .await
                .expect("no container events")
                .unwrap()
                .unwrap();
            if e.container_id == a || e.container_id == b {
                assert!(e.pod_sandbox_status.is_some());
            }
            seen.insert((e.container_id, e.container_event_type));
        }
        rt.stop_container(cri::StopContainerRequest {
            container_id: a.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
        loop {
            let e = tokio::time::timeout_at(deadline, events.message())
                .await
                .expect("no stop event")
                .unwrap()
                .unwrap();
            if e.container_id == a
                && e.container_event_type == cri::ContainerEventType::ContainerStoppedEvent as i32
            {
                let s = e.containers_statuses.iter().find(|s| s.id == a).unwrap();
                // SIGTERM then at once SIGKILL: either may end it (it is not PID 1)
                assert!([137, 143].contains(&s.exit_code), "{s:?}");
                break;
            }
        }
        remove_pod(&d, &pod).await;
        assert!(!running(pb), "removing the pod left a container process");
    });
}
