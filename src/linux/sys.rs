//! Every `unsafe` block of berth lives here: raw syscalls that neither `nix` nor `std` wrap.
//!
//! Each function is a thin, safe wrapper; the `// SAFETY:` note on each block says why the call
//! cannot violate memory safety. Callers see `std::io::Result` with the kernel's errno.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Result of a fork-like clone: which side of the clone we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// We are the parent; the child's pid (in our pid namespace) is given.
    Parent(i32),
    /// We are the new child process.
    Child,
}

/// `clone_args` as the kernel defines it for `clone3(2)` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7): start the child directly in the cgroup given by an fd.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Fork the calling process with `flags` (namespace flags such as `CLONE_NEWPID`), optionally
/// straight into the cgroup v2 directory `cgroup`, with `SIGCHLD` as the exit signal.
///
/// Uses `clone3(2)`, falling back to `clone(2)` when the kernel lacks it (then `cgroup` must be
/// `None`). Like `fork(2)`, the child continues on a copy of the caller's stack.
///
/// The caller must be single-threaded: the child gets a copy of only the calling thread, so a
/// lock held by another thread (the allocator's, stdio's) would stay locked forever in the child.
pub fn fork_with_flags(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 without CLONE_VM and with a zero stack behaves like fork(2): the child gets
    // its own copy of the address space, so no memory is shared between the two processes. The
    // args struct outlives the call and its size is passed exactly.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let ret = if ret == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        if cgroup.is_some() {
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        // SAFETY: as above, clone(2) with a NULL stack and no CLONE_VM is fork-like.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags | libc::SIGCHLD as u64,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        }
    } else {
        ret
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Like [`fork_with_flags`], but the child becomes a child of our parent (`CLONE_PARENT`) and
/// the caller gets a pidfd for it (`CLONE_PIDFD`) instead of a pid. `None` in the child.
pub fn clone_parent_with_pidfd(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<Option<OwnedFd>> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PARENT as u64 | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        // clone3 wants 0 with CLONE_PARENT: the child inherits our own exit signal (SIGCHLD)
        exit_signal: 0,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: as in fork_with_flags (no CLONE_VM, no stack: fork semantics); `pidfd` outlives
    // the call and receives the new pidfd.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        // SAFETY: the kernel stored a new pidfd owned by nobody else.
        _ => Ok(Some(unsafe { OwnedFd::from_raw_fd(pidfd) })),
    }
}

/// The pid (in our pid namespace) of the process a pidfd refers to, from its fdinfo.
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> io::Result<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
        .filter(|p: &i32| *p > 0)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
}

/// `pidfd_open(2)`: a stable handle on a process that cannot be confused by pid reuse.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; on success the return value is a new fd
    // that nothing else owns.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ret is a freshly opened fd owned by us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: integer arguments and a NULL siginfo pointer, which the syscall allows.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mark every fd from `first` upwards close-on-exec (`close_range(2)`), so nothing of berth's
/// leaks into the container's process.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on fds; it closes nothing, so
    // no OwnedFd in this process is invalidated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// End this process as a writer whose reader went away ends by default: killed by SIGPIPE
/// (status 141 to a shell), quietly, as coreutils do.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default disposition of SIGPIPE and raising it; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    exit_now(128 + libc::SIGPIPE)
}

/// Close every fd from 3 upwards that this process inherited (a long-lived process started
/// by berth must not keep its starter's files, such as an operation's lock, open). Call it
/// first thing, before this process opens anything of its own.
pub fn close_inherited_fds() {
    // SAFETY: called before the process made any OwnedFd or File of its own (the monitor's
    // entry point, right after argument parsing), so closing fds >= 3 invalidates nothing
    // Rust owns; fds 0-2 are kept.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
}

/// `mount_attr` for `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Set and clear mount attributes (`MOUNT_ATTR_*`) on the mount at `fd`, and with `recursive` on
/// every mount below it (`mount_setattr(2)`, Linux 5.12).
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    let mut attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: the path is a valid empty C string, attr lives across the call and its exact size
    // is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setdomainname(2)` (nix wraps only sethostname).
pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe the bytes of a live &str.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make the terminal at `fd` the controlling terminal of this (session leader) process.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument, no pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make `cmd` start in a new session whose controlling terminal is its stdin (a pty slave),
/// so window size changes reach it as SIGWINCH.
pub fn session_with_terminal(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec and only makes two async-signal-
    // safe system calls (setsid, ioctl) on fd 0, which the Command has already set up.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Set a terminal's window size.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives across the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Read a terminal's window size (`None` when `fd` is not a terminal).
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes into a winsize struct we own.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (ret == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Give the process a new, anonymous session keyring so the container cannot see the host's
/// keys (what runc does unless `--no-new-keyring`).
pub fn join_new_session_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a NULL name asks the kernel for a new anonymous keyring; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Exit immediately without running destructors or atexit handlers: what a forked child that
/// failed before exec must do, so it never flushes or drops state that belongs to the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Read a process's own clock ticks per second (for `/proc/<pid>/stat` start times).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory arguments.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Take ownership of an fd that the kernel just handed us (received with `SCM_RIGHTS`).
pub fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller passes an fd that was just installed in this process by recvmsg and
    // that nothing else refers to, so owning (and eventually closing) it is sound.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Close a raw fd number without touching the object that owns it in the parent's copy of our
/// memory (a forked child must not run `Drop` for the parent's lock: flock's unlock would
/// release the parent's lock too).
pub fn close_raw(fd: RawFd) {
    // SAFETY: closing an fd number has no memory-safety effect; the OwnedFd that held it lives
    // in a stack frame this (forked) process never returns to, so it is never used or dropped.
    unsafe { libc::close(fd) };
}

/// Clear `FD_CLOEXEC` on an fd passed through to the container (`--preserve-fds`).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD with an integer argument only changes the fd's flags.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Give the container's process a clean signal state: nothing blocked, every disposition the
/// default (the Rust runtime ignores SIGPIPE, and exec keeps ignored signals ignored).
pub fn reset_signals() -> io::Result<()> {
    // SAFETY: an empty, initialised sigset and a NULL old-set pointer are valid arguments.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code of ours; invalid numbers just fail.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    Ok(())
}

/// An anonymous in-memory file (`memfd_create(2)`), close-on-exec.
pub fn memfd(name: &str) -> io::Result<OwnedFd> {
    let name =
        std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: name is a valid C string for the duration of the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Install a seccomp BPF program (`struct sock_filter` array as bytes) on the calling thread
/// with `seccomp(SECCOMP_SET_MODE_FILTER, flags)`. Returns the listener fd when `flags` asks for
/// one (`SECCOMP_FILTER_FLAG_NEW_LISTENER`).
pub fn seccomp_set_filter(bpf: &[u8], flags: u32) -> io::Result<Option<OwnedFd>> {
    if bpf.is_empty() || bpf.len() % 8 != 0 || bpf.len() / 8 > u16::MAX as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // Copied into properly aligned sock_filter structs (the bytes are in native byte order).
    let insns: Vec<libc::sock_filter> = bpf
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    const NEW_LISTENER: u32 = 8;
    // SAFETY: prog points to `len` initialised instructions that outlive the call; the kernel
    // copies the program.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the return value is a new fd owned by us alone.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }));
    }
    Ok(None)
}

/// The static musl build links Debian's `libseccomp.a`, which was built against glibc and
/// references glibc's fortified `fprintf` from its debug printer (`seccomp_export_pfc`).
/// berth never calls that printer; this symbol only satisfies the linker.
#[cfg(target_env = "musl")]
#[unsafe(no_mangle)]
pub extern "C" fn __fprintf_chk() -> libc::c_int {
    -1
}

/// The prefix of `union bpf_attr` that BPF_PROG_LOAD reads.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The prefix of `union bpf_attr` that BPF_PROG_ATTACH reads.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Load a cgroup device program (`struct bpf_insn` bytes).
pub fn bpf_load_cgroup_device(insns: &[u8]) -> io::Result<OwnedFd> {
    if insns.is_empty() || insns.len() % 8 != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // Copied into u64-aligned storage, as the kernel reads struct bpf_insn.
    let aligned: Vec<u64> = insns
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let mut attr = BpfProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: aligned.len() as u32,
        insns: aligned.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let load = |attr: &BpfProgLoad| {
        // SAFETY: attr and the buffers it points to (instructions, license, log) outlive the
        // call; its size is passed exactly and unused fields are zero, as bpf(2) requires.
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                attr as *const BpfProgLoad,
                std::mem::size_of::<BpfProgLoad>(),
            )
        }
    };
    let mut ret = load(&attr);
    if ret < 0 {
        let first = io::Error::last_os_error();
        // Once more with the verifier's log, so that the error says why.
        let mut log = vec![0u8; 64 * 1024];
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
        ret = load(&attr);
        if ret < 0 {
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            return Err(io::Error::new(
                first.kind(),
                format!(
                    "{first}; verifier: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ),
            ));
        }
    }
    // SAFETY: a new program fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Attach a cgroup device program to the cgroup directory `cgroup`.
pub fn bpf_attach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let attr = BpfProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: attr lives across the call and its exact size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const BpfProgAttach,
            std::mem::size_of::<BpfProgAttach>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct sched_attr` (version 1, 56 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// Scheduling of the calling process (`sched_setattr(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sched {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// Set the calling process's scheduling policy and parameters.
pub fn sched_setattr(s: &Sched) -> io::Result<()> {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: s.policy,
        flags: s.flags,
        nice: s.nice,
        priority: s.priority,
        runtime: s.runtime,
        deadline: s.deadline,
        period: s.period,
        ..Default::default()
    };
    // SAFETY: attr lives across the call and carries its own size.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the calling process's I/O priority (`ioprio_set(IOPRIO_WHO_PROCESS, 0, ...)`).
pub fn ioprio_set(class: u32, level: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    let prio = (class << 13) | (level & 0x1fff);
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the calling process's execution domain (`personality(2)`).
pub fn set_personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: integer argument only; personality() has no memory effects.
    let ret = unsafe { libc::personality(persona) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A tiny static x86_64 ELF (175 bytes, hand-assembled) through which the container's program is
/// exec'd, so that at that exec `/proc/self/exe` is this sealed in-memory stub, never berth's
/// binary (the CVE-2019-5736 class: a container program naming `/proc/self/exe` as its
/// interpreter would otherwise run, and could then rewrite, berth on the host).
///
/// It is called as `[MARK, path, argv0, argv1, ...]` and runs `execve(path, [argv0, ...], envp)`;
/// when its `argv[0]` does not start with the byte 0x01 (it was reached through a `#!` line or
/// any other way than from berth) it exits 126; if the exec fails, 127.
#[cfg(target_arch = "x86_64")]
pub const EXEC_STUB: [u8; 175] = {
    const CODE: [u8; 55] = [
        0x48, 0x8b, 0x44, 0x24, 0x08, // mov rax, [rsp+8]          argv[0]
        0x80, 0x38, 0x01, //             cmp byte [rax], 1          berth's mark?
        0x75, 0x21, //                   jne refuse
        0x48, 0x8b, 0x7c, 0x24, 0x10, // mov rdi, [rsp+16]         argv[1]: the path
        0x48, 0x8d, 0x74, 0x24,
        0x18, // lea rsi, [rsp+24]         &argv[2]: the program's argv
        0x48, 0x8b, 0x0c, 0x24, //       mov rcx, [rsp]             argc
        0x48, 0x8d, 0x54, 0xcc, 0x10, // lea rdx, [rsp+rcx*8+16]   envp
        0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59 (execve)
        0x0f, 0x05, //                   syscall
        0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127              exec failed
        0xeb, 0x05, //                   jmp exit
        0xbf, 0x7e, 0x00, 0x00, 0x00, // refuse: mov edi, 126
        0xb8, 0xe7, 0x00, 0x00, 0x00, // exit: mov eax, 231 (exit_group)
        0x0f, 0x05, //                   syscall
    ];
    tiny_elf::<175>(&CODE)
};

/// A static x86_64 ELF executable of `code` alone: ELF header, one R+X PT_LOAD of the whole
/// file at 0x400000, the code right after the headers (`N` = 120 + code length).
#[cfg(target_arch = "x86_64")]
const fn tiny_elf<const N: usize>(code: &[u8]) -> [u8; N] {
    const BASE: u64 = 0x40_0000;
    let size = (N as u64).to_le_bytes();
    let mut b = [0u8; N];
    // ELF header
    let ident = [0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    let mut i = 0;
    while i < 8 {
        b[i] = ident[i];
        i += 1;
    }
    b[16] = 2; // ET_EXEC
    b[18] = 0x3e; // EM_X86_64
    b[20] = 1; // EV_CURRENT
    let entry = (BASE + 64 + 56).to_le_bytes();
    let mut i = 0;
    while i < 8 {
        b[24 + i] = entry[i];
        i += 1;
    }
    b[32] = 64; // e_phoff
    b[52] = 64; // e_ehsize
    b[54] = 56; // e_phentsize
    b[56] = 1; // e_phnum
    // program header: one PT_LOAD, R+X, the whole file at BASE
    b[64] = 1; // PT_LOAD
    b[68] = 5; // PF_R | PF_X
    let base = BASE.to_le_bytes();
    let mut i = 0;
    while i < 8 {
        b[64 + 16 + i] = base[i]; // p_vaddr
        b[64 + 24 + i] = base[i]; // p_paddr
        b[64 + 32 + i] = size[i]; // p_filesz
        b[64 + 40 + i] = size[i]; // p_memsz
        i += 1;
    }
    b[64 + 48 + 1] = 0x10; // p_align 0x1000
    let mut i = 0;
    while i < code.len() {
        b[120 + i] = code[i];
        i += 1;
    }
    b
}

/// The holder of a pod's shared PID namespace (its PID 1): a 169-byte static ELF that reaps
/// every child reparented to it and otherwise sleeps, as Kubernetes' pause does. It ignores
/// every signal sent from inside the namespace (PID 1 without handlers).
#[cfg(target_arch = "x86_64")]
pub const PAUSE_STUB: [u8; 169] = tiny_elf::<169>(&[
    0xbf, 0xff, 0xff, 0xff, 0xff, // loop: mov edi, -1             any child
    0x31, 0xf6, //                   xor esi, esi                  no status
    0xba, 0x00, 0x00, 0x00, 0x40, // mov edx, __WALL
    0x45, 0x31, 0xd2, //             xor r10d, r10d                no rusage
    0xb8, 0x3d, 0x00, 0x00, 0x00, // mov eax, 61 (wait4)
    0x0f, 0x05, //                   syscall
    0x48, 0x85, 0xc0, //             test rax, rax
    0x79, 0xe5, //                   jns loop                      reaped one: again
    0x6a, 0x00, //                   push 0                        tv_nsec
    0x6a, 0x01, //                   push 1                        tv_sec
    0x48, 0x89, 0xe7, //             mov rdi, rsp
    0x31, 0xf6, //                   xor esi, esi
    0xb8, 0x23, 0x00, 0x00, 0x00, // mov eax, 35 (nanosleep)       no child: sleep 1 s
    0x0f, 0x05, //                   syscall
    0x48, 0x83, 0xc4, 0x10, //       add rsp, 16
    0xeb, 0xcf, //                   jmp loop
]);

/// A sealed memfd holding `bytes` (write, grow, shrink and seal sealed), to exec.
#[cfg(target_arch = "x86_64")]
fn sealed_memfd(name: &std::ffi::CStr, bytes: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: name is a valid C string.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    std::io::Write::write_all(&mut f, bytes)?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS takes an integer argument.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(f))
}

/// Drop this process's mappings of the executable's read-only pages (code, constants,
/// relocation tables): they stay in the page cache and fault back in on use. A long-lived
/// process (the pod monitor) then holds only what its loop touches. Writable segments are
/// left alone (their pages are private copies).
pub fn drop_own_code_pages() {
    // SAFETY: getauxval has no preconditions.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    if phdr == 0 || phnum == 0 {
        return;
    }
    // SAFETY: AT_PHDR/AT_PHNUM describe this executable's program headers, mapped for the
    // life of the process.
    let headers: &[libc::Elf64_Phdr] =
        unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum) };
    // the load bias: from PT_PHDR, else (static-pie has none) from the ELF header that the
    // first PT_LOAD maps right before the program headers, checked by its magic
    let bias = match headers.iter().find(|h| h.p_type == libc::PT_PHDR) {
        Some(h) => phdr - h.p_vaddr as usize,
        None => {
            let Some(first) = headers
                .iter()
                .find(|h| h.p_type == libc::PT_LOAD && h.p_offset == 0)
            else {
                return;
            };
            let ehdr = phdr - std::mem::size_of::<libc::Elf64_Ehdr>();
            // SAFETY: the first PT_LOAD maps the file from offset 0, so the ELF header is
            // mapped, readable, right before the program headers it points to.
            let magic = unsafe { std::ptr::read(ehdr as *const [u8; 4]) };
            if magic != *b"\x7fELF" {
                return;
            }
            ehdr - first.p_vaddr as usize
        }
    };
    let page = 4096usize;
    for h in headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0)
    {
        let start = (bias + h.p_vaddr as usize) & !(page - 1);
        let end = (bias + (h.p_vaddr + h.p_memsz) as usize + page - 1) & !(page - 1);
        // SAFETY: the range is a read-only mapping of our own executable; dropping its pages
        // changes no content (they are re-read from the file).
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// The pause stub in a sealed memfd.
#[cfg(target_arch = "x86_64")]
pub fn pause_stub() -> io::Result<OwnedFd> {
    sealed_memfd(c"berth-pause", &PAUSE_STUB)
}

/// The exec stub in a sealed memfd (write, grow, shrink and seal sealed): made once per
/// container process, in the parent, before the clone.
#[cfg(target_arch = "x86_64")]
pub fn exec_stub() -> io::Result<OwnedFd> {
    sealed_memfd(c"berth-exec", &EXEC_STUB)
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: run the file an fd refers to. Returns only
/// on failure.
pub fn execveat_fd(
    fd: BorrowedFd<'_>,
    argv: &[&std::ffi::CStr],
    envp: &[std::ffi::CString],
) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: the path is an empty C string; argv and envp are NULL-terminated arrays of
    // pointers to C strings that live until the call returns (it only returns on failure).
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// Mark the calling process non-dumpable: its /proc files belong to root and other processes
/// (a container's) cannot open its `/proc/<pid>/exe` or `mem`. Forked children inherit it; exec
/// of the container's program resets it.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn exec_stub_runs_the_program_only_for_berth() {
        let path = std::env::temp_dir().join(format!("berth-stub-{}", std::process::id()));
        std::fs::write(&path, EXEC_STUB).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = std::process::Command::new(&path)
            .arg0("\u{1}")
            .args([
                "/bin/sh",
                "my-sh",
                "-c",
                "tr '\\0' ' ' < /proc/$$/cmdline; echo \"$0 $X\"",
                "zero",
            ])
            .env("X", "env-passed")
            .output()
            .unwrap();
        // the program's argv[0] is the one berth passes, and the environment arrives
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("my-sh -c "), "{text}");
        assert!(text.ends_with("zero env-passed\n"), "{text}");
        // reached any other way (a #! line): refused
        let st = std::process::Command::new(&path)
            .arg0("/proc/self/exe")
            .arg("/x")
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(126));
        let st = std::process::Command::new(&path)
            .arg0("\u{1}")
            .args(["/no/such", "x"])
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(127));
        // a sealed memfd cannot be written
        let fd = exec_stub().unwrap();
        let mut f = std::fs::File::from(fd);
        assert!(std::io::Write::write_all(&mut f, b"x").is_err());
        std::fs::remove_file(&path).unwrap();
    }
}

