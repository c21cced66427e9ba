//! StopContainer: its stop signal, then SIGKILL after the grace period (the monitor times it);
//! the call returns once the monitor recorded the exit.

use std::time::{Duration, Instant};

use crate::pod::error::{Error, Result};
use crate::pod::monitor::{self, Request};
use crate::pod::store::{self, ContainerState, write_json};
use crate::pod::{Runtime, cgroup};

impl Runtime {
    /// Stop a container: its stop signal, then SIGKILL after `grace`. Waits until it exited.
    pub fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let (pod, c) = self.find_container(None, id)?;
        let dir = self.pod_dir(&pod.id);
        let cdir = dir.container(&c.record.id);
        let sig = crate::linux::signal::parse(&c.record.stop_signal).unwrap_or(libc::SIGTERM);
        let asked = monitor::request(
            &dir,
            &Request::Stop {
                id: c.record.id.clone(),
                signal: sig,
                timeout_ms: grace.as_millis() as u64,
            },
            Duration::from_secs(10),
        );
        match asked {
            Ok(answer) => answer.expect_ok("stop")?,
            Err(e) => {
                // the monitor is gone: nobody can collect the exit status; kill what is in
                // the container's cgroup and say so (with no monitor, the library is the
                // status's writer)
                for p in cgroup::procs(&c.record.cgroup) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let mut s = c.status.clone();
                s.state = ContainerState::Exited;
                s.finished_at = Some(store::now());
                s.reason = Some("Unknown".into());
                s.message = Some(format!(
                    "killed without its pod monitor ({e}); exit code unknown"
                ));
                return write_json(&cdir.status(), &s);
            }
        }
        let deadline = Instant::now() + grace + Duration::from_secs(10);
        loop {
            let s = cdir.read_status(&c.record.created)?;
            if s.state != ContainerState::Running {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "container {} did not exit after SIGKILL",
                    c.record.config.name
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
