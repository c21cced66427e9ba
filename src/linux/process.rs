//! The container process's attributes: rlimits, oom_score_adj, user and groups, capabilities,
//! no_new_privs, umask, working directory, and the final exec.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, CapsHashSet};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::{AccessFlags, Gid, Uid, access};

use super::{Result, Step, SysError};

/// One rlimit to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: Resource,
    /// The runtime-spec name, for messages (`RLIMIT_NOFILE`).
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// The five capability sets of the process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
    /// Capabilities of this kernel outside `bounding`: dropped from the bounding set.
    pub drop_bounding: Vec<caps::Capability>,
}

/// Everything about the process that runs in the container, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub rlimits: Vec<Rlimit>,
    /// `None` keeps the capabilities berth has (the spec's "unset" meaning).
    pub capabilities: Option<Capabilities>,
    pub no_new_privileges: bool,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub oom_score_adj: Option<i32>,
    /// sched_setattr parameters.
    pub scheduler: Option<super::sys::Sched>,
    /// I/O priority: (class, level).
    pub io_priority: Option<(u32, u32)>,
    /// personality(2) execution domain.
    pub personality: Option<u64>,
    /// AppArmor profile to exec into.
    pub apparmor_profile: Option<String>,
    /// SELinux label to exec into.
    pub selinux_label: Option<String>,
}

/// Scheduling, I/O priority and execution domain: set before the user switch (real-time
/// policies need CAP_SYS_NICE).
pub fn set_scheduling(p: &ProcessPlan) -> Result<()> {
    if let Some(s) = &p.scheduler {
        super::sys::sched_setattr(s).step(|| format!("set scheduler (policy {})", s.policy))?;
    }
    if let Some((class, level)) = p.io_priority {
        super::sys::ioprio_set(class, level)
            .step(|| format!("set I/O priority class {class} level {level}"))?;
    }
    if let Some(persona) = p.personality {
        super::sys::set_personality(persona as libc::c_ulong)
            .step(|| format!("set personality {persona:#x}"))?;
    }
    Ok(())
}

/// Ask the LSMs to move the program into its AppArmor profile / SELinux label at exec.
pub fn set_exec_labels(p: &ProcessPlan) -> Result<()> {
    if let Some(profile) = &p.apparmor_profile {
        let text = format!("exec {profile}");
        std::fs::write("/proc/self/attr/apparmor/exec", &text)
            .or_else(|_| std::fs::write("/proc/self/attr/exec", &text))
            .step(|| format!("set AppArmor profile {profile}"))?;
    }
    if let Some(label) = &p.selinux_label {
        std::fs::write("/proc/self/attr/exec", label)
            .step(|| format!("set SELinux label {label}"))?;
    }
    Ok(())
}

/// Whether the host enforces AppArmor.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// Whether the host runs SELinux.
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

impl ProcessPlan {
    /// The value of a variable of the process's environment.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env.iter().find_map(|kv| {
            let s = kv.to_str().ok()?;
            let (k, v) = s.split_once('=')?;
            (k == key).then_some(v)
        })
    }
}

/// Set rlimits. A hard limit above what berth may set (no CAP_SYS_RESOURCE) is clamped to the
/// current hard limit, and `warn` is told.
pub fn set_rlimits(limits: &[Rlimit], warn: &mut dyn FnMut(String)) -> Result<()> {
    for l in limits {
        match setrlimit(l.resource, l.soft, l.hard) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) => {
                let (_, cur_hard) =
                    getrlimit(l.resource).step(|| format!("getrlimit {}", l.name))?;
                let hard = l.hard.min(cur_hard);
                let soft = l.soft.min(hard);
                setrlimit(l.resource, soft, hard).step(|| format!("setrlimit {}", l.name))?;
                warn(format!(
                    "{} clamped to soft={soft} hard={hard}: raising it needs CAP_SYS_RESOURCE",
                    l.name
                ));
            }
            Err(e) => return Err(SysError::new(format!("setrlimit {}", l.name), e)),
        }
    }
    Ok(())
}

/// Write `/proc/self/oom_score_adj`; a value the host forbids is left at its current value and
/// `warn` is told (hosts without CAP_SYS_RESOURCE cannot lower it).
pub fn set_oom_score_adj(value: i32, warn: &mut dyn FnMut(String)) -> Result<()> {
    match std::fs::write("/proc/self/oom_score_adj", value.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            let cur = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
            warn(format!(
                "oomScoreAdj {value} not permitted on this host (needs CAP_SYS_RESOURCE); kept {}",
                cur.trim()
            ));
            Ok(())
        }
        Err(e) => Err(SysError::new("write /proc/self/oom_score_adj", e)),
    }
}

