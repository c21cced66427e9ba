//! The parent's side of a new container init's setup: the messages it reads until the init
//! is ready (warnings, its terminal, its seccomp notify fd, hooks to run), why an init that
//! died silently died, and handing a seccomp notify fd to its listener.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::error::{Error, Result};
use super::plan::Plan;
use crate::linux::SysError;
use crate::linux::cgroup;
use crate::linux::channel::{Channel, Msg};

/// What the child sent before it was ready.
#[derive(Default)]
pub(crate) struct Ready {
    pub warnings: Vec<String>,
    /// The terminal's master, when this process proxies it.
    pub terminal: Option<OwnedFd>,
}

/// Why an init that died silently during setup died, if its cgroup's OOM counter says the
/// memory limit killed it.
pub(crate) fn oom_during_setup(plan: &Plan, before: u64) -> Option<String> {
    let now = cgroup::stats::oom_kills(&plan.cgroup.dirs);
    if now <= before {
        return None;
    }
    let limit = plan
        .cgroup
        .writes
        .iter()
        .find(|w| w.file == "memory.max" || w.file == "memory.limit_in_bytes")
        .map(|w| format!(" of {} bytes", w.value.trim()))
        .unwrap_or_default();
    Some(format!(
        "container init was killed during setup by the out-of-memory killer: its memory \
         limit{limit} (linux.resources.memory.limit) is too small for it to start"
    ))
}

/// Read the child's messages until it is ready (or has failed). `hooks` runs the runtime's
/// hooks when the init asks, and returns the state JSON for the init's own hooks; `why_dead`
/// explains an init that died without a report (the OOM killer).
pub(crate) fn wait_ready(
    ch: &Channel,
    pid: i32,
    why_dead: &dyn Fn() -> Option<String>,
    seccomp: &mut dyn FnMut(OwnedFd) -> Result<()>,
    hooks: &mut dyn FnMut() -> Result<String>,
) -> Result<Ready> {
    let mut ready = Ready::default();
    loop {
        match ch.recv_with_fd()? {
            Some((Msg::Ready, _)) => return Ok(ready),
            Some((Msg::Hooks, _)) => {
                let state = hooks()?;
                ch.send(&Msg::State(state))?;
                ch.send(&Msg::Go)?;
            }
            Some((Msg::Warning(w), _)) => ready.warnings.push(w),
            Some((Msg::Terminal, fd)) => ready.terminal = fd,
            Some((Msg::Seccomp, Some(fd))) => {
                seccomp(fd)?;
                ch.send(&Msg::Go)?;
            }
            Some((Msg::Error(e), _)) => return Err(Error::Init(e)),
            Some((Msg::Seccomp, None)) | Some((Msg::Go, _)) | Some((Msg::State(_), _)) | None => {
                let status = waitpid(Pid::from_raw(pid), None);
                return Err(Error::Init(why_dead().unwrap_or_else(|| {
                    format!(
                        "container init exited during setup without a report ({})",
                        describe_exit(status)
                    )
                })));
            }
        }
    }
}

/// Hand a seccomp notify fd to the `listenerPath` socket with the container process state, as
/// the runtime-spec describes (`ContainerProcessState` + the fd as SCM_RIGHTS).
pub(crate) fn send_seccomp_listener(
    listener: &(PathBuf, String),
    fd: OwnedFd,
    pid: i32,
    state: &super::state::State,
    creating: bool,
) -> Result<()> {
    let (path, metadata) = listener;
    let mut st = serde_json::to_value(state).expect("state serialises");
    if let Some(o) = st.as_object_mut() {
        // the state of a container whose process is not running yet
        if creating {
            o.insert("status".into(), "creating".into());
        }
        o.remove("rootfs");
        o.remove("created");
        o.remove("owner");
    }
    let msg = serde_json::json!({
        "ociVersion": super::state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": st,
    });
    let sock = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| SysError::new(format!("connect to seccomp listener {}", path.display()), e))?;
    crate::linux::channel::send_fd(sock.as_fd(), fd.as_fd(), msg.to_string().as_bytes())?;
    Ok(())
}

fn describe_exit(s: nix::Result<WaitStatus>) -> String {
    match s {
        Ok(WaitStatus::Exited(_, c)) => format!("exit status {c}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => e.to_string(),
    }
}
