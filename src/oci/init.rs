//! The container's init: what runs in the cloned child, inside its new namespaces, from the first
//! instruction after clone to the exec of the user's program. No re-exec of berth: the child is a
//! copy of the parent that already holds the plan.
//!
//! Every failure is sent to the parent as a message naming the step; the parent prints it and
//! rolls back. The child never returns: it execs or `_exit`s.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;

use super::hooks;
use super::plan::Plan;
use crate::linux::channel::{Channel, Msg};
use crate::linux::process::{self, ProcessPlan};
use crate::linux::seccomp::{self, Program};
use crate::linux::{Result, Step, SysError, console, mount, sys};

/// How the init learns that it may exec.
pub(crate) enum StartSignal {
    /// `berth create`: a byte written to `exec.fifo` by `berth start`.
    Fifo(OwnedFd),
    /// `berth run`: a `Go` message from the parent on the channel.
    Channel,
}

/// Where a terminal's master end goes.
pub(crate) enum TerminalTo {
    /// The `--console-socket`, connected by the parent on the host.
    Socket(OwnedFd),
    /// The parent itself, which copies between its stdio and the pty (foreground `run`/`exec`).
    Parent,
}

/// Everything the child inherits from the parent besides the plan.
pub(crate) struct InitIo {
    pub channel: Channel,
    pub start: StartSignal,
    pub terminal: Option<TerminalTo>,
    /// Namespaces to join, opened by the parent.
    pub join: Vec<(CloneFlags, OwnedFd)>,
    /// Fds the child must close first without side effects on the parent (the state lock).
    pub close_first: Vec<RawFd>,
    /// Wait for `Go` before doing anything (the parent writes our id maps, or on cgroup v1
    /// moves us into our cgroups when we cannot do it ourselves).
    pub wait_go: bool,
    /// cgroup v1: each hierarchy's `tasks` file, opened by the parent; the init moves itself
    /// by writing "0" (itself) to each, which the kernel does without the threadgroup lock
    /// whose write side waits for an RCU grace period (~20 ms after an idle spell).
    pub cgroup_tasks: Vec<OwnedFd>,
    pub preserve_fds: u32,
    pub new_keyring: bool,
    /// The compiled seccomp filter to load.
    pub seccomp: Option<Program>,
    /// The sealed exec stub the program is started through (see `sys::EXEC_STUB`).
    pub exec_stub: Option<OwnedFd>,
}

/// A program ready to exec.
pub(crate) struct Prepared {
    pub exe: CString,
    pub env: Vec<CString>,
    /// seccomp still to load, just before exec.
    pub late_seccomp: bool,
    /// The state JSON for startContainer hooks.
    pub hook_state: Option<String>,
}

impl Prepared {
    /// Load the seccomp filter if it waited for the last moment, then exec. Returns only on
    /// failure.
    pub(crate) fn exec(&self, p: &ProcessPlan, io: &InitIo) -> SysError {
        if self.late_seccomp {
            if let Some(prog) = &io.seccomp {
                if let Err(e) = seccomp::load(prog) {
                    return e;
                }
            }
        }
        if let Some(stub) = &io.exec_stub {
            // [mark, path, argv...]: the stub execs path with argv, so that /proc/self/exe at
            // that exec is the stub, not berth
            let mut argv: Vec<&std::ffi::CStr> = vec![c"\x01berth", self.exe.as_c_str()];
            argv.extend(p.args.iter().map(|a| a.as_c_str()));
            let e = sys::execveat_fd(stub.as_fd(), &argv, &self.env);
            // a host that forbids executing memfds: the direct exec still works
            if !matches!(
                e.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::ENOEXEC)
            ) {
                return SysError::new(format!("exec {}", self.exe.to_string_lossy()), e);
            }
        }
        process::exec(&self.exe, &p.args, &self.env)
    }
}

fn exit_code_for(e: &SysError) -> i32 {
    match e.errno() {
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::ENOEXEC) => 126,
        _ => 127,
    }
}