/// Become the process's user with its capabilities: bounding set first (dropping needs
/// CAP_SETPCAP), then groups and ids keeping permitted caps, then the other sets. Ambient
/// capabilities the kernel refuses (not both permitted and inheritable, as in `runc spec`'s
/// own config) are skipped with a warning, as runc does.
pub fn switch_user(p: &ProcessPlan, warn: &mut dyn FnMut(String)) -> Result<()> {
    let caps = p.capabilities.as_ref();
    if let Some(c) = caps {
        for cap in &c.drop_bounding {
            caps::drop(None, CapSet::Bounding, *cap).map_err(|e| {
                SysError::other(format!("drop {cap} from bounding set"), e.to_string())
            })?;
        }
    }
    let groups: Vec<Gid> = p
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).step(|| format!("setgroups {:?}", p.additional_gids))?;
    let keep = caps.is_some() && p.uid != 0;
    if keep {
        nix::sys::prctl::set_keepcaps(true).step(|| "set keepcaps".into())?;
    }
    let g = Gid::from_raw(p.gid);
    nix::unistd::setresgid(g, g, g).step(|| format!("setgid {}", p.gid))?;
    let u = Uid::from_raw(p.uid);
    nix::unistd::setresuid(u, u, u).step(|| format!("setuid {}", p.uid))?;
    if keep {
        nix::sys::prctl::set_keepcaps(false).step(|| "clear keepcaps".into())?;
    }
    if let Some(c) = caps {
        let set = |which: CapSet, v: &CapsHashSet, name: &str| {
            caps::set(None, which, v)
                .map_err(|e| SysError::other(format!("set {name} capabilities"), e.to_string()))
        };
        // Inheritable while CAP_SETPCAP may still be effective; effective before permitted so
        // that effective is never larger than permitted.
        set(CapSet::Inheritable, &c.inheritable, "inheritable")?;
        set(CapSet::Effective, &c.effective, "effective")?;
        set(CapSet::Permitted, &c.permitted, "permitted")?;
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| SysError::other("clear ambient capabilities", e.to_string()))?;
        let mut ambient: Vec<&caps::Capability> = c.ambient.iter().collect();
        ambient.sort_by_key(|c| c.index());
        for cap in ambient {
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                warn(format!("cannot raise ambient capability {cap}: {e}"));
            }
        }
    }
    Ok(())
}

/// Turn on no_new_privs.
pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().step(|| "set no_new_privs".into())
}

/// Find the program to run the way runc does, with messages runc's users (podman) recognise:
/// a name with a `/` is used as is; otherwise each `$PATH` entry is tried.
pub fn find_executable(arg0: &CStr, path_env: Option<&str>) -> Result<CString> {
    let name = Path::new(std::ffi::OsStr::from_bytes(arg0.to_bytes()));
    let shown = name.display().to_string();
    if arg0.to_bytes().contains(&b'/') {
        return match std::fs::metadata(name) {
            Ok(m) if m.is_dir() => Err(SysError::other(
                format!("exec: {shown:?}"),
                "is a directory",
            )),
            Ok(_) => match access(name, AccessFlags::X_OK) {
                Ok(()) => Ok(arg0.to_owned()),
                Err(e) => Err(SysError::new(format!("exec: {shown:?}"), e)),
            },
            Err(e) => Err(SysError::new(format!("exec: {shown:?}: stat {shown}"), e)),
        };
    }
    let path = path_env.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(name);
        if let Ok(m) = std::fs::metadata(&cand) {
            if !m.is_dir() && access(&cand, AccessFlags::X_OK).is_ok() {
                return CString::new(cand.as_os_str().as_bytes())
                    .map_err(|_| SysError::other("exec", "path has a NUL byte"));
            }
        }
    }
    Err(SysError::other(
        format!("exec: {shown:?}"),
        "executable file not found in $PATH",
    ))
}

/// The user's home directory from the container's `/etc/passwd`, or `/`.
pub fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".to_string())
}

/// Replace this process with the container's program. Returns only on failure.
pub fn exec(path: &CStr, args: &[CString], env: &[CString]) -> SysError {
    match nix::unistd::execve(path, args, env) {
        Err(e) => SysError::new(format!("exec {}", path.to_string_lossy()), e),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_in_path_and_reports_like_runc() {
        let sh = find_executable(c"sh", Some("/nonexistent:/bin:/usr/bin")).unwrap();
        assert!(sh.to_str().unwrap().ends_with("/sh"));
        let e = find_executable(c"no-such-prog-berth", Some("/bin")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "exec: \"no-such-prog-berth\": executable file not found in $PATH"
        );
        let e = find_executable(c"/no/such", None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("exec: \"/no/such\": stat /no/such: "),
            "{e}"
        );
        let f = std::env::temp_dir().join(format!("berth-noexec-{}", std::process::id()));
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let c = CString::new(f.to_str().unwrap()).unwrap();
        let e = find_executable(&c, None).unwrap_err();
        std::fs::remove_file(&f).unwrap();
        assert!(e.to_string().contains("denied"), "{e}");
    }
}
