//! Verbose status info, shaped as containerd's (`crictl inspect` reads `.info.pid`).

use crate::pod::{self, ContainerInfo};

/// ContainerStatus's verbose `info`: the sandbox, the init's pid, the container's config and
/// its runtime spec (the bundle's config.json), and berth's own status record.
pub fn container_verbose_info(c: &ContainerInfo) -> serde_json::Value {
    let spec: serde_json::Value = std::fs::read(c.record.bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "sandboxID": c.record.pod_id,
        "pid": c.status.pid,
        "removing": false,
        "runtimeType": "berth",
        "bundle": c.record.bundle,
        "config": c.record.config,
        "runtimeSpec": spec,
        "status": c.status,
    })
}

/// PodSandboxStatus's verbose `info`: the monitor's pid, whether the pod's network namespace
/// is still there and its path, the pod's config, its CNI result, and a runtime spec holding
/// the namespaces its containers join (berth runs no infra container).
pub fn pod_verbose_info(st: &pod::PodStatus, cni: Option<&serde_json::Value>) -> serde_json::Value {
    let ns: Vec<serde_json::Value> = ["network", "ipc", "uts"]
        .iter()
        .zip(["net", "ipc", "uts"])
        .filter_map(|(oci, kind)| {
            st.namespace_paths
                .get(kind)
                .map(|p| serde_json::json!({"type": oci, "path": p}))
        })
        .collect();
    let netns = st.namespace_paths.get("net");
    serde_json::json!({
        "pid": st.monitor_pid.unwrap_or(0),
        "processStatus": if st.monitor_pid.is_some() { "running" } else { "stopped" },
        "netNamespaceClosed": !st.record.config.host_network && !st.namespaces.contains_key("net"),
        "netNamespacePath": netns,
        "runtimeHandler": "",
        "runtimeType": "berth",
        "config": st.record.config,
        "cniResult": cni,
        "runtimeSpec": {"linux": {"namespaces": ns, "cgroupsPath": st.record.cgroup}},
        "record": st.record,
        "containers": st.containers,
    })
}
