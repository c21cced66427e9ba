//! Reading a bundle's `config.json`: parse, then refuse every field berth does not implement.
//!
//! The runtime-spec asks runtimes to ignore properties they do not know, so unknown keys pass;
//! but a field that the spec defines and berth does not carry out is an error naming the field,
//! never silently dropped. [`FIELDS`] is the one table of what is supported; `SUPPORT.md` in
//! `runtime-spec/` is rendered from it (a unit test keeps the two in sync).

use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::Value;

/// A problem with a config.json, naming the offending field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Path of the field in the JSON document, e.g. `linux.namespaces[2].type`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl SpecError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// How berth treats a runtime-spec field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented; objects below it are checked field by field.
    Yes,
    /// Implemented; a map with free-form keys (annotations, sysctl), not descended into.
    Map,
    /// Implemented with a restriction, stated here and enforced when the plan is made.
    Partly(&'static str),
    /// Not implemented: a config that sets it is refused with this reason.
    No(&'static str),
}

const NOT_LINUX: &str = "berth runs Linux containers only";

/// Every runtime-spec (1.2) field and what berth does with it. Array elements are written `[]`.
#[rustfmt::skip]
pub const FIELDS: &[(&str, Support)] = &[
    ("ociVersion", Support::Partly("must be 1.x")),
    ("root", Support::Yes),
    ("root.path", Support::Yes),
    ("root.readonly", Support::Yes),
    ("mounts", Support::Yes),
    ("mounts[].destination", Support::Yes),
    ("mounts[].type", Support::Partly("bind, cgroup and any filesystem type the kernel knows; proc and sysfs only on a real directory, never through a symlink (runc's rule)")),
    ("mounts[].source", Support::Yes),
    ("mounts[].options", Support::Partly("all mount(8) flags, propagation flags, r* recursive flags; tmpcopyup copies the image's directory into a tmpfs; idmap is refused")),
    ("mounts[].uidMappings", Support::No("idmapped mounts are not supported yet")),
    ("mounts[].gidMappings", Support::No("idmapped mounts are not supported yet")),
    ("process", Support::Yes),
    ("process.terminal", Support::Yes),
    ("process.consoleSize", Support::Yes),
    ("process.consoleSize.height", Support::Yes),
    ("process.consoleSize.width", Support::Yes),
    ("process.user", Support::Yes),
    ("process.user.uid", Support::Yes),
    ("process.user.gid", Support::Yes),
    ("process.user.umask", Support::Yes),
    ("process.user.additionalGids", Support::Yes),
    ("process.user.username", Support::Partly("Windows only; ignored on Linux")),
    ("process.args", Support::Yes),
    ("process.commandLine", Support::No(NOT_LINUX)),
    ("process.env", Support::Yes),
    ("process.cwd", Support::Yes),
    ("process.capabilities", Support::Yes),
    ("process.capabilities.bounding", Support::Yes),
    ("process.capabilities.effective", Support::Yes),
    ("process.capabilities.inheritable", Support::Yes),
    ("process.capabilities.permitted", Support::Yes),
    ("process.capabilities.ambient", Support::Yes),
    ("process.rlimits", Support::Partly("a hard limit above the host's is clamped with a warning when berth lacks CAP_SYS_RESOURCE")),
    ("process.rlimits[].type", Support::Yes),
    ("process.rlimits[].soft", Support::Yes),
    ("process.rlimits[].hard", Support::Yes),
    ("process.noNewPrivileges", Support::Yes),
    ("process.apparmorProfile", Support::Partly("applied where the host enforces AppArmor; refused otherwise")),
    ("process.oomScoreAdj", Support::Partly("a value the host forbids (no CAP_SYS_RESOURCE) is clamped with a warning")),
    ("process.selinuxLabel", Support::Partly("applied where the host runs SELinux; refused otherwise")),
    ("process.ioPriority", Support::Yes),
    ("process.ioPriority.class", Support::Yes),
    ("process.ioPriority.priority", Support::Yes),
    ("process.scheduler", Support::Yes),
    ("process.scheduler.policy", Support::Yes),
    ("process.scheduler.nice", Support::Yes),
    ("process.scheduler.priority", Support::Yes),
    ("process.scheduler.flags", Support::Yes),
    ("process.scheduler.runtime", Support::Yes),
    ("process.scheduler.deadline", Support::Yes),
    ("process.scheduler.period", Support::Yes),
    ("process.execCPUAffinity", Support::No("not supported")),
    ("hostname", Support::Partly("needs a new uts namespace")),
    ("domainname", Support::Partly("needs a new uts namespace")),
    ("hooks", Support::Yes),
    ("hooks.prestart", Support::Partly("deprecated by the runtime-spec; runs right before createRuntime")),
    ("hooks.createRuntime", Support::Yes),
    ("hooks.createContainer", Support::Partly("in the container's mount namespace before pivot_root; a hook without env gets the container process's environment, as runc's")),
    ("hooks.startContainer", Support::Partly("in the container before its program; a hook without env gets the container process's environment, as runc's")),
    ("hooks.poststart", Support::Partly("failures are warnings, as the runtime-spec says (runc kills the container instead)")),
    ("hooks.poststop", Support::Partly("failures are warnings, as the runtime-spec says")),
    ("hooks.prestart[].path", Support::Yes),
    ("hooks.prestart[].args", Support::Yes),
    ("hooks.prestart[].env", Support::Yes),
    ("hooks.prestart[].timeout", Support::Yes),
    ("hooks.createRuntime[].path", Support::Yes),
    ("hooks.createRuntime[].args", Support::Yes),
    ("hooks.createRuntime[].env", Support::Yes),
    ("hooks.createRuntime[].timeout", Support::Yes),
    ("hooks.createContainer[].path", Support::Yes),
    ("hooks.createContainer[].args", Support::Yes),
    ("hooks.createContainer[].env", Support::Yes),
    ("hooks.createContainer[].timeout", Support::Yes),
    ("hooks.startContainer[].path", Support::Yes),
    ("hooks.startContainer[].args", Support::Yes),
    ("hooks.startContainer[].env", Support::Yes),
    ("hooks.startContainer[].timeout", Support::Yes),
    ("hooks.poststart[].path", Support::Yes),
    ("hooks.poststart[].args", Support::Yes),
    ("hooks.poststart[].env", Support::Yes),
    ("hooks.poststart[].timeout", Support::Yes),
    ("hooks.poststop[].path", Support::Yes),
    ("hooks.poststop[].args", Support::Yes),
    ("hooks.poststop[].env", Support::Yes),
    ("hooks.poststop[].timeout", Support::Yes),
    ("annotations", Support::Map),
    ("linux", Support::Yes),
    ("linux.namespaces", Support::Yes),
    ("linux.namespaces[].type", Support::Partly("pid, network, ipc, uts, mount (without one the container sees the host's root: nothing is mounted, no pivot_root, as runc), cgroup, user, time; a new user namespace cannot be combined with namespaces joined by path")),
    ("linux.namespaces[].path", Support::Yes),
    ("linux.uidMappings", Support::Yes),
    ("linux.uidMappings[].containerID", Support::Yes),
    ("linux.uidMappings[].hostID", Support::Yes),
    ("linux.uidMappings[].size", Support::Yes),
    ("linux.gidMappings", Support::Yes),
    ("linux.gidMappings[].containerID", Support::Yes),
    ("linux.gidMappings[].hostID", Support::Yes),
    ("linux.gidMappings[].size", Support::Yes),
    ("linux.timeOffsets", Support::Partly("monotonic and boottime")),
    ("linux.devices", Support::Yes),
    ("linux.devices[].type", Support::Yes),
    ("linux.devices[].path", Support::Yes),
    ("linux.devices[].major", Support::Yes),
    ("linux.devices[].minor", Support::Yes),
    ("linux.devices[].fileMode", Support::Yes),
    ("linux.devices[].uid", Support::Yes),
    ("linux.devices[].gid", Support::Yes),
    ("linux.netDevices", Support::No("not supported")),
    ("linux.cgroupsPath", Support::Yes),
    ("linux.resources", Support::Yes),
    ("linux.resources.devices", Support::Partly("v1: devices.allow/deny; v2: an eBPF program (not changeable by update)")),
    ("linux.resources.devices[].allow", Support::Yes),
    ("linux.resources.devices[].type", Support::Yes),
    ("linux.resources.devices[].major", Support::Yes),
    ("linux.resources.devices[].minor", Support::Yes),
    ("linux.resources.devices[].access", Support::Yes),
    ("linux.resources.memory", Support::Yes),
    ("linux.resources.memory.limit", Support::Yes),
    ("linux.resources.memory.reservation", Support::Yes),
    ("linux.resources.memory.swap", Support::Partly("needs swap accounting (memory.memsw.* on v1, memory.swap.max on v2)")),
    ("linux.resources.memory.kernel", Support::No("kernel memory limits are deprecated and not supported")),
    ("linux.resources.memory.kernelTCP", Support::No("kernel memory limits are deprecated and not supported")),
    ("linux.resources.memory.swappiness", Support::Partly("cgroup v1 only")),
    ("linux.resources.memory.disableOOMKiller", Support::Partly("cgroup v1 only")),
    ("linux.resources.memory.useHierarchy", Support::No("not supported")),
    ("linux.resources.memory.checkBeforeUpdate", Support::No("not supported")),
    ("linux.resources.cpu", Support::Yes),
    ("linux.resources.cpu.shares", Support::Partly("converted to cpu.weight on cgroup v2")),
    ("linux.resources.cpu.quota", Support::Yes),
    ("linux.resources.cpu.period", Support::Yes),
    ("linux.resources.cpu.burst", Support::Yes),
    ("linux.resources.cpu.realtimeRuntime", Support::Partly("cgroup v1 only")),
    ("linux.resources.cpu.realtimePeriod", Support::Partly("cgroup v1 only")),
    ("linux.resources.cpu.cpus", Support::Yes),
    ("linux.resources.cpu.mems", Support::Yes),
    ("linux.resources.cpu.idle", Support::Yes),
    ("linux.resources.pids", Support::Yes),
    ("linux.resources.pids.limit", Support::Yes),
    ("linux.resources.blockIO", Support::Yes),
    ("linux.resources.blockIO.weight", Support::Partly("io.weight on cgroup v2 (converted)")),
    ("linux.resources.blockIO.leafWeight", Support::Partly("cgroup v1 only")),
    ("linux.resources.blockIO.weightDevice", Support::Yes),
    ("linux.resources.blockIO.throttleReadBpsDevice", Support::Yes),
    ("linux.resources.blockIO.throttleWriteBpsDevice", Support::Yes),
    ("linux.resources.blockIO.throttleReadIOPSDevice", Support::Yes),
    ("linux.resources.blockIO.throttleWriteIOPSDevice", Support::Yes),
    ("linux.resources.hugepageLimits", Support::Partly("needs the hugetlb controller (on this hybrid host it lives in the unified hierarchy: refused)")),
    ("linux.resources.network", Support::No("net_cls/net_prio are not supported")),
    ("linux.resources.rdma", Support::No("not supported")),
    ("linux.resources.unified", Support::Partly("cgroup v2 only; keys are file names in the container's cgroup")),
    ("linux.intelRdt", Support::No("not supported")),
    ("linux.memoryPolicy", Support::No("not supported")),
    ("linux.sysctl", Support::Partly("namespaced sysctls only (net.* with a new network namespace, IPC ones with a new ipc namespace)")),
    ("linux.seccomp", Support::Yes),
    ("linux.seccomp.defaultAction", Support::Partly("every action; SCMP_ACT_NOTIFY only in rules")),
    ("linux.seccomp.defaultErrnoRet", Support::Yes),
    ("linux.seccomp.architectures", Support::Yes),
    ("linux.seccomp.flags", Support::Yes),
    ("linux.seccomp.listenerPath", Support::Yes),
    ("linux.seccomp.listenerMetadata", Support::Yes),
    ("linux.seccomp.syscalls", Support::Yes),
    ("linux.seccomp.syscalls[].names", Support::Partly("names unknown to libseccomp are skipped, as runc does")),
    ("linux.seccomp.syscalls[].action", Support::Yes),
    ("linux.seccomp.syscalls[].errnoRet", Support::Yes),
    ("linux.seccomp.syscalls[].args", Support::Yes),
    ("linux.seccomp.syscalls[].args[].index", Support::Yes),
    ("linux.seccomp.syscalls[].args[].value", Support::Yes),
    ("linux.seccomp.syscalls[].args[].valueTwo", Support::Yes),
    ("linux.seccomp.syscalls[].args[].op", Support::Yes),
    ("linux.rootfsPropagation", Support::Yes),
    ("linux.maskedPaths", Support::Partly("relative paths are taken from the root with a warning, as runc; refused without a mount namespace")),
    ("linux.readonlyPaths", Support::Partly("relative paths are taken from the root with a warning, as runc; refused without a mount namespace")),
    ("linux.mountLabel", Support::Partly("where the host runs SELinux (context= on each filesystem mount); refused otherwise")),
    ("linux.personality", Support::Yes),
    ("linux.personality.domain", Support::Yes),
    ("linux.personality.flags", Support::Partly("no flags: a non-empty list is refused")),
    ("solaris", Support::No(NOT_LINUX)),
    ("windows", Support::No(NOT_LINUX)),
    ("vm", Support::No(NOT_LINUX)),
    ("zos", Support::No(NOT_LINUX)),
];

fn lookup(pattern: &str) -> Option<Support> {
    FIELDS.iter().find(|(p, _)| *p == pattern).map(|(_, s)| *s)
}

/// True for a value that asks for nothing: `null`, `{}`, `[]`, `""`. An unsupported field set to
/// such a value is accepted (podman and others send empty objects).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Check every present field of `doc` against [`FIELDS`].
pub fn check_supported(doc: &Value) -> Result<(), SpecError> {
    let Value::Object(root) = doc else {
        return Err(SpecError::new("config.json", "must be a JSON object"));
    };
    walk(root, "", "")
}

fn walk(obj: &serde_json::Map<String, Value>, pattern: &str, path: &str) -> Result<(), SpecError> {
    for (key, value) in obj {
        let (p, shown) = if pattern.is_empty() {
            (key.clone(), key.clone())
        } else {
            (format!("{pattern}.{key}"), format!("{path}.{key}"))
        };
        match lookup(&p) {
            None | Some(Support::Map) => {}
            Some(Support::No(reason)) => {
                if !is_empty(value) {
                    return Err(SpecError::new(shown, reason));
                }
            }
            Some(Support::Yes) | Some(Support::Partly(_)) => match value {
                Value::Object(inner) => walk(inner, &p, &shown)?,
                Value::Array(items) => {
                    let elem = format!("{p}[]");
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Object(inner) = item {
                            walk(inner, &elem, &format!("{shown}[{i}]"))?;
                        }
                    }
                }
                _ => {}
            },
        }
    }
    Ok(())
}

