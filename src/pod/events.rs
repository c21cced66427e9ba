//! Lifecycle events of pods and containers, found by comparing what is recorded on disk every
//! interval (the CRI's GetContainerEvents and `berth pod events` stream them).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Runtime;
use super::error::Result;
use super::store;

/// A change of a pod or container (`container_id` empty for pod events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodEvent {
    /// `pod_created`, `pod_ready`, `pod_stopped`, `pod_removed`, `container_created`,
    /// `container_started`, `container_stopped`, `container_removed`, and
    /// `pod_monitor_replaced` (a new monitor took over from one that was killed).
    pub kind: &'static str,
    pub pod_id: String,
    pub container_id: String,
    pub time: String,
}

/// The snapshot's key for a pod's monitor (no container ID looks like it).
const MONITOR: &str = "~monitor";

impl Runtime {
    /// Lifecycle events of every pod and container (as the CRI's GetContainerEvents streams
    /// them), found by comparing the recorded state every `interval`, until `stop()` says so.
    pub fn events(
        &self,
        interval: Duration,
        stop: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(&PodEvent),
    ) -> Result<()> {
        let snapshot = |rt: &Runtime| -> BTreeMap<(String, String), String> {
            let mut m = BTreeMap::new();
            for p in rt.list_pods().unwrap_or_default() {
                m.insert((p.id.clone(), String::new()), format!("{:?}", p.state));
                if let Ok(st) = rt.status_of(p.clone()) {
                    if let Some(pid) = st.monitor_pid {
                        m.insert((p.id.clone(), MONITOR.into()), pid.to_string());
                    }
                    for c in st.containers {
                        m.insert(
                            (p.id.clone(), c.record.id.clone()),
                            format!("{:?}/{}", c.status.state, c.status.restart_count),
                        );
                    }
                }
            }
            m
        };
        let mut before = snapshot(self);
        while !stop() {
            std::thread::sleep(interval);
            let mut now = snapshot(self);
            // a pod between monitors keeps its last one: the next one is a replacement
            for (k, v) in &before {
                if k.1 == MONITOR && now.contains_key(&(k.0.clone(), String::new())) {
                    now.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            for (k, v) in &now {
                let kind = match before.get(k) {
                    Some(old) if old == v => continue,
                    Some(_) if k.1 == MONITOR => "pod_monitor_replaced",
                    None if k.1 == MONITOR => continue,
                    Some(_) if k.1.is_empty() => {
                        if v == "Ready" {
                            "pod_ready"
                        } else {
                            "pod_stopped"
                        }
                    }
                    None if k.1.is_empty() => "pod_created",
                    _ if v.starts_with("Running") => "container_started",
                    _ if v.starts_with("Exited") => "container_stopped",
                    _ => "container_created",
                };
                emit(&PodEvent {
                    kind,
                    pod_id: k.0.clone(),
                    container_id: k.1.clone(),
                    time: store::now(),
                });
            }
            for k in before
                .keys()
                .filter(|k| !now.contains_key(*k) && k.1 != MONITOR)
            {
                let kind = if k.1.is_empty() {
                    "pod_removed"
                } else {
                    "container_removed"
                };
                emit(&PodEvent {
                    kind,
                    pod_id: k.0.clone(),
                    container_id: k.1.clone(),
                    time: store::now(),
                });
            }
            before = now;
        }
        Ok(())
    }
}
