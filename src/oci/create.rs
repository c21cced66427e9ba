//! `create`: load and plan the bundle, set up the cgroup, clone the container's init into its
//! namespaces, wait until it reports ready, record the state.
//!
//! Each acquired resource (state directory, cgroup, init process, exec fifo) pushes an undo; a
//! failure anywhere rolls them back in reverse, so a failed create leaves nothing behind.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode as FileMode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::error::{Error, Result};
use super::handshake::{oom_during_setup, send_seccomp_listener, wait_ready};
use super::hooks;
use super::init::{self, InitIo, StartSignal, TerminalTo};
use super::plan::{self, Plan};
use super::spec::{self, SpecError};
use super::state::{EXEC_FIFO, Locked, Record, STATE_VERSION, Status, Store};
use crate::linux::cgroup::{self, Dirs, Layout};
use crate::linux::channel::{Channel, Msg};
use crate::linux::seccomp;
use crate::linux::sys::{self, Forked};
use crate::linux::{Step, SysError, proc};
use crate::undo::Undo;

/// Options of `create` (and the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Bundle directory holding config.json.
    pub bundle: PathBuf,
    /// Write the init's pid here.
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the terminal's master fd when `process.terminal` is true.
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (root on a ramdisk).
    pub no_pivot: bool,
    /// Pass fds 3..3+N through to the container.
    pub preserve_fds: u32,
    /// Keep the session keyring instead of giving the container a new one.
    pub no_new_keyring: bool,
}

/// What a successful create reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Host pid of the container's init.
    pub pid: i32,
    /// Adjustments made on the way (clamped limits), to show to the user.
    pub warnings: Vec<String>,
}

/// How the new container will be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `create`: init waits on exec.fifo for `start`.
    Create,
    /// `run`: init waits for a message from this process.
    Run,
}

/// A container whose init is set up and waiting to exec.
pub(crate) struct Spawned {
    pub pid: i32,
    pub channel: Channel,
    pub warnings: Vec<String>,
    /// The terminal's master, when this process proxies it (foreground run).
    pub terminal: Option<OwnedFd>,
    pub locked: Locked,
    pub undo: Undo,
}

/// Make an absolute path of `p` (relative to the current directory), without resolving links.
pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
}

/// Write a pid file atomically (runc writes it the same way: conmon polls for it).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    crate::linux::fs::write_atomic_volatile(path, pid.to_string().as_bytes())
        .map_err(|e| SysError::new(format!("write pid file {}", path.display()), e).into())
}

/// The plan for a bundle, with every check that needs no side effect.
pub(crate) fn plan_bundle(id: &str, opts: &CreateOptions, layout: &Layout) -> Result<Plan> {
    let bundle = absolute(&opts.bundle)?;
    let spec = spec::load(&bundle).map_err(Error::config)?;
    let plan = plan::build(
        &spec,
        &plan::Input {
            id,
            bundle: &bundle,
            layout,
            no_pivot: opts.no_pivot,
        },
    )
    .map_err(Error::config)?;
    check_host_lsm(&plan.process, "process")?;
    if plan.mount_label.is_some() && !crate::linux::process::selinux_enabled() {
        return Err(Error::config(SpecError::new(
            "linux.mountLabel",
            "SELinux is not enabled on this host",
        )));
    }
    match std::fs::metadata(&plan.rootfs) {
        Ok(m) if m.is_dir() => Ok(plan),
        Ok(_) => Err(Error::config(SpecError::new(
            "root.path",
            format!("{} is not a directory", plan.rootfs.display()),
        ))),
        Err(e) => Err(Error::config(SpecError::new(
            "root.path",
            format!("{}: {e}", plan.rootfs.display()),
        ))),
    }
}

/// Refuse AppArmor/SELinux labels on a host that does not have the LSM (rather than run the
/// container unconfined).
pub(crate) fn check_host_lsm(p: &crate::linux::process::ProcessPlan, field: &str) -> Result<()> {
    if p.apparmor_profile.is_some() && !crate::linux::process::apparmor_enabled() {
        return Err(Error::config(SpecError::new(
            format!("{field}.apparmorProfile"),
            "AppArmor is not enabled on this host",
        )));
    }
    if p.selinux_label.is_some() && !crate::linux::process::selinux_enabled() {
        return Err(Error::config(SpecError::new(
            format!("{field}.selinuxLabel"),
            "SELinux is not enabled on this host",
        )));
    }
    Ok(())
}

