//! The pod monitor: one small resident process per pod (`berth __pod-monitor <pod dir>`), as
//! CRI-O's conmon-rs, not one per container as conmon.
//!
//! - It is a child subreaper and creates the pod's containers itself (through a short-lived
//!   fork that runs the OCI create and start, then exits), so every container init becomes its
//!   child: only it can collect their exit statuses, and it always does, whether or not any
//!   berth command runs.
//! - It records each container's start, exit code, exit time and reason (OOMKilled from the
//!   cgroup's oom_kill counter) in `status.json`, atomically.
//! - It copies each container's stdout and stderr from pipes into its log file in the CRI
//!   format, with size-based rotation.
//! - With `shareProcessNamespace` it holds the pod's PID namespace: its PID 1 is a 169-byte
//!   pause stub that reaps orphans.
//! - For pods it supervises (CLI pods), it runs init containers in order, then the app
//!   containers, and restarts them per the restart policy with kubelet's back-off.
//!
//! It is driven over a unix socket, one JSON request and one JSON answer per connection.
//! It runs one thread and a `poll(2)` loop, no async runtime.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::config::RestartPolicy;
use super::error::{Error, Result};
use super::logs::{LineSplitter, LogWriter};
use super::state::{
    ContainerRecord, ContainerState, ContainerStatus, PodDir, PodRecord, read_json, write_json,
};

/// argv[1] that makes `berth` a pod monitor.
pub const ARG: &str = "__pod-monitor";

/// A request to the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create and start a recorded container (a restart of an exited one counts an attempt).
    Start {
        id: String,
    },
    /// Signal a container, then SIGKILL it after `timeout_ms`; it is not restarted.
    Stop {
        id: String,
        signal: i32,
        timeout_ms: u64,
    },
    /// Stop tracking a container (it was removed).
    Forget {
        id: String,
    },
    /// Run init containers in order, then the apps (supervised pods).
    Sequence {
        inits: Vec<String>,
        apps: Vec<String>,
    },
    /// Reopen a container's log file.
    ReopenLog {
        id: String,
    },
    /// Attach to a running container: after the `Ok` answer the connection carries frames
    /// (`[kind u8][len u32 BE][payload]`): from the monitor 1 stdout / 2 stderr output; to it
    /// 0 stdin data, 1 end of stdin, 2 terminal size (rows u16 BE, cols u16 BE).
    Attach {
        id: String,
    },
    Ping,
    /// Kill the pause process and exit.
    Shutdown,
}

/// The monitor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Started { pid: i32 },
    Pong { pid: i32, pause: Option<i32> },
    Error { message: String },
}

/// Send one request to a pod's monitor.
pub fn request(dir: &PodDir, req: &Request, timeout: Duration) -> Result<Response> {
    let sock = dir.socket();
    let mut s = UnixStream::connect(&sock).map_err(|e| Error::Io {
        step: format!("connect to pod monitor {}", sock.display()),
        err: e,
    })?;
    s.set_read_timeout(Some(timeout)).ok();
    let mut line = serde_json::to_vec(req).expect("requests serialise");
    line.push(b'\n');
    s.write_all(&line).map_err(|e| Error::Io {
        step: "send to pod monitor".into(),
        err: e,
    })?;
    let mut answer = String::new();
    BufReader::new(&s)
        .read_line(&mut answer)
        .map_err(|e| Error::Io {
            step: "read pod monitor's answer".into(),
            err: e,
        })?;
    if answer.is_empty() {
        return Err(Error::Invalid(
            "the pod monitor closed the connection without an answer".into(),
        ));
    }
    serde_json::from_str(&answer).map_err(|e| Error::Invalid(format!("pod monitor's answer: {e}")))
}

/// A container's output pipe.
struct Pipe {
    fd: OwnedFd,
    stream: &'static str,
    split: LineSplitter,
}

