//! The keeper: the pod monitor's parent, so that a monitor killed with SIGKILL loses nothing.
//!
//! ```text
//! keeper (subreaper, ~idle) ──fork──▶ monitor (subreaper) ──worker──▶ container inits
//! ```
//!
//! - It holds a copy of every running container's stdio ends (output pipes' read ends, the
//!   stdin pipe's write end, the terminal's master), which the monitor sends it
//!   ([`ToKeeper::Hold`]): when the monitor dies no pipe loses its last reader (the container
//!   would get EPIPE or SIGPIPE on its next write) and no terminal hangs up; output written
//!   meanwhile waits in the pipes.
//! - It is the nearest subreaper above the container inits: when the monitor dies they become
//!   its children, so it collects their exit statuses ([`ToMonitor::Exited`]) — on any kernel,
//!   with no pidfd needed.
//! - It reaps the dead monitor and forks a replacement at once, which inherits the held fds
//!   and the exits collected meanwhile (a fork copies them), re-adopts the running
//!   containers, and goes on; logs continue and exit codes are recorded.
//!
//! It ends when its monitor says [`ToKeeper::Bye`] (the pod is removed) and exits.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::linux::channel::{recv_fds, send_fds};
use crate::pod::error::{Error, Result, sys};
use crate::pod::store::PodDir;

/// Which stdio end a held fd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    Stdout,
    Stderr,
    Stdin,
    Tty,
}

/// Monitor → keeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToKeeper {
    /// Hold the fds that come with this message (`ends`, in order) while `id` runs.
    Hold { id: String, ends: Vec<End> },
    /// `id` ended or was removed: drop its fds.
    Forget { id: String },
    /// Drop one of `id`'s fds (its stdin, closed on purpose).
    Release { id: String, end: End },
    /// The monitor is ending on purpose (the pod is being removed): end too.
    Bye,
}

/// Keeper → monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToMonitor {
    /// A child of the keeper (a container init re-parented to it) exited with `code`
    /// (128+signal when killed).
    Exited { pid: i32, code: i32 },
}

/// What a monitor forked by the keeper inherits: the held stdio and the exits collected
/// while no monitor ran.
#[derive(Debug, Default)]
pub struct Inherited {
    pub held: BTreeMap<String, Vec<(End, OwnedFd)>>,
    pub exits: Vec<(i32, i32)>,
}

/// Send a message (and fds) on the keeper link.
pub fn send<T: Serialize>(
    sock: &OwnedFd,
    m: &T,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<()> {
    let text = serde_json::to_vec(m).expect("keeper messages serialise");
    send_fds(sock.as_fd(), fds, &text).map_err(Error::from)
}

/// A socketpair for a keeper and its monitor (SEQPACKET: one message per send, fds with it).
fn link() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys("create the keeper's socketpair"))
}

/// How often the keeper starts a monitor again before it gives up (a monitor that dies at
/// once would otherwise loop).
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

struct Keeper {
    dir: PodDir,
    held: BTreeMap<String, Vec<(End, OwnedFd)>>,
    exits: Vec<(i32, i32)>,
    /// The monitor's pid and its end of the link (None once it closed).
    monitor: Option<(i32, Option<OwnedFd>)>,
    restarts: Vec<Instant>,
    bye: bool,
}