/// `berth create`.
pub fn create(store: &Store, id: &str, opts: &CreateOptions) -> Result<Created> {
    let layout = Layout::detect()?;
    let plan = plan_bundle(id, opts, &layout)?;
    if plan.process.terminal && opts.console_socket.is_none() {
        return Err(Error::Invalid(
            "process.terminal is true: --console-socket is required for create".into(),
        ));
    }
    let s = spawn(store, id, opts, &plan, &layout, Mode::Create)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, s.pid)?; // on failure, `s` drops and its undo rolls back
    }
    // Recorded: the init may now outlive us. Wait for its acknowledgement, or our exit would
    // still kill it.
    s.channel.send(&Msg::Go)?;
    match s.channel.recv()? {
        Some(Msg::Ready) => {}
        _ => return Err(Error::Init("container init exited after setup".into())),
    }
    let created = Created {
        pid: s.pid,
        warnings: s.warnings,
    };
    s.undo.commit();
    Ok(created)
}

/// Create the container and wait for its init to be ready. Shared by `create` and `run`.
pub(crate) fn spawn(
    store: &Store,
    id: &str,
    opts: &CreateOptions,
    plan: &Plan,
    layout: &Layout,
    mode: Mode,
) -> Result<Spawned> {
    let locked = store.reserve(id)?;
    let mut undo = Undo::new();
    let dir = locked.dir.clone();
    undo.push(
        format!("remove {}", dir.display()),
        move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        },
    );
    match spawn_steps(
        &locked,
        &mut undo,
        opts,
        plan,
        layout,
        mode,
        &store.seccomp_cache(),
    ) {
        Ok((pid, channel, warnings, terminal)) => Ok(Spawned {
            pid,
            channel,
            warnings: plan.warnings.iter().cloned().chain(warnings).collect(),
            terminal,
            locked,
            undo,
        }),
        Err(e) => {
            let failed = undo.rollback();
            if failed.is_empty() {
                Err(e)
            } else {
                Err(Error::Invalid(crate::undo::describe(&e, &failed)))
            }
        }
    }
}

type Spawn = (i32, Channel, Vec<String>, Option<OwnedFd>);

