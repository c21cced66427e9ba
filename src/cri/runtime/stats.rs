//! ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tonic::{Request, Response, Status};

use super::{R, blocking, containers, id_matches, need};
use crate::cri::Shared;
use crate::cri::convert::{self, status};
use crate::pod::store::ContainerState;

pub(super) async fn container_stats(
    svc: &Arc<Shared>,
    req: Request<cri::ContainerStatsRequest>,
) -> R<cri::ContainerStatsResponse> {
    let id = req.into_inner().container_id;
    need(&id, "container_id")?;
    blocking(svc, move |s| {
        let (_, c) = s.rt.find_container(None, &id).map_err(status)?;
        let st = s.rt.stats(&c.record.id).map_err(status)?;
        Ok(Response::new(cri::ContainerStatsResponse {
            stats: Some(convert::container_stats(&c, &st)),
        }))
    })
    .await
}

pub(super) async fn list_container_stats(
    svc: &Arc<Shared>,
    req: Request<cri::ListContainerStatsRequest>,
) -> R<cri::ListContainerStatsResponse> {
    let f = req.into_inner().filter.unwrap_or_default();
    blocking(svc, move |s| {
        let stats = containers(s)?
            .iter()
            .filter(|c| c.status.state == ContainerState::Running)
            .filter(|c| id_matches(&c.record.id, &f.id))
            .filter(|c| id_matches(&c.record.pod_id, &f.pod_sandbox_id))
            .filter(|c| convert::labels_match(&c.record.config.labels, &f.label_selector))
            .filter_map(|c| {
                let st = s.rt.stats(&c.record.id).ok()?;
                Some(convert::container_stats(c, &st))
            })
            .collect();
        Ok(Response::new(cri::ListContainerStatsResponse { stats }))
    })
    .await
}

pub(super) async fn pod_sandbox_stats(
    svc: &Arc<Shared>,
    req: Request<cri::PodSandboxStatsRequest>,
) -> R<cri::PodSandboxStatsResponse> {
    let id = req.into_inner().pod_sandbox_id;
    need(&id, "pod_sandbox_id")?;
    blocking(svc, move |s| {
        Ok(Response::new(cri::PodSandboxStatsResponse {
            stats: Some(pod_stats(s, &id)?),
        }))
    })
    .await
}

pub(super) async fn list_pod_sandbox_stats(
    svc: &Arc<Shared>,
    req: Request<cri::ListPodSandboxStatsRequest>,
) -> R<cri::ListPodSandboxStatsResponse> {
    let f = req.into_inner().filter.unwrap_or_default();
    blocking(svc, move |s| {
        let stats =
            s.rt.list_pods()
                .map_err(status)?
                .iter()
                .filter(|p| p.state == crate::pod::store::PodState::Ready)
                .filter(|p| id_matches(&p.id, &f.id))
                .filter(|p| convert::labels_match(&p.config.labels, &f.label_selector))
                .filter_map(|p| pod_stats(s, &p.id).ok())
                .collect();
        Ok(Response::new(cri::ListPodSandboxStatsResponse { stats }))
    })
    .await
}

/// A pod's stats: its cgroup's usage, its network interfaces, its containers'.
fn pod_stats(s: &Shared, id: &str) -> Result<cri::PodSandboxStats, Status> {
    let st = s.rt.pod_status(id).map_err(status)?;
    let usage = s.rt.pod_stats(&st.record.id).map_err(status)?;
    let ts = convert::now_nanos();
    let running: Vec<&crate::pod::ContainerInfo> = st
        .containers
        .iter()
        .filter(|c| c.status.state == ContainerState::Running)
        .collect();
    let net = if st.record.config.host_network {
        None
    } else {
        running.iter().find_map(|c| convert::network(c.status.pid))
    };
    Ok(cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: st.record.id.clone(),
            metadata: Some(convert::pod_metadata(&st.record)),
            labels: convert::pod_sandbox(&st.record).labels,
            annotations: convert::pod_sandbox(&st.record).annotations,
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: Some(convert::cpu(&usage, ts)),
            memory: Some(convert::memory(&usage, ts)),
            network: net,
            process: Some(cri::ProcessUsage {
                timestamp: ts,
                process_count: Some(cri::UInt64Value {
                    value: usage.pids.current,
                }),
            }),
            containers: running
                .iter()
                .filter_map(|c| {
                    let u = s.rt.stats(&c.record.id).ok()?;
                    Some(convert::container_stats(c, &u))
                })
                .collect(),
        }),
        windows: None,
    })
}
