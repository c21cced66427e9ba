//! Embed berth: run a pod of two containers that share a network namespace, wait until the
//! client has fetched a page from the server over 127.0.0.1, print the client's log, remove
//! the pod.
//!
//! ```sh
//! cargo run --example two_container_pod -- 127.0.0.1:5000/library/busybox
//! ```
//! Runs as root. This program is also its pods' monitor (see `berth::pod::hook`), so
//! it needs no `berth` binary. Directories come from `BERTH_ROOT`, `BERTH_DATA_ROOT`,
//! `BERTH_LOG_ROOT` and `BERTH_CNI_CONF_DIR` when set.

use std::time::{Duration, Instant};

use berth::pod::ContainerState;
use berth::pod::{ContainerConfig, Options, PodConfig, PullPolicy, Runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // when berth starts this program as a pod monitor, it becomes one here
    berth::pod::hook();
    let image = std::env::args()
        .nth(1)
        .ok_or("usage: two_container_pod IMAGE (a busybox image)")?;
    let mut opts = Options {
        berth_binary: std::env::current_exe()?,
        ..Options::default()
    };
    let env = |k: &str| std::env::var_os(k).map(std::path::PathBuf::from);
    if let Some(p) = env("BERTH_ROOT") {
        opts.root = p;
    }
    if let Some(p) = env("BERTH_DATA_ROOT") {
        opts.data_root = p;
    }
    if let Some(p) = env("BERTH_LOG_ROOT") {
        opts.log_root = p;
    }
    if let Some(p) = env("BERTH_CNI_CONF_DIR") {
        opts.cni.conf_dir = Some(p);
    }
    if let Some(p) = env("BERTH_CGROUP_PARENT") {
        opts.cgroup_parent = p.display().to_string();
    }
    let rt = Runtime::new(opts);
    rt.ensure_image(&image, PullPolicy::IfNotPresent, &mut |l| eprintln!("{l}"))?;

    let pod = rt.run_pod_sandbox(
        &PodConfig {
            name: "example".into(),
            ..Default::default()
        },
        false,
    )?;
    let result = (|| -> Result<String, Box<dyn std::error::Error>> {
        let server = ContainerConfig {
            name: "server".into(),
            image: image.clone(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo hello from the server > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
                    .into(),
            ],
            ..Default::default()
        };
        let client = ContainerConfig {
            name: "client".into(),
            image: image.clone(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "until wget -qO- http://127.0.0.1:8080/index.html; do sleep 0.1; done".into(),
            ],
            ..Default::default()
        };
        let s = rt.create_container(&pod, &server)?;
        let c = rt.create_container(&pod, &client)?;
        rt.start_container(&s)?;
        rt.start_container(&c)?;
        let t = Instant::now();
        loop {
            let (_, info) = rt.find_container(None, &c)?;
            if info.status.state == ContainerState::Exited {
                if info.status.exit_code != Some(0) {
                    return Err(format!("the client failed: {:?}", info.status).into());
                }
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err("the client did not finish in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = Vec::new();
        rt.logs(&c, &Default::default(), false, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    })();
    rt.remove_pod_sandbox(&pod, true)?;
    print!("{}", result?);
    Ok(())
}
