//! The monitor's side of its keeper: messages both ways, and what a replacement monitor takes
//! over from its predecessor — the containers that still run (their stdio from the keeper's
//! copies, their logs appended to), the exits the keeper collected meanwhile, and, for
//! supervised pods, the init sequence and restart policy.

use std::fs;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::keeper::{self, Inherited};
use super::supervise::{Sequence, restarts};
use super::{Monitor, alive, attempt_log};
use crate::pod::logs::LogWriter;
use crate::pod::store::{self, ContainerState, PodDir, PodState, read_json, write_json};

impl Monitor {
    /// Take over what a previous monitor left (nothing, for the pod's first monitor).
    pub(super) fn adopt(&mut self, inherited: Inherited) {
        let Inherited { held, exits } = inherited;
        for (id, ends) in held {
            let Some(c) = self.ctrs.get_mut(&id) else {
                continue;
            };
            if c.status.state != ContainerState::Running {
                continue;
            }
            let log = c
                .status
                .log_path
                .clone()
                .unwrap_or_else(|| attempt_log(&c.rec.log_path, c.status.restart_count));
            c.log = LogWriter::open(&log, crate::pod::logs::MAX_SIZE).ok();
            c.set_stdio(ends);
        }
        // a stopped pod (or one being removed) stays stopped
        let stopped = self.pod.state != PodState::Ready || self.dir.removing().exists();
        if self.pod.supervised && !stopped {
            self.resume();
        }
        // exits while no monitor ran: the keeper reaped them
        for (pid, code) in exits {
            self.exited(pid, code);
        }
        // a container recorded as running whose init is gone: the keeper may have reaped it
        // just now (its message is on the way), else its predecessor reaped it and died
        // before recording the exit code, which is lost
        let lost = |m: &Monitor| -> Vec<String> {
            m.ctrs
                .iter()
                .filter(|(_, c)| c.status.state == ContainerState::Running)
                .filter(|(_, c)| !init_alive(c.status.pid, c.status.pid_start))
                .map(|(id, _)| id.clone())
                .collect()
        };
        if !lost(self).is_empty() {
            self.drain_keeper(Duration::from_millis(100));
        }
        for id in lost(self) {
            let c = self.ctrs.get_mut(&id).expect("present");
            c.status.state = ContainerState::Exited;
            c.status.exit_code = Some(255);
            c.status.reason = Some("Unknown".into());
            c.status.message =
                Some("it exited while its pod monitor was down: exit code lost".into());
            c.status.finished_at = Some(store::now());
            let _ = write_json(&self.dir.container(&id).status(), &c.status);
            if self.pod.supervised && !c.stopping && !stopped {
                let code = 255;
                let is_init = self.seq.is_init(&id);
                if restarts(self.pod.config.restart_policy, is_init, code) {
                    self.schedule_restart(&id, Duration::ZERO);
                }
            }
        }
    }

    /// Supervision where the previous monitor left it: the init sequence rebuilt from the
    /// records, and every exited container that its restart policy restarts scheduled again.
    fn resume(&mut self) {
        let mut inits: Vec<(&String, &super::Ctr)> = self
            .ctrs
            .iter()
            .filter(|(_, c)| c.rec.config.init)
            .collect();
        inits.sort_by(|a, b| a.1.rec.created.cmp(&b.1.rec.created));
        let mut apps: Vec<(&String, &super::Ctr)> = self
            .ctrs
            .iter()
            .filter(|(_, c)| !c.rec.config.init)
            .collect();
        apps.sort_by(|a, b| a.1.rec.created.cmp(&b.1.rec.created));
        let codes: Vec<Option<i32>> = inits
            .iter()
            .map(|(_, c)| {
                (c.status.state == ContainerState::Exited)
                    .then(|| c.status.exit_code.unwrap_or(255))
            })
            .collect();
        self.seq = Sequence::resumed(
            inits.iter().map(|(id, _)| (*id).clone()).collect(),
            apps.iter().map(|(id, _)| (*id).clone()).collect(),
            &codes,
            self.pod.config.restart_policy,
        );
        let policy = self.pod.config.restart_policy;
        let again: Vec<String> = self
            .ctrs
            .iter()
            .filter(|(_, c)| c.status.state == ContainerState::Exited && !c.stopping)
            .filter(|(id, c)| {
                restarts(
                    policy,
                    self.seq.is_init(id),
                    c.status.exit_code.unwrap_or(255),
                )
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in again {
            self.schedule_restart(&id, Duration::ZERO);
        }
        self.advance();
    }
}

impl Monitor {
    /// Send the keeper a message (a keeper that is gone is forgotten).
    pub(super) fn tell_keeper(
        &mut self,
        m: &keeper::ToKeeper,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) {
        if let Some(k) = &self.keeper
            && keeper::send(k, m, fds).is_err()
        {
            eprintln!("berth pod monitor: the keeper is gone");
            self.keeper = None;
        }
    }

    /// The exits of containers the keeper collected (those a previous monitor started).
    pub(super) fn read_keeper(&mut self) {
        let Some(k) = &self.keeper else {
            return;
        };
        let (text, _) = crate::linux::channel::recv_fds(k.as_fd()).unwrap_or_default();
        if text.is_empty() {
            eprintln!("berth pod monitor: the keeper is gone");
            self.keeper = None;
            return;
        }
        match serde_json::from_slice::<keeper::ToMonitor>(&text) {
            Ok(keeper::ToMonitor::Exited { pid, code }) => self.exited(pid, code),
            Err(e) => eprintln!("berth pod monitor: bad message from the keeper: {e}"),
        }
    }

    /// Read what the keeper sends for up to `wait`.
    fn drain_keeper(&mut self, wait: Duration) {
        let deadline = std::time::Instant::now() + wait;
        while let Some(k) = &self.keeper {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut fds = [PollFd::new(k.as_fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(n) if n > 0 => self.read_keeper(),
                _ => return,
            }
        }
    }
}

/// The pod's pause process left by a previous monitor, if it still runs.
pub(super) fn adopted_pause(dir: &PodDir) -> Option<i32> {
    let pid: i32 = read_json(&dir.pause_pid()).ok()?;
    let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    (alive(pid) && cmd.starts_with(b"pause")).then_some(pid)
}

/// Is `pid` the process that started at `start` (0: unknown, any), running or a zombie (a
/// zombie child of the keeper: its exit is on its way)?
fn init_alive(pid: i32, start: u64) -> bool {
    crate::linux::proc::stat(pid).is_some_and(|s| start == 0 || s.start_time == start)
}
