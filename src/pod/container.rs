//! A pod container's OCI config.json: the image's config (from `image unpack`), then the
//! container's settings and the pod's shared namespaces, cgroup, files and volumes.

use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use serde_json::{Value, json};

use super::config::{ContainerConfig, MountSource, PodConfig, Seccomp, VolumeSource};
use super::error::{Error, Result};
use super::state::{ContainerRecord, PodDir, PodRecord};

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

/// Every capability name the kernel berth runs on knows.
fn all_caps() -> Vec<String> {
    // what berth's own bounding set holds: a capability the host withheld from berth cannot
    // be given to a container
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
pub fn process_args(cfg: &ContainerConfig, image: &ImageConfiguration) -> Result<Vec<String>> {
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

/// Rewrite `spec` (from the image) for a container of a pod.
pub fn configure(
    spec: &mut Value,
    pod: &PodRecord,
    dir: &PodDir,
    rec: &ContainerRecord,
    image: &ImageConfiguration,
    pause: Option<i32>,
) -> Result<()> {
    let cfg = &rec.config;
    let pc: &PodConfig = &pod.config;
    let p = &mut spec["process"];
    p["args"] = json!(process_args(cfg, image)?);
    // env: the image's, the container's over it, HOSTNAME as kubelet sets it
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let hostname = pod_hostname(pc);
    let mut set = |k: &str, v: &str| {
        env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k));
        env.push(format!("{k}={v}"));
    };
    set("HOSTNAME", &hostname);
    for (k, v) in &cfg.env {
        set(k, v);
    }
    p["env"] = json!(env);
    if let Some(w) = &cfg.working_dir {
        p["cwd"] = json!(w);
    }
    let (uid, gid, groups) = user(cfg, &rec.bundle.join("rootfs"), &p["user"])?;
    p["user"]["uid"] = json!(uid);
    p["user"]["gid"] = json!(gid);
    p["user"]["additionalGids"] = json!(groups);
    if cfg.security.run_as_non_root && p["user"]["uid"].as_u64() == Some(0) {
        return Err(Error::Invalid(format!(
            "container {}: runAsNonRoot is set but the container would run as root (uid 0)",
            cfg.name
        )));
    }
    let caps: Vec<String> = if cfg.security.privileged {
        all_caps()
    } else {
        let mut c: Vec<String> = if cfg
            .security
            .caps_drop
            .iter()
            .any(|d| d.eq_ignore_ascii_case("ALL"))
        {
            Vec::new()
        } else {
            DEFAULT_CAPS
                .iter()
                .map(|s| s.to_string())
                .filter(|c| !cfg.security.caps_drop.iter().any(|d| cap_name(d) == *c))
                .collect()
        };
        for a in &cfg.security.caps_add {
            if a.eq_ignore_ascii_case("ALL") {
                c = all_caps();
                break;
            }
            let n = cap_name(a);
            if n.parse::<caps::Capability>().is_err() {
                return Err(Error::Invalid(format!(
                    "container {}: capabilities.add: unknown capability {a:?}",
                    cfg.name
                )));
            }
            if !c.contains(&n) {
                c.push(n);
            }
        }
        c
    };
    p["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    p["noNewPrivileges"] =
        json!(!cfg.security.allow_privilege_escalation && !cfg.security.privileged);
    // a terminal's master goes to the pod monitor, which serves attach
    p["terminal"] = json!(cfg.tty);
    spec["root"]["readonly"] = json!(cfg.security.readonly_rootfs);
    // the UTS namespace is the pod's: its hostname is set there
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }
    // namespaces
    let mut ns = vec![json!({"type": "mount"}), json!({"type": "cgroup"})];
    match (pause, &cfg.pid_target) {
        _ if pc.host_pid => {} // the host's PID namespace
        (_, Some(target)) => {
            let pid = target_pid(dir, target).ok_or_else(|| {
                Error::Precondition(format!(
                    "container {}: target container {target:?} is not running",
                    cfg.name
                ))
            })?;
            ns.push(json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")}));
        }
        (Some(pid), None) => ns.push(json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")})),
        (None, None) => ns.push(json!({"type": "pid"})),
    }
    for (kind, oci) in [("net", "network"), ("ipc", "ipc"), ("uts", "uts")] {
        if let Some(path) = super::netns::path(&dir.0, kind) {
            ns.push(json!({"type": oci, "path": path}));
        }
    }
    spec["linux"]["namespaces"] = json!(ns);
    spec["linux"]["cgroupsPath"] = json!(rec.cgroup);
    spec["linux"]["resources"] = resources(&cfg.resources);
    match &cfg.security.seccomp {
        Seccomp::RuntimeDefault => {
            // keyed on the container's capabilities, as containerd's default profile is
            spec["linux"]["seccomp"] = crate::oci::seccomp_default::default_profile(&caps);
        }
        Seccomp::Unconfined => {
            spec["linux"].as_object_mut().map(|l| l.remove("seccomp"));
        }
        Seccomp::Localhost(path) => {
            let text = std::fs::read_to_string(path).map_err(super::error::io(format!(
                "container {}: read seccomp profile {}",
                cfg.name,
                path.display()
            )))?;
            let profile: Value = serde_json::from_str(&text).map_err(|e| {
                Error::Invalid(format!(
                    "container {}: seccomp profile {}: {e}",
                    cfg.name,
                    path.display()
                ))
            })?;
            spec["linux"]["seccomp"] = profile;
        }
    }
    if let Some(m) = &cfg.security.masked_paths {
        spec["linux"]["maskedPaths"] = json!(m);
    }
    if let Some(r) = &cfg.security.readonly_paths {
        spec["linux"]["readonlyPaths"] = json!(r);
    }
    if !cfg.devices.is_empty() {
        let (devs, rules) = devices(cfg)?;
        spec["linux"]["devices"] = json!(devs);
        if !cfg.security.privileged {
            // after the runtime's own rules, which keep the default devices allowed
            let mut all = spec["linux"]["resources"]["devices"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            all.extend(rules);
            spec["linux"]["resources"]["devices"] = json!(all);
        }
    }
    if cfg.security.privileged {
        let l = spec["linux"].as_object_mut().expect("linux is an object");
        l.remove("seccomp");
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
        spec["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    // mounts: the pod's /dev/shm, /etc files and volumes
    let mut mounts: Vec<Value> = spec["mounts"].as_array().cloned().unwrap_or_default();
    mounts.retain(|m| m["destination"] != "/dev/shm");
    if cfg.security.privileged {
        for m in &mut mounts {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|x| x != "ro");
                }
            }
        }
    }
    let bind = |src: &Path, dst: &str, ro: bool, prop: &str| {
        let mut opts = vec!["rbind", prop];
        if ro {
            opts.push("ro");
        }
        json!({"destination": dst, "type": "bind", "source": src, "options": opts})
    };
    mounts.push(bind(&dir.shm(), "/dev/shm", false, "rprivate"));
    for f in ["hosts", "resolv.conf", "hostname"] {
        mounts.push(bind(
            &dir.0.join(f),
            &format!("/etc/{f}"),
            false,
            "rprivate",
        ));
    }
    let host_mounts = crate::linux::mountinfo::read().unwrap_or_default();
    for m in &cfg.mounts {
        let src: PathBuf = match &m.source {
            MountSource::Host(p) => p.clone(),
            MountSource::Volume { name, sub_path } => {
                let v = pc.volumes.iter().find(|v| &v.name == name).ok_or_else(|| {
                    Error::Invalid(format!("container {}: no volume {name:?}", cfg.name))
                })?;
                let base = match &v.source {
                    VolumeSource::EmptyDir { .. } => dir.volume(name),
                    VolumeSource::HostPath { path, .. } => path.clone(),
                };
                match sub_path {
                    None => base,
                    Some(sp) => {
                        let p = base.join(sp);
                        if !p.exists() {
                            std::fs::create_dir_all(&p).map_err(super::error::io(format!(
                                "create subPath {}",
                                p.display()
                            )))?;
                        }
                        p
                    }
                }
            }
        };
        check_propagation(cfg, &src, &m.propagation, &host_mounts)?;
        mounts.push(bind(&src, &m.container_path, m.readonly, &m.propagation));
    }
    // the container's root takes the strongest propagation a mount asks for (containerd's
    // rule): rshared keeps a Bidirectional mount a peer of the host's, rslave lets host mounts in
    if cfg.mounts.iter().any(|m| m.propagation == "rshared") {
        spec["linux"]["rootfsPropagation"] = json!("rshared");
    } else if cfg.mounts.iter().any(|m| m.propagation == "rslave") {
        spec["linux"]["rootfsPropagation"] = json!("rslave");
    }
    spec["mounts"] = json!(mounts);
    let ann = spec["annotations"].as_object_mut().map(|a| {
        a.insert("io.kubernetes.pod.name".into(), json!(pc.name));
        a.insert("io.kubernetes.pod.namespace".into(), json!(pc.namespace));
        a.insert("io.kubernetes.pod.uid".into(), json!(pc.uid));
        a.insert("io.kubernetes.container.name".into(), json!(cfg.name));
        a.insert("io.berth.pod.id".into(), json!(pod.id));
    });
    if ann.is_none() {
        spec["annotations"] = json!({"io.kubernetes.pod.name": pc.name, "io.kubernetes.container.name": cfg.name, "io.berth.pod.id": pod.id});
    }
    Ok(())
}

/// A Bidirectional (`rshared`) mount's host source must be on a shared mount, a
/// HostToContainer (`rslave`) one's on a shared or slave mount, or propagation could not
/// happen (containerd refuses the same).
fn check_propagation(
    cfg: &ContainerConfig,
    src: &Path,
    propagation: &str,
    host_mounts: &[crate::linux::mountinfo::Entry],
) -> Result<()> {
    if propagation != "rshared" && propagation != "rslave" {
        return Ok(());
    }
    let real = std::fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
    let Some(m) = crate::linux::mountinfo::containing(host_mounts, &real) else {
        return Ok(());
    };
    let (ok, want) = if propagation == "rshared" {
        (m.is_shared(), "a shared mount (Bidirectional propagation)")
    } else {
        (
            m.is_shared() || m.is_slave(),
            "a shared or slave mount (HostToContainer propagation)",
        )
    };
    if ok {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "container {}: mount source {} is mounted on {} but it is not {want}",
        cfg.name,
        src.display(),
        m.mount_point.display()
    )))
}

