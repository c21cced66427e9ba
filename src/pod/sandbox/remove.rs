//! RemovePodSandbox: everything a pod made goes — containers, monitor, namespaces, network,
//! cgroup, mounts, state, logs, its name. A removal is in flight (`<root>/inflight/`) and the
//! pod reads NotReady (`removing`) until it is done; one killed part way is finished by the
//! next berth. A pod whose creation was cut short (no record yet) is removed by its name.

use std::fs;
use std::time::Duration;

use crate::pod::error::{Error, Result, io};
use crate::pod::inflight::Op;
use crate::pod::net::netns;
use crate::pod::store::ContainerState;
use crate::pod::{Runtime, cgroup, monitor};

impl Runtime {
    /// Remove a pod and everything it made. A running pod needs `force` (it is stopped first,
    /// with no grace).
    pub fn remove_pod_sandbox(&self, key: &str, force: bool) -> Result<()> {
        let rec = match self.find_pod(key) {
            Ok(r) => r,
            Err(Error::NotFound(_)) if force => return self.remove_half_made(key),
            Err(e) => return Err(e),
        };
        let marker = self.begin(&Op::RemovePod(rec.id.clone()))?;
        let r = self.remove_pod(&rec.id, force);
        self.services_changed();
        // a removal refused before it began leaves nothing to finish; one that failed part
        // way is finished by the next berth (the pod reads NotReady meanwhile)
        if r.is_ok() || !self.pod_dir(&rec.id).removing().exists() {
            marker.done();
        }
        r
    }

    /// The removal itself (also what finishes a killed one).
    pub(crate) fn remove_pod(&self, id: &str, force: bool) -> Result<()> {
        let st = self.pod_status(id)?;
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
        // from here on the pod reads NotReady, whatever happens to this process
        fs::write(dir.removing(), b"").map_err(io("mark the pod as being removed"))?;
        crate::fault::point("pod-remove:marked");
        // stopped whatever its record says: a pod whose containers have not started yet has
        // its network, and one whose stop was cut short may have part of it
        let grace = if force {
            Duration::ZERO
        } else {
            Duration::from_secs(st.record.config.termination_grace_seconds)
        };
        self.stop_pod_sandbox(&st.record.id, Some(grace))?;
        crate::fault::point("pod-remove:stopped");
        for c in &st.containers {
            self.remove_container(&c.record.id)?;
        }
        monitor::stop(&dir);
        crate::volume::Volumes::new(&self.opts.data_root).release_pod(&st.record.id)?;
        netns::remove(&dir.0)?;
        cgroup::remove(&st.record.cgroup, &self.pod_cgroup_created(&st.record.id))?;
        crate::fault::point("pod-remove:cgroup");
        self.unmount_below(&dir.0);
        // the directory last: until it is gone, the marker in it lets a removal cut short
        // here be finished
        let _ = fs::remove_dir_all(&st.record.log_dir);
        self.release_names(&st.record.id);
        fs::remove_dir_all(&dir.0).map_err(io(format!("remove {}", dir.0.display())))?;
        Ok(())
    }

    /// `pod rm -f NAME` of a pod whose creation was cut short before its record: whatever
    /// carries the name goes (a live creator then fails and rolls back what it made).
    fn remove_half_made(&self, key: &str) -> Result<()> {
        let (ns, name) = key.split_once('/').unwrap_or(("default", key));
        let Some(owner) = self.name_owner(&format!("pod_{ns}_{name}")) else {
            return Err(Error::NotFound(format!("pod {key:?}")));
        };
        self.rollback_pod(&self.pod_dir(&owner));
        self.release_names(&owner);
        Ok(())
    }

    /// Unmount everything below `dir`, deepest first (a half-made container's rootfs, a
    /// volume).
    pub(crate) fn unmount_below(&self, dir: &std::path::Path) {
        let mounts = crate::linux::mountinfo::read().unwrap_or_default();
        for m in crate::linux::mountinfo::below(&mounts, dir) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
