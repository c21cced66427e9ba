//! Exec: a process in a running container, through `berth exec` on the pod's OCI root (the
//! OCI runtime's clone, never a re-exec of the caller): with the caller's stdio, captured
//! with a deadline (ExecSync), or wired by the caller (the CRI's streaming server).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::pod::Runtime;
use crate::pod::error::{Error, Result, io};

impl Runtime {
    /// Run a process in a container and wait for it, with the caller's stdio (`tty`: a
    /// terminal proxied from the caller's). Returns its exit code.
    pub fn exec(&self, id: &str, cmd: &[String], tty: bool) -> Result<i32> {
        let mut c = self.exec_command(id, cmd, tty)?;
        let st = c.status().map_err(io("run berth exec"))?;
        Ok(st
            .code()
            .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)))
    }

    /// Run a process in a container, capturing its output. At `timeout` the process and every
    /// descendant are killed (they may hold the output pipes open) and the call returns
    /// [`Error::Timeout`] then, not when the pipes close.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, Vec<u8>)> {
        let mut c = self.exec_command(id, cmd, false)?;
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("run berth exec"))?;
        // `berth exec` is the exec'd process's parent: its tree holds everything exec started
        let pid = child.id() as i32;
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let killer = std::thread::spawn(move || match done_rx.recv_timeout(timeout) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                crate::linux::proc::kill_tree(pid);
                true
            }
            _ => false,
        });
        let out = child.wait_with_output().map_err(io("wait for berth exec"));
        let _ = done_tx.send(());
        let timed_out = killer.join().unwrap_or(false);
        if timed_out {
            return Err(Error::Timeout(format!(
                "exec in container {id} took longer than {timeout:?}: killed"
            )));
        }
        let out = out?;
        let code = out.status.code().unwrap_or(
            128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0),
        );
        Ok((code, out.stdout, out.stderr))
    }

    /// The `berth exec` command that runs `cmd` in a running container (for callers that wire
    /// its stdio themselves, as the CRI's streaming server does).
    pub fn exec_command(&self, id: &str, cmd: &[String], tty: bool) -> Result<Command> {
        let (pod, c) = self.running_container(id)?;
        if cmd.is_empty() {
            return Err(Error::Invalid("exec: no command".into()));
        }
        let mut command = Command::new(&self.opts.berth_binary);
        let dir = self.pod_dir(&pod.id);
        command
            .arg("--root")
            .arg(dir.oci_root())
            .arg("--seccomp-cache")
            .arg(dir.seccomp_cache())
            .arg("exec");
        if tty {
            command.arg("--tty");
        }
        command.arg(&c.record.id).args(cmd);
        Ok(command)
    }
}
