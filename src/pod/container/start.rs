//! StartContainer: the pod's monitor creates the container and starts it, and so becomes its
//! init's parent.

use std::time::Duration;

use crate::pod::Runtime;
use crate::pod::error::{Error, Result};
use crate::pod::monitor::{self, Request, Response};

impl Runtime {
    /// Start a created container; returns its init's pid.
    pub fn start_container(&self, id: &str) -> Result<i32> {
        let (pod, c) = self.find_container(None, id)?;
        let answer = monitor::request(
            &self.pod_dir(&pod.id),
            &Request::Start {
                id: c.record.id.clone(),
            },
            Duration::from_secs(120),
        )?;
        match answer.into_result()? {
            Response::Started { pid } => Ok(pid),
            other => Err(Error::Internal(format!(
                "the pod monitor answered {other:?} to start"
            ))),
        }
    }
}
