//! Telling the services that pods changed, without a daemon: when a state root serves
//! Services (`<root>/services.json`, written by the first resync), a pod's creation, stop and
//! removal run `berth service __resync` and wait for it, and a pod monitor runs it at each
//! container start and exit without waiting (it reaps the process with its children). The
//! resync itself is [`crate::service::resync`].

use std::path::Path;
use std::process::{Command, Stdio};

use super::Runtime;

/// The resync command for state root `root`, run by `binary`.
fn command(binary: &Path, root: &Path) -> Option<Command> {
    if !root.join("services.json").exists() {
        return None;
    }
    let mut c = Command::new(binary);
    c.arg("--root")
        .arg(root)
        .args(["service", "__resync"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    Some(c)
}

impl Runtime {
    /// Resync this state root's services now, if it serves any (a failure is reported on
    /// stderr by the resync; the pod operation stands).
    pub(crate) fn services_changed(&self) {
        if let Some(mut c) = command(&self.opts.berth_binary, &self.opts.root) {
            let _ = c.status();
        }
    }
}

/// From a pod monitor (`pod_dir`: `<root>/pods/<id>`): start a resync and return at once.
pub(crate) fn changed_from_monitor(pod_dir: &Path) {
    let Some(root) = pod_dir.parent().and_then(Path::parent) else {
        return;
    };
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    if let Some(mut c) = command(&exe, root) {
        // the monitor's reap loop collects it
        let _ = c.stderr(Stdio::null()).spawn();
    }
}
