//! Version, Status, RuntimeConfig, UpdateRuntimeConfig, GetContainerEvents, and what berth
//! answers Unimplemented.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tonic::{Request, Response, Status};

use super::{R, blocking};
use crate::cri::Shared;

pub(super) async fn version(
    _svc: &Arc<Shared>,
    _req: Request<cri::VersionRequest>,
) -> R<cri::VersionResponse> {
    Ok(Response::new(cri::VersionResponse {
        version: "0.1.0".into(),
        runtime_name: "berth".into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: "v1".into(),
    }))
}

pub(super) async fn update_runtime_config(
    _svc: &Arc<Shared>,
    _req: Request<cri::UpdateRuntimeConfigRequest>,
) -> R<cri::UpdateRuntimeConfigResponse> {
    // kubelet sends the node's pod CIDR; berth's networks come from CNI configurations
    Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
}

pub(super) async fn runtime_status(
    svc: &Arc<Shared>,
    req: Request<cri::StatusRequest>,
) -> R<cri::StatusResponse> {
    let verbose = req.into_inner().verbose;
    let shared = svc.clone();
    let (net_ok, net_msg) = blocking(svc, |s| Ok(network_ready(s))).await?;
    let mut info = std::collections::HashMap::new();
    if verbose {
        info.insert(
            "config".to_string(),
            format!(
                "{{\"state_root\":{:?},\"data_root\":{:?},\"cni_conf_dir\":{:?},\"stream\":{:?}}}",
                shared.cfg.state_root.display().to_string(),
                shared.cfg.data_root.display().to_string(),
                shared.cfg.cni.conf_dir.display().to_string(),
                shared.stream.address()
            ),
        );
    }
    Ok(Response::new(cri::StatusResponse {
        status: Some(cri::RuntimeStatus {
            conditions: vec![
                cri::RuntimeCondition {
                    r#type: "RuntimeReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                },
                cri::RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: net_ok,
                    reason: if net_ok {
                        String::new()
                    } else {
                        "NetworkPluginNotReady".into()
                    },
                    message: net_msg,
                },
            ],
        }),
        info,
        runtime_handlers: vec![cri::RuntimeHandler {
            name: String::new(),
            features: Some(cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: false,
                user_namespaces: false,
            }),
        }],
        features: Some(cri::RuntimeFeatures {
            supplemental_groups_policy: false,
        }),
    }))
}

pub(super) async fn checkpoint_container(
    _svc: &Arc<Shared>,
    _req: Request<cri::CheckpointContainerRequest>,
) -> R<cri::CheckpointContainerResponse> {
    Err(Status::unimplemented(
        "checkpointing needs CRIU, which does not work on this kernel; berth does not checkpoint",
    ))
}

pub(super) async fn get_container_events(
    svc: &Arc<Shared>,
    _req: Request<cri::GetEventsRequest>,
) -> R<super::EventStream> {
    Ok(Response::new(Box::pin(svc.events.subscribe())))
}

pub(super) async fn list_metric_descriptors(
    _svc: &Arc<Shared>,
    _req: Request<cri::ListMetricDescriptorsRequest>,
) -> R<cri::ListMetricDescriptorsResponse> {
    Err(Status::unimplemented(
        "berth serves no cAdvisor-style metrics: use ContainerStats and ListPodSandboxStats",
    ))
}

pub(super) async fn list_pod_sandbox_metrics(
    _svc: &Arc<Shared>,
    _req: Request<cri::ListPodSandboxMetricsRequest>,
) -> R<cri::ListPodSandboxMetricsResponse> {
    Err(Status::unimplemented(
        "berth serves no cAdvisor-style metrics: use ContainerStats and ListPodSandboxStats",
    ))
}

pub(super) async fn runtime_config(
    _svc: &Arc<Shared>,
    _req: Request<cri::RuntimeConfigRequest>,
) -> R<cri::RuntimeConfigResponse> {
    Ok(Response::new(cri::RuntimeConfigResponse {
        linux: Some(cri::LinuxRuntimeConfiguration {
            cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
        }),
    }))
}

/// NetworkReady: a CNI configuration is there, or the plugins of berth's default network are.
fn network_ready(s: &Shared) -> (bool, String) {
    let o = s.rt.options();
    let conf_dir = o.cni.conf_dir.clone().unwrap_or_default();
    let has_conf = std::fs::read_dir(&conf_dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.ends_with(".conf") || n.ends_with(".conflist") || n.ends_with(".json")
        })
    });
    let plugin = |name: &str| o.cni.plugin_dirs.iter().any(|d| d.join(name).exists());
    if has_conf {
        if plugin("bridge") || plugin("loopback") || !o.cni.plugin_dirs.is_empty() {
            return (true, String::new());
        }
    } else if plugin("bridge") && plugin("host-local") {
        return (true, String::new());
    }
    (
        false,
        format!(
            "no CNI configuration in {} and no bridge/host-local plugins in {:?}",
            conf_dir.display(),
            o.cni.plugin_dirs
        ),
    )
}