/// An AF_INET datagram socket: the handle interface ioctls need.
fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() with integer arguments returns a new fd we own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An ifreq naming an interface (names longer than IFNAMSIZ - 1 are refused).
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() || name.as_bytes().contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (i, b) in name.bytes().enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    Ok(req)
}

/// Set an interface of the current network namespace up or down.
fn set_link_up(sock: &OwnedFd, name: &str, up: bool) -> io::Result<()> {
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own, which outlives the calls.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        if up {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        } else {
            req.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short);
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Bring the loopback interface of the current network namespace up (a new one starts with it
/// down; runc and crun bring it up, and pods rely on it).
pub fn loopback_up() -> io::Result<()> {
    set_link_up(&inet_socket()?, "lo", true)
}

/// Delete a bridge of the current network namespace; `Ok(false)` when there is none of that
/// name. Its ports are released by the kernel.
pub fn delete_bridge(name: &str) -> io::Result<bool> {
    // linux/sockios.h (libc defines it for Android only)
    const SIOCBRDELBR: libc::c_ulong = 0x89a1;
    let sock = inet_socket()?;
    // the kernel refuses to delete a bridge that is up (EBUSY)
    match set_link_up(&sock, name, false) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(false),
        r => r?,
    }
    let cname =
        std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: SIOCBRDELBR reads a NUL-terminated name from the pointer, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCBRDELBR as _, cname.as_ptr()) } < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENXIO) {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(true)
}

