//! berth's default seccomp profile (`berth spec`, image bundles, pods asking for
//! RuntimeDefault): the container ecosystem's allowlist, keyed on the container's capabilities
//! as containerd's and moby's profiles are, so that a container given `CAP_SYS_ADMIN` may call
//! `mount` or `sethostname` and one given `CAP_SYS_PTRACE` may read another's memory.

use serde_json::{Value, json};

/// Syscalls berth's default profile allows: what ordinary programs use, without the ones that
/// reach beyond the container (kernel modules, keyrings, bpf, mount and namespace calls, clock
/// setting, reboot, swap, quotas, personality changes beyond the safe ones).
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
    "ptrace",
];

/// Syscalls allowed only when the container's bounding set holds a capability (containerd
/// 1.6's `contrib/seccomp/seccomp_default.go`, moby's `includes.caps`). A profile for other
/// capabilities is the same profile, so they share one compiled program in the cache.
pub const CAPABILITY_SYSCALLS: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// berth's default seccomp profile for a container whose bounding set is `bounding` (names as
/// `CAP_SYS_ADMIN`): deny with EPERM, allow the ordinary syscalls, a few only with safe
/// arguments, those of [`CAPABILITY_SYSCALLS`] whose capability the container holds. Without
/// `CAP_SYS_ADMIN`, `clone` may not make namespaces and `clone3` answers ENOSYS, so that libc
/// falls back to `clone`, whose flags the filter can check.
pub fn default_profile(bounding: &[String]) -> Value {
    // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
    const NS_FLAGS: u64 = 0x7E02_0080;
    let has = |c: &str| bounding.iter().any(|b| b == c);
    let mut rules = vec![json!({"names": DEFAULT_ALLOWED, "action": "SCMP_ACT_ALLOW"})];
    for p in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        rules.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]}));
    }
    for (cap, names) in CAPABILITY_SYSCALLS {
        if has(cap) {
            rules.push(json!({"names": names, "action": "SCMP_ACT_ALLOW"}));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        rules.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}));
        rules.push(
            json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
        );
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// containerd 1.6.20's per-capability lists (`contrib/seccomp/seccomp_default.go`), as
    /// data to compare with: each capability adds exactly these names, in one rule.
    const CONTAINERD_1_6: &[(&str, &str)] = &[
        ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
        (
            "CAP_SYS_ADMIN",
            "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
             mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl \
             quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare",
        ),
        ("CAP_SYS_BOOT", "reboot"),
        ("CAP_SYS_CHROOT", "chroot"),
        ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
        ("CAP_SYS_PACCT", "acct"),
        (
            "CAP_SYS_PTRACE",
            "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
        ),
        ("CAP_SYS_RAWIO", "iopl ioperm"),
        (
            "CAP_SYS_TIME",
            "settimeofday stime clock_settime clock_settime64",
        ),
        ("CAP_SYS_TTY_CONFIG", "vhangup"),
        ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy"),
        ("CAP_SYSLOG", "syslog"),
        ("CAP_BPF", "bpf"),
        ("CAP_PERFMON", "perf_event_open"),
    ];

    fn rules(p: &Value) -> Vec<Value> {
        p["syscalls"].as_array().unwrap().clone()
    }

    fn sorted(v: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut v: Vec<String> = v.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn each_capability_adds_containerds_syscalls() {
        let base = rules(&default_profile(&[]));
        for (cap, want) in CONTAINERD_1_6 {
            let with = rules(&default_profile(&[cap.to_string()]));
            let added: Vec<&Value> = with.iter().filter(|r| !base.contains(r)).collect();
            let want = sorted(want.split_whitespace().map(String::from));
            let got = sorted(
                added
                    .iter()
                    .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
                    .flat_map(|r| r["names"].as_array().unwrap().clone())
                    .map(|n| n.as_str().unwrap().to_string()),
            );
            assert_eq!(got, want, "{cap}");
        }
        assert_eq!(CAPABILITY_SYSCALLS.len(), CONTAINERD_1_6.len());
    }

    #[test]
    fn sys_admin_lifts_the_namespace_checks_of_clone() {
        let has_rule = |p: &Value, name: &str, action: &str| {
            rules(p).iter().any(|r| {
                r["action"] == action && r["names"].as_array().unwrap().iter().any(|n| n == name)
            })
        };
        let plain = default_profile(&["CAP_CHOWN".into()]);
        assert!(has_rule(&plain, "clone3", "SCMP_ACT_ERRNO"));
        assert!(!has_rule(&plain, "sethostname", "SCMP_ACT_ALLOW"));
        let admin = default_profile(&["CAP_SYS_ADMIN".into()]);
        assert!(!has_rule(&admin, "clone3", "SCMP_ACT_ERRNO"));
        assert!(has_rule(&admin, "sethostname", "SCMP_ACT_ALLOW"));
        assert!(has_rule(&admin, "mount", "SCMP_ACT_ALLOW"));
    }

    #[test]
    fn capabilities_that_change_nothing_give_the_same_profile() {
        // the compiled-program cache is keyed by the profile's hash: unrelated capabilities
        // must not make a new program
        let none = default_profile(&[]);
        let some = default_profile(&["CAP_CHOWN".into(), "CAP_KILL".into(), "CAP_NET_RAW".into()]);
        assert_eq!(none, some);
        assert_ne!(none, default_profile(&["CAP_SYS_PTRACE".into()]));
    }

    #[test]
    fn default_profiles_convert_and_compile() {
        for caps in [
            vec![],
            vec!["CAP_SYS_ADMIN".to_string(), "CAP_SYS_PTRACE".into()],
        ] {
            let s: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_value(default_profile(&caps)).unwrap();
            let f = super::super::seccomp::filter(&s).unwrap();
            assert_eq!(f.archs.len(), 3);
            let bpf = crate::linux::seccomp::compile(&f).unwrap();
            assert!(bpf.len() > 8 * 100);
        }
    }
}
