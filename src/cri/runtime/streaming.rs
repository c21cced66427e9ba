//! ExecSync, and the RPCs that answer with a streaming URL: Exec, Attach, PortForward.

use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use tonic::{Request, Response, Status};

use super::{R, blocking, need};
use crate::cri::Shared;
use crate::cri::convert::status;
use crate::pod::store::ContainerState;

pub(super) async fn exec_sync(
    svc: &Arc<Shared>,
    req: Request<cri::ExecSyncRequest>,
) -> R<cri::ExecSyncResponse> {
    let req = req.into_inner();
    need(&req.container_id, "container_id")?;
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("cmd: empty"));
    }
    // 0: no timeout
    let timeout = if req.timeout > 0 {
        Duration::from_secs(req.timeout as u64)
    } else {
        Duration::from_secs(365 * 24 * 3600)
    };
    blocking(svc, move |s| {
        let (code, stdout, stderr) =
            s.rt.exec_sync(&req.container_id, &req.cmd, timeout)
                .map_err(status)?;
        Ok(Response::new(cri::ExecSyncResponse {
            stdout,
            stderr,
            exit_code: code,
        }))
    })
    .await
}

pub(super) async fn exec(
    svc: &Arc<Shared>,
    req: Request<cri::ExecRequest>,
) -> R<cri::ExecResponse> {
    let req = req.into_inner();
    need(&req.container_id, "container_id")?;
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("cmd: empty"));
    }
    if !(req.stdin || req.stdout || req.stderr) {
        return Err(Status::invalid_argument(
            "one of stdin, stdout and stderr must be set",
        ));
    }
    if req.tty && req.stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be set (a terminal has one output)",
        ));
    }
    let id = req.container_id.clone();
    blocking(svc, move |s| {
        let (_, c) = s.rt.find_container(None, &id).map_err(status)?;
        if c.status.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "container {id} is not running"
            )));
        }
        Ok(())
    })
    .await?;
    let url = svc.stream.exec_url(req);
    Ok(Response::new(cri::ExecResponse { url }))
}

pub(super) async fn attach(
    svc: &Arc<Shared>,
    req: Request<cri::AttachRequest>,
) -> R<cri::AttachResponse> {
    let req = req.into_inner();
    need(&req.container_id, "container_id")?;
    let id = req.container_id.clone();
    blocking(svc, move |s| {
        s.rt.find_container(None, &id).map(|_| ()).map_err(status)
    })
    .await?;
    let url = svc.stream.attach_url(req);
    Ok(Response::new(cri::AttachResponse { url }))
}

pub(super) async fn port_forward(
    svc: &Arc<Shared>,
    req: Request<cri::PortForwardRequest>,
) -> R<cri::PortForwardResponse> {
    let req = req.into_inner();
    need(&req.pod_sandbox_id, "pod_sandbox_id")?;
    for p in &req.port {
        if !(1..=65535).contains(p) {
            return Err(Status::invalid_argument(format!("port: {p} is not a port")));
        }
    }
    let id = req.pod_sandbox_id.clone();
    let pod = blocking(svc, move |s| s.rt.find_pod(&id).map_err(status)).await?;
    if pod.state != crate::pod::store::PodState::Ready {
        return Err(Status::failed_precondition(format!(
            "pod sandbox {} is not ready",
            pod.id
        )));
    }
    let url = svc.stream.port_forward_url(pod.id, req.port);
    Ok(Response::new(cri::PortForwardResponse { url }))
}
