//! The pod monitor: one small resident process per pod (`berth __pod-monitor <pod dir>`), as
//! CRI-O's conmon-rs, not one per container as conmon.
//!
//! - It is a child subreaper and creates the pod's containers itself (through a short-lived
//!   forked worker that runs the OCI create and start, then exits: `worker`), so every
//!   container init becomes its child: only it can collect their exit statuses, and it always
//!   does, whether or not any berth command runs.
//! - It records each container's start, exit code, exit time and reason (OOMKilled from the
//!   cgroup's oom_kill counter) in `status.json`, atomically; it is that file's one writer.
//! - It copies each container's stdout and stderr from pipes into its CRI-format log, with
//!   size-based rotation, and to attached clients (`output`).
//! - With `shareProcessNamespace` it holds the pod's PID namespace: its PID 1 is a 169-byte
//!   pause stub that reaps orphans.
//! - For pods it supervises (CLI pods) it runs init containers in order, then the apps, and
//!   restarts them per the restart policy with kubelet's back-off (`supervise`).
//!
//! It is driven over a unix socket with `protocol`'s typed requests, one JSON request and one
//! JSON answer per connection, and runs one thread and a `poll(2)` loop, no async runtime.
//! `spawn` and `stop` are the library's side of its life.

mod adopt;
mod check;
mod keeper;
mod output;
mod probes;
pub mod protocol;
mod supervise;
mod tls;
mod worker;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::error::{Error, Result};
use super::logs::LogWriter;
use super::store::{
    ContainerRecord, ContainerState, ContainerStatus, PodDir, PodRecord, read_json, read_record,
    write_json,
};
pub use protocol::{Request, Response, request};

/// argv[1] that makes `berth` a pod monitor.
pub const ARG: &str = "__pod-monitor";

/// A container as the monitor tracks it.
struct Ctr {
    rec: ContainerRecord,
    status: ContainerStatus,
    pipes: Vec<output::Pipe>,
    /// The container's stdin (a pipe's write end, or the terminal's master), if it has one.
    input: Option<OwnedFd>,
    /// The terminal's master, for window sizes.
    tty: Option<OwnedFd>,
    log: Option<LogWriter>,
    stopping: bool,
    kill_at: Option<Instant>,
    restart_at: Option<Instant>,
    started: Option<Instant>,
    probes: probes::State,
    /// Why the monitor killed it (a failed probe), for its exit's message.
    killed_by: Option<String>,
}

impl Ctr {
    fn new(rec: ContainerRecord, status: ContainerStatus) -> Ctr {
        Ctr {
            probes: probes::State::new(&rec.config.probes),
            killed_by: None,
            rec,
            status,
            pipes: Vec::new(),
            input: None,
            tty: None,
            log: None,
            stopping: false,
            kill_at: None,
            restart_at: None,
            started: None,
        }
    }
}

struct Monitor {
    dir: PodDir,
    pod: PodRecord,
    ctrs: BTreeMap<String, Ctr>,
    pause: Option<i32>,
    seq: supervise::Sequence,
    shutdown: bool,
    /// Clients attached to containers' streams.
    attached: Vec<output::Attached>,
    /// The link to the keeper (this monitor's parent); None once the keeper is gone.
    keeper: Option<OwnedFd>,
    /// Where network probes make their sockets (opened at the first).
    netns: Option<check::Netns>,
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
    // what its starter left open (an operation's lock: see `inflight.rs`) is not the pod's
    crate::linux::sys::close_inherited_fds();
    let code = match run(dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth pod monitor {}: {e}", dir.display());
            1
        }
    };
    std::process::exit(code)
}

/// Start a pod's monitor and wait until it listens (the library's side).
pub(crate) fn spawn(binary: &Path, dir: &PodDir) -> Result<()> {
    let log =
        fs::File::create(dir.monitor_log()).map_err(super::error::io("create monitor.log"))?;
    let mut child = Command::new(binary)
        .arg(ARG)
        .arg(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(super::error::io(format!(
            "start the pod monitor ({})",
            binary.display()
        )))?;
    let mut line = String::new();
    let out = child.stdout.take().expect("piped");
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        let why = fs::read_to_string(dir.monitor_log()).unwrap_or_default();
        return Err(Error::Internal(format!(
            "the pod monitor did not start: {}",
            why.trim()
        )));
    }
    // what we started was only the monitor's launcher: it forked the monitor and exited
    let _ = child.wait();
    Ok(())
}

