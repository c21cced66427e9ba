//! `process` of config.json → the process plan: argv, environment, user, capabilities, rlimits,
//! scheduler, I/O priority, personality; each error names its field.

use std::ffi::CString;

use nix::sys::resource::Resource;
use oci_spec::runtime::{LinuxCapabilities, PosixRlimitType, Process};

use super::{R, err};
use crate::linux::process::{Capabilities, ProcessPlan, Rlimit};
use crate::oci::spec::SpecError;

pub(super) fn cstring(field: &str, s: &str) -> R<CString> {
    CString::new(s).map_err(|_| SpecError::new(field, "contains a NUL byte"))
}

pub(super) fn rlimit_resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

pub(super) fn cap_set(
    field: &str,
    set: &Option<oci_spec::runtime::Capabilities>,
) -> R<caps::CapsHashSet> {
    let mut out = caps::CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: caps::Capability = name
            .parse()
            .map_err(|_| SpecError::new(field, format!("unknown capability {name}")))?;
        out.insert(cap);
    }
    Ok(out)
}

pub(super) fn capabilities(field: &str, c: &LinuxCapabilities) -> R<Capabilities> {
    let caps = Capabilities {
        bounding: cap_set(&format!("{field}.bounding"), c.bounding())?,
        effective: cap_set(&format!("{field}.effective"), c.effective())?,
        inheritable: cap_set(&format!("{field}.inheritable"), c.inheritable())?,
        permitted: cap_set(&format!("{field}.permitted"), c.permitted())?,
        ambient: cap_set(&format!("{field}.ambient"), c.ambient())?,
        drop_bounding: Vec::new(),
    };
    // Only what this kernel knows can be set; newer names are dropped, as runc does.
    let known = caps::runtime::procfs_all_supported(None)
        .unwrap_or_else(|_| caps::runtime::thread_all_supported());
    let keep = |s: &caps::CapsHashSet| s.intersection(&known).copied().collect();
    let mut drop_bounding: Vec<caps::Capability> =
        known.difference(&caps.bounding).copied().collect();
    drop_bounding.sort_by_key(|c| c.index());
    Ok(Capabilities {
        bounding: keep(&caps.bounding),
        effective: keep(&caps.effective),
        inheritable: keep(&caps.inheritable),
        permitted: keep(&caps.permitted),
        ambient: keep(&caps.ambient),
        drop_bounding,
    })
}

/// The execution domain of `linux.personality` (for the init and every exec'd process).
pub fn personality(linux: &oci_spec::runtime::Linux) -> R<Option<u64>> {
    let Some(per) = linux.personality() else {
        return Ok(None);
    };
    if per.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return err(
            "linux.personality.flags",
            "no personality flags are supported",
        );
    }
    Ok(Some(match per.domain() {
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0x0000,
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
    }))
}

/// The process plan of a `process` object (of config.json, or of `exec --process`). `field`
/// prefixes the field names in errors.
pub fn process_plan(p: &Process, field: &str) -> R<ProcessPlan> {
    let args = p.args().as_deref().unwrap_or(&[]);
    if args.is_empty() || args[0].is_empty() {
        return err(format!("{field}.args"), "must name the program to run");
    }
    if !p.cwd().is_absolute() {
        return err(
            format!("{field}.cwd"),
            format!("{:?} must be an absolute path", p.cwd()),
        );
    }
    let args = args
        .iter()
        .enumerate()
        .map(|(i, a)| cstring(&format!("{field}.args[{i}]"), a))
        .collect::<R<Vec<_>>>()?;
    let env = p
        .env()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, e)| cstring(&format!("{field}.env[{i}]"), e))
        .collect::<R<Vec<_>>>()?;
    let mut rlimits: Vec<Rlimit> = Vec::new();
    for (i, r) in p.rlimits().as_deref().unwrap_or(&[]).iter().enumerate() {
        let name = r.typ().to_string();
        if rlimits.iter().any(|x| x.name == name) {
            return err(
                format!("{field}.rlimits[{i}].type"),
                format!("{name} listed twice"),
            );
        }
        if r.soft() > r.hard() {
            return err(
                format!("{field}.rlimits[{i}]"),
                format!("soft {} is above hard {}", r.soft(), r.hard()),
            );
        }
        rlimits.push(Rlimit {
            resource: rlimit_resource(r.typ()),
            name,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    let capabilities = p
        .capabilities()
        .as_ref()
        .map(|c| capabilities(&format!("{field}.capabilities"), c))
        .transpose()?;
    if let Some(c) = &capabilities {
        if !c.effective.is_subset(&c.permitted) {
            return err(
                format!("{field}.capabilities.effective"),
                "must be a subset of permitted",
            );
        }
    }
    if let Some(v) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&v) {
            return err(
                format!("{field}.oomScoreAdj"),
                format!("{v} is outside -1000..1000"),
            );
        }
    }
    let user = p.user();
    let console_size = p
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    Ok(ProcessPlan {
        args,
        env,
        cwd: p.cwd().clone(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        rlimits,
        capabilities,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        terminal: p.terminal().unwrap_or(false),
        console_size,
        oom_score_adj: p.oom_score_adj(),
        scheduler: p
            .scheduler()
            .as_ref()
            .map(|s| scheduler(s, field))
            .transpose()?,
        io_priority: p
            .io_priority()
            .as_ref()
            .map(|io| {
                let class = match io.class() {
                    oci_spec::runtime::IOPriorityClass::IoprioClassRt => 1,
                    oci_spec::runtime::IOPriorityClass::IoprioClassBe => 2,
                    oci_spec::runtime::IOPriorityClass::IoprioClassIdle => 3,
                };
                if !(0..=7).contains(&io.priority()) {
                    return err(
                        format!("{field}.ioPriority.priority"),
                        format!("{} is outside 0..7", io.priority()),
                    );
                }
                Ok((class, io.priority() as u32))
            })
            .transpose()?,
        personality: None,
        apparmor_profile: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
        selinux_label: p.selinux_label().clone().filter(|s| !s.is_empty()),
    })
}

pub(super) fn scheduler(
    s: &oci_spec::runtime::Scheduler,
    field: &str,
) -> R<crate::linux::sys::Sched> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return err(
            format!("{field}.scheduler.nice"),
            format!("{nice} is outside -20..19"),
        );
    }
    let priority = s.priority().unwrap_or(0);
    if (policy == 1 || policy == 2) && !(1..=99).contains(&priority) {
        return err(
            format!("{field}.scheduler.priority"),
            "SCHED_FIFO and SCHED_RR need a priority in 1..99",
        );
    }
    if policy == 6 && (s.runtime().is_none() || s.deadline().is_none()) {
        return err(
            format!("{field}.scheduler"),
            "SCHED_DEADLINE needs runtime and deadline",
        );
    }
    Ok(crate::linux::sys::Sched {
        policy,
        flags,
        nice,
        priority: priority.max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}
