//! A container's logs (CRI format, as its monitor writes them), and reopening its log file
//! after the caller rotated it.

use std::time::Duration;

use crate::pod::Runtime;
use crate::pod::error::Result;
use crate::pod::logs;
use crate::pod::monitor::{self, Request};
use crate::pod::store::ContainerState;

impl Runtime {
    /// Write a container's logs to `out` (following until it exits, with `follow`).
    pub fn logs(
        &self,
        id: &str,
        q: &logs::LogQuery,
        follow: bool,
        out: &mut dyn std::io::Write,
    ) -> Result<()> {
        let (pod, c) = self.find_container(None, id)?;
        let path = c
            .status
            .log_path
            .clone()
            .unwrap_or(c.record.log_path.clone());
        let offset = logs::copy(&path, q, out)?;
        if follow {
            let cdir = self.pod_dir(&pod.id).container(&c.record.id);
            logs::follow(
                &path,
                offset,
                &logs::LogQuery {
                    tail: None,
                    since: None,
                    ..q.clone()
                },
                out,
                &mut || {
                    cdir.read_status(&c.record.created)
                        .map(|s| s.state != ContainerState::Running)
                        .unwrap_or(true)
                },
            )?;
        }
        Ok(())
    }

    /// Make the monitor reopen a container's log file (after the caller rotated it).
    pub fn reopen_log(&self, id: &str) -> Result<()> {
        let (pod, c) = self.running_container(id)?;
        monitor::request(
            &self.pod_dir(&pod.id),
            &Request::ReopenLog {
                id: c.record.id.clone(),
            },
            Duration::from_secs(10),
        )?
        .expect_ok("reopen-log")
    }
}
