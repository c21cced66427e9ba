//! `exec`: a new process in a running container: same namespaces (joined in one `setns` on the
//! init's pidfd), same cgroup (`CLONE_INTO_CGROUP` on v2), its own process attributes.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::create::write_pid_file;
use super::error::{Error, Result};
use super::foreground::Foreground;
use super::handshake::Ready;
use super::init::{self, InitIo, StartSignal, TerminalTo};
use super::plan;
use super::run::Outcome;
use super::state::{Status, Store};
use crate::linux::channel::{Channel, Msg};
use crate::linux::process::ProcessPlan;
use crate::linux::sys::{self, Forked};
use crate::linux::{Step, SysError, cgroup, proc};

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The process to run (from `--process`, or built from the CLI arguments).
    pub process: Process,
    /// Where the terminal's master goes when `process.terminal` is true.
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Exec into a paused container (the process stays frozen until it is resumed).
    pub ignore_paused: bool,
    /// Existing sub-cgroups of the container's to run in: `(controller, path)`, where no
    /// controller means every hierarchy (runc's `--cgroup [<controller>:]<path>`).
    pub sub_cgroups: Vec<(Option<String>, PathBuf)>,
}

fn ns_flag(name: &str) -> CloneFlags {
    match name {
        "mount" => CloneFlags::CLONE_NEWNS,
        "network" => CloneFlags::CLONE_NEWNET,
        "ipc" => CloneFlags::CLONE_NEWIPC,
        "uts" => CloneFlags::CLONE_NEWUTS,
        "cgroup" => CloneFlags::CLONE_NEWCGROUP,
        "user" => CloneFlags::CLONE_NEWUSER,
        "time" => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        _ => CloneFlags::empty(),
    }
}

/// `berth exec`.
pub fn exec(store: &Store, id: &str, opts: &ExecOptions) -> Result<(Outcome, Vec<String>)> {
    let (locked, rec) = store.open(id, false)?;
    let status = locked.status(&rec);
    match status {
        Status::Created | Status::Running => {}
        Status::Paused if opts.ignore_paused => {}
        Status::Paused => {
            return Err(Error::State {
                id: id.to_string(),
                status,
                what: "cannot exec in a paused container (use --ignore-paused to override)",
            });
        }
        _ => {
            return Err(Error::State {
                id: id.to_string(),
                status,
                what: "cannot exec in a stopped container",
            });
        }
    }
    let mut plan = plan::process_plan(&opts.process, "process").map_err(|err| Error::Spec {
        file: "process".into(),
        err,
    })?;
    // what the container's config imposes on every process in it: its seccomp filter and its
    // execution domain
    let spec = super::spec::load(&rec.bundle).map_err(Error::config)?;
    let linux = spec.linux().clone().unwrap_or_default();
    plan.personality = plan::personality(&linux).map_err(Error::config)?;
    let filter = linux
        .seccomp()
        .as_ref()
        .map(super::seccomp::filter)
        .transpose()
        .map_err(Error::config)?;
    let cgroup = sub_cgroup(&rec.cgroup, &opts.sub_cgroups)?;
    super::create::check_host_lsm(&plan, "process")?;
    if plan.terminal && opts.detach && opts.console_socket.is_none() {
        return Err(Error::Invalid(
            "process.terminal is true: --console-socket is required with --detach".into(),
        ));
    }
    let pidfd = sys::pidfd_open(rec.pid).step(|| format!("pidfd_open {}", rec.pid))?;
    if !proc::is_alive(rec.pid, rec.pid_start) {
        return Err(Error::State {
            id: id.to_string(),
            status: Status::Stopped,
            what: "cannot exec in a stopped container",
        });
    }
    let mut flags = CloneFlags::empty();
    for kind in &rec.namespaces {
        flags |= ns_flag(kind);
    }
    if rec.namespaces.iter().any(|k| k == "pid") {
        nix::sched::setns(&pidfd, CloneFlags::CLONE_NEWPID)
            .step(|| "join the container's pid namespace".into())?;
    }
    // A frozen cgroup would freeze the process in the middle of its setup: in a paused
    // container it joins the cgroup only once ready to exec (and execs when thawed).
    let join_late = status == Status::Paused;
    let cgroup_fd = if join_late {
        None
    } else {
        cgroup::open_v2(&cgroup)?
    };
    let terminal = match (&opts.console_socket, plan.terminal) {
        (Some(path), true) => Some(TerminalTo::Socket(crate::linux::console::connect(path)?)),
        (None, true) => Some(TerminalTo::Parent),
        (_, false) => None,
    };
    let seccomp = filter
        .as_ref()
        .map(|f| crate::linux::seccomp::program(f, &store.seccomp_cache()))
        .transpose()?;
    let fg = if opts.detach {
        None
    } else {
        Some(Foreground::block()?)
    };
    let (parent, child) = Channel::pair()?;
    let wait_go = cgroup_fd.is_none() && !join_late;
    let exec_stub = super::create::exec_stub()?;
    // Born non-dumpable: the container's processes cannot open its /proc/<pid>/exe (berth)
    // in the moment before it execs.
    let was_dumpable = nix::sys::prctl::get_dumpable().unwrap_or(true);
    sys::set_non_dumpable().step(|| "set non-dumpable".into())?;
    let forked = sys::fork_with_flags(0, cgroup_fd.as_ref().map(|f| f.as_fd()))
        .step(|| "clone exec process".into())?;
    let pid = match forked {
        Forked::Child => {
            drop(parent);
            let io = InitIo {
                channel: child,
                start: StartSignal::Channel,
                terminal,
                join: Vec::new(),
                close_first: [
                    Some(locked.raw_fd()),
                    cgroup_fd.as_ref().map(|f| f.as_raw_fd()),
                ]
                .into_iter()
                .flatten()
                .collect(),
                wait_go,
                cgroup_tasks: Vec::new(),
                preserve_fds: opts.preserve_fds,
                new_keyring: false,
                seccomp,
                exec_stub,
            };
            exec_child(&plan, pidfd, flags, io, join_late)
        }
        Forked::Parent(pid) => pid,
    };
    if was_dumpable {
        let _ = nix::sys::prctl::set_dumpable(true);
    }
    drop((child, terminal, cgroup_fd, pidfd, seccomp, exec_stub));
    let listener = filter.as_ref().and_then(|f| f.listener.clone());
    let mut to_listener = |fd: OwnedFd| match &listener {
        Some(l) => super::handshake::send_seccomp_listener(l, fd, pid, &locked.state(&rec), false),
        None => Ok(()),
    };
    let result = wait_exec(&parent, &cgroup, pid, wait_go, join_late, &mut to_listener)
        .map(|r| (r.warnings, r.terminal));
    let (warnings, tty) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            return Err(e);
        }
    };
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    drop(locked);
    match fg {
        None => Ok((Outcome::Detached { pid }, warnings)),
        Some(fg) => Ok((
            Outcome::Exited {
                code: fg.wait(pid, tty)?,
            },
            warnings,
        )),
    }
}

