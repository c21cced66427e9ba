//! ExecSync's deadline and StopContainer's grace period as kubelet relies on them: a timed-out
//! exec leaves no process behind and returns at its deadline; a container whose PID 1 handles
//! SIGTERM stops at once, every time.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use super::daemon::{Daemon, add_container, block_on, container, pid, pull, remove_pod, sandbox};
use super::env::ns;

/// Processes whose command line is exactly `args`, in the PID namespace of `pid_ns_of`, that
/// are not zombies.
fn living(args: &[&str], pid_ns_of: i32) -> Vec<i32> {
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let ns_want = ns(pid_ns_of, "pid");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        })
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .is_ok_and(|l| l.display().to_string() == ns_want)
        })
        .collect()
}

#[test]
fn exec_sync_timeout_kills_the_exec_and_its_children_at_the_deadline() {
    let d = Daemon::start("cri-exec-timeout");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let cfg = sandbox("exto");
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
        let id = add_container(
            &mut rt,
            &pod,
            &cfg,
            container("c", &image_ref, &["sleep", "1000"]),
        )
        .await;
        let init = pid(&d, &id).await;
        let t = Instant::now();
        // the background sleep keeps the output pipes open after the shell is gone
        let e = rt
            .exec_sync(cri::ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec!["sh".into(), "-c".into(), "sleep 15 & sleep 15".into()],
                timeout: 2,
            })
            .await
            .unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e}");
        assert!(
            took < Duration::from_secs(3),
            "ExecSync returned after {took:?}, not at its 2 s deadline"
        );
        // nothing of the exec is left: no sleep runs in the container's PID namespace
        let t = Instant::now();
        while !living(&["sleep", "15"], init).is_empty() && t.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(living(&["sleep", "15"], init), Vec::<i32>::new());
        // the container itself goes on, and a quick exec still works
        let r = rt
            .exec_sync(cri::ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec!["echo".into(), "alive".into()],
                timeout: 5,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(String::from_utf8_lossy(&r.stdout), "alive\n");
        remove_pod(&d, &pod).await;
    });
}

/// Is SIGTERM caught by `pid` (bit 15 of SigCgt)?
fn catches_term(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
}

#[test]
fn two_hundred_stops_of_sigterm_handling_containers_each_end_at_once() {
    let d = Daemon::start("cri-stops");
    let image = d.env.image("base");
    const PODS: usize = 10;
    const PER_POD: usize = 20;
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let mut pods = Vec::new();
        let mut ctrs = Vec::new();
        for p in 0..PODS {
            let cfg = sandbox(&format!("stop{p}"));
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
            // the pods' containers start concurrently, as kubelet's workers do
            let mut starts = Vec::new();
            for c in 0..PER_POD {
                let (d, cfg, pod, image_ref) = (&d, cfg.clone(), pod.clone(), image_ref.clone());
                starts.push(async move {
                    let mut rt = d.rt().await;
                    let cc = container(
                        &format!("c{c}"),
                        &image_ref,
                        &["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"],
                    );
                    add_container(&mut rt, &pod, &cfg, cc).await
                });
            }
            ctrs.extend(futures_util::future::join_all(starts).await);
            pods.push(pod);
        }
        assert_eq!(ctrs.len(), PODS * PER_POD);
        // each stop is asked once its PID 1 has its handler (a SIGTERM before it would be
        // dropped by the kernel, and the grace period would rightly run out)
        let stops = ctrs.iter().map(|id| {
            let d = &d;
            async move {
                let init = pid(d, id).await;
                let t = Instant::now();
                while !catches_term(init) {
                    assert!(
                        t.elapsed() < Duration::from_secs(30),
                        "{id}: no TERM handler"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let t = Instant::now();
                d.rt()
                    .await
                    .stop_container(cri::StopContainerRequest {
                        container_id: id.clone(),
                        timeout: 60,
                    })
                    .await
                    .unwrap();
                (id.clone(), t.elapsed())
            }
        });
        let mut took: Vec<(String, Duration)> = futures_util::future::join_all(stops).await;
        took.sort_by_key(|(_, t)| *t);
        let (slowest, t) = took.last().unwrap().clone();
        eprintln!(
            "stops: median {:?}, slowest {t:?} ({slowest})",
            took[took.len() / 2].1
        );
        assert!(
            t < Duration::from_secs(10),
            "a stop of a container handling SIGTERM took {t:?} of its 60 s grace ({slowest}): {}",
            d.log()
        );
        for id in &ctrs {
            let s = super::daemon::status(&d, id).await;
            assert_eq!(s.state, cri::ContainerState::ContainerExited as i32, "{id}");
            assert_eq!(s.exit_code, 0, "{id}: {s:?}");
        }
        for p in &pods {
            remove_pod(&d, p).await;
        }
    });
}
