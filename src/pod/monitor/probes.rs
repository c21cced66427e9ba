//! Probes, run by the monitor as kubelet runs them: each on its period from the container's
//! start (after `initialDelaySeconds`), cut at its timeout; a startup probe holds the other
//! two until it passes; a failed startup or liveness probe kills the container (which then
//! restarts per the pod's policy, with back-off); readiness sets the container's ready flag,
//! and a change of it resyncs the Services. Network probes are sockets in the monitor's poll
//! loop (`check`); exec probes are `berth exec` children, reaped with the containers.

use std::os::fd::BorrowedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Monitor;
use super::check::{self, Progress};
use crate::pod::probe::{Handler, Kind, Probe, Probes, Tally, Verdict};
use crate::pod::store::{ContainerState, write_json};

/// A container's probes as they run.
#[derive(Default)]
pub(super) struct State {
    runs: Vec<Run>,
    /// Its startup probe passed (or it has none).
    started: bool,
}

struct Run {
    kind: Kind,
    spec: Probe,
    tally: Tally,
    next_at: Option<Instant>,
    inflight: Option<(Inflight, Instant)>,
}

enum Inflight {
    Net(check::Net),
    Exec(i32),
}

impl State {
    pub(super) fn new(p: &Probes) -> State {
        let runs = [
            (Kind::Startup, &p.startup),
            (Kind::Liveness, &p.liveness),
            (Kind::Readiness, &p.readiness),
        ]
        .into_iter()
        .filter_map(|(kind, spec)| {
            spec.as_ref().map(|s| Run {
                kind,
                spec: s.clone(),
                tally: Tally::default(),
                next_at: None,
                inflight: None,
            })
        })
        .collect();
        State {
            runs,
            started: p.startup.is_none(),
        }
    }

    fn has(&self, kind: Kind) -> bool {
        self.runs.iter().any(|r| r.kind == kind)
    }

    /// The container runs (since `at`): each probe's first run after its initial delay.
    pub(super) fn begin(&mut self, at: Instant) {
        self.started = !self.has(Kind::Startup);
        for r in &mut self.runs {
            r.tally.reset();
            r.next_at = Some(at + Duration::from_secs(r.spec.initial_delay_s.into()));
        }
    }

    /// The container is gone or going: nothing more runs, what runs is cut.
    pub(super) fn halt(&mut self) {
        for r in &mut self.runs {
            r.next_at = None;
            if let Some((Inflight::Exec(pid), _)) = r.inflight.take() {
                crate::linux::proc::kill_tree(pid);
            }
        }
    }

    /// Is the container ready, given that it runs? Without a readiness probe, once started.
    pub(super) fn ready_by_default(&self) -> bool {
        self.started && !self.has(Kind::Readiness)
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.runs
            .iter()
            .flat_map(|r| [r.next_at, r.inflight.as_ref().map(|(_, d)| *d)])
            .flatten()
            .min()
    }

    /// The sockets of network probes in flight: (run index, fd, events).
    pub(super) fn fds(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>, PollFlags)> {
        self.runs
            .iter()
            .enumerate()
            .filter_map(|(k, r)| match &r.inflight {
                Some((Inflight::Net(n), _)) => Some((k, n.fd(), n.interest())),
                _ => None,
            })
    }
}

impl Monitor {
    /// Socket `k` of container `id` is ready: take the check as far as it goes.
    pub(super) fn probe_io(&mut self, id: &str, k: usize) {
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        let Some(r) = c.probes.runs.get_mut(k) else {
            return;
        };
        let Some((Inflight::Net(n), _)) = &mut r.inflight else {
            return;
        };
        if let Progress::Done(ok, msg) = n.advance() {
            self.probe_result(id, k, ok, msg);
        }
    }

    /// An exec probe's process exited: true if `pid` was one.
    pub(super) fn probe_exited(&mut self, pid: i32, code: i32) -> bool {
        let found = self.ctrs.iter().find_map(|(id, c)| {
            c.probes.runs.iter().enumerate().find_map(|(k, r)| {
                matches!(r.inflight, Some((Inflight::Exec(p), _)) if p == pid)
                    .then(|| (id.clone(), k))
            })
        });
        let Some((id, k)) = found else {
            return false;
        };
        let msg = if code == 0 {
            String::new()
        } else {
            format!("command exited with code {code}")
        };
        self.probe_result(&id, k, code == 0, msg);
        true
    }

    /// Start probes that are due; fail those past their timeout.
    pub(super) fn probe_timers(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut late = Vec::new();
        for (id, c) in &mut self.ctrs {
            if c.status.state != ContainerState::Running || c.stopping || c.kill_at.is_some() {
                continue;
            }
            let started = c.probes.started;
            for (k, r) in c.probes.runs.iter_mut().enumerate() {
                if let Some((_, deadline)) = &r.inflight {
                    if *deadline <= now {
                        late.push((id.clone(), k, r.spec.timeout_s));
                    }
                    continue;
                }
                if r.next_at.is_some_and(|t| t <= now) {
                    let period = Duration::from_secs(r.spec.period_s.into());
                    r.next_at = Some(now + period);
                    // liveness and readiness wait for the startup probe
                    if started || r.kind == Kind::Startup {
                        due.push((id.clone(), k));
                    }
                }
            }
        }
        for (id, k, secs) in late {
            if let Some(r) = self
                .ctrs
                .get_mut(&id)
                .and_then(|c| c.probes.runs.get_mut(k))
                && let Some((Inflight::Exec(pid), _)) = r.inflight
            {
                crate::linux::proc::kill_tree(pid);
            }
            self.probe_result(&id, k, false, format!("timed out after {secs}s"));
        }
        for (id, k) in due {
            self.probe_start(&id, k);
        }
    }

