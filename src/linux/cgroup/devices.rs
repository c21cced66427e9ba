//! Device access rules: written to `devices.allow`/`devices.deny` on cgroup v1, compiled to a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup on v2.
//!
//! Semantics (v1's): rules apply in order, a later rule overriding an earlier one for the
//! devices it covers; a device no rule mentions is allowed (a new v1 cgroup inherits
//! allow-all). The program therefore checks the rules last to first and the first match decides.

use std::os::fd::AsFd;
use std::path::Path;

use super::Write;
use crate::linux::{Result, Step, sys};

/// One rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub kind: char,
    /// None: any.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bits: 1 mknod, 2 read, 4 write (BPF_DEVCG_ACC_*).
    pub access: u32,
}

/// Parse an access string (`rwm`) into BPF_DEVCG_ACC_* bits.
pub fn access_bits(s: &str) -> u32 {
    s.chars().fold(0, |a, c| {
        a | match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }
    })
}

impl Rule {
    fn access_str(&self) -> String {
        [(2, 'r'), (4, 'w'), (1, 'm')]
            .iter()
            .filter(|(b, _)| self.access & b != 0)
            .map(|(_, c)| *c)
            .collect()
    }

    /// The v1 `devices.allow`/`devices.deny` write.
    pub fn v1_write(&self) -> Write {
        let file = if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        let value = if self.kind == 'a' {
            "a".to_string()
        } else {
            let n = |x: Option<u32>| x.map_or("*".to_string(), |v| v.to_string());
            format!(
                "{} {}:{} {}",
                self.kind,
                n(self.major),
                n(self.minor),
                self.access_str()
            )
        };
        Write::v1("devices", file, value)
    }
}

// struct bpf_insn encodings used below
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0x0f);
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    b
}

/// The device program for `rules`, as `struct bpf_insn` bytes.
pub fn program(rules: &[Rule]) -> Vec<u8> {
    // r1 = struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    let mut p: Vec<[u8; 8]> = vec![
        insn(LDX_W, 2, 1, 0, 0),        // r2 = access_type
        insn(MOV32_X, 3, 2, 0, 0),      // r3 = r2
        insn(AND32_K, 3, 0, 0, 0xffff), // r3 = device type (1 block, 2 char)
        insn(RSH32_K, 2, 0, 0, 16),     // r2 = requested access bits
        insn(LDX_W, 4, 1, 4, 0),        // r4 = major
        insn(LDX_W, 5, 1, 8, 0),        // r5 = minor
    ];
    for r in rules.iter().rev() {
        let mut block: Vec<[u8; 8]> = Vec::new();
        // each check jumps over the rest of the block when it fails; offsets fixed below
        let mut checks: Vec<(u8, i32)> = Vec::new();
        match r.kind {
            'c' => checks.push((3, 2)),
            'b' => checks.push((3, 1)),
            _ => {}
        }
        if let Some(m) = r.major {
            checks.push((4, m as i32));
        }
        if let Some(m) = r.minor {
            checks.push((5, m as i32));
        }
        let partial_access = r.access & 7 != 7;
        // body length: the checks, the access test (3 insns), the verdict (2 insns)
        let len = checks.len() + if partial_access { 3 } else { 0 } + 2;
        for (i, (reg, val)) in checks.iter().enumerate() {
            block.push(insn(JNE_K, *reg, 0, (len - i - 1) as i16, *val));
        }
        if partial_access {
            let at = block.len();
            block.push(insn(MOV32_X, 6, 2, 0, 0)); // r6 = requested
            block.push(insn(AND32_K, 6, 0, 0, !(r.access as i32) & 7)); // bits the rule lacks
            block.push(insn(JNE_K, 6, 0, (len - at - 3) as i16, 0));
        }
        block.push(insn(MOV64_K, 0, 0, 0, r.allow as i32));
        block.push(insn(EXIT, 0, 0, 0, 0));
        debug_assert_eq!(block.len(), len);
        p.extend(block);
        if len == 2 {
            // matches every device: what follows could never run, and the verifier refuses
            // unreachable instructions
            return p.concat();
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 1)); // no rule matched: allowed
    p.push(insn(EXIT, 0, 0, 0, 0));
    p.concat()
}

/// Load the program for `rules` and attach it to the v2 cgroup `dir`.
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = sys::bpf_load_cgroup_device(&program(rules))
        .step(|| "load the cgroup device program (eBPF)".into())?;
    let cg = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .step(|| format!("open {}", dir.display()))?;
    sys::bpf_attach_cgroup_device(cg.as_fd(), prog.as_fd())
        .step(|| format!("attach the device program to {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_writes() {
        let deny_all = Rule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: 7,
        };
        assert_eq!(deny_all.v1_write().value, "a");
        assert_eq!(deny_all.v1_write().file, "devices.deny");
        let r = Rule {
            allow: true,
            kind: 'c',
            major: Some(136),
            minor: None,
            access: access_bits("rwm"),
        };
        assert_eq!(r.v1_write().value, "c 136:* rwm");
    }

    #[test]
    fn program_shape() {
        let rules = [
            Rule {
                allow: false,
                kind: 'a',
                major: None,
                minor: None,
                access: 7,
            },
            Rule {
                allow: true,
                kind: 'c',
                major: Some(1),
                minor: Some(3),
                access: access_bits("rw"),
            },
        ];
        let p = program(&rules);
        // 6 loads, rule 2: 3 checks + 3 access + 2, rule 1 (matches all, so it ends): 2
        assert_eq!(p.len() / 8, 6 + 8 + 2);
        // last instruction exits
        assert_eq!(p[p.len() - 8], EXIT);
    }

    #[test]
    fn the_kernel_verifier_accepts_the_programs() {
        // Loading needs CAP_BPF/CAP_SYS_ADMIN and CONFIG_CGROUP_BPF, not cgroup v2.
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let deny = Rule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: 7,
        };
        let allow = |k, maj, min, acc| Rule {
            allow: true,
            kind: k,
            major: maj,
            minor: min,
            access: access_bits(acc),
        };
        for rules in [
            vec![],
            vec![deny],
            vec![
                deny,
                allow('c', Some(1), Some(3), "rwm"),
                allow('c', None, None, "m"),
                allow('b', Some(8), None, "r"),
            ],
            vec![
                allow('c', Some(136), None, "rw"),
                Rule {
                    allow: false,
                    kind: 'c',
                    major: Some(1),
                    minor: Some(11),
                    access: 4,
                },
            ],
        ] {
            let p = program(&rules);
            if let Err(e) = sys::bpf_load_cgroup_device(&p) {
                panic!("{rules:?}: {e}");
            }
        }
    }
}