/// Entry point of the container's init in the child. Never returns.
///
/// Until the parent has recorded the container, the init dies with it (PDEATHSIG): a `berth`
/// killed mid-create leaves no orphan waiting forever. The parent's `Go` after `Ready` says the
/// state is written; the init then stops depending on it and acknowledges with a second `Ready`.
pub(crate) fn run(plan: &Plan, io: InitIo) -> ! {
    for fd in &io.close_first {
        sys::close_raw(*fd);
    }
    // Armed after the parent could have died: its end of the channel tells (getppid() is 0
    // in a new pid namespace, so it cannot).
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || io.channel.peer_closed()
    {
        sys::exit_now(1);
    }
    let prepared = match setup(plan, &io) {
        Ok(p) => p,
        Err(e) => {
            let _ = io.channel.send(&Msg::Error(e.to_string()));
            sys::exit_now(1);
        }
    };
    if io.channel.send(&Msg::Ready).is_err() || wait_for_go(&io.channel).is_err() {
        sys::exit_now(1);
    }
    if nix::sys::prctl::set_pdeathsig(None).is_err() {
        sys::exit_now(1);
    }
    if matches!(io.start, StartSignal::Fifo(_)) && io.channel.send(&Msg::Ready).is_err() {
        sys::exit_now(1);
    }
    if let Err(e) =
        wait_for_start(&io).and_then(|_| start_container_hooks(plan, prepared.hook_state.as_ref()))
    {
        let _ = io.channel.send(&Msg::Error(e.to_string()));
        sys::exit_now(1);
    }
    let e = prepared.exec(&plan.process, &io);
    // Only `run` still listens; after `create`, stderr is all the user has.
    let _ = io.channel.send(&Msg::Error(e.to_string()));
    eprintln!("berth: {e}");
    sys::exit_now(exit_code_for(&e));
}

fn wait_for_go(channel: &Channel) -> Result<()> {
    match channel.recv()? {
        Some(Msg::Go) => Ok(()),
        _ => Err(SysError::other("wait for parent", "parent went away")),
    }
}

fn wait_for_start(io: &InitIo) -> Result<()> {
    match &io.start {
        // `run`: the parent's `Go` (state written) is also the start
        StartSignal::Channel => Ok(()),
        StartSignal::Fifo(fd) => loop {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("wait on exec fifo", e)),
            }
            let mut b = [0u8; 1];
            match nix::unistd::read(fd.as_fd(), &mut b) {
                Ok(1) => return Ok(()),
                Ok(_) => {
                    return Err(SysError::other(
                        "wait on exec fifo",
                        "closed without a start",
                    ));
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(SysError::new("read exec fifo", e)),
            }
        },
    }
}

fn setup(plan: &Plan, io: &InitIo) -> Result<Prepared> {
    sys::reset_signals().step(|| "reset signal mask".into())?;
    for fd in &io.cgroup_tasks {
        nix::unistd::write(fd, b"0").step(|| "move into the container's cgroups".into())?;
    }
    if io.wait_go {
        wait_for_go(&io.channel)?;
    }
    // A user namespace first: joining the others needs privileges in it.
    for (flag, fd) in io
        .join
        .iter()
        .filter(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
    {
        nix::sched::setns(fd, *flag).step(|| "join user namespace".into())?;
    }
    // While still host root: the offsets file belongs to it.
    if plan.namespaces.new_time {
        enter_new_time_namespace(&plan.time_offsets)?;
    }
    if plan.namespaces.user {
        // berth's host root is not mapped in the container's user namespace: become its root,
        // or files we create would have no owner there (EOVERFLOW)
        let root = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
        nix::unistd::setresgid(root.0, root.0, root.0)
            .step(|| "become gid 0 in the user namespace".into())?;
        nix::unistd::setresuid(root.1, root.1, root.1)
            .step(|| "become uid 0 in the user namespace".into())?;
        // Changing ids made us non-dumpable, which hands /proc/self to the host's root; we
        // need /proc/self/fd for the mounts. exec resets it for the container's program.
        nix::sys::prctl::set_dumpable(true).step(|| "set dumpable".into())?;
    }
    for (flag, fd) in io
        .join
        .iter()
        .filter(|(f, _)| *f != CloneFlags::CLONE_NEWUSER)
    {
        nix::sched::setns(fd, *flag).step(|| format!("join {} namespace", ns_label(*flag)))?;
    }
    if plan
        .namespaces
        .clone_flags
        .contains(CloneFlags::CLONE_NEWNET)
    {
        sys::loopback_up().step(|| "bring up lo in the new network namespace".into())?;
    }
    if plan.namespaces.unshare_cgroup {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .step(|| "create cgroup namespace".into())?;
    }
    if io.new_keyring {
        if let Err(e) = sys::join_new_session_keyring() {
            // keyrings can be unavailable (disabled, or exhausted quota): not fatal for runc either
            let _ = io.channel.send(&Msg::Warning(format!(
                "new session keyring not created: {e}"
            )));
        }
    }
    // Modes of what we create (mount points, device nodes) must be exactly as asked.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());

    let hook_state = if plan.own_mounts {
        mount_rootfs(plan, io)?
    } else {
        // the host's root, as runc leaves it: no mounts, no pivot; the hooks still run
        setup_hooks(plan, io)?
    };
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).step(|| format!("set hostname {h:?}"))?;
    }
    if let Some(d) = &plan.domainname {
        sys::setdomainname(d).step(|| format!("set domainname {d:?}"))?;
    }
    for (path, value) in &plan.sysctls {
        std::fs::write(path, value).step(|| format!("write sysctl {}", path.display()))?;
    }
    if plan.process.terminal {
        // /dev/console is the container's only in a mount namespace of its own
        setup_terminal(io, &plan.process, plan.own_mounts)?;
    }
    mount::mask_paths(&plan.masked_paths)?;
    mount::readonly_paths(&plan.readonly_paths)?;
    if plan.readonly_root {
        mount::readonly_root()?;
    }
    let mut prepared = prepare_process(&plan.process, io)?;
    prepared.hook_state = hook_state;
    Ok(prepared)
}