/// The process's uid, gid and groups, as containerd sets them: `run_as_user` or
/// `run_as_username` (else the image's user); the gid from `run_as_group`, else the user's
/// entry in the image's `/etc/passwd`, else 0; the groups: the gid, the groups of the image's
/// `/etc/group` that list the user, and `supplemental_groups`.
fn user(cfg: &ContainerConfig, rootfs: &Path, image_user: &Value) -> Result<(u32, u32, Vec<u32>)> {
    use crate::image::bundle::{member_groups, passwd_entry};
    let sec = &cfg.security;
    let image_uid = image_user["uid"].as_u64().unwrap_or(0) as u32;
    let image_gid = image_user["gid"].as_u64().unwrap_or(0) as u32;
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

/// The PID of a running container of the pod, by name or ID.
fn target_pid(dir: &PodDir, target: &str) -> Option<i32> {
    for e in std::fs::read_dir(dir.containers()).ok()?.flatten() {
        // a container being created (this one among them) has no record yet
        let Ok(rec) = super::state::read_json::<ContainerRecord>(&e.path().join("container.json"))
        else {
            continue;
        };
        if rec.id == target || rec.config.name == target {
            let st: super::state::ContainerStatus =
                super::state::read_json(&e.path().join("status.json")).ok()?;
            return (st.state == super::state::ContainerState::Running && st.pid > 0)
                .then_some(st.pid);
        }
    }
    None
}

/// `linux.devices` and the cgroup rules that allow them, from host device nodes.
fn devices(cfg: &ContainerConfig) -> Result<(Vec<Value>, Vec<Value>)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut devs = Vec::new();
    let mut rules = Vec::new();
    for d in &cfg.devices {
        let md = std::fs::metadata(&d.host_path).map_err(super::error::io(format!(
            "container {}: device {}",
            cfg.name,
            d.host_path.display()
        )))?;
        let kind = if md.file_type().is_char_device() {
            "c"
        } else if md.file_type().is_block_device() {
            "b"
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
        let (major, minor) = (libc::major(md.rdev()), libc::minor(md.rdev()));
        devs.push(
            json!({"path": d.container_path, "type": kind, "major": major,
            "minor": minor, "fileMode": md.mode() & 0o777, "uid": md.uid(), "gid": md.gid()}),
        );
        rules.push(
            json!({"allow": true, "type": kind, "major": major, "minor": minor,
            "access": d.permissions}),
        );
    }
    Ok((devs, rules))
}

/// runtime-spec `linux.resources` of a container's limits.
pub fn resources(r: &super::config::Resources) -> Value {
    let mut out = json!({});
    let mut cpu = serde_json::Map::new();
    if let Some(s) = r.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = r.cpu_quota {
        cpu.insert("quota".into(), json!(q));
        cpu.insert("period".into(), json!(r.cpu_period.unwrap_or(100_000)));
    }
    if let Some(c) = &r.cpuset_cpus {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = &r.cpuset_mems {
        cpu.insert("mems".into(), json!(m));
    }
    if !cpu.is_empty() {
        out["cpu"] = Value::Object(cpu);
    }
    let mut mem = serde_json::Map::new();
    if let Some(l) = r.memory_limit {
        mem.insert("limit".into(), json!(l));
        // no swap beyond the limit, as kubelet sets it
        mem.insert("swap".into(), json!(l));
    }
    if let Some(l) = r.memory_reservation {
        mem.insert("reservation".into(), json!(l));
    }
    if !mem.is_empty() {
        out["memory"] = Value::Object(mem);
    }
    if let Some(p) = r.pids_limit {
        out["pids"] = json!({"limit": p});
    }
    out
}

/// The pod's hostname (Kubernetes': `spec.hostname`, else the pod name, at most 63 bytes).
pub fn pod_hostname(pc: &PodConfig) -> String {
    let h = pc.hostname.clone().unwrap_or_else(|| pc.name.clone());
    let h: String = h.chars().take(63).collect();
    h.trim_end_matches(['-', '.']).to_string()
}