/// The keeper's life (in the process that will stay the monitor's parent): fork the first
/// monitor with `start_monitor(link, inherited)`, then hold, reap and replace until the
/// monitor says bye. Never returns.
pub fn run(dir: PodDir, sigfd: &SignalFd, start_monitor: &dyn Fn(OwnedFd, Inherited)) -> ! {
    let mut k = Keeper {
        dir,
        held: BTreeMap::new(),
        exits: Vec::new(),
        monitor: None,
        restarts: Vec::new(),
        bye: false,
    };
    if let Err(e) = k.fork_monitor(start_monitor) {
        eprintln!("berth pod keeper: start the monitor: {e}");
        crate::linux::sys::exit_now(1);
    }
    let _ = crate::pod::store::write_json(&k.dir.keeper_pid(), &std::process::id());
    // the monitor said "ready" on the starter's pipe: let go of it
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
    crate::linux::sys::drop_own_code_pages();
    loop {
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        if let Some((_, Some(s))) = &k.monitor {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                eprintln!("berth pod keeper: poll: {e}");
                crate::linux::sys::exit_now(1);
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready.get(1).copied().unwrap_or(false) {
            k.read_monitor();
        }
        if ready[0] {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            k.reap(start_monitor);
        }
        // back to waiting: only the wait itself stays resident
        crate::linux::sys::drop_own_code_pages();
    }
}

impl Keeper {
    fn fork_monitor(&mut self, start_monitor: &dyn Fn(OwnedFd, Inherited)) -> Result<()> {
        let (mine, theirs) = link()?;
        match crate::linux::sys::fork_with_flags(0, None).map_err(|e| Error::Io {
            step: "fork the pod monitor".into(),
            err: e,
        })? {
            crate::linux::sys::Forked::Child => {
                drop(mine);
                // what it needs goes with it; the keeper's own copies stay with the keeper
                let inherited = Inherited {
                    held: std::mem::take(&mut self.held),
                    exits: std::mem::take(&mut self.exits),
                };
                start_monitor(theirs, inherited);
                crate::linux::sys::exit_now(0)
            }
            crate::linux::sys::Forked::Parent(pid) => {
                drop(theirs);
                self.monitor = Some((pid, Some(mine)));
                self.exits.clear();
                Ok(())
            }
        }
    }

    /// Messages from the monitor; its end closing means it is exiting.
    fn read_monitor(&mut self) {
        let Some((_, Some(sock))) = &self.monitor else {
            return;
        };
        let (text, fds) = recv_fds(sock.as_fd()).unwrap_or_default();
        if text.is_empty() {
            // the monitor is gone or going; its exit is reaped with SIGCHLD
            if let Some((_, link)) = &mut self.monitor {
                *link = None;
            }
            return;
        }
        match serde_json::from_slice::<ToKeeper>(&text) {
            Ok(ToKeeper::Hold { id, ends }) => {
                self.held.insert(id, ends.into_iter().zip(fds).collect());
            }
            Ok(ToKeeper::Forget { id }) => {
                self.held.remove(&id);
            }
            Ok(ToKeeper::Release { id, end }) => {
                if let Some(ends) = self.held.get_mut(&id) {
                    ends.retain(|(e, _)| *e != end);
                }
            }
            Ok(ToKeeper::Bye) => self.bye = true,
            Err(e) => eprintln!("berth pod keeper: bad message: {e}"),
        }
    }

    /// Collect exited children: container inits re-parented here (their exits go to the
    /// monitor, now or when it is back) and the monitor itself (start another, unless it said
    /// bye). Every exit is collected before a replacement is forked, so that it inherits them.
    fn reap(&mut self, start_monitor: &dyn Fn(OwnedFd, Inherited)) {
        let mut monitor_died = None;
        loop {
            let (pid, code) = match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::Exited(p, c)) => (p.as_raw(), c),
                Ok(WaitStatus::Signaled(p, s, _)) => (p.as_raw(), 128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            if self.monitor.as_ref().is_some_and(|(m, _)| *m == pid) {
                self.monitor = None;
                monitor_died = Some((pid, code));
                continue;
            }
            match &self.monitor {
                Some((_, Some(sock)))
                    if send(sock, &ToMonitor::Exited { pid, code }, &[]).is_ok() => {}
                _ => self.exits.push((pid, code)),
            }
        }
        let Some((pid, code)) = monitor_died else {
            return;
        };
        if self.bye {
            crate::linux::sys::exit_now(0);
        }
        // one that never got ready (its starter reports why) is not started again
        let ready: Option<i32> = crate::pod::store::read_json(&self.dir.monitor_pid()).ok();
        if ready != Some(pid) {
            crate::linux::sys::exit_now(1);
        }
        eprintln!("berth pod keeper: the pod monitor ended ({code}): starting another");
        let now = Instant::now();
        self.restarts
            .retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if self.restarts.len() >= MAX_RESTARTS {
            eprintln!("berth pod keeper: the monitor keeps dying: giving up");
            crate::linux::sys::exit_now(1);
        }
        self.restarts.push(now);
        if let Err(e) = self.fork_monitor(start_monitor) {
            eprintln!("berth pod keeper: {e}");
            crate::linux::sys::exit_now(1);
        }
    }
}