// linux/loop.h
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
/// The loop device goes when its last user (a mount) does.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// The number of a free loop device (`LOOP_CTL_GET_FREE` on `/dev/loop-control`; the kernel
/// makes one if none is free).
pub fn loop_get_free(control: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
    let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as u32)
}

/// Back the loop device `dev` by `file` in one `LOOP_CONFIGURE` (Linux 5.8), with `flags`
/// (`LO_FLAGS_*`) and `name` recorded as its file name.
pub fn loop_configure(
    dev: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    flags: u32,
    name: &[u8],
) -> io::Result<()> {
    let mut file_name = [0u8; 64];
    let n = name.len().min(63);
    file_name[..n].copy_from_slice(&name[..n]);
    let cfg = LoopConfig {
        fd: file.as_raw_fd() as u32,
        block_size: 0,
        info: LoopInfo64 {
            device: 0,
            inode: 0,
            rdevice: 0,
            offset: 0,
            sizelimit: 0,
            number: 0,
            encrypt_type: 0,
            encrypt_key_size: 0,
            flags,
            file_name,
            crypt_name: [0; 64],
            encrypt_key: [0; 32],
            init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, which `cfg` is laid out as
    // (repr(C), the kernel's field order and sizes) and which outlives the call.
    if unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_CONFIGURE as _,
            &cfg as *const LoopConfig,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Detach a loop device from its file (`LOOP_CLR_FD`).
pub fn loop_clear(dev: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument.
    if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD as _, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Handle `sig` with a handler that does nothing, without SA_RESTART: a blocking system call
/// the signal interrupts fails with EINTR (for tests of EINTR handling).
pub fn interrupting_handler(sig: libc::c_int) {
    extern "C" fn nothing(_: libc::c_int) {}
    // SAFETY: the handler does nothing, so it is async-signal-safe; the sigaction struct is
    // zeroed (no flags: no SA_RESTART) apart from the handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = nothing as *const () as usize;
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// Send `sig` to one thread of this process.
pub fn signal_thread(thread: libc::pthread_t, sig: libc::c_int) {
    // SAFETY: `thread` is a live thread of this process (its JoinHandle is held).
    unsafe {
        libc::pthread_kill(thread, sig);
    }
}
