//! Starting a container: the monitor makes its stdio (pipes, or a terminal through a console
//! socket), then forks a short-lived worker that runs the OCI create and start in the pod's
//! OCI root and reports a typed [`WorkerResult`]; the worker exits at once, so the container's
//! init is reparented to the monitor (a subreaper), which alone can collect its exit.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::Instant;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::keeper::{End, ToKeeper};
use super::protocol::WorkerResult;
use super::{Ctr, Monitor, attempt_log};
use crate::pod::error::{Error, Result, sys};
use crate::pod::logs::LogWriter;
use crate::pod::store::{
    ContainerRecord, ContainerState, ContainerStatus, CtrDir, VERSION, read_record, write_json,
};

/// The container's stdio, made before the worker forks.
struct Stdio {
    out: (OwnedFd, OwnedFd),
    err: (OwnedFd, OwnedFd),
    /// stdin: a pipe the monitor writes (attach) when the container has stdin and no terminal.
    stdin: Option<(OwnedFd, OwnedFd)>,
    /// A terminal: the runtime makes it and sends its master to this console socket.
    console: Option<(UnixListener, std::path::PathBuf)>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))
}

impl Stdio {
    fn new(id: &str, rec: &ContainerRecord) -> Result<Stdio> {
        let stdin = if rec.config.stdin && !rec.config.tty {
            Some(pipe()?)
        } else {
            None
        };
        let console = if rec.config.tty {
            let path = CtrDir::console_socket(id);
            let _ = fs::remove_file(&path);
            let l = UnixListener::bind(&path).map_err(|e| Error::Io {
                step: format!("listen on {}", path.display()),
                err: e,
            })?;
            l.set_nonblocking(true).ok();
            Some((l, path))
        } else {
            None
        };
        Ok(Stdio {
            out: pipe()?,
            err: pipe()?,
            stdin,
            console,
        })
    }
}