/// Parse a config.json text: support check, then typed parse with the failing field's path.
pub fn parse(text: &str) -> Result<Spec, SpecError> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| SpecError::new("config.json", format!("invalid JSON: {e}")))?;
    check_supported(&doc)?;
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            "config.json".into()
        } else {
            field
        };
        SpecError::new(field, e.into_inner().to_string())
    })
}

/// Read and parse `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SpecError::new(path.display().to_string(), format!("cannot read: {e}")))?;
    parse(&text)
}

/// Render the support table as Markdown (the body of `runtime-spec/SUPPORT.md`).
pub fn support_markdown() -> String {
    let mut out = String::from(
        "# Runtime-spec fields supported by berth\n\n\
         Generated from `FIELDS` in `src/oci/spec.rs` (`BERTH_BLESS=1 cargo test --lib support_md` rewrites it).\n\
         A config that sets a field marked **error** is refused with an error naming the field;\n\
         unknown fields are ignored, as the runtime-spec requires.\n\n\
         | field | berth |\n|---|---|\n",
    );
    for (field, support) in FIELDS {
        let what = match support {
            Support::Yes | Support::Map => "supported".to_string(),
            Support::Partly(note) => format!("supported: {note}"),
            Support::No(reason) => format!("**error**: {reason}"),
        };
        out.push_str(&format!("| `{field}` | {what} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_field_is_named() {
        let err =
            parse(r#"{"ociVersion":"1.0.2","linux":{"intelRdt":{"closID":"x"}}}"#).unwrap_err();
        assert_eq!(err.field, "linux.intelRdt");
    }

    #[test]
    fn unsupported_field_in_array_element_is_named_with_index() {
        let err = parse(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/a"},{"destination":"/b","uidMappings":[{"containerID":0,"hostID":1,"size":1}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "mounts[1].uidMappings");
    }

    #[test]
    fn empty_unsupported_field_is_accepted() {
        parse(r#"{"ociVersion":"1.0.2","hooks":{},"linux":{"intelRdt":null}}"#).unwrap();
    }

    #[test]
    fn unknown_fields_are_ignored() {
        parse(r#"{"ociVersion":"1.0.2","somethingNew":{"x":1}}"#).unwrap();
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = parse(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "linux.namespaces[1].type");
        let err =
            parse(r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":"root","gid":0}}}"#)
                .unwrap_err();
        assert_eq!(err.field, "process.user.uid");
    }

    #[test]
    fn bad_json_is_reported() {
        let err = parse("{").unwrap_err();
        assert_eq!(err.field, "config.json");
        assert!(err.message.contains("invalid JSON"), "{}", err.message);
    }

    #[test]
    fn support_md_is_in_sync() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/runtime-spec/SUPPORT.md");
        let want = support_markdown();
        if std::env::var_os("BERTH_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "runtime-spec/SUPPORT.md is stale: run BERTH_BLESS=1 cargo test --lib support_md"
        );
    }
}
