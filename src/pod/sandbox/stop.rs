//! StopPodSandbox: every container stopped at once (their grace periods overlap, as with
//! kubelet), then the pod's network taken down; the pod stays, NotReady, until removed.

use std::fs;
use std::time::Duration;

use crate::pod::Runtime;
use crate::pod::error::{Error, Result};
use crate::pod::monitor::{self, Request};
use crate::pod::net::cni;
use crate::pod::store::{ContainerState, PodState, read_json, write_json};

impl Runtime {
    /// Stop every container of the pod (grace period, then SIGKILL) and take down its network;
    /// the pod stays, NotReady, until removed.
    pub fn stop_pod_sandbox(&self, key: &str, grace: Option<Duration>) -> Result<()> {
        let st = self.pod_status(key)?;
        let grace = grace.unwrap_or(Duration::from_secs(
            st.record.config.termination_grace_seconds,
        ));
        let dir = self.pod_dir(&st.record.id);
        // NotReady first: a stop cut short never leaves a Ready pod without its network
        let mut rec = st.record.clone();
        rec.state = PodState::NotReady;
        write_json(&dir.record(), &rec)?;
        // out of its services' endpoints at the start of its grace period
        self.services_changed();
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = st
                .containers
                .iter()
                .map(|c| {
                    let dir = &dir;
                    let has_monitor = st.monitor_pid.is_some();
                    s.spawn(move || {
                        if c.status.state == ContainerState::Running {
                            self.stop_container(&c.record.id, grace)
                        } else {
                            if has_monitor {
                                // no restarts after a stop
                                let _ = monitor::request(
                                    dir,
                                    &Request::Stop {
                                        id: c.record.id.clone(),
                                        signal: libc::SIGKILL,
                                        timeout_ms: 0,
                                    },
                                    Duration::from_secs(10),
                                );
                            }
                            Ok(())
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Internal("stop thread panicked".into())))
                })
                .collect()
        });
        for r in results {
            r?;
        }
        // the network's result, or only its request when the ADD's creator was killed
        for file in [dir.network(), dir.network_pending()] {
            let Ok(cached) = read_json::<cni::Cached>(&file) else {
                continue;
            };
            let paths = st
                .record
                .cni
                .clone()
                .unwrap_or_else(|| self.opts.cni.clone());
            crate::fault::point("pod-stop:before-del");
            cni::del(&paths, &cached)?;
            crate::fault::point("pod-stop:after-del");
            let _ = fs::remove_file(&file);
        }
        Ok(())
    }
}
