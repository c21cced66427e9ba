//! GetContainerEvents: changes of containers and sandboxes, as the library's event poller sees
//! them, fanned out to every subscriber. The poller runs only while someone listens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_cri::v1 as cri;
use tokio::sync::broadcast;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::Status;

use super::convert;

/// How often the poller looks (kubelet's evented PLEG relists every 300 s without events).
const INTERVAL: Duration = Duration::from_millis(100);

pub struct Hub {
    tx: broadcast::Sender<cri::ContainerEventResponse>,
    running: Arc<AtomicBool>,
    rt: crate::pod::Runtime,
}

impl Hub {
    pub fn start(rt: crate::pod::Runtime) -> Hub {
        let (tx, _) = broadcast::channel(1024);
        Hub {
            tx,
            running: Arc::new(AtomicBool::new(false)),
            rt,
        }
    }

    /// A stream of events from now on.
    pub fn subscribe(
        &self,
    ) -> impl Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send + 'static {
        let rx = self.tx.subscribe();
        if !self.running.swap(true, Ordering::SeqCst) {
            let (tx, running, rt) = (self.tx.clone(), self.running.clone(), self.rt.clone());
            std::thread::spawn(move || poll(rt, tx, running));
        }
        BroadcastStream::new(rx).filter_map(|r| match r {
            Ok(e) => Some(Ok(e)),
            // a slow reader missed some: it goes on with the next (kubelet relists)
            Err(_) => None,
        })
    }
}

fn poll(
    rt: crate::pod::Runtime,
    tx: broadcast::Sender<cri::ContainerEventResponse>,
    running: Arc<AtomicBool>,
) {
    loop {
        let stop = || tx.receiver_count() == 0;
        let _ = rt.events(INTERVAL, &stop, &mut |e| {
            if let Some(ev) = convert_event(&rt, e) {
                let _ = tx.send(ev);
            }
        });
        running.store(false, Ordering::SeqCst);
        // a subscriber that came as this poller stopped must not be left without one
        if tx.receiver_count() == 0 || running.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

fn convert_event(
    rt: &crate::pod::Runtime,
    e: &crate::pod::PodEvent,
) -> Option<cri::ContainerEventResponse> {
    use cri::ContainerEventType as T;
    let kind = match e.kind {
        "container_created" | "pod_created" => T::ContainerCreatedEvent,
        "container_started" | "pod_ready" => T::ContainerStartedEvent,
        "container_stopped" | "pod_stopped" => T::ContainerStoppedEvent,
        "container_removed" | "pod_removed" => T::ContainerDeletedEvent,
        _ => return None,
    };
    let st = rt.pod_status(&e.pod_id).ok();
    Some(cri::ContainerEventResponse {
        container_id: if e.container_id.is_empty() {
            e.pod_id.clone()
        } else {
            e.container_id.clone()
        },
        container_event_type: kind as i32,
        created_at: convert::nanos(Some(&e.time)),
        pod_sandbox_status: st.as_ref().map(|s| convert::pod_sandbox_status(&s.record)),
        containers_statuses: st
            .map(|s| s.containers.iter().map(convert::container_status).collect())
            .unwrap_or_default(),
    })
}