fn spawn_steps(
    locked: &Locked,
    undo: &mut Undo,
    opts: &CreateOptions,
    plan: &Plan,
    layout: &Layout,
    mode: Mode,
    seccomp_cache: &Path,
) -> Result<Spawn> {
    let dirs = &plan.cgroup.dirs;
    // Recorded before anything is acquired (pid 0: no process yet), so that if this process is
    // killed mid-create, `delete --force` still finds the cgroup to remove.
    let mut record = Record {
        version: STATE_VERSION,
        id: locked.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        annotations: plan.annotations.clone(),
        cgroup: dirs.clone(),
        cgroup_created: Vec::new(),
        namespaces: plan.namespaces.kinds.clone(),
        hooks: (plan.hooks != Default::default()).then(|| plan.hooks.clone()),
    };
    locked.write(&record)?;
    let created = cgroup::create(layout, dirs)?;
    let (d, c) = (dirs.clone(), created.clone());
    undo.push("remove the container's cgroup", move || {
        cgroup::remove(&d, &c).map_err(|e| e.to_string())
    });
    cgroup::apply(dirs, &plan.cgroup.writes)?;
    if let (Dirs::V2(dir), false) = (dirs, plan.cgroup.device_rules.is_empty()) {
        cgroup::devices::attach(dir, &plan.cgroup.device_rules)?;
    }
    let cgroup_fd = cgroup::open_v2(dirs)?;
    let ooms_before = cgroup::stats::oom_kills(dirs);
    let seccomp = plan
        .seccomp
        .as_ref()
        .map(|f| seccomp::program(f, seccomp_cache))
        .transpose()?;

    let mut join: Vec<(CloneFlags, OwnedFd)> = Vec::new();
    for (flag, path) in &plan.namespaces.join {
        join.push((*flag, open_ns(path)?));
    }
    if let Some(path) = &plan.namespaces.join_pid {
        // only this process's future children enter it: the init we are about to clone
        let fd = open_ns(path)?;
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWPID)
            .step(|| format!("join pid namespace {}", path.display()))?;
    }
    let start = match mode {
        Mode::Create => {
            let fifo = locked.dir.join(EXEC_FIFO);
            nix::unistd::mkfifo(&fifo, FileMode::from_bits_truncate(0o600))
                .step(|| format!("create {}", fifo.display()))?;
            // Opened for reading before the init exists, so `start` can detect a dead init
            // (ENXIO) and the init's poll waits for the first write.
            let fd = nix::fcntl::open(
                &fifo,
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                FileMode::empty(),
            )
            .step(|| format!("open {}", fifo.display()))?;
            StartSignal::Fifo(fd)
        }
        Mode::Run => StartSignal::Channel,
    };
    let terminal = match (&opts.console_socket, plan.process.terminal) {
        (Some(path), true) => Some(TerminalTo::Socket(crate::linux::console::connect(path)?)),
        (None, true) => Some(TerminalTo::Parent),
        (_, false) => None,
    };
    let exec_stub = exec_stub()?;
    let (parent, child) = Channel::pair()?;
    // cgroup v1: the init moves itself through `tasks` fds we open (see InitIo), unless it
    // starts in a new user namespace; then it waits for us to move it.
    let self_attach = !layout.is_v2() && plan.id_maps.is_none() && !plan.namespaces.user;
    let cgroup_tasks = if self_attach {
        cgroup::open_tasks(dirs)?
    } else {
        Vec::new()
    };
    // The child waits for us: to be moved into its cgroups (v1), to get its id maps.
    let wait_go = (!layout.is_v2() && !self_attach) || plan.id_maps.is_some();

    let user_join = join
        .iter()
        .position(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
        .map(|i| join.remove(i).1);
    // Born non-dumpable: nothing in the container can open its /proc/<pid>/exe (berth).
    let was_dumpable = nix::sys::prctl::get_dumpable().unwrap_or(true);
    sys::set_non_dumpable().step(|| "set non-dumpable".into())?;
    let forked = match &user_join {
        None => sys::fork_with_flags(
            plan.namespaces.clone_flags.bits() as u64,
            cgroup_fd.as_ref().map(|f| f.as_fd()),
        )
        .step(|| "clone container init".into())?,
        Some(userns) => clone_in_user_namespace(
            userns,
            plan.namespaces.clone_flags.bits() as u64,
            cgroup_fd.as_ref(),
            &parent,
            &child,
            locked,
        )?,
    };
    let pid = match forked {
        Forked::Child => {
            drop(parent);
            drop(user_join);
            init::run(
                plan,
                InitIo {
                    channel: child,
                    start,
                    terminal,
                    join,
                    close_first: [
                        Some(locked.raw_fd()),
                        cgroup_fd.as_ref().map(|f| f.as_raw_fd()),
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                    wait_go,
                    cgroup_tasks,
                    preserve_fds: opts.preserve_fds,
                    new_keyring: !opts.no_new_keyring,
                    seccomp,
                    exec_stub,
                },
            )
        }
        Forked::Parent(pid) => pid,
    };
    if was_dumpable {
        let _ = nix::sys::prctl::set_dumpable(true);
    }
    undo.push(format!("kill the container's init {pid}"), move || {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
        Ok(())
    });
    drop((
        child, start, terminal, join, cgroup_fd, seccomp, user_join, exec_stub,
    ));

    if wait_go {
        if !layout.is_v2() && !self_attach {
            cgroup::add_process(dirs, pid)?;
        }
        if let Some(maps) = &plan.id_maps {
            write_id_maps(pid, maps)?;
        }
        parent.send(&Msg::Go)?;
    }
    let listener = plan.seccomp.as_ref().and_then(|f| f.listener.clone());
    let ready = wait_ready(
        &parent,
        pid,
        &|| oom_during_setup(plan, ooms_before),
        &mut |fd| {
            // the container process's state, as it is being created
            let Some(l) = &listener else {
                return Ok(());
            };
            let mut rec = record.clone();
            rec.pid = pid;
            send_seccomp_listener(l, fd, pid, &locked.state(&rec), true)
        },
        &mut || {
            // prestart (deprecated) and createRuntime: in our namespaces, while the init waits
            let mut rec = record.clone();
            rec.pid = pid;
            let state = rec.hook_state(Status::Creating);
            let h = &plan.hooks;
            hooks::run_all("prestart", h.prestart().as_deref().unwrap_or(&[]), &state)
                .and_then(|_| {
                    hooks::run_all(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or(&[]),
                        &state,
                    )
                })
                .map_err(Error::Init)?;
            Ok(state)
        },
    )?;
    record.pid_start = proc::stat(pid)
        .map(|s| s.start_time)
        .ok_or_else(|| Error::Init("container init exited right after setup".into()))?;
    record.pid = pid;
    record.cgroup_created = created;
    locked.write(&record)?;
    let (warnings, terminal) = (ready.warnings, ready.terminal);
    Ok((pid, parent, warnings, terminal))
}

fn open_ns(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, FileMode::empty()).map_err(|e| {
        Error::config(SpecError::new(
            "linux.namespaces",
            format!("open {}: {}", path.display(), std::io::Error::from(e)),
        ))
    })
}

