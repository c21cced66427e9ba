//! Exits and what follows them: the monitor reaps its children, records how each container
//! ended, stops containers (the signal, then SIGKILL at the grace period's end), and — for pods it supervises (CLI pods) — runs init containers in order and
//! restarts containers per the pod's restart policy with kubelet's back-off. The policy itself
//! is pure ([`restarts`], [`backoff`], [`Sequence`]) and unit-tested.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::Monitor;
use crate::pod::config::RestartPolicy;
use crate::pod::error::{Error, Result};
use crate::pod::store::{ContainerState, write_json};

/// Does a container that exited with `code` start again (kubelet's rules)? An init container
/// that succeeded never does; under Always a failed one does.
pub fn restarts(policy: RestartPolicy, is_init: bool, code: i32) -> bool {
    match policy {
        RestartPolicy::Always => !is_init || code != 0,
        RestartPolicy::OnFailure => code != 0,
        RestartPolicy::Never => false,
    }
}

/// kubelet's back-off before restart number `restarts + 1`: the base doubling per restart up
/// to five minutes, reset once the container ran ten minutes.
pub fn backoff(base_ms: u64, restarts: u32, ran_for: Duration) -> Duration {
    let n = if ran_for > Duration::from_secs(600) {
        0
    } else {
        restarts.min(10)
    };
    Duration::from_millis(base_ms.saturating_mul(1 << n)).min(Duration::from_secs(300))
}

/// Where a supervised pod is: init containers one by one, then the apps together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sequence {
    inits: Vec<String>,
    apps: Vec<String>,
    phase: Phase,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Phase {
    /// Not supervised (the CRI's pods), or not begun.
    #[default]
    Idle,
    /// Init container `k` runs.
    Init(usize),
    Apps,
    /// An init container failed for good.
    Failed,
}

/// What the sequence asks for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Start(Vec<String>),
    Nothing,
}

impl Sequence {
    pub fn new(inits: Vec<String>, apps: Vec<String>) -> Sequence {
        Sequence {
            inits,
            apps,
            phase: Phase::Init(0),
        }
    }

    /// The sequence of a pod whose monitor was replaced: the first init container that has
    /// not succeeded is current (or the sequence failed, if it failed under Never); with
    /// every one done, the apps. `codes`: each init's exit code, if it exited.
    pub fn resumed(
        inits: Vec<String>,
        apps: Vec<String>,
        codes: &[Option<i32>],
        policy: RestartPolicy,
    ) -> Sequence {
        let mut phase = Phase::Apps;
        for (k, c) in codes.iter().enumerate() {
            match c {
                Some(0) => continue,
                Some(_) if policy == RestartPolicy::Never => phase = Phase::Failed,
                _ => phase = Phase::Init(k),
            }
            break;
        }
        Sequence { inits, apps, phase }
    }

    pub fn is_init(&self, id: &str) -> bool {
        self.inits.iter().any(|i| i == id)
    }

    /// What to start now: the current init container, or every app.
    pub fn next(&mut self) -> Next {
        if let Phase::Init(k) = self.phase {
            match self.inits.get(k) {
                Some(id) => return Next::Start(vec![id.clone()]),
                None => self.phase = Phase::Apps,
            }
        }
        match self.phase {
            Phase::Apps => Next::Start(self.apps.clone()),
            _ => Next::Nothing,
        }
    }

    /// An init container succeeded: on to the next.
    pub fn init_done(&mut self, id: &str) -> bool {
        if let Phase::Init(k) = self.phase
            && self.inits.get(k).map(String::as_str) == Some(id)
        {
            self.phase = Phase::Init(k + 1);
            return true;
        }
        false
    }

    /// An init container failed for good: nothing more starts.
    pub fn fail(&mut self) {
        self.phase = Phase::Failed;
    }

    /// The sequence stops after a failed start (restartPolicy Never).
    pub fn start_failed(&mut self, policy: RestartPolicy) {
        if policy == RestartPolicy::Never && matches!(self.phase, Phase::Init(_)) {
            self.phase = Phase::Failed;
        }
    }
}

