//! Rolling back what a killed creator left half-made: pods whose `creating` marker is no
//! longer locked (or that never got one, nor a record), containers likewise, and name
//! reservations no owner was recorded in.

use std::fs;

use super::abandoned;
use crate::pod::Runtime;
use crate::pod::net::{cni, netns};
use crate::pod::store::{PodDir, read_json};

impl Runtime {
    /// Roll back what a killed caller left half-made: pods still marked as being created
    /// (their monitor, network, namespaces, cgroups, mounts, names) and containers whose
    /// creation did not finish. A daemon calls this when it starts. Returns what it removed.
    pub fn recover(&self) -> Vec<String> {
        let mut done = Vec::new();
        for id in self.store.pod_ids() {
            let dir = self.pod_dir(&id);
            if abandoned(&dir.creating()) || (!dir.record().exists() && !dir.creating().exists()) {
                self.rollback_pod(&dir);
                self.release_names(&id);
                done.push(format!("pod {id}"));
                continue;
            }
            for cid in dir.container_ids() {
                let c = dir.container(&cid);
                if abandoned(&c.creating()) || (!c.record().exists() && !c.creating().exists()) {
                    let _ = self.images.unmount(&c.bundle());
                    let _ = fs::remove_dir_all(&c.0);
                    self.release_names(&cid);
                    done.push(format!("container {cid}"));
                }
            }
        }
        self.drop_unowned_names();
        done
    }

    /// Undo every step of a pod's creation that may have happened (each tolerates absence).
    fn rollback_pod(&self, dir: &PodDir) {
        crate::pod::monitor::stop(dir);
        for f in [dir.network(), dir.network_pending()] {
            if let Ok(c) = read_json::<cni::Cached>(&f) {
                let _ = cni::del(&self.opts.cni, &c);
            }
        }
        let _ = netns::remove(&dir.0);
        let id = dir
            .0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for d in self.pod_cgroup_created(&id).iter().rev() {
            let _ = fs::remove_dir(d);
        }
        let mounts = crate::linux::mountinfo::read().unwrap_or_default();
        for m in crate::linux::mountinfo::below(&mounts, &dir.0) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&dir.0);
    }
}
