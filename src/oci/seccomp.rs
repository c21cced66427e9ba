//! `linux.seccomp` → a plain-data filter (`linux::seccomp::Filter`), and berth's default profile.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use serde_json::{Value, json};

use super::spec::SpecError;
use crate::linux::seccomp::{Action, Cond, Filter, Op, Rule, flag};

const FIELD: &str = "linux.seccomp";

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<Action, SpecError> {
    let small = |v: Option<u32>, default: u16| -> Result<u16, SpecError> {
        match v {
            None => Ok(default),
            Some(v) if v <= u16::MAX as u32 => Ok(v as u16),
            Some(v) => Err(SpecError::new(
                field,
                format!("errnoRet {v} is out of range"),
            )),
        }
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            Action::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
        LinuxSeccompAction::ScmpActTrap => Action::Trap,
        LinuxSeccompAction::ScmpActErrno => Action::Errno(small(errno, libc::EPERM as u16)?),
        LinuxSeccompAction::ScmpActTrace => Action::Trace(small(errno, libc::EPERM as u16)?),
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActNotify => Action::Notify,
    })
}

/// The filter for a profile.
pub fn filter(s: &LinuxSeccomp) -> Result<Filter, SpecError> {
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        &format!("{FIELD}.defaultAction"),
    )?;
    if default == Action::Notify {
        return Err(SpecError::new(
            format!("{FIELD}.defaultAction"),
            "SCMP_ACT_NOTIFY cannot be the default: the container could not even reach its program",
        ));
    }
    let archs = s
        .architectures()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|a| a.to_string())
        .collect();
    let mut rules = Vec::new();
    for (i, sc) in s.syscalls().as_deref().unwrap_or(&[]).iter().enumerate() {
        let field = format!("{FIELD}.syscalls[{i}]");
        let mut conds = Vec::new();
        for (j, a) in sc.args().as_deref().unwrap_or(&[]).iter().enumerate() {
            if a.index() > 5 {
                return Err(SpecError::new(
                    format!("{field}.args[{j}].index"),
                    "syscalls have 6 arguments (0..5)",
                ));
            }
            let op = match a.op() {
                LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
                LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
                LinuxSeccompOperator::ScmpCmpLe => Op::Le,
                LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
                LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
                LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
                LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq,
            };
            conds.push(Cond {
                index: a.index() as u32,
                op,
                value: a.value(),
                value_two: a.value_two().unwrap_or(0),
            });
        }
        rules.push(Rule {
            names: sc.names().clone(),
            action: action(sc.action(), sc.errno_ret(), &format!("{field}.errnoRet"))?,
            conds,
        });
    }
    let mut flags = 0;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flag::LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flag::TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flag::SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => flag::WAIT_KILLABLE_RECV,
        };
    }
    let notifies = rules.iter().any(|r| r.action == Action::Notify);
    let listener = match (s.listener_path(), notifies) {
        (Some(p), true) => Some((p.clone(), s.listener_metadata().clone().unwrap_or_default())),
        (None, true) => {
            return Err(SpecError::new(
                format!("{FIELD}.listenerPath"),
                "required when a rule uses SCMP_ACT_NOTIFY",
            ));
        }
        (_, false) => None,
    };
    Ok(Filter {
        default,
        archs,
        rules,
        flags,
        listener,
    })
}

/// Syscalls berth's default profile allows: what ordinary programs use, without the ones that
/// reach beyond the container (kernel modules, keyrings, bpf, mount and namespace calls, clock
/// setting, tracing of others, reboot, swap, quotas, personality changes beyond the safe ones).
const DEFAULT_ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    "arch_prctl",
    "modify_ldt",
    "clone",
];

/// berth's default seccomp profile (what `berth spec` writes): deny with EPERM, allow the
/// ordinary syscalls, a few only with safe arguments, and `clone3` answers ENOSYS so that libc
/// falls back to `clone`, whose flags the filter can check.
pub fn default_profile() -> Value {
    // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
    const NS_FLAGS: u64 = 0x7E02_0080;
    let allowed: Vec<&str> = DEFAULT_ALLOWED
        .iter()
        .copied()
        .filter(|s| *s != "clone")
        .collect();
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allowed, "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x20000, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x20008, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_profile_converts_and_compiles() {
        let f = filter(&parse(default_profile())).unwrap();
        assert_eq!(f.default, Action::Errno(1));
        assert_eq!(f.archs.len(), 3);
        let bpf = crate::linux::seccomp::compile(&f).unwrap();
        assert!(bpf.len() > 8 * 100);
    }

    #[test]
    fn notify_needs_a_listener_and_cannot_be_default() {
        let e = filter(&parse(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})))
        .unwrap_err();
        assert_eq!(e.field, "linux.seccomp.listenerPath");
        let e = filter(&parse(json!({"defaultAction": "SCMP_ACT_NOTIFY"}))).unwrap_err();
        assert_eq!(e.field, "linux.seccomp.defaultAction");
        let f = filter(&parse(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock",
            "listenerMetadata": "m", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
        ))
        .unwrap();
        assert!(f.notifies());
        assert_eq!(f.flags, flag::LOG);
        assert_eq!(f.listener, Some(("/run/l.sock".into(), "m".into())));
    }

    #[test]
    fn actions_and_conditions() {
        let f = filter(&parse(json!({"defaultAction": "SCMP_ACT_KILL_PROCESS",
            "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                          "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"},
                                   {"index": 2, "value": 7, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}]}]})))
        .unwrap();
        assert_eq!(f.default, Action::KillProcess);
        assert_eq!(f.rules[0].action, Action::Errno(38));
        assert_eq!(
            f.rules[0].conds[1],
            Cond {
                index: 2,
                op: Op::MaskedEq,
                value: 7,
                value_two: 4
            }
        );
        let e = filter(&parse(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})))
        .unwrap_err();
        assert_eq!(e.field, "linux.seccomp.syscalls[0].args[0].index");
    }
}