struct Ctr {
    rec: ContainerRecord,
    status: ContainerStatus,
    pipes: Vec<Pipe>,
    /// The container's stdin (a pipe's write end, or the terminal's master), if it has one.
    input: Option<OwnedFd>,
    /// The terminal's master, for window sizes.
    tty: Option<OwnedFd>,
    log: Option<LogWriter>,
    stopping: bool,
    kill_at: Option<Instant>,
    restart_at: Option<Instant>,
    oom_before: u64,
    started: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    Init(usize),
    Apps,
    Failed,
}

struct Monitor {
    dir: PodDir,
    pod: PodRecord,
    ctrs: BTreeMap<String, Ctr>,
    pause: Option<i32>,
    inits: Vec<String>,
    apps: Vec<String>,
    phase: Phase,
    shutdown: bool,
    /// Clients attached to containers' streams.
    attached: Vec<Attached>,
}

/// A client attached to a container (see [`Request::Attach`]).
struct Attached {
    id: String,
    conn: UnixStream,
    buf: Vec<u8>,
}

/// For programs that embed berth and name themselves as [`super::Options::berth_binary`]:
/// call first thing in `main`; if this process was started as a pod monitor, it becomes one
/// (and never returns).
pub fn hook() {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == ARG) {
        if let Some(dir) = args.next() {
            main(Path::new(&dir));
        }
    }
}

/// Entry point of `berth __pod-monitor <dir>`; never returns.
pub fn main(dir: &Path) -> ! {
    let code = match run(dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth pod monitor {}: {e}", dir.display());
            1
        }
    };
    std::process::exit(code)
}

