//! A pod container's OCI spec: the image's config.json (from `image unpack`, typed), then the
//! container's settings (`process`), the pod's shared namespaces, its cgroup and limits,
//! seccomp, devices, and its mounts — /dev/shm, /etc files and volumes (`mounts`).
//! Pure but for reading the image's `/etc/passwd`, the host's mount table and the target of
//! a shared PID namespace; table-tested in `tests.rs`.

mod mounts;
pub mod process;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Linux, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace, LinuxNamespaceType,
    LinuxSeccomp, Spec,
};

use super::config::{ContainerConfig, PodConfig, Seccomp};
use super::error::{Error, Result, io};
use super::net::netns;
use super::store::{ContainerRecord, ContainerState, PodDir, PodRecord, read_record};

/// The pod's hostname (Kubernetes': `spec.hostname`, else the pod name, at most 63 bytes).
pub fn pod_hostname(pc: &PodConfig) -> String {
    let h = pc.hostname.clone().unwrap_or_else(|| pc.name.clone());
    let h: String = h.chars().take(63).collect();
    h.trim_end_matches(['-', '.']).to_string()
}

/// The spec of container `rec` of pod `pod` (`dir`), from the image's spec `base`. `pause`:
/// the pod's PID namespace holder, when the pod shares one.
pub fn build(
    mut spec: Spec,
    pod: &PodRecord,
    dir: &PodDir,
    rec: &ContainerRecord,
    image: &ImageConfiguration,
    pause: Option<i32>,
) -> Result<Spec> {
    let cfg = &rec.config;
    let pc = &pod.config;
    let base = spec.process().clone().unwrap_or_default();
    let (process, caps) = process::build(base, pc, cfg, image, &rec.bundle.join("rootfs"))?;
    spec.set_process(Some(process));
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(cfg.security.readonly_rootfs));
    }
    // the UTS namespace is the pod's: its hostname is set there
    spec.set_hostname(None);
    let mut linux: Linux = spec.linux().clone().unwrap_or_default();
    linux.set_namespaces(Some(namespaces(pc, dir, cfg, pause)?));
    linux.set_cgroups_path(Some(rec.cgroup.clone().into()));
    let mut resources = cfg.resources.to_oci();
    linux.set_seccomp(seccomp(cfg, &caps)?);
    if let Some(m) = &cfg.security.masked_paths {
        linux.set_masked_paths(Some(m.clone()));
    }
    if let Some(r) = &cfg.security.readonly_paths {
        linux.set_readonly_paths(Some(r.clone()));
    }
    if !cfg.devices.is_empty() {
        let (devs, rules) = devices(cfg)?;
        linux.set_devices(Some(devs));
        // after the runtime's own rules, which keep the default devices allowed
        resources.set_devices(Some(rules));
    }
    if cfg.security.privileged {
        linux.set_seccomp(None);
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        let mut all = LinuxDeviceCgroup::default();
        all.set_allow(true);
        all.set_access(Some("rwm".into()));
        resources.set_devices(Some(vec![all]));
    }
    linux.set_resources(Some(resources));
    let (list, propagation) =
        mounts::build(spec.mounts().clone().unwrap_or_default(), pc, dir, cfg)?;
    spec.set_mounts(Some(list));
    if let Some(p) = propagation {
        linux.set_rootfs_propagation(Some(p.into()));
    }
    spec.set_linux(Some(linux));
    let mut ann: HashMap<String, String> = spec.annotations().clone().unwrap_or_default();
    for (k, v) in [
        ("io.kubernetes.pod.name", &pc.name),
        ("io.kubernetes.pod.namespace", &pc.namespace),
        ("io.kubernetes.pod.uid", &pc.uid),
        ("io.kubernetes.container.name", &cfg.name),
        ("io.berth.pod.id", &pod.id),
    ] {
        ann.insert(k.into(), v.clone());
    }
    spec.set_annotations(Some(ann));
    Ok(spec)
}

fn ns(typ: LinuxNamespaceType, path: Option<std::path::PathBuf>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(typ);
    n.set_path(path);
    n
}

