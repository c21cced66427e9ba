//! A container's resource usage, and changes to its limits (UpdateContainerResources).

use crate::pod::Runtime;
use crate::pod::config::Resources;
use crate::pod::error::Result;

impl Runtime {
    /// A container's resource usage.
    pub fn stats(&self, id: &str) -> Result<crate::linux::cgroup::stats::Stats> {
        let (pod, c) = self.find_container(None, id)?;
        Ok(crate::oci::Runtime::new(self.pod_dir(&pod.id).oci_root()).stats(&c.record.id)?)
    }

    /// Change a running container's limits.
    pub fn update_resources(&self, id: &str, r: &Resources) -> Result<()> {
        r.validate("resources")?;
        let (pod, c) = self.find_container(None, id)?;
        crate::oci::Runtime::new(self.pod_dir(&pod.id).oci_root())
            .update(&c.record.id, &r.to_oci())?;
        Ok(())
    }
}
