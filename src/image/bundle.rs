//! `image unpack REF BUNDLE`: an OCI bundle from an image — its rootfs an overlay of the
//! image's snapshots with the bundle's own upper directory (or a flat copy where overlayfs is
//! unavailable), its config.json generated from the image config.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use oci_spec::image::ImageConfiguration;
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::store::Store;

/// Where the bundle's own layer lives.
const UPPER: &str = ".berth/upper";
const WORK: &str = ".berth/work";
/// The snapshots under it (bottom first, one per line), to mount it again.
const LOWERS: &str = ".berth/lowers";

/// Mount the bundle's rootfs: the snapshots (bottom first) under its own upper directory.
pub fn mount_rootfs(bundle: &Path, lowers: &[std::path::PathBuf]) -> Result<()> {
    let rootfs = bundle.join("rootfs");
    for d in [UPPER, WORK, "rootfs"] {
        fs::create_dir_all(bundle.join(d)).map_err(|err| Error::Io {
            step: format!("create {}/{d}", bundle.display()),
            err,
        })?;
    }
    let bottom_first: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    fs::write(bundle.join(LOWERS), bottom_first.join("\n")).map_err(|err| Error::Io {
        step: format!("write {}/{LOWERS}", bundle.display()),
        err,
    })?;
    let lower: Vec<String> = bottom_first.into_iter().rev().collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        bundle.join(UPPER).display(),
        bundle.join(WORK).display()
    );
    mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| Error::Io {
        step: format!("mount overlay rootfs on {}", rootfs.display()),
        err: e.into(),
    })
}

/// Give a bundle's rootfs a fresh writable layer, as a restarted container gets from kubelet
/// (a new container from the same image): unmount it, empty its upper directory, mount it
/// again. `Ok(false)`: not an overlay mounted by [`mount_rootfs`] (a flat copy), left alone.
pub fn reset_rootfs(bundle: &Path) -> Result<bool> {
    let Ok(text) = fs::read_to_string(bundle.join(LOWERS)) else {
        return Ok(false);
    };
    let lowers: Vec<std::path::PathBuf> = text.lines().map(Into::into).collect();
    unmount_rootfs(bundle)?;
    for d in [UPPER, WORK] {
        match fs::remove_dir_all(bundle.join(d)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    step: format!("empty {}/{d}", bundle.display()),
                    err: e,
                });
            }
            _ => {}
        }
    }
    mount_rootfs(bundle, &lowers)?;
    Ok(true)
}

/// Unmount a bundle's rootfs (if mounted).
pub fn unmount_rootfs(bundle: &Path) -> Result<()> {
    let rootfs = bundle.join("rootfs");
    match umount2(&rootfs, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::Io {
            step: format!("unmount {}", rootfs.display()),
            err: e.into(),
        }),
    }
}

/// Read a file of the image, resolving its path inside the rootfs (an image's /etc/passwd may be
/// a symlink to anywhere: it must not reach the host's files).
fn read_in_root(rootfs: &Path, rel: &str) -> Option<String> {
    use std::os::fd::AsFd;
    let root = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let fd = crate::linux::mount::open_in_root(
        root.as_fd(),
        Path::new(rel),
        nix::fcntl::OFlag::O_RDONLY,
    )
    .ok()?;
    std::io::read_to_string(fs::File::from(fd)).ok()
}

/// Look a user or group name up in the image's /etc/passwd or /etc/group: (id, primary gid).
fn lookup_id(rootfs: &Path, file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    let text = read_in_root(rootfs, &format!("etc/{file}"))?;
    for l in text.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 3 && f[0] == name {
            return Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())));
        }
    }
    None
}

/// uid and gid for the image's `User` (`name`, `uid`, `name:group`, `uid:gid`).
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32)> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, lookup_passwd_gid(rootfs, n)),
        Err(_) => lookup_id(rootfs, "passwd", u).ok_or_else(|| {
            Error::Invalid(format!(
                "image config: User {user:?}: no user {u:?} in the image's /etc/passwd"
            ))
        })?,
    };
    let gid = match g {
        None => primary.unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup_id(rootfs, "group", g)
                .map(|(id, _)| id)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "image config: User {user:?}: no group {g:?} in the image's /etc/group"
                    ))
                })?,
        },
    };
    Ok((uid, gid))
}

fn lookup_passwd_gid(rootfs: &Path, uid: u32) -> Option<u32> {
    let text = read_in_root(rootfs, "etc/passwd")?;
    for l in text.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[2].parse() == Ok(uid) {
            return f[3].parse().ok();
        }
    }
    None
}

/// An entry of an image's `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The user of the image's `/etc/passwd` named `name`, or with uid `uid`.
pub fn passwd_entry(rootfs: &Path, name: Option<&str>, uid: Option<u32>) -> Option<PasswdEntry> {
    let text = read_in_root(rootfs, "etc/passwd")?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let e = PasswdEntry {
            name: f.first()?.to_string(),
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
        };
        (name.is_some_and(|n| n == e.name) || uid == Some(e.uid)).then_some(e)
    })
}

/// The groups of the image's `/etc/group` that list `user` as a member (its supplementary
/// groups, as login and containerd read them).
pub fn member_groups(rootfs: &Path, user: &str) -> Vec<u32> {
    let text = read_in_root(rootfs, "etc/group").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f.get(3)?;
            (f[0] != user && members.split(',').any(|m| m.trim() == user))
                .then(|| f.get(2)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// config.json for an image: berth's default spec with the image's process.
pub fn config_json(cfg: &ImageConfiguration, rootfs: &Path, name: &str) -> Result<Value> {
    let mut spec = crate::oci::default_spec::default_spec();
    let c = cfg.config().clone().unwrap_or_default();
    let mut args: Vec<String> = c.entrypoint().clone().unwrap_or_default();
    args.extend(c.cmd().clone().unwrap_or_default());
    if args.is_empty() {
        return Err(Error::Invalid(format!(
            "image {name} has neither Entrypoint nor Cmd: nothing to run"
        )));
    }
    let mut env: Vec<String> = c.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    let (uid, gid) = resolve_user(rootfs, c.user().as_deref().unwrap_or(""))?;
    let cwd = c
        .working_dir()
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(args);
    spec["process"]["env"] = json!(env);
    spec["process"]["cwd"] = json!(cwd);
    spec["process"]["user"] = json!({"uid": uid, "gid": gid});
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    let mut ann: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in c.labels().clone().unwrap_or_default() {
        ann.insert(k, v);
    }
    ann.insert("org.opencontainers.image.ref.name".into(), name.into());
    if let Some(ports) = c.exposed_ports() {
        let mut p: Vec<String> = ports.clone();
        p.sort();
        ann.insert("org.opencontainers.image.exposedPorts".into(), p.join(","));
    }
    if let Some(sig) = c.stop_signal() {
        ann.insert("org.opencontainers.image.stopSignal".into(), sig.clone());
    }
    spec["annotations"] = json!(ann);
    Ok(spec)
}

/// The lease file that keeps a bundle's snapshots from being pruned.
pub fn lease_path(store: &Store, bundle: &Path) -> std::path::PathBuf {
    let key = super::store::sha256_digest(bundle.as_os_str().as_encoded_bytes());
    store.root().join("leases").join(&key[7..23])
}
