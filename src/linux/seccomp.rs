//! seccomp: compile a filter (plain data, from the OCI profile) to BPF with libseccomp in the
//! parent, cache the program on disk keyed by the filter's hash, and load it in the child with
//! one `seccomp(2)` call. libseccomp's context is not Send and costs 15–45 ms to compile a
//! default profile; a cache hit costs one small file read.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Result, Step, SysError, sys};

/// What a rule (or the default) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Allow,
    Log,
    Notify,
}

/// A comparison operator on a syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

/// A condition on argument `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cond {
    pub index: u32,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

/// Syscalls sharing an action and conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    pub conds: Vec<Cond>,
}

/// A whole filter, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub default: Action,
    /// `SCMP_ARCH_*` names besides the native one.
    pub archs: Vec<String>,
    pub rules: Vec<Rule>,
    /// `SECCOMP_FILTER_FLAG_*` bits for seccomp(2) (LOG, SPEC_ALLOW, WAIT_KILLABLE_RECV).
    pub flags: u32,
    /// Where the notify listener fd goes (`listenerPath`), and its metadata.
    pub listener: Option<(PathBuf, String)>,
}

/// `SECCOMP_FILTER_FLAG_*`.
pub mod flag {
    pub const TSYNC: u32 = 1;
    pub const LOG: u32 = 2;
    pub const SPEC_ALLOW: u32 = 4;
    pub const NEW_LISTENER: u32 = 8;
    pub const WAIT_KILLABLE_RECV: u32 = 32;
}

/// A compiled filter ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// `struct sock_filter` array (8 bytes an instruction).
    pub bpf: Vec<u8>,
    /// seccomp(2) flags, NEW_LISTENER included when the filter notifies.
    pub flags: u32,
    /// Send the listener fd here, with this metadata.
    pub listener: Option<(PathBuf, String)>,
}

impl Filter {
    /// True if any rule (or the default) hands syscalls to a user-space listener.
    pub fn notifies(&self) -> bool {
        self.default == Action::Notify || self.rules.iter().any(|r| r.action == Action::Notify)
    }

    /// Cache key: the filter's hash, with what else changes the program (libseccomp's version,
    /// the native architecture, berth's version).
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).expect("filter serialises"));
        let v = libseccomp::ScmpVersion::current()
            .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro));
        h.update(v.unwrap_or_default().as_bytes());
        h.update(std::env::consts::ARCH.as_bytes());
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn scmp_action(a: Action) -> ScmpAction {
    match a {
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Errno(e) => ScmpAction::Errno(e as i32),
        Action::Trace(m) => ScmpAction::Trace(m),
        Action::Allow => ScmpAction::Allow,
        Action::Log => ScmpAction::Log,
        Action::Notify => ScmpAction::Notify,
    }
}

fn scmp_cond(c: &Cond) -> ScmpArgCompare {
    let (op, datum) = match c.op {
        Op::Ne => (ScmpCompareOp::NotEqual, c.value),
        Op::Lt => (ScmpCompareOp::Less, c.value),
        Op::Le => (ScmpCompareOp::LessOrEqual, c.value),
        Op::Eq => (ScmpCompareOp::Equal, c.value),
        Op::Ge => (ScmpCompareOp::GreaterEqual, c.value),
        Op::Gt => (ScmpCompareOp::Greater, c.value),
        Op::MaskedEq => (ScmpCompareOp::MaskedEqual(c.value), c.value_two),
    };
    ScmpArgCompare::new(c.index, op, datum)
}

fn lib_err(step: impl Into<String>, e: libseccomp::error::SeccompError) -> SysError {
    SysError::other(step, e.to_string())
}

