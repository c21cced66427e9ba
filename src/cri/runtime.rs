//! `runtime.v1.RuntimeService`: each RPC converts its request, runs the library's call on the
//! blocking pool, and converts the answer.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::{self, status};
use crate::pod::store::ContainerState;

pub struct Service(pub Arc<Shared>);

type R<T> = Result<Response<T>, Status>;

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

fn need(id: &str, what: &str) -> Result<(), Status> {
    if id.is_empty() {
        Err(Status::invalid_argument(format!("{what}: empty")))
    } else {
        Ok(())
    }
}

/// The containers of the runtime, each with its pod, as ContainerInfo.
fn containers(s: &Shared) -> Result<Vec<crate::pod::ContainerInfo>, Status> {
    Ok(s.rt
        .list_containers()
        .map_err(status)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

fn id_matches(id: &str, filter: &str) -> bool {
    filter.is_empty() || id == filter || (filter.len() >= 4 && id.starts_with(filter))
}

#[tonic::async_trait]
impl RuntimeService for Service {
    async fn version(&self, _: Request<cri::VersionRequest>) -> R<cri::VersionResponse> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
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
        let id = blocking(&self.0, move |s| {
            s.rt.run_pod_sandbox(&pc, false).map_err(status)
        })
        .await?;
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<cri::StopPodSandboxRequest>,
    ) -> R<cri::StopPodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        need(&id, "pod_sandbox_id")?;
        blocking(&self.0, move |s| {
            // containers are stopped at once (kubelet stopped them with their grace before)
            s.rt.stop_pod_sandbox(&id, Some(Duration::ZERO))
                .map_err(status)
        })
        .await?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<cri::RemovePodSandboxRequest>,
    ) -> R<cri::RemovePodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        need(&id, "pod_sandbox_id")?;
        blocking(&self.0, move |s| match s.rt.remove_pod_sandbox(&id, true) {
            // idempotent, as kubelet expects: gone is removed
            Err(crate::pod::Error::NotFound(_)) => Ok(()),
            r => r.map_err(status),
        })
        .await?;
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<cri::PodSandboxStatusRequest>,
    ) -> R<cri::PodSandboxStatusResponse> {
        let req = req.into_inner();
        need(&req.pod_sandbox_id, "pod_sandbox_id")?;
        blocking(&self.0, move |s| {
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

    async fn list_pod_sandbox(
        &self,
        req: Request<cri::ListPodSandboxRequest>,
    ) -> R<cri::ListPodSandboxResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        blocking(&self.0, move |s| {
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

    async fn create_container(
        &self,
        req: Request<cri::CreateContainerRequest>,
    ) -> R<cri::CreateContainerResponse> {
        let req = req.into_inner();
        need(&req.pod_sandbox_id, "pod_sandbox_id")?;
        let cfg = req
            .config
            .ok_or_else(|| Status::invalid_argument("config: missing"))?;
        let id = blocking(&self.0, move |s| {
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

    async fn start_container(
        &self,
        req: Request<cri::StartContainerRequest>,
    ) -> R<cri::StartContainerResponse> {
        let id = req.into_inner().container_id;
        need(&id, "container_id")?;
        blocking(&self.0, move |s| {
            let (_, c) = s.rt.find_container(None, &id).map_err(status)?;
            if c.status.state != ContainerState::Pending
                && c.status.state != ContainerState::Created
            {
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

    async fn stop_container(
        &self,
        req: Request<cri::StopContainerRequest>,
    ) -> R<cri::StopContainerResponse> {
        let req = req.into_inner();
        need(&req.container_id, "container_id")?;
        let grace = Duration::from_secs(req.timeout.max(0) as u64);
        blocking(&self.0, move |s| {
            s.rt.stop_container(&req.container_id, grace)
                .map_err(status)
        })
        .await?;
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<cri::RemoveContainerRequest>,
    ) -> R<cri::RemoveContainerResponse> {
        let id = req.into_inner().container_id;
        need(&id, "container_id")?;
        blocking(&self.0, move |s| {
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

    async fn list_containers(
        &self,
        req: Request<cri::ListContainersRequest>,
    ) -> R<cri::ListContainersResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        blocking(&self.0, move |s| {
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

    async fn container_status(
        &self,
        req: Request<cri::ContainerStatusRequest>,
    ) -> R<cri::ContainerStatusResponse> {
        let req = req.into_inner();
        need(&req.container_id, "container_id")?;
        blocking(&self.0, move |s| {
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

    async fn update_container_resources(
        &self,
        req: Request<cri::UpdateContainerResourcesRequest>,
    ) -> R<cri::UpdateContainerResourcesResponse> {
        let req = req.into_inner();
        need(&req.container_id, "container_id")?;
        let Some(linux) = req.linux else {
            return Ok(Response::new(cri::UpdateContainerResourcesResponse {}));
        };
        let r = convert::resources(&linux, "linux")?;
        blocking(&self.0, move |s| {
            s.rt.update_resources(&req.container_id, &r).map_err(status)
        })
        .await?;
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        req: Request<cri::ReopenContainerLogRequest>,
    ) -> R<cri::ReopenContainerLogResponse> {
        let id = req.into_inner().container_id;
        need(&id, "container_id")?;
        blocking(&self.0, move |s| s.rt.reopen_log(&id).map_err(status)).await?;
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(&self, req: Request<cri::ExecSyncRequest>) -> R<cri::ExecSyncResponse> {
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
        blocking(&self.0, move |s| {
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

    async fn exec(&self, req: Request<cri::ExecRequest>) -> R<cri::ExecResponse> {
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
        blocking(&self.0, move |s| {
            let (_, c) = s.rt.find_container(None, &id).map_err(status)?;
            if c.status.state != ContainerState::Running {
                return Err(Status::failed_precondition(format!(
                    "container {id} is not running"
                )));
            }
            Ok(())
        })
        .await?;
        let url = self.0.stream.exec_url(req);
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(&self, req: Request<cri::AttachRequest>) -> R<cri::AttachResponse> {
        let req = req.into_inner();
        need(&req.container_id, "container_id")?;
        let id = req.container_id.clone();
        blocking(&self.0, move |s| {
            s.rt.find_container(None, &id).map(|_| ()).map_err(status)
        })
        .await?;
        let url = self.0.stream.attach_url(req);
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
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
        let pod = blocking(&self.0, move |s| s.rt.find_pod(&id).map_err(status)).await?;
        if pod.state != crate::pod::store::PodState::Ready {
            return Err(Status::failed_precondition(format!(
                "pod sandbox {} is not ready",
                pod.id
            )));
        }
        let url = self.0.stream.port_forward_url(pod.id, req.port);
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        req: Request<cri::ContainerStatsRequest>,
    ) -> R<cri::ContainerStatsResponse> {
        let id = req.into_inner().container_id;
        need(&id, "container_id")?;
        blocking(&self.0, move |s| {
            let (_, c) = s.rt.find_container(None, &id).map_err(status)?;
            let st = s.rt.stats(&c.record.id).map_err(status)?;
            Ok(Response::new(cri::ContainerStatsResponse {
                stats: Some(convert::container_stats(&c, &st)),
            }))
        })
        .await
    }

    async fn list_container_stats(
        &self,
        req: Request<cri::ListContainerStatsRequest>,
    ) -> R<cri::ListContainerStatsResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        blocking(&self.0, move |s| {
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

    async fn pod_sandbox_stats(
        &self,
        req: Request<cri::PodSandboxStatsRequest>,
    ) -> R<cri::PodSandboxStatsResponse> {
        let id = req.into_inner().pod_sandbox_id;
        need(&id, "pod_sandbox_id")?;
        blocking(&self.0, move |s| {
            Ok(Response::new(cri::PodSandboxStatsResponse {
                stats: Some(pod_stats(s, &id)?),
            }))
        })
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<cri::ListPodSandboxStatsRequest>,
    ) -> R<cri::ListPodSandboxStatsResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        blocking(&self.0, move |s| {
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

    async fn update_runtime_config(
        &self,
        _: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> R<cri::UpdateRuntimeConfigResponse> {
        // kubelet sends the node's pod CIDR; berth's networks come from CNI configurations
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, req: Request<cri::StatusRequest>) -> R<cri::StatusResponse> {
        let verbose = req.into_inner().verbose;
        let shared = self.0.clone();
        let (net_ok, net_msg) = blocking(&self.0, |s| Ok(network_ready(s))).await?;
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

    async fn checkpoint_container(
        &self,
        _: Request<cri::CheckpointContainerRequest>,
    ) -> R<cri::CheckpointContainerResponse> {
        Err(Status::unimplemented(
            "checkpointing needs CRIU, which does not work on this kernel; berth does not checkpoint",
        ))
    }

    type GetContainerEventsStream =
        Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

    async fn get_container_events(
        &self,
        _: Request<cri::GetEventsRequest>,
    ) -> R<Self::GetContainerEventsStream> {
        Ok(Response::new(Box::pin(self.0.events.subscribe())))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<cri::ListMetricDescriptorsRequest>,
    ) -> R<cri::ListMetricDescriptorsResponse> {
        Err(Status::unimplemented(
            "berth serves no cAdvisor-style metrics: use ContainerStats and ListPodSandboxStats",
        ))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> R<cri::ListPodSandboxMetricsResponse> {
        Err(Status::unimplemented(
            "berth serves no cAdvisor-style metrics: use ContainerStats and ListPodSandboxStats",
        ))
    }

    async fn runtime_config(
        &self,
        _: Request<cri::RuntimeConfigRequest>,
    ) -> R<cri::RuntimeConfigResponse> {
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }
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

/// NetworkReady: a CNI configuration is there, or the plugins of berth's default network are.
fn network_ready(s: &Shared) -> (bool, String) {
    let o = s.rt.options();
    let has_conf = std::fs::read_dir(&o.cni.conf_dir).is_ok_and(|rd| {
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
            o.cni.conf_dir.display(),
            o.cni.plugin_dirs
        ),
    )
}