/// The cgroup an exec'd process joins: the container's, or existing sub-cgroups of it.
fn sub_cgroup(dirs: &cgroup::Dirs, subs: &[(Option<String>, PathBuf)]) -> Result<cgroup::Dirs> {
    let mut out = dirs.clone();
    for (ctrl, sub) in subs {
        if sub.is_absolute()
            || sub
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::Invalid(format!(
                "--cgroup {}: a sub-cgroup is a relative path without '..'",
                sub.display()
            )));
        }
        let check = |d: PathBuf| -> Result<PathBuf> {
            if d.is_dir() {
                Ok(d)
            } else {
                Err(Error::Invalid(format!(
                    "--cgroup {}: {} does not exist",
                    sub.display(),
                    d.display()
                )))
            }
        };
        match (&mut out, ctrl) {
            (cgroup::Dirs::V2(_), Some(c)) => {
                return Err(Error::Invalid(format!(
                    "--cgroup {c}:{}: controller names are for cgroup v1 hierarchies",
                    sub.display()
                )));
            }
            (cgroup::Dirs::V2(d), None) => *d = check(d.join(sub))?,
            (cgroup::Dirs::V1(map), ctrl) => {
                let mut hit = false;
                for (name, d) in map.iter_mut() {
                    if ctrl
                        .as_ref()
                        .is_none_or(|c| name.split(',').any(|n| n == c))
                    {
                        *d = check(d.join(sub))?;
                        hit = true;
                    }
                }
                if !hit {
                    return Err(Error::Invalid(format!(
                        "--cgroup {}:{}: no such controller in the container's cgroups",
                        ctrl.clone().unwrap_or_default(),
                        sub.display()
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// Move the child into the cgroup (v1), then read its reports until its exec closes the channel.
/// With `join_late`, the child says Ready before its exec: it is moved into the (frozen)
/// cgroup then and told to go on; its exec happens when the container is resumed.
fn wait_exec(
    ch: &Channel,
    dirs: &cgroup::Dirs,
    pid: i32,
    wait_go: bool,
    join_late: bool,
    seccomp: &mut dyn FnMut(OwnedFd) -> Result<()>,
) -> Result<Ready> {
    if wait_go {
        cgroup::add_process(dirs, pid)?;
        ch.send(&Msg::Go)?;
    }
    let mut ready = Ready::default();
    loop {
        match ch.recv_with_fd()? {
            None => return Ok(ready),
            Some((Msg::Ready, _)) if join_late => {
                cgroup::add_process(dirs, pid)?;
                ch.send(&Msg::Go)?;
                return Ok(ready);
            }
            Some((Msg::Warning(w), _)) => ready.warnings.push(w),
            Some((Msg::Terminal, fd)) => ready.terminal = fd,
            // to the listener before the process may make a notified syscall
            Some((Msg::Seccomp, Some(fd))) => {
                seccomp(fd)?;
                ch.send(&Msg::Go)?;
            }
            Some((Msg::Error(e), _)) => return Err(Error::Init(e)),
            Some(_) => {}
        }
    }
}

fn exec_child(
    p: &ProcessPlan,
    pidfd: OwnedFd,
    flags: CloneFlags,
    io: InitIo,
    join_late: bool,
) -> ! {
    for fd in &io.close_first {
        sys::close_raw(*fd);
    }
    let prepared = (|| -> crate::linux::Result<init::Prepared> {
        sys::reset_signals().step(|| "reset signal mask".into())?;
        if io.wait_go && !matches!(io.channel.recv()?, Some(Msg::Go)) {
            return Err(SysError::other("wait for parent", "parent went away"));
        }
        if !flags.is_empty() {
            nix::sched::setns(&pidfd, flags).step(|| "join the container's namespaces".into())?;
        }
        drop(pidfd);
        if p.terminal {
            init::setup_terminal(&io, p, false)?;
        }
        init::prepare_process(p, &io)
    })();
    match prepared {
        Err(e) => {
            let _ = io.channel.send(&Msg::Error(e.to_string()));
            sys::exit_now(1)
        }
        Ok(prep) => {
            if join_late
                && (io.channel.send(&Msg::Ready).is_err()
                    || !matches!(io.channel.recv(), Ok(Some(Msg::Go))))
            {
                sys::exit_now(1);
            }
            let e = prep.exec(p, &io);
            let _ = io.channel.send(&Msg::Error(e.to_string()));
            sys::exit_now(127)
        }
    }
}