/// Compile `f` to BPF with libseccomp. Syscall names this libseccomp does not know are skipped
/// (profiles name syscalls of many kernels), as runc does.
pub fn compile(f: &Filter) -> Result<Vec<u8>> {
    let mut ctx = ScmpFilterContext::new(scmp_action(f.default))
        .map_err(|e| lib_err("create seccomp filter", e))?;
    // berth sets no_new_privs itself when the config asks; libseccomp must not.
    ctx.set_ctl_nnp(false)
        .map_err(|e| lib_err("seccomp: clear nnp", e))?;
    for a in &f.archs {
        let arch: ScmpArch = a
            .parse()
            .map_err(|e| lib_err(format!("seccomp architecture {a}"), e))?;
        if arch != ScmpArch::Native && arch != ScmpArch::native() {
            ctx.add_arch(arch)
                .map_err(|e| lib_err(format!("add seccomp architecture {a}"), e))?;
        }
    }
    for r in &f.rules {
        if r.action == f.default {
            continue; // libseccomp refuses rules that repeat the default action
        }
        let action = scmp_action(r.action);
        // Several conditions on one argument can never all hold: they are alternatives (OR),
        // one rule each; conditions on distinct arguments are one rule (AND).
        let mut seen = std::collections::HashSet::new();
        let split = r.conds.iter().any(|c| !seen.insert(c.index));
        for name in &r.names {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let add = |ctx: &mut ScmpFilterContext, conds: &[ScmpArgCompare]| {
                ctx.add_rule_conditional(action, sc, conds)
                    .map(|_| ())
                    .map_err(|e| lib_err(format!("seccomp rule for {name}"), e))
            };
            if split {
                for c in &r.conds {
                    add(&mut ctx, &[scmp_cond(c)])?;
                }
            } else {
                let conds: Vec<ScmpArgCompare> = r.conds.iter().map(scmp_cond).collect();
                add(&mut ctx, &conds)?;
            }
        }
    }
    let mem = sys::memfd("berth-seccomp").step(|| "create memfd for seccomp program".into())?;
    ctx.export_bpf(&mem)
        .map_err(|e| lib_err("export seccomp program", e))?;
    let mut f = std::fs::File::from(mem);
    use std::io::{Read, Seek};
    f.rewind().step(|| "rewind seccomp program".into())?;
    let mut bpf = Vec::new();
    f.read_to_end(&mut bpf)
        .step(|| "read seccomp program".into())?;
    Ok(bpf)
}

/// The program for `f`, from the cache under `cache_dir` or compiled (and then cached).
pub fn program(f: &Filter, cache_dir: &Path) -> Result<Program> {
    let path = cache_dir.join(format!("{}.bpf", f.key()));
    let bpf = match std::fs::read(&path) {
        Ok(b) if !b.is_empty() && b.len() % 8 == 0 => b,
        _ => {
            let b = compile(f)?;
            // Best effort: a cache that cannot be written only costs the next start a compile.
            let _ = store(&path, &b);
            b
        }
    };
    let mut flags = f.flags;
    if f.notifies() {
        flags |= flag::NEW_LISTENER;
    }
    Ok(Program {
        bpf,
        flags,
        listener: f.listener.clone(),
    })
}

fn store(path: &Path, bpf: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bpf)?;
    std::fs::rename(&tmp, path)
}

/// Load `p` into the calling process (the container's process, just before exec). Returns the
/// notify listener fd when the filter has one.
pub fn load(p: &Program) -> Result<Option<OwnedFd>> {
    sys::seccomp_set_filter(&p.bpf, p.flags).step(|| "load seccomp filter".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> Filter {
        Filter {
            default: Action::Allow,
            archs: vec!["SCMP_ARCH_X86".into()],
            rules: vec![Rule {
                names: vec![
                    "mkdir".into(),
                    "mkdirat".into(),
                    "no_such_syscall_xyz".into(),
                ],
                action: Action::Errno(38),
                conds: vec![],
            }],
            flags: 0,
            listener: None,
        }
    }

    #[test]
    fn compiles_to_bpf_and_skips_unknown_names() {
        let bpf = compile(&filter()).unwrap();
        assert!(!bpf.is_empty() && bpf.len() % 8 == 0);
    }

    #[test]
    fn cache_is_keyed_by_the_filter() {
        let dir = std::env::temp_dir().join(format!("berth-seccomp-unit-{}", std::process::id()));
        let f = filter();
        let p1 = program(&f, &dir).unwrap();
        let cached = dir.join(format!("{}.bpf", f.key()));
        assert!(cached.exists());
        assert_eq!(program(&f, &dir).unwrap(), p1);
        let mut g = f.clone();
        g.rules[0].action = Action::Errno(1);
        assert_ne!(g.key(), f.key());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