/// Its own mount and cgroup namespaces; the pod's network, IPC and UTS ones; a PID namespace
/// of its own, the host's, the pod's (its pause), or another container's (the CRI's TARGET).
fn namespaces(
    pc: &PodConfig,
    dir: &PodDir,
    cfg: &ContainerConfig,
    pause: Option<i32>,
) -> Result<Vec<LinuxNamespace>> {
    use LinuxNamespaceType as T;
    let mut list = vec![ns(T::Mount, None), ns(T::Cgroup, None)];
    let pid_of = |pid: i32| ns(T::Pid, Some(format!("/proc/{pid}/ns/pid").into()));
    match (pause, &cfg.pid_target) {
        _ if pc.host_pid => {} // the host's PID namespace
        (_, Some(target)) => {
            let pid = target_pid(dir, target).ok_or_else(|| {
                Error::Precondition(format!(
                    "container {}: target container {target:?} is not running",
                    cfg.name
                ))
            })?;
            list.push(pid_of(pid));
        }
        (Some(pid), None) => list.push(pid_of(pid)),
        (None, None) => list.push(ns(T::Pid, None)),
    }
    for (kind, typ) in [("net", T::Network), ("ipc", T::Ipc), ("uts", T::Uts)] {
        if let Some(path) = netns::path(&dir.0, kind) {
            list.push(ns(typ, Some(path)));
        }
    }
    Ok(list)
}

/// The PID of a running container of the pod, by name or ID.
fn target_pid(dir: &PodDir, target: &str) -> Option<i32> {
    for id in dir.container_ids() {
        let cdir = dir.container(&id);
        // a container being created (this one among them) has no record yet
        let Ok(rec) = read_record::<ContainerRecord>(&cdir.record()) else {
            continue;
        };
        if rec.id == target || rec.config.name == target {
            let st = cdir.read_status(&rec.created).ok()?;
            return (st.state == ContainerState::Running && st.pid > 0).then_some(st.pid);
        }
    }
    None
}

/// The filter of the container's choice: berth's default profile keyed on its capabilities
/// (as containerd's is), none, or a profile file of the host.
fn seccomp(cfg: &ContainerConfig, caps: &[String]) -> Result<Option<LinuxSeccomp>> {
    let value = match &cfg.security.seccomp {
        Seccomp::RuntimeDefault => crate::oci::seccomp_default::default_profile(caps),
        Seccomp::Unconfined => return Ok(None),
        Seccomp::Localhost(path) => {
            let text = std::fs::read_to_string(path).map_err(io(format!(
                "container {}: read seccomp profile {}",
                cfg.name,
                path.display()
            )))?;
            serde_json::from_str(&text).map_err(|e| {
                Error::Invalid(format!(
                    "container {}: seccomp profile {}: {e}",
                    cfg.name,
                    path.display()
                ))
            })?
        }
    };
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("container {}: seccomp profile: {e}", cfg.name)))
}

/// `linux.devices` and the cgroup rules that allow them, from host device nodes.
fn devices(cfg: &ContainerConfig) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut devs = Vec::new();
    let mut rules = Vec::new();
    for d in &cfg.devices {
        let md = std::fs::metadata(&d.host_path).map_err(io(format!(
            "container {}: device {}",
            cfg.name,
            d.host_path.display()
        )))?;
        let typ = if md.file_type().is_char_device() {
            LinuxDeviceType::C
        } else if md.file_type().is_block_device() {
            LinuxDeviceType::B
        } else {
            return Err(Error::Invalid(format!(
                "container {}: device {}: not a device node",
                cfg.name,
                d.host_path.display()
            )));
        };
        if d.permissions.is_empty() || !d.permissions.chars().all(|c| "rwm".contains(c)) {
            return Err(Error::Invalid(format!(
                "container {}: device {}: permissions {:?} are not some of \"rwm\"",
                cfg.name,
                d.host_path.display(),
                d.permissions
            )));
        }
        let (major, minor) = (libc::major(md.rdev()) as i64, libc::minor(md.rdev()) as i64);
        let mut dev = LinuxDevice::default();
        dev.set_path(d.container_path.clone().into());
        dev.set_typ(typ);
        dev.set_major(major);
        dev.set_minor(minor);
        dev.set_file_mode(Some(md.mode() & 0o777));
        dev.set_uid(Some(md.uid()));
        dev.set_gid(Some(md.gid()));
        devs.push(dev);
        let mut rule = LinuxDeviceCgroup::default();
        rule.set_allow(true);
        rule.set_typ(Some(typ));
        rule.set_major(Some(major));
        rule.set_minor(Some(minor));
        rule.set_access(Some(d.permissions.clone()));
        rules.push(rule);
    }
    Ok((devs, rules))
}
