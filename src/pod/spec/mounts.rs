//! A pod container's mounts: the image spec's own (its /dev/shm replaced by the pod's; /sys
//! writable when privileged), the pod's /etc files, and the container's volume and host
//! mounts with their propagation.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use crate::pod::config::{ContainerConfig, MountSource, PodConfig, VolumeSource};
use crate::pod::error::{Error, Result, io};
use crate::pod::store::PodDir;

fn bind(src: &Path, dst: &str, ro: bool, propagation: &str) -> Mount {
    let mut opts = vec!["rbind".to_string(), propagation.to_string()];
    if ro {
        opts.push("ro".into());
    }
    let mut m = Mount::default();
    m.set_destination(dst.into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some(src.to_path_buf()));
    m.set_options(Some(opts));
    m
}

/// The mounts, and the rootfs propagation they need (the strongest a mount asks for, as
/// containerd sets it: `rshared` keeps a Bidirectional mount a peer of the host's, `rslave`
/// lets the host's mounts in).
pub fn build(
    mut mounts: Vec<Mount>,
    pc: &PodConfig,
    dir: &PodDir,
    cfg: &ContainerConfig,
) -> Result<(Vec<Mount>, Option<&'static str>)> {
    mounts.retain(|m| m.destination() != Path::new("/dev/shm"));
    if cfg.security.privileged {
        for m in &mut mounts {
            if m.destination() == Path::new("/sys")
                || m.destination() == Path::new("/sys/fs/cgroup")
            {
                if let Some(o) = m.options_mut() {
                    o.retain(|x| x != "ro");
                }
            }
        }
    }
    mounts.push(bind(&dir.shm(), "/dev/shm", false, "rprivate"));
    for f in ["hosts", "resolv.conf", "hostname"] {
        mounts.push(bind(
            &dir.etc_file(f),
            &format!("/etc/{f}"),
            false,
            "rprivate",
        ));
    }
    let host_mounts = crate::linux::mountinfo::read().unwrap_or_default();
    for m in &cfg.mounts {
        let src = source(pc, dir, cfg, &m.source)?;
        check_propagation(cfg, &src, &m.propagation, &host_mounts)?;
        // ConfigMap, Secret and downward API files are read-only, as kubelet mounts them
        let ro = m.readonly || projected(pc, &m.source);
        let mut b = bind(&src, &m.container_path, ro, &m.propagation);
        // a claim mounted readOnly: read-only all the way down (mount_setattr, AT_RECURSIVE)
        if claim_read_only(pc, &m.source)
            && let Some(o) = b.options_mut()
        {
            o.push("rro".into());
        }
        mounts.push(b);
    }
    let propagation = if cfg.mounts.iter().any(|m| m.propagation == "rshared") {
        Some("rshared")
    } else if cfg.mounts.iter().any(|m| m.propagation == "rslave") {
        Some("rslave")
    } else {
        None
    };
    Ok((mounts, propagation))
}

/// Is `s` a projected volume (ConfigMap, Secret, downward API)?
fn projected(pc: &PodConfig, s: &MountSource) -> bool {
    let MountSource::Volume { name, .. } = s else {
        return false;
    };
    pc.volumes
        .iter()
        .any(|v| &v.name == name && matches!(v.source, VolumeSource::Projected { .. }))
}

/// Is `s` a volume from a claim the pod mounts read-only?
fn claim_read_only(pc: &PodConfig, s: &MountSource) -> bool {
    let MountSource::Volume { name, .. } = s else {
        return false;
    };
    pc.volumes.iter().any(|v| {
        &v.name == name
            && matches!(
                v.source,
                VolumeSource::Claim {
                    read_only: true,
                    ..
                }
            )
    })
}

/// The host path of a mount: a host path, or a pod volume (and a sub-path of it, made if
/// missing).
fn source(pc: &PodConfig, dir: &PodDir, cfg: &ContainerConfig, s: &MountSource) -> Result<PathBuf> {
    let (name, sub_path) = match s {
        MountSource::Host(p) => return Ok(p.clone()),
        MountSource::Volume { name, sub_path } => (name, sub_path),
    };
    let v = pc
        .volumes
        .iter()
        .find(|v| &v.name == name)
        .ok_or_else(|| Error::Invalid(format!("container {}: no volume {name:?}", cfg.name)))?;
    let base = match &v.source {
        VolumeSource::EmptyDir { .. } | VolumeSource::Projected { .. } => dir.volume(name),
        VolumeSource::HostPath { path, .. } => path.clone(),
        VolumeSource::Claim { path: Some(p), .. } => p.clone(),
        VolumeSource::Claim { claim, .. } => {
            return Err(Error::Internal(format!(
                "container {}: volume {name:?} (claim {claim}) was not attached",
                cfg.name
            )));
        }
    };
    let Some(sp) = sub_path else {
        return Ok(base);
    };
    let p = base.join(sp);
    if !p.exists() {
        std::fs::create_dir_all(&p).map_err(io(format!("create subPath {}", p.display())))?;
    }
    Ok(p)
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
