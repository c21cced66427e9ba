//! The container's process: its command, environment, user and groups, and capabilities.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use crate::pod::config::{ContainerConfig, PodConfig};
use crate::pod::error::{Error, Result};

/// The capabilities a Kubernetes container gets by default (containerd's and CRI-O's list).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// What berth's own bounding set holds: a capability the host withheld from berth cannot be
/// given to a container.
fn all_caps() -> Vec<String> {
    let mut v: Vec<String> = caps::read(None, caps::CapSet::Bounding)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    v.sort();
    v
}

fn cap_name(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// Kubernetes' rule: `command` replaces the Entrypoint, `args` the Cmd.
pub fn args(cfg: &ContainerConfig, image: &ImageConfiguration) -> Result<Vec<String>> {
    let ic = image.config().clone().unwrap_or_default();
    let entry = if cfg.command.is_empty() {
        ic.entrypoint().clone().unwrap_or_default()
    } else {
        cfg.command.clone()
    };
    let cmd = if !cfg.args.is_empty() {
        cfg.args.clone()
    } else if cfg.command.is_empty() {
        ic.cmd().clone().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut args = entry;
    args.extend(cmd);
    if args.is_empty() {
        return Err(Error::Invalid(format!(
            "container {}: no command: the image has no Entrypoint or Cmd and the container sets none",
            cfg.name
        )));
    }
    Ok(args)
}

/// The environment: the image's, then `HOSTNAME` as kubelet sets it, then the container's
/// (a later variable replaces an earlier one of the same name).
pub fn env(image_env: &[String], cfg: &ContainerConfig, hostname: &str) -> Vec<String> {
    let mut env: Vec<String> = image_env.to_vec();
    let mut set = |k: &str, v: &str| {
        env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k));
        env.push(format!("{k}={v}"));
    };
    set("HOSTNAME", hostname);
    for (k, v) in &cfg.env {
        set(k, v);
    }
    env
}

/// The capability names of the container: all of berth's when privileged, else Kubernetes'
/// defaults with `drop` (ALL drops every one) and `add` (ALL adds every one) applied.
pub fn capabilities(cfg: &ContainerConfig) -> Result<Vec<String>> {
    let sec = &cfg.security;
    if sec.privileged {
        return Ok(all_caps());
    }
    let mut c: Vec<String> = if sec.caps_drop.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !sec.caps_drop.iter().any(|d| cap_name(d) == *c))
            .collect()
    };
    for a in &sec.caps_add {
        if a.eq_ignore_ascii_case("ALL") {
            return Ok(all_caps());
        }
        let n = cap_name(a);
        if parse_cap(&n).is_none() {
            return Err(Error::Invalid(format!(
                "container {}: capabilities.add: unknown capability {a:?}",
                cfg.name
            )));
        }
        if !c.contains(&n) {
            c.push(n);
        }
    }
    Ok(c)
}

fn parse_cap(name: &str) -> Option<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// The OCI capability sets: bounding, effective and permitted the same.
pub fn capability_sets(names: &[String]) -> LinuxCapabilities {
    let set: HashSet<Capability> = names.iter().filter_map(|n| parse_cap(n)).collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(None);
    c.set_ambient(None);
    c
}

/// The process's uid, gid and groups, as containerd sets them: `run_as_user` or
/// `run_as_username` (else the image's user); the gid from `run_as_group`, else the user's
/// entry in the image's `/etc/passwd`, else 0; the groups: the gid, the groups of the image's
/// `/etc/group` that list the user, and `supplemental_groups`.
pub fn user(
    cfg: &ContainerConfig,
    rootfs: &Path,
    image_uid: u32,
    image_gid: u32,
) -> Result<(u32, u32, Vec<u32>)> {
    use crate::image::bundle::{member_groups, passwd_entry};
    let sec = &cfg.security;
    let (uid, gid, name) = match (sec.run_as_user, &sec.run_as_username) {
        (Some(u), _) => {
            let e = passwd_entry(rootfs, None, Some(u));
            (u, e.as_ref().map(|e| e.gid), e.map(|e| e.name))
        }
        (None, Some(n)) => {
            let e = passwd_entry(rootfs, Some(n), None).ok_or_else(|| {
                Error::Invalid(format!(
                    "container {}: run_as_username {n:?}: no such user in the image's /etc/passwd",
                    cfg.name
                ))
            })?;
            (e.uid, Some(e.gid), Some(e.name))
        }
        (None, None) => (
            image_uid,
            Some(image_gid),
            passwd_entry(rootfs, None, Some(image_uid)).map(|e| e.name),
        ),
    };
    let gid = sec.run_as_group.or(gid).unwrap_or(0);
    let mut groups = vec![gid];
    let from_image = name.map(|n| member_groups(rootfs, &n)).unwrap_or_default();
    for g in from_image
        .into_iter()
        .chain(sec.supplemental_groups.iter().copied())
    {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    Ok((uid, gid, groups))
}

/// The container's process, from the image's (the bundle's config) and the container's
/// settings. Returns it with its capability names (the default seccomp profile is keyed on
/// them).
pub fn build(
    mut p: Process,
    pc: &PodConfig,
    cfg: &ContainerConfig,
    image: &ImageConfiguration,
    rootfs: &Path,
) -> Result<(Process, Vec<String>)> {
    p.set_args(Some(args(cfg, image)?));
    let image_env = p.env().clone().unwrap_or_default();
    p.set_env(Some(env(&image_env, cfg, &super::pod_hostname(pc))));
    if let Some(w) = &cfg.working_dir {
        p.set_cwd(w.into());
    }
    let (uid, gid, groups) = user(cfg, rootfs, p.user().uid(), p.user().gid())?;
    if cfg.security.run_as_non_root && uid == 0 {
        return Err(Error::Invalid(format!(
            "container {}: runAsNonRoot is set but the container would run as root (uid 0)",
            cfg.name
        )));
    }
    let u = p.user_mut();
    u.set_uid(uid);
    u.set_gid(gid);
    u.set_additional_gids(Some(groups));
    let caps = capabilities(cfg)?;
    p.set_capabilities(Some(capability_sets(&caps)));
    p.set_no_new_privileges(Some(
        !cfg.security.allow_privilege_escalation && !cfg.security.privileged,
    ));
    // a terminal's master goes to the pod monitor, which serves attach
    p.set_terminal(Some(cfg.tty));
    Ok((p, caps))
}
