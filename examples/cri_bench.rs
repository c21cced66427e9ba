//! A CRI client that times pod starts, for `make bench` (tests/bench/cri.sh): the same client
//! drives berth and containerd, so the numbers compare the runtimes, not the clients.
//!
//! `cargo run --example cri_bench -- SOCKET IMAGE RUNS PARALLEL` pulls IMAGE, then RUNS times
//! one pod (RunPodSandbox + CreateContainer + StartContainer of `sleep`), then PARALLEL pods at
//! once; it removes every pod it made. It prints one JSON object of milliseconds.

use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

async fn channel(socket: String) -> Channel {
    Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await
        .expect("connect to the CRI socket")
}

/// One pod with one started container; returns (pod id, time taken, and the time of each of
/// the three calls).
async fn start_pod(ch: Channel, name: String, image: String) -> (String, Duration, [Duration; 3]) {
    let mut rt = RuntimeServiceClient::new(ch);
    // kubelet makes the log directories before it asks for the pod
    let logs = std::path::PathBuf::from(
        std::env::var("CRI_BENCH_LOGS").unwrap_or_else(|_| "/tmp/cri-bench-logs".into()),
    )
    .join(&name);
    std::fs::create_dir_all(logs.join("sleep")).expect("create the log directory");
    let cfg = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("{name}-{}", std::process::id()),
            namespace: "bench".into(),
            attempt: 0,
        }),
        log_directory: logs.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let t = Instant::now();
    let mut steps = [Duration::ZERO; 3];
    let pod = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    steps[0] = t.elapsed();
    let ctr = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: "sleep".into(),
                    attempt: 0,
                }),
                image: Some(cri::ImageSpec {
                    image,
                    ..Default::default()
                }),
                command: vec!["sleep".into(), "100000".into()],
                log_path: "sleep/0.log".into(),
                linux: Some(cri::LinuxContainerConfig::default()),
                ..Default::default()
            }),
            sandbox_config: Some(cfg),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    steps[1] = t.elapsed() - steps[0];
    rt.start_container(cri::StartContainerRequest { container_id: ctr })
        .await
        .expect("StartContainer");
    steps[2] = t.elapsed() - steps[0] - steps[1];
    (pod, t.elapsed(), steps)
}

async fn remove_pod(ch: Channel, pod: String) {
    let mut rt = RuntimeServiceClient::new(ch);
    let _ = rt
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await;
    let _ = rt
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await;
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: cri_bench SOCKET IMAGE RUNS PARALLEL");
        std::process::exit(2);
    }
    let (socket, image) = (a[1].clone(), a[2].clone());
    let runs: usize = a[3].parse().expect("RUNS");
    let parallel: usize = a[4].parse().expect("PARALLEL");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let ch = channel(socket.clone()).await;
        let image_ref = ImageServiceClient::new(ch.clone())
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("PullImage")
            .into_inner()
            .image_ref;
        // one warm-up pod, not counted
        let (p, _, _) = start_pod(ch.clone(), "warmup".into(), image_ref.clone()).await;
        remove_pod(ch.clone(), p).await;
        let mut times = Vec::new();
        let mut steps: [Vec<Duration>; 3] = Default::default();
        for i in 0..runs {
            let (p, d, s) = start_pod(ch.clone(), format!("seq{i}"), image_ref.clone()).await;
            times.push(d);
            for k in 0..3 {
                steps[k].push(s[k]);
            }
            remove_pod(ch.clone(), p).await;
        }
        times.sort();
        let med = |v: &mut Vec<Duration>| {
            v.sort();
            ms(v[v.len() / 2])
        };
        let (run_ms, create_ms, start_ms) = (
            med(&mut steps[0]),
            med(&mut steps[1]),
            med(&mut steps[2]),
        );
        let pct = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        let t = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..parallel {
            // a connection per client, as many kubelet goroutines share one but are parallel
            let ch = channel(socket.clone()).await;
            tasks.push(tokio::spawn(start_pod(ch, format!("par{i}"), image_ref.clone())));
        }
        let mut pods = Vec::new();
        for t in tasks {
            pods.push(t.await.unwrap().0);
        }
        let total = t.elapsed();
        // the caller reads the daemon's memory now, with every pod running
        println!(
            "{{\"p50_ms\": {}, \"p99_ms\": {}, \"parallel\": {parallel}, \"parallel_total_ms\": {}, \"run_p50_ms\": {run_ms}, \"create_p50_ms\": {create_ms}, \"start_p50_ms\": {start_ms}}}",
            ms(pct(0.5)),
            ms(pct(0.99)),
            ms(total)
        );
        if let Some(f) = std::env::var_os("CRI_BENCH_HOLD") {
            // wait until the caller removes this file
            while std::path::Path::new(&f).exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut rm = Vec::new();
        for p in pods {
            rm.push(tokio::spawn(remove_pod(ch.clone(), p)));
        }
        for r in rm {
            let _ = r.await;
        }
    });
}
