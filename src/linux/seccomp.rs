//! seccomp: compile a filter (plain data, from the OCI profile) to BPF with libseccomp in the
//! parent, cache the program on disk keyed by the filter's hash, and load it in the child with
//! one `seccomp(2)` call. libseccomp's context is not Send and costs 15–45 ms to compile a
//! default profile; a cache hit costs one small file read.

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
///
/// Each architecture is compiled on its own and the programs are chained into one:
/// libseccomp's generator costs far more than linearly in the number of architectures (the
/// default profile's three: 9.0 ms together, 1.2 ms each alone). Every program but the last
/// returns a sentinel (a TRACE value no rule uses) for a syscall of an architecture it does
/// not cover, and that return becomes a jump to the next program; the last one keeps
/// libseccomp's bad-architecture action. A unit test runs both forms on the same inputs.
pub fn compile(f: &Filter) -> Result<Vec<u8>> {
    let mut archs = vec![ScmpArch::native()];
    for a in &f.archs {
        let arch: ScmpArch = a
            .parse()
            .map_err(|e| lib_err(format!("seccomp architecture {a}"), e))?;
        let arch = if arch == ScmpArch::Native {
            ScmpArch::native()
        } else {
            arch
        };
        if !archs.contains(&arch) {
            archs.push(arch);
        }
    }
    let sentinel = (0..=u16::MAX)
        .rev()
        .find(|m| {
            f.default != Action::Trace(*m) && f.rules.iter().all(|r| r.action != Action::Trace(*m))
        })
        .expect("a filter uses fewer than 65536 trace values");
    let last = archs.len() - 1;
    let programs = archs
        .iter()
        .enumerate()
        .map(|(i, &arch)| compile_for(f, &[arch], (i < last).then_some(sentinel)))
        .collect::<Result<Vec<_>>>()?;
    Ok(chain(&programs, SCMP_ACT_TRACE | u32::from(sentinel)))
}

/// libseccomp's `SCMP_ACT_TRACE(0)`, the value a BPF return of a TRACE action carries.
const SCMP_ACT_TRACE: u32 = 0x7ff0_0000;

