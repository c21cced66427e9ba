//! What `berth serve` tells an operator: failed and slow RPCs in its log, and containerd's
//! verbose status info (`crictl inspect`'s `.info.pid`, the runtime spec, the netns path).

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use super::daemon::{Daemon, block_on, container, pod_with, pull, remove_pod, sandbox};

#[test]
fn failed_and_slow_rpcs_are_logged_and_verbose_status_has_containerds_info() {
    let d = Daemon::start_with("cri-observe", "slow_rpc = \"300ms\"");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let (pod, id) = pod_with(
            &d,
            "obs",
            sandbox("obs"),
            container("c", &image_ref, &["sleep", "1000"]),
        )
        .await;
        let mut rt = d.rt().await;
        // a failure: at warn, with the RPC, its code and message
        let e = rt
            .container_status(cri::ContainerStatusRequest {
                container_id: "nosuchcontainer".into(),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        // a slow one
        rt.exec_sync(cri::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sleep".into(), "0.5".into()],
            timeout: 5,
        })
        .await
        .unwrap();
        let t = Instant::now();
        let want = [
            "warn: rpc /runtime.v1.RuntimeService/ContainerStatus failed after",
            "NotFound: container \"nosuchcontainer\"",
            "warn: rpc /runtime.v1.RuntimeService/ExecSync was slow: 0.",
        ];
        while !want.iter().all(|w| d.log().contains(w)) && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = d.log();
        for w in want {
            assert!(log.contains(w), "{w:?} not in the log:\n{log}");
        }
        // a quick, successful RPC is not logged at info
        assert!(
            !log.contains("rpc /runtime.v1.RuntimeService/Version"),
            "{log}"
        );

        // verbose ContainerStatus: .pid is the init, .runtimeSpec its config.json
        let info = rt
            .container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner()
            .info;
        let v: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
        let init = v["pid"].as_i64().unwrap() as i32;
        let cmdline = std::fs::read(format!("/proc/{init}/cmdline")).unwrap();
        assert_eq!(cmdline, b"sleep\x001000\x00");
        assert_eq!(v["sandboxID"], pod.as_str());
        assert_eq!(
            v["runtimeSpec"]["process"]["args"],
            serde_json::json!(["sleep", "1000"])
        );
        // verbose PodSandboxStatus: the netns the containers are in
        let info = rt
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner()
            .info;
        let v: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
        let netns = v["netNamespacePath"].as_str().unwrap().to_string();
        assert_eq!(
            std::fs::metadata(&netns).unwrap().ino(),
            std::fs::metadata(format!("/proc/{init}/ns/net"))
                .unwrap()
                .ino()
        );
        assert_eq!(v["netNamespaceClosed"], false);
        let ns = &v["runtimeSpec"]["linux"]["namespaces"];
        assert!(
            ns.as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network" && n["path"] == netns.as_str()),
            "{ns}"
        );
        assert!(v["cniResult"]["ips"].is_array(), "{}", v["cniResult"]);
        remove_pod(&d, &pod).await;
    });
}
