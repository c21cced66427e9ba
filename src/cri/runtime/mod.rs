//! `runtime.v1.RuntimeService`: each RPC converts its request, runs the library's call on the
//! blocking pool, and converts the answer. One file per group of RPCs; the trait's methods
//! here only name them.

mod container;
mod sandbox;
mod stats;
mod status;
mod streaming;

use std::pin::Pin;
use std::sync::Arc;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::status;

pub struct Service(pub Arc<Shared>);

/// The stream of GetContainerEvents.
pub(super) type EventStream =
    Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

pub(super) type R<T> = Result<Response<T>, Status>;

/// Run a blocking library call off the async workers.
pub(crate) async fn blocking<T, F>(shared: &Arc<Shared>, f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce(&Shared) -> Result<T, Status> + Send + 'static,
{
    let s = shared.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}

pub(super) fn need(id: &str, what: &str) -> Result<(), Status> {
    if id.is_empty() {
        Err(Status::invalid_argument(format!("{what}: empty")))
    } else {
        Ok(())
    }
}

/// The containers of the runtime, each with its pod, as ContainerInfo.
pub(super) fn containers(s: &Shared) -> Result<Vec<crate::pod::ContainerInfo>, Status> {
    Ok(s.rt
        .list_containers()
        .map_err(status)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

pub(super) fn id_matches(id: &str, filter: &str) -> bool {
    filter.is_empty() || id == filter || (filter.len() >= 4 && id.starts_with(filter))
}

#[tonic::async_trait]
impl RuntimeService for Service {
    async fn version(&self, req: Request<cri::VersionRequest>) -> R<cri::VersionResponse> {
        status::version(&self.0, req).await
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<cri::RunPodSandboxRequest>,
    ) -> R<cri::RunPodSandboxResponse> {
        sandbox::run_pod_sandbox(&self.0, req).await
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<cri::StopPodSandboxRequest>,
    ) -> R<cri::StopPodSandboxResponse> {
        sandbox::stop_pod_sandbox(&self.0, req).await
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<cri::RemovePodSandboxRequest>,
    ) -> R<cri::RemovePodSandboxResponse> {
        sandbox::remove_pod_sandbox(&self.0, req).await
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<cri::PodSandboxStatusRequest>,
    ) -> R<cri::PodSandboxStatusResponse> {
        sandbox::pod_sandbox_status(&self.0, req).await
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<cri::ListPodSandboxRequest>,
    ) -> R<cri::ListPodSandboxResponse> {
        sandbox::list_pod_sandbox(&self.0, req).await
    }

    async fn create_container(
        &self,
        req: Request<cri::CreateContainerRequest>,
    ) -> R<cri::CreateContainerResponse> {
        container::create_container(&self.0, req).await
    }

    async fn start_container(
        &self,
        req: Request<cri::StartContainerRequest>,
    ) -> R<cri::StartContainerResponse> {
        container::start_container(&self.0, req).await
    }

    async fn stop_container(
        &self,
        req: Request<cri::StopContainerRequest>,
    ) -> R<cri::StopContainerResponse> {
        container::stop_container(&self.0, req).await
    }

    async fn remove_container(
        &self,
        req: Request<cri::RemoveContainerRequest>,
    ) -> R<cri::RemoveContainerResponse> {
        container::remove_container(&self.0, req).await
    }

    async fn list_containers(
        &self,
        req: Request<cri::ListContainersRequest>,
    ) -> R<cri::ListContainersResponse> {
        container::list_containers(&self.0, req).await
    }

    async fn container_status(
        &self,
        req: Request<cri::ContainerStatusRequest>,
    ) -> R<cri::ContainerStatusResponse> {
        container::container_status(&self.0, req).await
    }

    async fn update_container_resources(
        &self,
        req: Request<cri::UpdateContainerResourcesRequest>,
    ) -> R<cri::UpdateContainerResourcesResponse> {
        container::update_container_resources(&self.0, req).await
    }

    async fn reopen_container_log(
        &self,
        req: Request<cri::ReopenContainerLogRequest>,
    ) -> R<cri::ReopenContainerLogResponse> {
        container::reopen_container_log(&self.0, req).await
    }

    async fn exec_sync(&self, req: Request<cri::ExecSyncRequest>) -> R<cri::ExecSyncResponse> {
        streaming::exec_sync(&self.0, req).await
    }

    async fn exec(&self, req: Request<cri::ExecRequest>) -> R<cri::ExecResponse> {
        streaming::exec(&self.0, req).await
    }

    async fn attach(&self, req: Request<cri::AttachRequest>) -> R<cri::AttachResponse> {
        streaming::attach(&self.0, req).await
    }

    async fn port_forward(
        &self,
        req: Request<cri::PortForwardRequest>,
    ) -> R<cri::PortForwardResponse> {
        streaming::port_forward(&self.0, req).await
    }

    async fn container_stats(
        &self,
        req: Request<cri::ContainerStatsRequest>,
    ) -> R<cri::ContainerStatsResponse> {
        stats::container_stats(&self.0, req).await
    }

    async fn list_container_stats(
        &self,
        req: Request<cri::ListContainerStatsRequest>,
    ) -> R<cri::ListContainerStatsResponse> {
        stats::list_container_stats(&self.0, req).await
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<cri::PodSandboxStatsRequest>,
    ) -> R<cri::PodSandboxStatsResponse> {
        stats::pod_sandbox_stats(&self.0, req).await
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<cri::ListPodSandboxStatsRequest>,
    ) -> R<cri::ListPodSandboxStatsResponse> {
        stats::list_pod_sandbox_stats(&self.0, req).await
    }

    async fn update_runtime_config(
        &self,
        req: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> R<cri::UpdateRuntimeConfigResponse> {
        status::update_runtime_config(&self.0, req).await
    }

    async fn status(&self, req: Request<cri::StatusRequest>) -> R<cri::StatusResponse> {
        status::runtime_status(&self.0, req).await
    }

    async fn checkpoint_container(
        &self,
        req: Request<cri::CheckpointContainerRequest>,
    ) -> R<cri::CheckpointContainerResponse> {
        status::checkpoint_container(&self.0, req).await
    }

    type GetContainerEventsStream = EventStream;

    async fn get_container_events(
        &self,
        req: Request<cri::GetEventsRequest>,
    ) -> R<Self::GetContainerEventsStream> {
        status::get_container_events(&self.0, req).await
    }

    async fn list_metric_descriptors(
        &self,
        req: Request<cri::ListMetricDescriptorsRequest>,
    ) -> R<cri::ListMetricDescriptorsResponse> {
        status::list_metric_descriptors(&self.0, req).await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        req: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> R<cri::ListPodSandboxMetricsResponse> {
        status::list_pod_sandbox_metrics(&self.0, req).await
    }

    async fn runtime_config(
        &self,
        req: Request<cri::RuntimeConfigRequest>,
    ) -> R<cri::RuntimeConfigResponse> {
        status::runtime_config(&self.0, req).await
    }
}
