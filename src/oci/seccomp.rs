//! `linux.seccomp` → a plain-data filter (`linux::seccomp::Filter`), and berth's default profile.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_profile_denies_with_eperm() {
        let f = filter(&parse(super::super::seccomp_default::default_profile(&[]))).unwrap();
        assert_eq!(f.default, Action::Errno(1));
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
