//! Waiting for a pod to start, as `berth pod run` does: until every init container has exited
//! 0 and every other container's process has been exec'd (its program runs, not berth's setup),
//! or until the first container that failed. A pod waiting for a ConfigMap or Secret is waited
//! for too (another berth applying it starts the pod).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::Runtime;
use super::container::ContainerInfo;
use super::error::{Error, Result};
use super::sandbox::PodStatus;
use super::store::ContainerState;

/// Where a pod's start stands.
#[derive(Debug, PartialEq, Eq)]
enum Judged {
    Started,
    /// The first container that failed, and why.
    Failed(String),
    /// The containers not there yet.
    Waiting(Vec<String>),
}

impl Runtime {
    /// Wait until pod `key` has started (see the module's notes), up to `timeout`. A container
    /// that failed is an error naming it with its reason and message; the pod is left as it is
    /// (its restart policy keeps applying).
    pub fn wait_started(&self, key: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.pod_status(key)?;
            if let Some(w) = &st.waiting {
                if Instant::now() >= deadline {
                    return Err(Error::Timeout(format!(
                        "pod {}/{}: {}: {} (waited {})",
                        st.record.config.namespace,
                        st.record.config.name,
                        w.reason,
                        w.message,
                        humantime::format_duration(timeout)
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            match judge(&st) {
                Judged::Started => return Ok(()),
                Judged::Failed(why) => return Err(Error::Precondition(why)),
                Judged::Waiting(names) if Instant::now() >= deadline => {
                    return Err(Error::Timeout(format!(
                        "pod {}: containers {} had not started after {}",
                        st.record.config.name,
                        names.join(", "),
                        humantime::format_duration(timeout)
                    )));
                }
                Judged::Waiting(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

fn judge(st: &PodStatus) -> Judged {
    let mut waiting = Vec::new();
    for c in &st.containers {
        let name = &c.record.config.name;
        let s = &c.status;
        let code = s.exit_code.unwrap_or(-1);
        let why = || {
            let reason = s.reason.clone().unwrap_or_else(|| "Error".into());
            match s.message.as_deref() {
                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                _ => format!("{reason} (see `berth pod logs -c {name}`)"),
            }
        };
        match s.state {
            ContainerState::Exited if s.reason.as_deref() == Some("StartError") => {
                return Judged::Failed(format!("container {name} could not start: {}", why()));
            }
            ContainerState::Exited if code != 0 => {
                let kind = if c.record.config.init {
                    "init container"
                } else {
                    "container"
                };
                return Judged::Failed(format!("{kind} {name} exited with code {code}: {}", why()));
            }
            ContainerState::Exited => {}
            ContainerState::Running if !c.record.config.init && execd(c, st.monitor_pid) => {}
            _ => waiting.push(name.clone()),
        }
    }
    if waiting.is_empty() {
        Judged::Started
    } else {
        Judged::Waiting(waiting)
    }
}

/// Has the container's init exec'd its program: it no longer runs berth (the monitor's
/// binary) or berth's exec stub (a memfd)?
fn execd(c: &ContainerInfo, monitor: Option<i32>) -> bool {
    let pid = c.status.pid;
    let exe = format!("/proc/{pid}/exe");
    let Ok(link) = fs::read_link(&exe) else {
        return false;
    };
    if link.to_string_lossy().starts_with("/memfd:berth") {
        return false;
    }
    let id = |p: &str| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let berth = monitor.and_then(|m| id(&format!("/proc/{m}/exe")));
    berth.is_none() || id(&exe) != berth
}