/// The program for `archs`; `sentinel`: the TRACE value to return for other architectures.
fn compile_for(f: &Filter, archs: &[ScmpArch], sentinel: Option<u16>) -> Result<Vec<u8>> {
    let mut ctx = ScmpFilterContext::new(scmp_action(f.default))
        .map_err(|e| lib_err("create seccomp filter", e))?;
    // berth sets no_new_privs itself when the config asks; libseccomp must not.
    ctx.set_ctl_nnp(false)
        .map_err(|e| lib_err("seccomp: clear nnp", e))?;
    for &arch in archs.iter().filter(|&&a| a != ScmpArch::native()) {
        ctx.add_arch(arch)
            .map_err(|e| lib_err(format!("add seccomp architecture {arch:?}"), e))?;
    }
    if !archs.contains(&ScmpArch::native()) {
        ctx.remove_arch(ScmpArch::native())
            .map_err(|e| lib_err("seccomp: remove the native architecture", e))?;
    }
    if let Some(m) = sentinel {
        ctx.set_act_badarch(ScmpAction::Trace(m))
            .map_err(|e| lib_err("seccomp: set the bad-architecture action", e))?;
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

/// `struct sock_filter` opcodes: return a constant, jump always.
const BPF_RET_K: u16 = 0x06;
const BPF_JA: u16 = 0x05;

/// Join `programs` into one: in each but the last, `return sentinel` becomes a jump to the start
/// of the next program (jumps are relative and forward, so every other instruction stays).
fn chain(programs: &[Vec<u8>], sentinel: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(programs.iter().map(Vec::len).sum());
    let mut start = 0;
    for (i, p) in programs.iter().enumerate() {
        let next = start + p.len() / 8;
        for (j, insn) in p.chunks_exact(8).enumerate() {
            let code = u16::from_ne_bytes([insn[0], insn[1]]);
            let k = u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]);
            if i + 1 < programs.len() && code == BPF_RET_K && k == sentinel {
                let skip = (next - (start + j + 1)) as u32;
                out.extend_from_slice(&BPF_JA.to_ne_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&skip.to_ne_bytes());
            } else {
                out.extend_from_slice(insn);
            }
        }
        start = next;
    }
    out
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
    super::fs::write_atomic(path, bpf)
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

    /// Runs a classic BPF program (the instructions libseccomp emits) on one seccomp_data.
    fn run(prog: &[u8], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let insn = |pc: usize| {
            let b = &prog[pc * 8..pc * 8 + 8];
            let k = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
            (
                u16::from_ne_bytes([b[0], b[1]]),
                b[2] as usize,
                b[3] as usize,
                k,
            )
        };
        let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
        loop {
            let (code, jt, jf, k) = insn(pc);
            pc += 1;
            let jump = |cond: bool| if cond { jt } else { jf };
            match code {
                0x20 => {
                    let o = k as usize;
                    a = u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
                }
                0x00 => a = k,
                0x60 => a = mem[k as usize],
                0x01 => x = k,
                0x61 => x = mem[k as usize],
                0x02 => mem[k as usize] = a,
                0x03 => mem[k as usize] = x,
                0x54 => a &= k,
                0x44 => a |= k,
                0x07 => x = a,
                0x87 => a = x,
                0x05 => pc += k as usize,
                0x15 => pc += jump(a == k),
                0x25 => pc += jump(a > k),
                0x35 => pc += jump(a >= k),
                0x45 => pc += jump(a & k != 0),
                0x1d => pc += jump(a == x),
                0x2d => pc += jump(a > x),
                0x3d => pc += jump(a >= x),
                0x4d => pc += jump(a & x != 0),
                0x06 => return k,
                0x16 => return a,
                _ => panic!("BPF opcode {code:#x} at {}", pc - 1),
            }
        }
    }

    #[test]
    fn chained_programs_decide_as_one_libseccomp_program() {
        let default = crate::oci::seccomp::filter(
            &serde_json::from_value(crate::oci::seccomp_default::default_profile(&[])).unwrap(),
        )
        .unwrap();
        let mut traced = filter();
        traced.archs = vec!["SCMP_ARCH_X86".into(), "SCMP_ARCH_X32".into()];
        traced.rules.push(Rule {
            names: vec!["getpid".into(), "socketcall".into()],
            action: Action::Trace(0xffff),
            conds: vec![],
        });
        let args = [
            [0; 6],
            [0x1000_0000, 0, 0, 0, 0, 0],
            [0x7e02_0000, 1, 2, 3, 4, 5],
            [8, 0xffff_ffff, 0, 0, 0, 0],
            [0xffff_ffff, 0, 0, 0, 0, 0],
            [u64::MAX; 6],
        ];
        // x86_64, i386, aarch64 (in no filter here)
        let archs = [0xc000_003e_u32, 0x4000_0003, 0xc000_00b7];
        for f in [&default, &traced, &filter()] {
            let chained = compile(f).unwrap();
            let mut all = vec![ScmpArch::native()];
            all.extend(f.archs.iter().map(|a| a.parse::<ScmpArch>().unwrap()));
            let one = compile_for(f, &all, None).unwrap();
            let mut checked = 0;
            for arch in archs {
                for nr in (0..600)
                    .chain(0x4000_0000..0x4000_0000 + 600)
                    .chain([u32::MAX])
                {
                    for a in args {
                        assert_eq!(
                            run(&chained, arch, nr, a),
                            run(&one, arch, nr, a),
                            "arch {arch:#x} nr {nr:#x} args {a:x?}"
                        );
                        checked += 1;
                    }
                }
            }
            assert!(checked > 20_000);
        }
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