impl Monitor {
    /// Collect every exited child.
    pub(super) fn reap(&mut self) {
        loop {
            match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::Exited(pid, code)) => self.exited(pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.exited(pid.as_raw(), 128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    pub(super) fn exited(&mut self, pid: i32, code: i32) {
        if Some(pid) == self.pause {
            eprintln!("berth pod monitor: the pod's PID namespace holder exited ({code})");
            self.pause = None;
            return;
        }
        if self.probe_exited(pid, code) {
            return;
        }
        let Some(id) = self
            .ctrs
            .iter()
            .find(|(_, c)| c.status.pid == pid && c.status.state == ContainerState::Running)
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        // the rest of its output is still in the pipes: logged first
        self.drain_all(&id);
        // attached clients see the stream end; stdin and terminal go with the container
        self.attached.retain(|a| a.id != id);
        let c = self.ctrs.get_mut(&id).expect("present");
        c.input = None;
        c.tty = None;
        let oom = crate::pod::cgroup::oom_kills(&c.rec.cgroup) > c.status.oom_base;
        c.status.state = ContainerState::Exited;
        c.status.exit_code = Some(code);
        c.status.finished_at = Some(crate::pod::store::now());
        // as containerd and CRI-O report it: an OOM kill in the container's cgroup, whichever
        // of its processes it hit
        c.status.reason = Some(
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
        c.probes.halt();
        c.status.ready = false;
        if let Some(why) = c.killed_by.take() {
            c.status.message = Some(why);
        }
        let _ = write_json(&self.dir.container(&id).status(), &c.status);
        let stopping = c.stopping;
        let ran_for = c.started.map(|s| s.elapsed()).unwrap_or_default();
        // an endpoint gone, maybe; the pod not ready
        self.readiness_changed();
        self.tell_keeper(&super::keeper::ToKeeper::Forget { id: id.clone() }, &[]);
        if self.pod.supervised && !stopping {
            self.after_exit(&id, code, ran_for);
        }
    }

    /// Restart policy and init sequencing of supervised pods.
    fn after_exit(&mut self, id: &str, code: i32, ran_for: Duration) {
        let is_init = self.seq.is_init(id);
        if is_init && code == 0 {
            if self.seq.init_done(id) {
                self.advance();
            }
            return;
        }
        if restarts(self.pod.config.restart_policy, is_init, code) {
            self.schedule_restart(id, ran_for);
        } else if is_init {
            self.seq.fail();
        }
    }

    /// Restart a container after its back-off.
    pub(super) fn schedule_restart(&mut self, id: &str, ran_for: Duration) {
        let base = self.pod.restart_backoff_ms;
        if let Some(c) = self.ctrs.get_mut(id) {
            c.restart_at = Some(Instant::now() + backoff(base, c.status.restart_count, ran_for));
        }
    }

    /// Start what the sequence says comes next (what has not started yet: exited containers
    /// are their restart policy's).
    pub(super) fn advance(&mut self) {
        let Next::Start(ids) = self.seq.next() else {
            return;
        };
        for id in ids {
            let pending = self
                .ctrs
                .get(&id)
                .is_none_or(|c| c.status.state == ContainerState::Pending);
            if !pending {
                continue;
            }
            if let Err(e) = self.start(&id) {
                eprintln!("berth pod monitor: {e}");
                let policy = self.pod.config.restart_policy;
                self.seq.start_failed(policy);
                if policy != RestartPolicy::Never {
                    self.schedule_restart(&id, Duration::ZERO);
                }
            }
        }
    }
}

impl Monitor {
    /// Signal a container, SIGKILL it after `timeout_ms`; it is not restarted.
    pub(super) fn stop(&mut self, id: &str, signal: i32, timeout_ms: u64) -> Result<()> {
        let c = self
            .ctrs
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
        c.stopping = true;
        c.restart_at = None;
        if c.status.state == ContainerState::Running && c.status.pid > 0 {
            let sig = if timeout_ms == 0 {
                libc::SIGKILL
            } else {
                signal
            };
            // our own child: a zombie until reaped, so the pid cannot be reused meanwhile
            let _ = nix::sys::signal::kill(
                Pid::from_raw(c.status.pid),
                Signal::try_from(sig).unwrap_or(Signal::SIGTERM),
            );
            c.kill_at = Some(Instant::now() + Duration::from_millis(timeout_ms));
        }
        Ok(())
    }

    /// Kill containers past their grace period; restart those whose back-off ended.
    pub(super) fn timers(&mut self) {
        let now = Instant::now();
        let mut restart = Vec::new();
        for (id, c) in &mut self.ctrs {
            if c.kill_at.is_some_and(|t| t <= now) {
                c.kill_at = None;
                if c.status.state == ContainerState::Running {
                    let _ = nix::sys::signal::kill(Pid::from_raw(c.status.pid), Signal::SIGKILL);
                    // processes that left the init's process tree (a shared PID namespace)
                    for p in crate::pod::cgroup::procs(&c.rec.cgroup) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_rules_are_kubelets() {
        use RestartPolicy::*;
        let table = [
            (Always, false, 0, true),
            (Always, false, 1, true),
            (Always, true, 0, false),
            (Always, true, 1, true),
            (OnFailure, false, 0, false),
            (OnFailure, false, 137, true),
            (OnFailure, true, 2, true),
            (Never, false, 1, false),
            (Never, true, 1, false),
        ];
        for (policy, init, code, want) in table {
            assert_eq!(
                restarts(policy, init, code),
                want,
                "{policy:?} init={init} code={code}"
            );
        }
    }

    #[test]
    fn back_off_doubles_to_five_minutes_and_resets_after_ten() {
        let ms = |d: Duration| d.as_millis() as u64;
        let short = Duration::from_secs(1);
        assert_eq!(ms(backoff(10_000, 0, short)), 10_000);
        assert_eq!(ms(backoff(10_000, 1, short)), 20_000);
        assert_eq!(ms(backoff(10_000, 4, short)), 160_000);
        assert_eq!(ms(backoff(10_000, 5, short)), 300_000);
        assert_eq!(ms(backoff(10_000, 60, short)), 300_000);
        assert_eq!(ms(backoff(10_000, 7, Duration::from_secs(601))), 10_000);
        assert_eq!(ms(backoff(100, 3, short)), 800);
    }

    #[test]
    fn inits_run_one_by_one_then_the_apps() {
        let mut s = Sequence::new(vec!["i1".into(), "i2".into()], vec!["a".into(), "b".into()]);
        assert_eq!(s.next(), Next::Start(vec!["i1".into()]));
        assert!(!s.init_done("i2"), "out of turn");
        assert!(s.init_done("i1"));
        assert_eq!(s.next(), Next::Start(vec!["i2".into()]));
        assert!(s.init_done("i2"));
        assert_eq!(s.next(), Next::Start(vec!["a".into(), "b".into()]));
        let mut s = Sequence::new(vec!["i1".into()], vec!["a".into()]);
        s.fail();
        assert_eq!(s.next(), Next::Nothing);
        let mut s = Sequence::new(vec![], vec!["a".into()]);
        assert_eq!(s.next(), Next::Start(vec!["a".into()]));
        // a replaced monitor picks up where its predecessor was
        let ids = || vec!["i1".to_string(), "i2".to_string()];
        let mut s = Sequence::resumed(
            ids(),
            vec!["a".into()],
            &[Some(0), None],
            RestartPolicy::Always,
        );
        assert_eq!(s.next(), Next::Start(vec!["i2".into()]));
        let mut s = Sequence::resumed(
            ids(),
            vec!["a".into()],
            &[Some(0), Some(0)],
            RestartPolicy::Always,
        );
        assert_eq!(s.next(), Next::Start(vec!["a".into()]));
        let mut s = Sequence::resumed(
            ids(),
            vec!["a".into()],
            &[Some(1), None],
            RestartPolicy::Never,
        );
        assert_eq!(s.next(), Next::Nothing);
        assert_eq!(Sequence::default().next(), Next::Nothing);
    }
}
