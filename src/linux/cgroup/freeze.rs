//! Freezing a cgroup (pause/resume): `freezer.state` on v1, `cgroup.freeze` on v2. Both wait
//! until the kernel reports the whole cgroup frozen or thawed.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Dirs;
use crate::linux::{Result, Step, SysError};

/// Is the cgroup frozen? `false` if it has no freezer.
pub fn is_frozen(dirs: &Dirs) -> bool {
    match dirs {
        Dirs::V2(d) => fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1"),
        Dirs::V1(_) => dirs
            .v1_dir("freezer")
            .and_then(|d| fs::read_to_string(d.join("freezer.state")).ok())
            .is_some_and(|s| s.trim() != "THAWED"),
    }
}

/// Freeze (`true`) or thaw (`false`) every process in the cgroup.
pub fn set_frozen(dirs: &Dirs, frozen: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    match dirs {
        Dirs::V2(d) => {
            let file = d.join("cgroup.freeze");
            fs::write(&file, if frozen { "1" } else { "0" })
                .step(|| format!("write {}", file.display()))?;
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            wait_for(
                &d.join("cgroup.events"),
                |s| s.lines().any(|l| l == want),
                deadline,
            )
        }
        Dirs::V1(_) => {
            let d = dirs
                .v1_dir("freezer")
                .ok_or_else(|| SysError::other("freeze", "no freezer cgroup on this host"))?;
            let file = d.join("freezer.state");
            let (value, want) = if frozen {
                ("FROZEN", "FROZEN")
            } else {
                ("THAWED", "THAWED")
            };
            loop {
                // v1 can stay in FREEZING when a task is busy: writing again retries
                fs::write(&file, value).step(|| format!("write {}", file.display()))?;
                let now = fs::read_to_string(&file).step(|| format!("read {}", file.display()))?;
                if now.trim() == want {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(SysError::other(
                        format!("freeze {}", d.display()),
                        format!("stuck in {}", now.trim()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn wait_for(file: &Path, done: impl Fn(&str) -> bool, deadline: Instant) -> Result<()> {
    loop {
        let s = fs::read_to_string(file).step(|| format!("read {}", file.display()))?;
        if done(&s) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SysError::other(
                format!("wait on {}", file.display()),
                "timed out",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
