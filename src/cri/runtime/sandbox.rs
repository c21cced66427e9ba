//! RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox.

use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use tonic::{Request, Response, Status};

use super::{R, blocking, id_matches, need};
use crate::cri::Shared;
use crate::cri::convert::{self, status};

pub(super) async fn run_pod_sandbox(
    svc: &Arc<Shared>,
    req: Request<cri::RunPodSandboxRequest>,
) -> R<cri::RunPodSandboxResponse> {
    let req = req.into_inner();
    if !matches!(req.runtime_handler.as_str(), "" | "berth" | "runc") {
        return Err(Status::invalid_argument(format!(
            "runtime_handler: {:?} is not one of berth's (\"\", \"berth\")",
            req.runtime_handler
        )));
    }
    let cfg = req
        .config
        .ok_or_else(|| Status::invalid_argument("config: missing"))?;
    let pc = convert::pod_config(&cfg)?;
    let id = blocking(svc, move |s| {
        s.rt.run_pod_sandbox(&pc, false).map_err(status)
    })
    .await?;
    Ok(Response::new(cri::RunPodSandboxResponse {
        pod_sandbox_id: id,
    }))
}

pub(super) async fn stop_pod_sandbox(
    svc: &Arc<Shared>,
    req: Request<cri::StopPodSandboxRequest>,
) -> R<cri::StopPodSandboxResponse> {
    let id = req.into_inner().pod_sandbox_id;
    need(&id, "pod_sandbox_id")?;
    blocking(svc, move |s| {
        // containers are stopped at once (kubelet stopped them with their grace before)
        s.rt.stop_pod_sandbox(&id, Some(Duration::ZERO))
            .map_err(status)
    })
    .await?;
    Ok(Response::new(cri::StopPodSandboxResponse {}))
}

pub(super) async fn remove_pod_sandbox(
    svc: &Arc<Shared>,
    req: Request<cri::RemovePodSandboxRequest>,
) -> R<cri::RemovePodSandboxResponse> {
    let id = req.into_inner().pod_sandbox_id;
    need(&id, "pod_sandbox_id")?;
    blocking(svc, move |s| match s.rt.remove_pod_sandbox(&id, true) {
        // idempotent, as kubelet expects: gone is removed
        Err(crate::pod::Error::NotFound(_)) => Ok(()),
        r => r.map_err(status),
    })
    .await?;
    Ok(Response::new(cri::RemovePodSandboxResponse {}))
}

pub(super) async fn pod_sandbox_status(
    svc: &Arc<Shared>,
    req: Request<cri::PodSandboxStatusRequest>,
) -> R<cri::PodSandboxStatusResponse> {
    let req = req.into_inner();
    need(&req.pod_sandbox_id, "pod_sandbox_id")?;
    blocking(svc, move |s| {
        let st = s.rt.pod_status(&req.pod_sandbox_id).map_err(status)?;
        let mut info = std::collections::HashMap::new();
        if req.verbose {
            let net = s.rt.pod_network(&st.record.id).ok().flatten();
            info.insert(
                "info".to_string(),
                convert::pod_verbose_info(&st, net.as_ref()).to_string(),
            );
        }
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(convert::pod_sandbox_status(&st.record)),
            info,
            containers_statuses: st
                .containers
                .iter()
                .map(convert::container_status)
                .collect(),
            timestamp: convert::now_nanos(),
        }))
    })
    .await
}

pub(super) async fn list_pod_sandbox(
    svc: &Arc<Shared>,
    req: Request<cri::ListPodSandboxRequest>,
) -> R<cri::ListPodSandboxResponse> {
    let f = req.into_inner().filter.unwrap_or_default();
    blocking(svc, move |s| {
        let items =
            s.rt.list_pods()
                .map_err(status)?
                .iter()
                .filter(|p| id_matches(&p.id, &f.id))
                .filter(|p| {
                    f.state
                        .as_ref()
                        .is_none_or(|v| v.state == convert::pod_state(p.state))
                })
                .filter(|p| convert::labels_match(&p.config.labels, &f.label_selector))
                .map(convert::pod_sandbox)
                .collect();
        Ok(Response::new(cri::ListPodSandboxResponse { items }))
    })
    .await
}
