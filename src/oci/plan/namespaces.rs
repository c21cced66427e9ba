//! `linux.namespaces` → which namespaces the container creates and which it joins (by path),
//! checked against each other and against the cgroup layout.

use std::collections::HashSet;

use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;

use super::{Namespaces, R, err};
use crate::linux::cgroup::Layout;

pub(super) fn ns_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The runtime-spec name of a namespace type.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

pub(super) fn namespaces(
    list: &[oci_spec::runtime::LinuxNamespace],
    layout: &Layout,
) -> R<Namespaces> {
    let mut ns = Namespaces {
        clone_flags: CloneFlags::empty(),
        join: Vec::new(),
        join_pid: None,
        unshare_cgroup: false,
        kinds: Vec::new(),
        new_time: false,
        user: false,
    };
    let mut seen = HashSet::new();
    for (i, n) in list.iter().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let t = n.typ();
        if !seen.insert(ns_name(t)) {
            return err(
                format!("{field}.type"),
                format!("{} namespace listed twice", ns_name(t)),
            );
        }
        ns.kinds.push(ns_name(t).to_string());
        if t == LinuxNamespaceType::User {
            ns.user = true;
        }
        match n.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                if !p.is_absolute() {
                    return err(format!("{field}.path"), "must be an absolute path");
                }
                if t == LinuxNamespaceType::Time {
                    ns.join.push((ns_flag(t), p.clone()));
                } else if t == LinuxNamespaceType::Pid {
                    ns.join_pid = Some(p.clone());
                } else {
                    ns.join.push((ns_flag(t), p.clone()));
                }
            }
            _ => {
                if t == LinuxNamespaceType::Time {
                    ns.new_time = true;
                } else if t == LinuxNamespaceType::Cgroup && !layout.is_v2() {
                    // v1: the child is moved into its cgroups after clone, so the namespace
                    // (rooted at the current cgroup) is created after that
                    ns.unshare_cgroup = true;
                } else {
                    ns.clone_flags |= ns_flag(t);
                }
            }
        }
    }
    if ns.clone_flags.contains(CloneFlags::CLONE_NEWUSER)
        && (ns.join_pid.is_some() || !ns.join.is_empty())
    {
        // Namespaces joined after a new user namespace would need privileges the container's
        // root does not have over the host's namespaces; join their user namespace instead.
        return err(
            "linux.namespaces",
            "a new user namespace cannot be combined with namespaces joined by path (join their user namespace by path too)",
        );
    }
    Ok(ns)
}