    fn probe_start(&mut self, id: &str, k: usize) {
        // the pod's address is recorded after its monitor started
        if self.pod.ips.is_empty()
            && !self.pod.config.host_network
            && let Ok(rec) = crate::pod::store::read_record(&self.dir.record())
        {
            self.pod = rec;
        }
        let ip = self
            .pod
            .ips
            .first()
            .and_then(|i| i.parse().ok())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let exe = std::fs::read_link("/proc/self/exe");
        let (oci_root, seccomp) = (self.dir.oci_root(), self.dir.seccomp_cache());
        if self.netns.is_none() {
            self.netns = Some(self.open_netns());
        }
        let netns = self.netns.as_ref().expect("opened");
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        let cid = c.rec.id.clone();
        let Some(r) = c.probes.runs.get_mut(k) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(r.spec.timeout_s.into());
        let started = match &r.spec.handler {
            Handler::Exec { command } => exe
                .and_then(|exe| {
                    Command::new(exe)
                        .arg("--root")
                        .arg(oci_root)
                        .arg("--seccomp-cache")
                        .arg(seccomp)
                        .arg("exec")
                        .arg(&cid)
                        .args(command)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                })
                // the child is reaped by the monitor's loop, as the containers are
                .map(|child| Inflight::Exec(child.id() as i32))
                .map_err(|e| format!("run berth exec: {e}")),
            h => check::Net::start(h, ip, netns).map(Inflight::Net),
        };
        match started {
            Ok(i) => {
                r.inflight = Some((i, deadline));
                // a connect may be done at once (loopback): no wait for the next poll
                self.probe_io(id, k);
            }
            Err(msg) => self.probe_result(id, k, false, msg),
        }
    }

    fn open_netns(&self) -> check::Netns {
        let open =
            |p: &std::path::Path| std::fs::File::open(p).ok().map(std::os::fd::OwnedFd::from);
        match crate::pod::net::netns::path(&self.dir.0, "net") {
            Some(p) => check::Netns {
                pod: open(&p),
                host: open(std::path::Path::new("/proc/self/ns/net")),
            },
            None => check::Netns {
                pod: None,
                host: None,
            },
        }
    }

    /// One result of probe `k` of container `id`, and what it adds up to.
    fn probe_result(&mut self, id: &str, k: usize, ok: bool, msg: String) {
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        let Some(r) = c.probes.runs.get_mut(k) else {
            return;
        };
        r.inflight = None;
        if c.status.state != ContainerState::Running {
            return;
        }
        let kind = r.kind;
        let verdict = r.tally.record(ok, &r.spec);
        let grace = r.spec.termination_grace_s;
        let mut changed = false;
        if !ok {
            c.status.probe_failures += 1;
            c.status.last_probe_failure = Some(format!("{} probe failed: {msg}", kind.name()));
            changed = true;
        }
        let mut kill = false;
        match (kind, verdict) {
            (Kind::Startup, Verdict::Passed) => {
                c.probes.started = true;
                r.next_at = None;
                // the others run now
                let now = Instant::now();
                for o in &mut c.probes.runs {
                    if o.kind != Kind::Startup {
                        o.next_at = o.next_at.map(|t| t.min(now));
                    }
                }
            }
            (Kind::Startup | Kind::Liveness, Verdict::Failed) => kill = true,
            _ => {}
        }
        let was = c.status.ready;
        let ready = match (kind, verdict) {
            (Kind::Readiness, Verdict::Passed) => true,
            (Kind::Readiness, Verdict::Failed) => false,
            (Kind::Readiness, Verdict::Undecided) => c.status.ready,
            _ if c.probes.has(Kind::Readiness) => c.status.ready && !kill,
            _ => c.probes.ready_by_default() && !kill,
        };
        if ready != was {
            c.status.ready = ready;
            changed = true;
        }
        let ready_changed = ready != was;
        if changed {
            let _ = write_json(&self.dir.container(id).status(), &c.status);
        }
        if kill {
            let name = c.rec.config.name.clone();
            self.probe_kill(id, kind, grace, &name);
        }
        if ready_changed || kill {
            self.readiness_changed();
        }
    }

    /// Kill a container whose startup or liveness probe failed (it restarts per the policy).
    fn probe_kill(&mut self, id: &str, kind: Kind, grace: Option<u64>, name: &str) {
        let grace = grace.unwrap_or(self.pod.config.termination_grace_seconds);
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        c.probes.halt();
        c.killed_by = Some(format!(
            "Container {name} failed {} probe, will be restarted",
            kind.name()
        ));
        let sig = crate::linux::signal::parse(&c.rec.stop_signal).unwrap_or(libc::SIGTERM);
        let _ = nix::sys::signal::kill(
            Pid::from_raw(c.status.pid),
            Signal::try_from(sig).unwrap_or(Signal::SIGTERM),
        );
        c.kill_at = Some(Instant::now() + Duration::from_secs(grace));
    }

    /// A container's readiness changed: the pod's conditions, and the Services' endpoints.
    pub(super) fn readiness_changed(&mut self) {
        let ready = self
            .ctrs
            .values()
            .filter(|c| !c.rec.config.init)
            .all(|c| c.status.state == ContainerState::Running && c.status.ready);
        crate::pod::store::record_readiness(&self.dir, ready);
        crate::pod::services::changed_from_monitor(&self.dir.0);
    }
}