/// The container's root in its own mount namespace: the rootfs's mounts and devices, the
/// hooks that run before pivot_root, pivot_root, then the root's propagation. Returns the
/// state JSON for startContainer hooks, if any run.
fn mount_rootfs(plan: &Plan, io: &InitIo) -> Result<Option<String>> {
    let root = mount::prepare_rootfs(&plan.rootfs, plan.root_propagation)?;
    for m in &plan.mounts {
        mount::apply_entry(root.as_fd(), m, plan.cgroup_mount.as_ref())?;
    }
    if plan.bind_devices {
        mount::bind_devices(root.as_fd(), &plan.devices)?;
    } else {
        mount::create_devices(root.as_fd(), &plan.devices)?;
    }
    if plan.dev_symlinks {
        mount::create_dev_symlinks(root.as_fd())?;
    }
    // The runtime's hooks run now (the parent, in its namespaces), then createContainer ones
    // here, in the container's mount namespace, before pivot_root.
    let hook_state = setup_hooks(plan, io)?;
    if plan.pivot {
        mount::pivot_root(root.as_fd())?;
    } else {
        mount::move_root(root.as_fd(), &plan.rootfs)?;
    }
    drop(root);
    if let Some(p) = plan.final_propagation {
        mount::set_root_propagation(p)?;
    }
    Ok(hook_state)
}

/// prestart and createRuntime hooks (the parent runs them), then createContainer ones here.
fn setup_hooks(plan: &Plan, io: &InitIo) -> Result<Option<String>> {
    if !plan.has_setup_hooks() {
        return Ok(None);
    }
    let state = request_hooks(&io.channel)?;
    let h = plan.hooks.create_container().as_deref().unwrap_or(&[]);
    hooks::run_all_in_container("createContainer", h, &state, &plan.process.env)
        .map_err(|e| SysError::other("hooks", e))?;
    Ok(Some(state))
}

/// Ask the parent to run the runtime's hooks; returns the state JSON it sends back.
fn request_hooks(ch: &Channel) -> Result<String> {
    ch.send(&Msg::Hooks)?;
    let state = match ch.recv()? {
        Some(Msg::State(s)) => s,
        _ => return Err(SysError::other("hooks", "parent went away")),
    };
    wait_for_go(ch)?;
    Ok(state)
}

/// startContainer hooks: in the container, after start, before the program.
fn start_container_hooks(plan: &Plan, state: Option<&String>) -> Result<()> {
    let list = plan.hooks.start_container().as_deref().unwrap_or(&[]);
    if list.is_empty() {
        return Ok(());
    }
    let mut st: serde_json::Value = state
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    st["status"] = "created".into();
    hooks::run_all_in_container("startContainer", list, &st.to_string(), &plan.process.env)
        .map_err(|e| SysError::other("hooks", e))
}

/// A time namespace's offsets can only be written before any process is in it: create it for
/// our children, write the offsets, then move ourselves in.
fn enter_new_time_namespace(offsets: &[(String, i64, u32)]) -> Result<()> {
    let newtime = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    nix::sched::unshare(newtime).step(|| "create time namespace".into())?;
    if !offsets.is_empty() {
        let text: String = offsets
            .iter()
            .map(|(c, s, n)| format!("{c} {s} {n}\n"))
            .collect();
        std::fs::write("/proc/self/timens_offsets", text)
            .step(|| "write time namespace offsets".into())?;
    }
    let ns = std::fs::File::open("/proc/self/ns/time_for_children")
        .step(|| "open new time namespace".into())?;
    nix::sched::setns(ns, newtime).step(|| "enter time namespace".into())
}

