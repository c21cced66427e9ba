//! RemoveContainer: its OCI state and cgroup, its rootfs mount, its record, its logs, its
//! name.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::pod::Runtime;
use crate::pod::error::{Error, Result, io};
use crate::pod::monitor::{self, Request};
use crate::pod::store::ContainerState;

impl Runtime {
    /// Remove a stopped (or never started) container.
    pub fn remove_container(&self, id: &str) -> Result<()> {
        let (pod, c) = self.find_container(None, id)?;
        if c.status.state == ContainerState::Running {
            return Err(Error::Precondition(format!(
                "container {} is running: stop it first",
                c.record.config.name
            )));
        }
        let dir = self.pod_dir(&pod.id);
        let rt = crate::oci::Runtime::new(dir.oci_root());
        match rt.delete(&c.record.id, true) {
            Ok(_) | Err(crate::oci::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = monitor::request(
            &dir,
            &Request::Forget {
                id: c.record.id.clone(),
            },
            Duration::from_secs(10),
        );
        self.images.unmount(&c.record.bundle)?;
        fs::remove_dir_all(&dir.container(&c.record.id).0)
            .map_err(io("remove the container's directory"))?;
        if c.record.config.log_path.is_some() {
            // the caller chose the file (the CRI): other attempts share its directory
            remove_log_file(&c.record.log_path);
        } else if let Some(d) = c.record.log_path.parent() {
            let _ = fs::remove_dir_all(d);
        }
        self.release_names(&c.record.id);
        Ok(())
    }
}

/// A log file and its rotated generations (`NAME.1`, ...).
fn remove_log_file(path: &Path) {
    let _ = fs::remove_file(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}
