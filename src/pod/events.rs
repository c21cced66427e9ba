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
    /// `pod_monitor_replaced` (a new monitor took over from one that was killed);
    /// `container_ready` and `container_unready` (its readiness changed), `probe_failed`
    /// (with the probe's message).
    pub kind: &'static str,
    pub pod_id: String,
    pub container_id: String,
    pub time: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The snapshot's key for a pod's monitor (no container ID looks like it).
const MONITOR: &str = "~monitor";
/// Suffixes of a container's keys for its readiness and its probe failures.
const READY: &str = "~ready";
const PROBE: &str = "~probe";

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
                        let id = &c.record.id;
                        m.insert(
                            (p.id.clone(), format!("{id}{READY}")),
                            c.status.ready.to_string(),
                        );
                        m.insert(
                            (p.id.clone(), format!("{id}{PROBE}")),
                            format!(
                                "{}\t{}",
                                c.status.probe_failures,
                                c.status.last_probe_failure.as_deref().unwrap_or("")
                            ),
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
                let old = before.get(k);
                if let Some(cid) = k.1.strip_suffix(READY) {
                    if old.is_some_and(|o| o != v) || (old.is_none() && v == "true") {
                        emit(&PodEvent {
                            kind: if v == "true" {
                                "container_ready"
                            } else {
                                "container_unready"
                            },
                            pod_id: k.0.clone(),
                            container_id: cid.to_string(),
                            time: store::now(),
                            message: String::new(),
                        });
                    }
                    continue;
                }
                if let Some(cid) = k.1.strip_suffix(PROBE) {
                    if let Some(o) = old
                        && o != v
                    {
                        let (n, msg) = v.split_once('\t').unwrap_or((v, ""));
                        if n != "0" {
                            emit(&PodEvent {
                                kind: "probe_failed",
                                pod_id: k.0.clone(),
                                container_id: cid.to_string(),
                                time: store::now(),
                                message: msg.to_string(),
                            });
                        }
                    }
                    continue;
                }
                let kind = match old {
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
                    message: String::new(),
                });
            }
            for k in before.keys().filter(|k| {
                !now.contains_key(*k)
                    && k.1 != MONITOR
                    && !k.1.ends_with(READY)
                    && !k.1.ends_with(PROBE)
            }) {
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
                    message: String::new(),
                });
            }
            before = now;
        }
        Ok(())
    }
}