fn run(dir: &Path) -> Result<()> {
    // absolute: the monitor works in the pod's directory (see below)
    let dir = PodDir(std::path::absolute(dir).map_err(|e| Error::Io {
        step: format!("resolve {}", dir.display()),
        err: e,
    })?);
    let pod: PodRecord = read_json(&dir.record())?;
    // daemonize: the process berth started exits at once (its starter reaps it) and the
    // monitor goes on in a new session, a child of no berth command
    match crate::linux::sys::fork_with_flags(0, None).map_err(|e| Error::Io {
        step: "fork the pod monitor".into(),
        err: e,
    })? {
        crate::linux::sys::Forked::Parent(_) => crate::linux::sys::exit_now(0),
        crate::linux::sys::Forked::Child => {}
    }
    nix::unistd::setsid().ok();
    // console sockets are bound relative to the pod's directory (a socket path has at most
    // 107 bytes; the pod's may be longer)
    std::env::set_current_dir(&dir.0).map_err(|e| Error::Io {
        step: format!("chdir to {}", dir.0.display()),
        err: e,
    })?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(super::error::sys("become a child subreaper"))?;
    let _ = nix::sys::prctl::set_name(c"berth-monitor");
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(super::error::sys("block signals"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(super::error::sys("signalfd"))?;
    let sock = dir.socket();
    let _ = fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| Error::Io {
        step: format!("listen on {}", sock.display()),
        err: e,
    })?;
    listener.set_nonblocking(true).ok();
    let mut m = Monitor {
        dir,
        pod,
        ctrs: BTreeMap::new(),
        pause: None,
        inits: Vec::new(),
        apps: Vec::new(),
        phase: Phase::Idle,
        shutdown: false,
        attached: Vec::new(),
    };
    if m.pod.config.share_pid {
        m.start_pause()?;
    }
    m.load_containers();
    write_json(&m.dir.monitor_pid(), &std::process::id())?;
    // tell whoever started us that we listen, then let go of its pipe
    let mut out = std::io::stdout();
    let _ = out.write_all(b"ready\n");
    let _ = out.flush();
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
    drop_code_pages();
    m.serve(&listener, &sigfd)
}

/// Unmap the executable's pages this process touched to get here (they stay in the page
/// cache and fault back in when used): a monitor lives as long as its pod, and its loop uses
/// a small part of berth.
fn drop_code_pages() {
    crate::linux::sys::drop_own_code_pages();
}

impl Monitor {
    /// Containers recorded before this monitor started (a restarted monitor: not their parent,
    /// it cannot collect their exits; they are marked as such when they are gone).
    fn load_containers(&mut self) {
        let Ok(rd) = fs::read_dir(self.dir.containers()) else {
            return;
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let Ok(rec) = read_json::<ContainerRecord>(&e.path().join("container.json")) else {
                continue;
            };
            let status: ContainerStatus =
                read_json(&e.path().join("status.json")).unwrap_or_default();
            self.ctrs.insert(
                id,
                Ctr {
                    rec,
                    status,
                    pipes: Vec::new(),
                    input: None,
                    tty: None,
                    log: None,
                    stopping: false,
                    kill_at: None,
                    restart_at: None,
                    oom_before: 0,
                    started: None,
                },
            );
        }
    }

    fn start_pause(&mut self) -> Result<()> {
        let stub = crate::linux::sys::pause_stub().map_err(|e| Error::Io {
            step: "make pause stub".into(),
            err: e,
        })?;
        match crate::linux::sys::fork_with_flags(libc::CLONE_NEWPID as u64, None).map_err(|e| {
            Error::Io {
                step: "clone the pod's PID namespace".into(),
                err: e,
            }
        })? {
            crate::linux::sys::Forked::Child => {
                let err = crate::linux::sys::execveat_fd(stub.as_fd(), &[c"pause"], &[]);
                eprintln!("exec pause: {err}");
                crate::linux::sys::exit_now(127)
            }
            crate::linux::sys::Forked::Parent(pid) => {
                self.pause = Some(pid);
                write_json(&self.dir.pause_pid(), &pid)?;
                Ok(())
            }
        }
    }

    fn serve(&mut self, listener: &UnixListener, sigfd: &SignalFd) -> Result<()> {
        loop {
            if self.shutdown {
                if let Some(p) = self.pause {
                    let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                    let _ = waitpid(Pid::from_raw(p), None);
                }
                let _ = fs::remove_file(self.dir.socket());
                let _ = fs::remove_file(self.dir.pause_pid());
                let _ = fs::remove_file(self.dir.monitor_pid());
                return Ok(());
            }
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            let timeout = match timeout {
                Some(t) => PollTimeout::try_from(t.as_millis().min(60_000) as i32 + 1)
                    .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            // [listener, signals, pipes...]
            let mut owners: Vec<(String, i32)> = Vec::new();
            let mut pfds = vec![
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            ];
            for (id, c) in &self.ctrs {
                for p in &c.pipes {
                    pfds.push(PollFd::new(p.fd.as_fd(), PollFlags::POLLIN));
                    owners.push((id.clone(), std::os::fd::AsRawFd::as_raw_fd(&p.fd)));
                }
            }
            let first_attached = pfds.len();
            for a in &self.attached {
                pfds.push(PollFd::new(a.conn.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut pfds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Io {
                        step: "poll".into(),
                        err: e.into(),
                    });
                }
            }
            let ready: Vec<bool> = pfds
                .iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(pfds);
            // output first: a container that wrote and exited has its last lines logged
            // before its exit is recorded
            for (k, (id, fd)) in owners.iter().enumerate() {
                if ready[2 + k] {
                    self.drain(id, *fd);
                }
            }
            let n_attached = ready.len() - first_attached;
            for k in (0..n_attached).rev() {
                if ready[first_attached + k] && k < self.attached.len() {
                    self.attach_input(k);
                }
            }
            if ready[1] {
                while let Ok(Some(si)) = sigfd.read_signal() {
                    if si.ssi_signo == libc::SIGTERM as u32 || si.ssi_signo == libc::SIGINT as u32 {
                        // berth's own pod removal uses Shutdown; a plain TERM leaves the
                        // containers running and ends only the bookkeeping: refuse it
                        eprintln!(
                            "berth pod monitor: ignoring signal {}; use `berth pod rm`",
                            si.ssi_signo
                        );
                    }
                }
                self.reap();
            }
            if ready[0] {
                while let Ok((conn, _)) = listener.accept() {
                    self.handle(conn);
                }
            }
            self.timers();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.ctrs
            .values()
            .flat_map(|c| [c.kill_at, c.restart_at])
            .flatten()
            .min()
    }

    fn handle(&mut self, conn: UnixStream) {
        conn.set_nonblocking(false).ok();
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut line = String::new();
        if BufReader::new(&conn).read_line(&mut line).is_err() {
            return;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Attach { id }) => match self.ctrs.get(&id) {
                Some(c) if c.status.state == ContainerState::Running => {
                    let mut out = serde_json::to_vec(&Response::Ok).expect("responses serialise");
                    out.push(b'\n');
                    if (&conn).write_all(&out).is_ok() {
                        // writes to a stuck client give up after a while (it is then dropped)
                        conn.set_write_timeout(Some(Duration::from_secs(2))).ok();
                        conn.set_nonblocking(true).ok();
                        self.attached.push(Attached {
                            id,
                            conn,
                            buf: Vec::new(),
                        });
                    }
                    return;
                }
                Some(_) => Response::Error {
                    message: format!("container {id} is not running"),
                },
                None => Response::Error {
                    message: format!("container {id} not found"),
                },
            },
            Ok(req) => self.apply(req),
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
        };
        let mut out = serde_json::to_vec(&resp).expect("responses serialise");
        out.push(b'\n');
        let _ = (&conn).write_all(&out);
        // a create or a stop ran code the loop does not need again soon
        drop_code_pages();
    }

    fn apply(&mut self, req: Request) -> Response {
        match req {
            Request::Attach { .. } => Response::Error {
                message: "attach is answered by the connection handler".into(),
            },
            Request::Ping => Response::Pong {
                pid: std::process::id() as i32,
                pause: self.pause,
            },
            Request::Shutdown => {
                self.shutdown = true;
                Response::Ok
            }
            Request::Start { id } => match self.start(&id) {
                Ok(pid) => Response::Started { pid },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            },
            Request::Stop {
                id,
                signal,
                timeout_ms,
            } => match self.ctrs.get_mut(&id) {
                None => Response::Error {
                    message: format!("container {id} not found"),
                },
                Some(c) => {
                    c.stopping = true;
                    c.restart_at = None;
                    if c.status.state == ContainerState::Running && c.status.pid > 0 {
                        let sig = if timeout_ms == 0 {
                            libc::SIGKILL
                        } else {
                            signal
                        };
                        // SAFETY-free: kill(2) of our own child (a zombie until reaped, so the
                        // pid cannot be reused)
                        let _ = nix::sys::signal::kill(
                            Pid::from_raw(c.status.pid),
                            Signal::try_from(sig).unwrap_or(Signal::SIGTERM),
                        );
                        c.kill_at = Some(Instant::now() + Duration::from_millis(timeout_ms));
                    }
                    Response::Ok
                }
            },
            Request::Forget { id } => {
                self.ctrs.remove(&id);
                Response::Ok
            }
            Request::ReopenLog { id } => {
                match self.ctrs.get_mut(&id).and_then(|c| c.log.as_mut()) {
                    Some(l) => match l.reopen() {
                        Ok(()) => Response::Ok,
                        Err(e) => Response::Error {
                            message: e.to_string(),
                        },
                    },
                    None => Response::Error {
                        message: format!("container {id} has no open log"),
                    },
                }
            }
            Request::Sequence { inits, apps } => {
                self.inits = inits;
                self.apps = apps;
                self.phase = Phase::Init(0);
                self.advance();
                Response::Ok
            }
        }
    }

    /// Create and start a container through a forked worker; returns the init's pid.
    fn start(&mut self, id: &str) -> Result<i32> {
        let cdir = self.dir.container(id);
        let rec: ContainerRecord = read_json(&cdir.join("container.json"))?;
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
        let log = LogWriter::open(&log_path, super::logs::MAX_SIZE)?;
        let oom_before = super::cgroup::oom_kills(&rec.cgroup);
        let (mut out_r, out_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(super::error::sys("pipe"))?;
        let (err_r, err_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(super::error::sys("pipe"))?;
        let (res_r, res_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(super::error::sys("pipe"))?;
        // stdin: a pipe the monitor writes (attach), or the terminal the runtime makes and
        // sends to a console socket
        let stdin_pipe = if rec.config.stdin && !rec.config.tty {
            Some(
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(super::error::sys("pipe"))?,
            )
        } else {
            None
        };
        let console = if rec.config.tty {
            let path = Path::new("containers").join(id).join("console.sock");
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
        let oci_root = self.dir.oci_root();
        let worker = match crate::linux::sys::fork_with_flags(0, None).map_err(|e| Error::Io {
            step: "fork container worker".into(),
            err: e,
        })? {
            crate::linux::sys::Forked::Child => {
                // the worker: stdio to the pipes, OCI create + start, report, exit
                match &stdin_pipe {
                    Some((r, _)) => {
                        let _ = nix::unistd::dup2_stdin(r);
                    }
                    None => {
                        if let Ok(n) = fs::OpenOptions::new().read(true).open("/dev/null") {
                            let _ = nix::unistd::dup2_stdin(&n);
                        }
                    }
                }
                let _ = nix::unistd::dup2_stdout(&out_w);
                let _ = nix::unistd::dup2_stderr(&err_w);
                let rt = crate::oci::Runtime::new(&oci_root)
                    .with_seccomp_cache(self.dir.seccomp_cache());
                let _ = rt.delete(id, true);
                // a restart starts from the image again, with a fresh writable layer
                let fresh = if attempt > 0 {
                    crate::image::bundle::reset_rootfs(&rec.bundle).map(|_| ())
                } else {
                    Ok(())
                };
                let opts = crate::oci::CreateOptions {
                    bundle: rec.bundle.clone(),
                    console_socket: console.as_ref().map(|(_, p)| p.clone()),
                    ..Default::default()
                };
                let r = fresh
                    .map_err(|e| format!("a fresh writable layer: {e}"))
                    .and_then(|_| rt.create(id, &opts).map_err(|e| e.to_string()))
                    .and_then(|c| {
                        rt.start(id).map(|_| c.pid).map_err(|e| {
                            let _ = rt.delete(id, true);
                            e.to_string()
                        })
                    });
                let msg = match r {
                    Ok(pid) => format!("ok {pid}"),
                    Err(e) => format!("err {e}"),
                };
                let mut w = fs::File::from(res_w);
                let _ = w.write_all(msg.as_bytes());
                drop(w);
                crate::linux::sys::exit_now(0)
            }
            crate::linux::sys::Forked::Parent(pid) => pid,
        };
        drop((out_w, err_w, res_w));
        let mut msg = String::new();
        let _ = fs::File::from(res_r).read_to_string(&mut msg);
        let _ = waitpid(Pid::from_raw(worker), None);
        let input = stdin_pipe.map(|(_, w)| w);
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
        let now = super::state::now();
        let mut status = ContainerStatus {
            restart_count: attempt,
            log_path: Some(log_path),
            created_at: Some(now.clone()),
            ..Default::default()
        };
        let result = match msg.split_once(' ') {
            Some(("ok", pid)) => {
                let pid: i32 = pid.trim().parse().unwrap_or(0);
                status.state = ContainerState::Running;
                status.pid = pid;
                status.started_at = Some(now);
                Ok(pid)
            }
            other => {
                let e = other
                    .map(|(_, e)| e.to_string())
                    .unwrap_or_else(|| "the container worker died".into());
                status.state = ContainerState::Exited;
                status.exit_code = Some(128);
                status.finished_at = Some(now);
                status.reason = Some("StartError".into());
                status.message = Some(e.clone());
                Err(Error::Invalid(format!(
                    "start container {}: {e}",
                    rec.config.name
                )))
            }
        };
        write_json(&cdir.join("status.json"), &status)?;
        let master_copies = master
            .as_ref()
            .and_then(|m| Some((m.try_clone().ok()?, m.try_clone().ok()?)));
        let (input, tty) = match (master, master_copies) {
            (Some(m), Some((i, t))) => {
                // with a terminal the master carries the output (as stdout) and the input
                out_r = m;
                (Some(i), Some(t))
            }
            _ => (input, None),
        };
        let pipes = if result.is_ok() && tty.is_some() {
            vec![Pipe {
                fd: out_r,
                stream: "stdout",
                split: LineSplitter::default(),
            }]
        } else if result.is_ok() {
            vec![
                Pipe {
                    fd: out_r,
                    stream: "stdout",
                    split: LineSplitter::default(),
                },
                Pipe {
                    fd: err_r,
                    stream: "stderr",
                    split: LineSplitter::default(),
                },
            ]
        } else {
            Vec::new()
        };
        let started = result.is_ok().then(Instant::now);
        self.ctrs.insert(
            id.to_string(),
            Ctr {
                rec,
                status,
                pipes,
                input,
                tty,
                log: Some(log),
                stopping: false,
                kill_at: None,
                restart_at: None,
                oom_before,
                started,
            },
        );
        result
    }

    /// Read what a container wrote to one of its pipes (by fd) into its log.
    fn drain(&mut self, id: &str, fd: i32) {
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        let Some(i) = c
            .pipes
            .iter()
            .position(|p| std::os::fd::AsRawFd::as_raw_fd(&p.fd) == fd)
        else {
            return;
        };
        let mut buf = [0u8; 65536];
        let n = nix::unistd::read(c.pipes[i].fd.as_fd(), &mut buf).unwrap_or(0);
        let Ctr { pipes, log, .. } = c;
        let p = &mut pipes[i];
        let stream = p.stream;
        let mut emit = |partial: bool, text: &[u8]| {
            if let Some(l) = log.as_mut() {
                l.record(stream, partial, text);
            }
        };
        if n == 0 {
            p.split.finish(&mut emit);
            pipes.remove(i);
        } else {
            p.split.feed(&buf[..n], &mut emit);
            self.forward(id, stream, &buf[..n]);
        }
    }

    /// Send a container's output to the clients attached to it (a client that cannot take
    /// it within the write timeout is dropped).
    fn forward(&mut self, id: &str, stream: &str, data: &[u8]) {
        if !self.attached.iter().any(|a| a.id == id) {
            return;
        }
        let mut frame = Vec::with_capacity(data.len() + 5);
        frame.push(if stream == "stderr" { 2 } else { 1 });
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        self.attached.retain(|a| {
            if a.id != id {
                return true;
            }
            a.conn.set_nonblocking(false).ok();
            let ok = (&a.conn).write_all(&frame).is_ok();
            a.conn.set_nonblocking(true).ok();
            ok
        });
    }

    /// Frames from attached client `k`: stdin, end of stdin, terminal size.
    fn attach_input(&mut self, k: usize) {
        let mut buf = [0u8; 32 * 1024];
        let gone = match (&self.attached[k].conn).read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                self.attached[k].buf.extend_from_slice(&buf[..n]);
                false
            }
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let id = self.attached[k].id.clone();
        loop {
            let b = &self.attached[k].buf;
            if b.len() < 5 {
                break;
            }
            let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
            if b.len() < 5 + len {
                break;
            }
            let frame: Vec<u8> = self.attached[k].buf.drain(..5 + len).collect();
            let (kind, payload) = (frame[0], &frame[5..]);
            let Some(c) = self.ctrs.get_mut(&id) else {
                break;
            };
            match kind {
                0 => {
                    if let Some(fd) = &c.input {
                        // a container that does not read its stdin: what does not fit is dropped
                        let _ = nix::unistd::write(fd, payload);
                    }
                }
                // end of the client's stdin ends the container's only with stdinOnce
                1 if c.rec.config.stdin_once => c.input = None,
                2 if payload.len() == 4 => {
                    if let Some(t) = &c.tty {
                        let rows = u16::from_be_bytes([payload[0], payload[1]]);
                        let cols = u16::from_be_bytes([payload[2], payload[3]]);
                        let _ = crate::linux::sys::set_window_size(t.as_fd(), rows, cols);
                    }
                }
                _ => {}
            }
        }
        if gone {
            self.attached.remove(k);
            // stdinOnce: the container's stdin ends with the first attached client
            if let Some(c) = self.ctrs.get_mut(&id)
                && c.rec.config.stdin_once
            {
                c.input = None;
            }
        }
    }

    /// Collect every exited child.
    fn reap(&mut self) {
        loop {
            match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::Exited(pid, code)) => self.exited(pid.as_raw(), code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.exited(pid.as_raw(), 128 + sig as i32, Some(sig))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn exited(&mut self, pid: i32, code: i32, _sig: Option<Signal>) {
        if Some(pid) == self.pause {
            eprintln!("berth pod monitor: the pod's PID namespace holder exited ({code})");
            self.pause = None;
            return;
        }
        let Some((id, c)) = self
            .ctrs
            .iter_mut()
            .find(|(_, c)| c.status.pid == pid && c.status.state == ContainerState::Running)
        else {
            return;
        };
        let id = id.clone();
        // the rest of its output is still in the pipes: drain it first
        for p in &mut c.pipes {
            let _ = nix::fcntl::fcntl(
                p.fd.as_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        loop {
            let before: usize = self.ctrs[&id].pipes.len();
            if before == 0 {
                break;
            }
            let mut any = false;
            for i in (0..before).rev() {
                let c = self.ctrs.get_mut(&id).expect("present");
                let mut buf = [0u8; 65536];
                match nix::unistd::read(c.pipes[i].fd.as_fd(), &mut buf) {
                    Ok(0) => {
                        let Ctr { pipes, log, .. } = c;
                        let stream = pipes[i].stream;
                        pipes[i].split.finish(&mut |p, t| {
                            if let Some(l) = log.as_mut() {
                                l.record(stream, p, t)
                            }
                        });
                        pipes.remove(i);
                        any = true;
                    }
                    Ok(n) => {
                        let Ctr { pipes, log, .. } = c;
                        let stream = pipes[i].stream;
                        pipes[i].split.feed(&buf[..n], &mut |p, t| {
                            if let Some(l) = log.as_mut() {
                                l.record(stream, p, t)
                            }
                        });
                        self.forward(&id, stream, &buf[..n]);
                        any = true;
                    }
                    // a process that outlives the init may hold the pipe open: keep it, non-blocking
                    Err(_) => {}
                }
            }
            if !any {
                break;
            }
        }
        // attached clients see the stream end; stdin and terminal go with the container
        self.attached.retain(|a| a.id != id);
        let c = self.ctrs.get_mut(&id).expect("present");
        c.input = None;
        c.tty = None;
        let oom = super::cgroup::oom_kills(&c.rec.cgroup) > c.oom_before;
        c.status.state = ContainerState::Exited;
        c.status.exit_code = Some(code);
        c.status.finished_at = Some(super::state::now());
        c.status.reason = Some(
            // as containerd and CRI-O report it: an OOM kill in the container's cgroup,
            // whichever of its processes it hit
            if oom {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .into(),
        );
        c.kill_at = None;
        let _ = write_json(&self.dir.container(&id).join("status.json"), &c.status);
        let stopping = c.stopping;
        let ran_for = c.started.map(|s| s.elapsed()).unwrap_or_default();
        if self.pod.supervised && !stopping {
            self.after_exit(&id, code, ran_for);
        }
    }

    /// Restart policy and init sequencing of supervised pods.
    fn after_exit(&mut self, id: &str, code: i32, ran_for: Duration) {
        let policy = self.pod.config.restart_policy;
        let is_init = self.inits.iter().any(|i| i == id);
        if is_init && code == 0 {
            if let Phase::Init(k) = self.phase {
                if self.inits.get(k).map(String::as_str) == Some(id) {
                    self.phase = Phase::Init(k + 1);
                    self.advance();
                }
            }
            return;
        }
        let restart = match policy {
            RestartPolicy::Always => !is_init || code != 0,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        };
        if !restart {
            if is_init {
                self.phase = Phase::Failed;
            }
            return;
        }
        self.schedule_restart(id, ran_for);
    }

    /// Restart a container after kubelet's back-off: the base doubling per restart up to five
    /// minutes, reset once it ran ten minutes.
    fn schedule_restart(&mut self, id: &str, ran_for: Duration) {
        let base = self.pod.restart_backoff_ms;
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        let n = if ran_for > Duration::from_secs(600) {
            0
        } else {
            c.status.restart_count.min(10)
        };
        let delay =
            Duration::from_millis(base.saturating_mul(1 << n)).min(Duration::from_secs(300));
        c.restart_at = Some(Instant::now() + delay);
    }

    /// Start what the sequence says comes next.
    fn advance(&mut self) {
        loop {
            match self.phase.clone() {
                Phase::Init(k) if k < self.inits.len() => {
                    let id = self.inits[k].clone();
                    if let Err(e) = self.start(&id) {
                        eprintln!("berth pod monitor: {e}");
                        let policy = self.pod.config.restart_policy;
                        if policy == RestartPolicy::Never {
                            self.phase = Phase::Failed;
                        } else {
                            self.schedule_restart(&id, Duration::ZERO);
                        }
                    }
                    return;
                }
                Phase::Init(_) => self.phase = Phase::Apps,
                Phase::Apps => {
                    for id in self.apps.clone() {
                        let running = self
                            .ctrs
                            .get(&id)
                            .is_some_and(|c| c.status.state == ContainerState::Running);
                        if !running {
                            if let Err(e) = self.start(&id) {
                                eprintln!("berth pod monitor: {e}");
                                if self.pod.config.restart_policy != RestartPolicy::Never {
                                    self.schedule_restart(&id, Duration::ZERO);
                                }
                            }
                        }
                    }
                    return;
                }
                Phase::Idle | Phase::Failed => return,
            }
        }
    }

    /// Kill containers past their grace period; restart those whose back-off ended.
    fn timers(&mut self) {
        let now = Instant::now();
        let mut restart = Vec::new();
        for (id, c) in &mut self.ctrs {
            if c.kill_at.is_some_and(|t| t <= now) {
                c.kill_at = None;
                if c.status.state == ContainerState::Running {
                    let _ = nix::sys::signal::kill(Pid::from_raw(c.status.pid), Signal::SIGKILL);
                    // processes that left the init's process tree (a shared PID namespace)
                    for p in super::cgroup::procs(&c.rec.cgroup) {
                        let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                    }
                }
            }
            if c.restart_at.is_some_and(|t| t <= now) {
                c.restart_at = None;
                restart.push(id.clone());
            }
        }
        for id in restart {
            if self.ctrs.get(&id).is_some_and(|c| c.stopping) {
                continue;
            }
            if let Err(e) = self.start(&id) {
                eprintln!("berth pod monitor: restart: {e}");
                self.schedule_restart(&id, Duration::ZERO);
            }
        }
    }
}

/// Log file of attempt `n`: `<dir>/<n>.log` next to attempt 0's.
pub fn attempt_log(first: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return first.to_path_buf();
    }
    first.with_file_name(format!("{n}.log"))
}
