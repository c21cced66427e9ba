//! A pod's network: its pinned namespaces (`netns`), CNI (`cni`), and the host rules of
//! berth's default network (`hostnet`).

pub mod cni;
pub mod hostnet;
pub mod netns;

use std::fs;

use serde_json::json;

use super::config::PodConfig;
use super::error::Result;
use super::store::PodDir;

/// A pod's CNI ADD. What DEL needs is on disk before the plugins run, for a recovery after a
/// crash.
pub fn attach(
    paths: &cni::CniPaths,
    id: &str,
    dir: &PodDir,
    cfg: &PodConfig,
) -> Result<cni::Cached> {
    let net = cni::load(paths, !cfg.port_mappings.is_empty())?;
    let att = cni::Attachment {
        container_id: id.to_string(),
        netns: dir.0.join("net"),
        ifname: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAMESPACE".into(), cfg.namespace.clone()),
            ("K8S_POD_NAME".into(), cfg.name.clone()),
            ("K8S_POD_INFRA_CONTAINER_ID".into(), id.to_string()),
            ("K8S_POD_UID".into(), cfg.uid.clone()),
        ],
        runtime_config: json!({"portMappings": cfg.port_mappings.iter().map(|p| {
                let mut m = json!({"hostPort": p.host_port, "containerPort": p.container_port, "protocol": p.protocol});
                if let Some(ip) = &p.host_ip { m["hostIP"] = json!(ip); }
                m
            }).collect::<Vec<_>>()}),
    };
    let pending = dir.network_pending();
    cni::save(
        &pending,
        &cni::Cached {
            network: net.clone(),
            attachment: att.clone(),
            result: serde_json::Value::Null,
        },
    )?;
    let cached = cni::add(paths, &net, &att)?;
    if let Err(e) = cni::save(&dir.network(), &cached) {
        let _ = cni::del(paths, &cached);
        return Err(e);
    }
    let _ = fs::remove_file(&pending);
    Ok(cached)
}