fn ns_label(flag: CloneFlags) -> &'static str {
    match flag {
        CloneFlags::CLONE_NEWNS => "mount",
        CloneFlags::CLONE_NEWNET => "network",
        CloneFlags::CLONE_NEWIPC => "ipc",
        CloneFlags::CLONE_NEWUTS => "uts",
        CloneFlags::CLONE_NEWCGROUP => "cgroup",
        CloneFlags::CLONE_NEWPID => "pid",
        CloneFlags::CLONE_NEWUSER => "user",
        _ if flag.bits() == libc::CLONE_NEWTIME => "time",
        _ => "a",
    }
}

/// Open a pty in the container, hand its master out, and make it our stdio and controlling
/// terminal. `console` binds it over /dev/console too (the init, not an exec'd process).
pub(crate) fn setup_terminal(io: &InitIo, p: &ProcessPlan, console: bool) -> Result<()> {
    let pty = console::open_pty()?;
    let name = pty.slave_path.to_string_lossy().into_owned();
    match &io.terminal {
        Some(TerminalTo::Socket(sock)) => {
            crate::linux::channel::send_fd(sock.as_fd(), pty.master.as_fd(), name.as_bytes())?
        }
        Some(TerminalTo::Parent) | None => io
            .channel
            .send_with_fd(&Msg::Terminal, pty.master.as_fd())?,
    }
    drop(pty.master);
    if console {
        mount::bind_console(&pty.slave_path)?;
    }
    console::become_session_leader_on(pty.slave.as_fd(), p.console_size)
}

/// Apply the process's attributes and find its program: the last steps before exec, shared by
/// the init and by `exec`.
pub(crate) fn prepare_process(p: &ProcessPlan, io: &InitIo) -> Result<Prepared> {
    let mut warn = |w: String| {
        let _ = io.channel.send(&Msg::Warning(w));
    };
    process::set_rlimits(&p.rlimits, &mut warn)?;
    if let Some(v) = p.oom_score_adj {
        process::set_oom_score_adj(v, &mut warn)?;
    }
    process::set_scheduling(p)?;
    if p.no_new_privileges {
        process::set_no_new_privs()?;
    }
    process::set_exec_labels(p)?;
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: before the capabilities
    // go. With it, as late as possible (just before exec) so that the filter need not allow
    // berth's own syscalls — unless it notifies: the listener fd must reach the parent while
    // it still listens.
    let early = io
        .seccomp
        .as_ref()
        .is_some_and(|s| !p.no_new_privileges || s.flags & seccomp::flag::NEW_LISTENER != 0);
    if early && !p.no_new_privileges {
        load_seccomp(io)?;
    }
    process::switch_user(p, &mut warn)?;
    if early && p.no_new_privileges {
        load_seccomp(io)?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        p.umask.unwrap_or(0o022) as libc::mode_t,
    ));
    nix::unistd::chdir(&p.cwd).step(|| format!("chdir to cwd {}", p.cwd.display()))?;
    // A cwd reached through an fd (/proc/self/fd/N) could lie outside the container's root
    // (the CVE-2024-21626 class): the kernel then reports no path for it.
    match nix::unistd::getcwd() {
        Ok(d) if d.is_absolute() => {}
        _ => {
            return Err(SysError::other(
                format!("chdir to cwd {}", p.cwd.display()),
                "it resolves outside the container's root",
            ));
        }
    }
    let mut env = p.env.clone();
    if p.env_var("HOME").is_none() {
        let home = process::home_of(p.uid);
        env.push(CString::new(format!("HOME={home}")).unwrap_or_default());
    }
    let exe = process::find_executable(&p.args[0], p.env_var("PATH"))?;
    // Nothing of berth's may reach the container's program: every fd above the preserved
    // ones becomes close-on-exec; the preserved ones lose it.
    let first = 3 + io.preserve_fds;
    sys::cloexec_from(first).step(|| "mark fds close-on-exec".into())?;
    for fd in 3..first {
        sys::clear_cloexec(fd as RawFd).step(|| format!("preserve fd {fd}"))?;
    }
    Ok(Prepared {
        exe,
        env,
        late_seccomp: io.seccomp.is_some() && !early,
        hook_state: None,
    })
}

/// Load the seccomp filter now; a notify listener fd goes to the parent, which hands it to
/// the `listenerPath` agent at once: only then may this process go on, since its next
/// syscall may be one that waits for the agent's answer (getcwd, chdir, openat...).
fn load_seccomp(io: &InitIo) -> Result<()> {
    let Some(prog) = &io.seccomp else {
        return Ok(());
    };
    if let Some(listener) = seccomp::load(prog)? {
        io.channel.send_with_fd(&Msg::Seccomp, listener.as_fd())?;
        drop(listener);
        wait_for_go(&io.channel)?;
    }
    Ok(())
}
