//! Attach (to a running container's streams, through its pod's monitor) and port-forwarding
//! connections into a pod.

use std::time::Duration;

use crate::pod::Runtime;
use crate::pod::error::Result;
use crate::pod::monitor::protocol::{self, Request};
use crate::pod::net::netns;

impl Runtime {
    /// Attach to a running container's streams. The connection then carries
    /// `monitor::protocol::attach` frames: the container's output from the monitor, the caller's
    /// input, end of input and terminal sizes to it.
    pub fn attach(&self, id: &str) -> Result<std::os::unix::net::UnixStream> {
        let (pod, c) = self.running_container(id)?;
        let (answer, conn) = protocol::send(
            &self.pod_dir(&pod.id),
            &Request::Attach {
                id: c.record.id.clone(),
            },
            Duration::from_secs(10),
        )?;
        answer.expect_ok("attach")?;
        Ok(conn)
    }

    /// A TCP connection to `port` on the pod's loopback (the host's for a hostNetwork pod).
    pub fn connect_in_pod(&self, pod: &str, port: u16) -> Result<std::net::TcpStream> {
        let p = self.find_pod(pod)?;
        netns::connect(&self.pod_dir(&p.id).0, port)
    }
}