impl Monitor {
    /// Create and start a container through a forked worker; returns the init's pid.
    pub(super) fn start(&mut self, id: &str) -> Result<i32> {
        let cdir = self.dir.container(id);
        let rec: ContainerRecord = read_record(&cdir.record())?;
        let prev: ContainerStatus = self
            .ctrs
            .get(id)
            .map(|c| c.status.clone())
            .unwrap_or_default();
        if prev.state == ContainerState::Running {
            return Err(Error::Precondition(format!(
                "container {} is running",
                rec.config.name
            )));
        }
        let attempt = if prev.state == ContainerState::Exited {
            prev.restart_count + 1
        } else {
            prev.restart_count
        };
        let log_path = attempt_log(&rec.log_path, attempt);
        let log = LogWriter::open(&log_path, crate::pod::logs::MAX_SIZE)?;
        let io = Stdio::new(id, &rec)?;
        let (res_r, res_w) = pipe()?;
        let worker = match crate::linux::sys::fork_with_flags(0, None).map_err(|e| Error::Io {
            step: "fork container worker".into(),
            err: e,
        })? {
            crate::linux::sys::Forked::Child => self.worker(id, &rec, attempt, &io, res_w),
            crate::linux::sys::Forked::Parent(pid) => pid,
        };
        let Stdio {
            out,
            err,
            stdin,
            console,
        } = io;
        drop((out.1, err.1, res_w));
        let mut text = String::new();
        let _ = fs::File::from(res_r).read_to_string(&mut text);
        let _ = waitpid(Pid::from_raw(worker), None);
        // the terminal's master came to the console socket during the create
        let master: Option<OwnedFd> = console.and_then(|(l, path)| {
            let m = l
                .accept()
                .ok()
                .and_then(|(c, _)| crate::linux::channel::recv_fd(c.as_fd()).ok())
                .map(|(fd, _)| fd);
            let _ = fs::remove_file(path);
            m
        });
        let now = crate::pod::store::now();
        let mut status = ContainerStatus {
            version: VERSION,
            restart_count: attempt,
            log_path: Some(log_path),
            created_at: Some(rec.created.clone()),
            // what the container's probes said, and how its last attempt ended, stay
            probe_failures: prev.probe_failures,
            last_probe_failure: prev.last_probe_failure.clone(),
            last_exit: (prev.state == ContainerState::Exited)
                .then(|| crate::pod::store::LastExit {
                    exit_code: prev.exit_code,
                    reason: prev.reason.clone(),
                    message: prev.message.clone(),
                    finished_at: prev.finished_at.clone(),
                })
                .or(prev.last_exit.clone()),
            ..Default::default()
        };
        let result = match serde_json::from_str::<WorkerResult>(&text) {
            Ok(WorkerResult::Started { pid, oom_kills }) => {
                status.state = ContainerState::Running;
                status.pid = pid;
                status.pid_start = crate::linux::proc::stat(pid).map_or(0, |s| s.start_time);
                // the baseline of this attempt's cgroup (made anew by the worker), not the
                // previous attempt's: each OOM kill of each attempt reads OOMKilled
                status.oom_base = oom_kills;
                status.started_at = Some(now);
                Ok(pid)
            }
            other => {
                let (kind, e) = match other {
                    Ok(WorkerResult::Failed { kind, message }) => (kind, message),
                    _ => (
                        crate::pod::error::ErrorKind::Internal,
                        "the container worker died without a report".to_string(),
                    ),
                };
                status.state = ContainerState::Exited;
                status.exit_code = Some(128);
                status.finished_at = Some(now);
                status.reason = Some("StartError".into());
                status.message = Some(e.clone());
                Err(Error::of_kind(
                    kind,
                    format!("start container {}: {e}", rec.config.name),
                ))
            }
        };
        let ok = result.is_ok();
        let mut c = Ctr::new(rec, status);
        c.log = Some(log);
        c.started = ok.then(Instant::now);
        if ok {
            c.probes.begin(Instant::now());
            c.status.ready = c.probes.ready_by_default();
        }
        c.input = stdin.map(|(_, w)| w);
        if ok {
            let mut ends = match master {
                Some(m) => vec![(End::Tty, m)],
                None => vec![(End::Stdout, out.0), (End::Stderr, err.0)],
            };
            if let Some(i) = c.input.take() {
                ends.push((End::Stdin, i));
            }
            c.set_stdio(ends);
            // the keeper holds a copy: a monitor killed now leaves the pipes with a reader
            let held: Vec<(End, std::os::fd::BorrowedFd<'_>)> = c.stdio_ends();
            let (kinds, fds): (Vec<End>, Vec<_>) = held.into_iter().unzip();
            let msg = ToKeeper::Hold {
                id: id.to_string(),
                ends: kinds,
            };
            if let Some(k) = &self.keeper
                && super::keeper::send(k, &msg, &fds).is_err()
            {
                eprintln!("berth pod monitor: the keeper is gone");
            }
        }
        let written = write_json(&cdir.status(), &c.status);
        self.ctrs.insert(id.to_string(), c);
        written?;
        if ok {
            // a new endpoint, maybe; the pod ready, maybe
            self.readiness_changed();
        }
        result
    }

    /// The worker: stdio to the pipes, OCI create + start, report, exit.
    fn worker(&self, id: &str, rec: &ContainerRecord, attempt: u32, io: &Stdio, res: OwnedFd) -> ! {
        match &io.stdin {
            Some((r, _)) => {
                let _ = nix::unistd::dup2_stdin(r);
            }
            None => {
                if let Ok(n) = fs::OpenOptions::new().read(true).open("/dev/null") {
                    let _ = nix::unistd::dup2_stdin(&n);
                }
            }
        }
        let _ = nix::unistd::dup2_stdout(&io.out.1);
        let _ = nix::unistd::dup2_stderr(&io.err.1);
        let rt = crate::oci::Runtime::new(self.dir.oci_root())
            .with_seccomp_cache(self.dir.seccomp_cache());
        let _ = rt.delete(id, true);
        let r: std::result::Result<(i32, u64), Error> = (|| {
            // a restart starts from the image again, with a fresh writable layer
            if attempt > 0 {
                crate::image::bundle::reset_rootfs(&rec.bundle)
                    .map_err(|e| Error::Internal(format!("a fresh writable layer: {e}")))?;
            }
            let opts = crate::oci::CreateOptions {
                bundle: rec.bundle.clone(),
                console_socket: io.console.as_ref().map(|(_, p)| p.clone()),
                ..Default::default()
            };
            let c = rt.create(id, &opts)?;
            let oom_kills = crate::pod::cgroup::oom_kills(&rec.cgroup);
            if let Err(e) = rt.start(id) {
                let _ = rt.delete(id, true);
                return Err(e.into());
            }
            Ok((c.pid, oom_kills))
        })();
        let report = match r {
            Ok((pid, oom_kills)) => WorkerResult::Started { pid, oom_kills },
            Err(e) => WorkerResult::Failed {
                kind: e.kind(),
                message: e.to_string(),
            },
        };
        let mut w = fs::File::from(res);
        let _ = w.write_all(&serde_json::to_vec(&report).expect("results serialise"));
        drop(w);
        crate::linux::sys::exit_now(0)
    }
}
