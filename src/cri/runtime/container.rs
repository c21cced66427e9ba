//! CreateContainer, StartContainer, StopContainer, RemoveContainer, ListContainers,
//! ContainerStatus, UpdateContainerResources, ReopenContainerLog.

use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use tonic::{Request, Response, Status};

use super::{R, blocking, containers, id_matches, need};
use crate::cri::Shared;
use crate::cri::convert::{self, status};
use crate::pod::store::ContainerState;

pub(super) async fn create_container(
    svc: &Arc<Shared>,
    req: Request<cri::CreateContainerRequest>,
) -> R<cri::CreateContainerResponse> {
    let req = req.into_inner();
    need(&req.pod_sandbox_id, "pod_sandbox_id")?;
    let cfg = req
        .config
        .ok_or_else(|| Status::invalid_argument("config: missing"))?;
    let id = blocking(svc, move |s| {
        let pod = s.rt.find_pod(&req.pod_sandbox_id).map_err(status)?;
        let seccomp = s
            .cfg
            .seccomp()
            .map_err(|e| Status::internal(format!("{e:#}")))?;
        let cc = convert::container_config(&cfg, &pod.log_dir, &seccomp)?;
        s.rt.create_container(&pod.id, &cc).map_err(status)
    })
    .await?;
    Ok(Response::new(cri::CreateContainerResponse {
        container_id: id,
    }))
}

pub(super) async fn start_container(
    svc: &Arc<Shared>,
    req: Request<cri::StartContainerRequest>,
) -> R<cri::StartContainerResponse> {
    let id = req.into_inner().container_id;
    need(&id, "container_id")?;
    blocking(svc, move |s| {
        let (_, c) = s.rt.find_container(None, &id).map_err(status)?;
        if c.status.state != ContainerState::Pending && c.status.state != ContainerState::Created {
            return Err(Status::failed_precondition(format!(
                "container {} is {:?}, not created",
                c.record.id, c.status.state
            )));
        }
        s.rt.start_container(&id).map_err(status)
    })
    .await?;
    Ok(Response::new(cri::StartContainerResponse {}))
}

pub(super) async fn stop_container(
    svc: &Arc<Shared>,
    req: Request<cri::StopContainerRequest>,
) -> R<cri::StopContainerResponse> {
    let req = req.into_inner();
    need(&req.container_id, "container_id")?;
    let grace = Duration::from_secs(req.timeout.max(0) as u64);
    blocking(svc, move |s| {
        s.rt.stop_container(&req.container_id, grace)
            .map_err(status)
    })
    .await?;
    Ok(Response::new(cri::StopContainerResponse {}))
}

pub(super) async fn remove_container(
    svc: &Arc<Shared>,
    req: Request<cri::RemoveContainerRequest>,
) -> R<cri::RemoveContainerResponse> {
    let id = req.into_inner().container_id;
    need(&id, "container_id")?;
    blocking(svc, move |s| {
        let c = match s.rt.find_container(None, &id) {
            Ok((_, c)) => c,
            Err(crate::pod::Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(status(e)),
        };
        // a running container is removed forcibly, as the CRI says
        if c.status.state == ContainerState::Running {
            s.rt.stop_container(&c.record.id, Duration::ZERO)
                .map_err(status)?;
        }
        s.rt.remove_container(&c.record.id).map_err(status)
    })
    .await?;
    Ok(Response::new(cri::RemoveContainerResponse {}))
}

pub(super) async fn list_containers(
    svc: &Arc<Shared>,
    req: Request<cri::ListContainersRequest>,
) -> R<cri::ListContainersResponse> {
    let f = req.into_inner().filter.unwrap_or_default();
    blocking(svc, move |s| {
        let list = containers(s)?
            .iter()
            .filter(|c| id_matches(&c.record.id, &f.id))
            .filter(|c| id_matches(&c.record.pod_id, &f.pod_sandbox_id))
            .filter(|c| {
                f.state
                    .as_ref()
                    .is_none_or(|v| v.state == convert::container_state(c))
            })
            .filter(|c| convert::labels_match(&c.record.config.labels, &f.label_selector))
            .map(convert::container)
            .collect();
        Ok(Response::new(cri::ListContainersResponse {
            containers: list,
        }))
    })
    .await
}

pub(super) async fn container_status(
    svc: &Arc<Shared>,
    req: Request<cri::ContainerStatusRequest>,
) -> R<cri::ContainerStatusResponse> {
    let req = req.into_inner();
    need(&req.container_id, "container_id")?;
    blocking(svc, move |s| {
        let (_, c) =
            s.rt.find_container(None, &req.container_id)
                .map_err(status)?;
        let mut info = std::collections::HashMap::new();
        if req.verbose {
            info.insert(
                "info".to_string(),
                convert::container_verbose_info(&c).to_string(),
            );
        }
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(convert::container_status(&c)),
            info,
        }))
    })
    .await
}

pub(super) async fn update_container_resources(
    svc: &Arc<Shared>,
    req: Request<cri::UpdateContainerResourcesRequest>,
) -> R<cri::UpdateContainerResourcesResponse> {
    let req = req.into_inner();
    need(&req.container_id, "container_id")?;
    let Some(linux) = req.linux else {
        return Ok(Response::new(cri::UpdateContainerResourcesResponse {}));
    };
    let r = convert::resources(&linux, "linux")?;
    blocking(svc, move |s| {
        s.rt.update_resources(&req.container_id, &r).map_err(status)
    })
    .await?;
    Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
}

pub(super) async fn reopen_container_log(
    svc: &Arc<Shared>,
    req: Request<cri::ReopenContainerLogRequest>,
) -> R<cri::ReopenContainerLogResponse> {
    let id = req.into_inner().container_id;
    need(&id, "container_id")?;
    blocking(svc, move |s| s.rt.reopen_log(&id).map_err(status)).await?;
    Ok(Response::new(cri::ReopenContainerLogResponse {}))
}