/// Does `pid` run (a zombie does not: it waits for a parent that may be slow to reap it)?
pub(crate) fn alive(pid: i32) -> bool {
    crate::linux::proc::stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Is `pid` the monitor of this pod (not a reused pid)?
pub(crate) fn is_monitor(pid: i32, dir: &PodDir) -> bool {
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let s = String::from_utf8_lossy(&c);
        s.contains(ARG) && s.contains(&dir.0.display().to_string())
    })
}

/// The pid of the pod's monitor, if it runs.
pub(crate) fn pid(dir: &PodDir) -> Option<i32> {
    read_json::<i32>(&dir.monitor_pid())
        .ok()
        .filter(|p| is_monitor(*p, dir))
}

/// The pid of the pod's monitor's keeper, if it runs.
pub(crate) fn keeper_pid(dir: &PodDir) -> Option<i32> {
    read_json::<i32>(&dir.keeper_pid())
        .ok()
        .filter(|p| alive(*p) && is_monitor(*p, dir))
}

/// Ask the pod's monitor to exit (its keeper goes with it), SIGKILL both if they do not, and
/// end the pod's pause process.
pub(crate) fn stop(dir: &PodDir) {
    let pids: Vec<i32> = [dir.keeper_pid(), dir.monitor_pid()]
        .iter()
        .filter_map(|f| read_json::<i32>(f).ok())
        .collect();
    let asked = request(dir, &Request::Shutdown, Duration::from_secs(10)).is_ok();
    // they are not our children: poll their /proc entries
    let deadline = Instant::now() + Duration::from_secs(if asked { 5 } else { 0 });
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    // the keeper first: it would start another monitor
    for p in pids {
        if alive(p) && is_monitor(p, dir) {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
    if let Ok(p) = read_json::<i32>(&dir.pause_pid()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

fn run(dir: &Path) -> Result<()> {
    // absolute: the monitor works in the pod's directory (see below)
    let dir = PodDir(std::path::absolute(dir).map_err(|e| Error::Io {
        step: format!("resolve {}", dir.display()),
        err: e,
    })?);
    read_record::<PodRecord>(&dir.record())?;
    // daemonize: the process berth started exits at once (its starter reaps it) and the
    // keeper, then its monitor, go on in a new session, children of no berth command
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
    // the keeper: the nearest subreaper above the containers once a monitor is gone
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(super::error::sys("become a child subreaper"))?;
    let _ = nix::sys::prctl::set_name(c"berth-keeper");
    let sigfd = signals()?;
    let d = dir.clone();
    keeper::run(dir, &sigfd, &move |link, inherited| {
        let code = match monitor(&d, link, inherited) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth pod monitor {}: {e}", d.0.display());
                1
            }
        };
        crate::linux::sys::exit_now(code)
    })
}

/// Block the signals the monitor and keeper handle, and read them from a signalfd.
fn signals() -> Result<SignalFd> {
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
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(super::error::sys("signalfd"))
}

/// The monitor, forked by its keeper: the first, or a replacement that re-adopts what its
/// predecessor ran (`inherited`).
fn monitor(dir: &PodDir, keeper_link: OwnedFd, inherited: keeper::Inherited) -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(super::error::sys("become a child subreaper"))?;
    let _ = nix::sys::prctl::set_name(c"berth-monitor");
    let sigfd = signals()?;
    let pod: PodRecord = read_record(&dir.record())?;
    let sock = dir.socket();
    let _ = fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| Error::Io {
        step: format!("listen on {}", sock.display()),
        err: e,
    })?;
    listener.set_nonblocking(true).ok();
    let mut m = Monitor {
        dir: dir.clone(),
        pod,
        ctrs: BTreeMap::new(),
        pause: None,
        seq: supervise::Sequence::default(),
        shutdown: false,
        attached: Vec::new(),
        keeper: Some(keeper_link),
        netns: None,
    };
    if m.pod.config.share_pid {
        m.pause = adopt::adopted_pause(&m.dir);
        if m.pause.is_none() {
            m.start_pause()?;
        }
    }
    m.load_containers();
    m.adopt(inherited);
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
        for id in self.dir.container_ids() {
            let cdir = self.dir.container(&id);
            let Ok(rec) = read_record::<ContainerRecord>(&cdir.record()) else {
                continue;
            };
            let Ok(status) = cdir.read_status(&rec.created) else {
                continue;
            };
            let mut c = Ctr::new(rec, status);
            if c.status.state == ContainerState::Running {
                // probes start over, readiness with them (as kubelet's after a restart)
                c.probes.begin(Instant::now());
                let ready = c.probes.ready_by_default();
                if c.status.ready != ready {
                    c.status.ready = ready;
                    let _ = write_json(&cdir.status(), &c.status);
                }
            }
            self.ctrs.insert(id, c);
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
        let mut drop_at: Option<Instant> = None;
        loop {
            if self.shutdown {
                // the keeper ends with this monitor
                self.tell_keeper(&keeper::ToKeeper::Bye, &[]);
                if let Some(p) = self.pause {
                    let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                    let _ = waitpid(Pid::from_raw(p), None);
                }
                let _ = fs::remove_file(self.dir.socket());
                let _ = fs::remove_file(self.dir.pause_pid());
                let _ = fs::remove_file(self.dir.monitor_pid());
                return Ok(());
            }
            // a second after work began: what the work touched of berth's code need not stay
            // resident while the pod runs (it faults back in on the next event); a monitor
            // that is never idle (probes every second) drops it each second all the same
            if drop_at.is_some_and(|t| Instant::now() >= t) {
                drop_code_pages();
                drop_at = None;
            }
            let timeout = self
                .next_deadline()
                .into_iter()
                .chain(drop_at)
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()));
            let timeout = match timeout {
                Some(t) => PollTimeout::try_from(t.as_millis().min(60_000) as i32 + 1)
                    .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            // [listener, signals, pipes..., attached clients...]
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
            let first_probe = pfds.len();
            let mut probing: Vec<(String, usize)> = Vec::new();
            for (id, c) in &self.ctrs {
                for (k, fd, events) in c.probes.fds() {
                    pfds.push(PollFd::new(fd, events));
                    probing.push((id.clone(), k));
                }
            }
            let first_attached = pfds.len();
            for a in &self.attached {
                pfds.push(PollFd::new(a.conn.as_fd(), PollFlags::POLLIN));
            }
            let keeper_slot = pfds.len();
            if let Some(k) = &self.keeper {
                pfds.push(PollFd::new(k.as_fd(), PollFlags::POLLIN));
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
            if ready.iter().any(|r| *r) && drop_at.is_none() {
                drop_at = Some(Instant::now() + Duration::from_secs(1));
            }
            // output first: a container that wrote and exited has its last lines logged
            // before its exit is recorded
            for (k, (id, fd)) in owners.iter().enumerate() {
                if ready[2 + k] {
                    self.drain(id, *fd);
                }
            }
            for (k, (id, run)) in probing.iter().enumerate() {
                if ready[first_probe + k] {
                    self.probe_io(id, *run);
                }
            }
            let keeper_ready = ready.get(keeper_slot).copied().unwrap_or(false);
            let n_attached = keeper_slot - first_attached;
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
            if keeper_ready {
                self.read_keeper();
            }
            if ready[0] {
                while let Ok((conn, _)) = listener.accept() {
                    self.handle(conn);
                }
            }
            self.timers();
            self.probe_timers();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.ctrs
            .values()
            .flat_map(|c| [c.kill_at, c.restart_at, c.probes.deadline()])
            .flatten()
            .min()
    }

    fn handle(&mut self, conn: UnixStream) {
        conn.set_nonblocking(false).ok();
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let resp = match protocol::read_request(&conn) {
            Ok(Request::Attach { id }) => match self.attach(&id, conn) {
                Ok(()) => return,
                Err((e, conn)) => {
                    let _ = protocol::write_response(&conn, &Response::error(&e));
                    return;
                }
            },
            Ok(req) => self.apply(req),
            Err(e) => Response::error(&Error::Invalid(e)),
        };
        let _ = protocol::write_response(&conn, &resp);
        // a create or a stop ran code the loop does not need again soon
        drop_code_pages();
    }

    fn apply(&mut self, req: Request) -> Response {
        match req {
            Request::Attach { .. } => Response::error(&Error::Internal(
                "attach is answered by the connection handler".into(),
            )),
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
                Err(e) => Response::error(&e),
            },
            Request::Stop {
                id,
                signal,
                timeout_ms,
            } => match self.stop(&id, signal, timeout_ms) {
                Ok(()) => Response::Ok,
                Err(e) => Response::error(&e),
            },
            Request::Forget { id } => {
                self.ctrs.remove(&id);
                self.tell_keeper(&keeper::ToKeeper::Forget { id }, &[]);
                Response::Ok
            }
            Request::ReopenLog { id } => {
                match self.ctrs.get_mut(&id).and_then(|c| c.log.as_mut()) {
                    Some(l) => match l.reopen() {
                        Ok(()) => Response::Ok,
                        Err(e) => Response::error(&e),
                    },
                    None => Response::error(&Error::Precondition(format!(
                        "container {id} has no open log"
                    ))),
                }
            }
            Request::Sequence { inits, apps } => {
                self.seq = supervise::Sequence::new(inits, apps);
                self.advance();
                Response::Ok
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