/// Clone the init from inside a user namespace joined by path, so that the namespaces the
/// clone creates belong to it (created from the host's user namespace, the container's root
/// could not mount its own /proc). A short-lived helper joins the user namespace and clones the
/// init with CLONE_PARENT, so that this process stays the init's parent; it hands the init back
/// as a pidfd, whose fdinfo gives the pid in our pid namespace.
fn clone_in_user_namespace(
    userns: &OwnedFd,
    flags: u64,
    cgroup: Option<&OwnedFd>,
    parent: &Channel,
    child: &Channel,
    locked: &Locked,
) -> Result<Forked> {
    let helper = match sys::fork_with_flags(0, None).step(|| "fork user namespace helper".into())? {
        Forked::Child => {
            sys::close_raw(locked.raw_fd());
            let fail = |e: String| -> ! {
                let _ = child.send(&Msg::Error(e));
                sys::exit_now(1)
            };
            if let Err(e) = nix::sched::setns(userns, CloneFlags::CLONE_NEWUSER) {
                fail(format!("join user namespace: {}", std::io::Error::from(e)));
            }
            match sys::clone_parent_with_pidfd(flags, cgroup.map(|f| f.as_fd())) {
                Ok(None) => return Ok(Forked::Child), // the init
                Ok(Some(pidfd)) => {
                    let _ = child.send_with_fd(&Msg::Go, pidfd.as_fd());
                    sys::exit_now(0)
                }
                Err(e) => fail(format!("clone container init in its user namespace: {e}")),
            }
        }
        Forked::Parent(pid) => pid,
    };
    let got = parent.recv_with_fd();
    let _ = waitpid(Pid::from_raw(helper), None);
    match got? {
        Some((Msg::Go, Some(pidfd))) => {
            let pid = sys::pidfd_pid(pidfd.as_fd()).step(|| "read the init's pid".into())?;
            Ok(Forked::Parent(pid))
        }
        Some((Msg::Error(e), _)) => Err(Error::Init(e)),
        _ => Err(Error::Init(
            "user namespace helper exited without a report".into(),
        )),
    }
}

/// The sealed exec stub, where the architecture has one.
pub(crate) fn exec_stub() -> Result<Option<OwnedFd>> {
    #[cfg(target_arch = "x86_64")]
    return Ok(Some(sys::exec_stub().step(|| "create exec stub".into())?));
    #[cfg(not(target_arch = "x86_64"))]
    return Ok(None);
}

/// Write a new user namespace's uid and gid maps (only a process outside it may).
fn write_id_maps(pid: i32, maps: &plan::IdMaps) -> Result<()> {
    for (file, list) in [("uid_map", &maps.uid), ("gid_map", &maps.gid)] {
        let text: String = list
            .iter()
            .map(|(c, h, n)| format!("{c} {h} {n}\n"))
            .collect();
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text).map_err(|e| SysError::new(format!("write {path}"), e))?;
    }
    Ok(())
}
