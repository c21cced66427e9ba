//! RemovePodSandbox: everything a pod made goes — containers, monitor, namespaces, network,
//! cgroup, mounts, state, logs, its name.

use std::fs;
use std::time::Duration;

use crate::pod::error::{Error, Result, io};
use crate::pod::net::netns;
use crate::pod::store::{ContainerState, PodState};
use crate::pod::{Runtime, cgroup, monitor};

impl Runtime {
    /// Remove a pod and everything it made. A running pod needs `force` (it is stopped first,
    /// with no grace).
    pub fn remove_pod_sandbox(&self, key: &str, force: bool) -> Result<()> {
        let st = self.pod_status(key)?;
        let dir = self.pod_dir(&st.record.id);
        let running = st
            .containers
            .iter()
            .any(|c| c.status.state == ContainerState::Running);
        if running && !force {
            return Err(Error::Precondition(format!(
                "pod {} has running containers: stop it first or use --force",
                st.record.config.name
            )));
        }
        if running || st.record.state == PodState::Ready {
            self.stop_pod_sandbox(
                &st.record.id,
                Some(if force {
                    Duration::ZERO
                } else {
                    Duration::from_secs(st.record.config.termination_grace_seconds)
                }),
            )?;
        }
        for c in &st.containers {
            self.remove_container(&c.record.id)?;
        }
        monitor::stop(&dir);
        netns::remove(&dir.0)?;
        cgroup::remove(&st.record.cgroup, &self.pod_cgroup_created(&st.record.id))?;
        for v in &st.record.config.volumes {
            let _ = nix::mount::umount2(&dir.volume(&v.name), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&dir.shm(), nix::mount::MntFlags::MNT_DETACH);
        fs::remove_dir_all(&dir.0).map_err(io(format!("remove {}", dir.0.display())))?;
        let _ = fs::remove_dir_all(&st.record.log_dir);
        self.release_names(&st.record.id);
        Ok(())
    }
}
