//! Snapshots: each layer unpacked once, into its own directory keyed by its chain ID.
//!
//! A layer is applied onto an overlay of the layers below it (lower: their snapshots, upper:
//! its new directory), so paths resolve through the image as it is at that point (a lower
//! layer's `var/run -> /run` symlink is followed), and the deletions of whiteouts become
//! overlay whiteouts in the new directory. That mount lives in a mount namespace private to a
//! dedicated thread, which vanishes with the thread: nothing can be left mounted on the host.
//!
//! ```text
//! <data-root>/snapshots/<first 12 hex of chain ID>/fs      the layer's directory
//! <data-root>/snapshots/<first 12 hex of chain ID>/chain   its full chain ID
//! ```
//! Short names keep an overlay's lowerdir list within a page for images of ~90 layers.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;

use super::error::{Error, Result};
use super::extract;
use super::store::{Store, sha256_digest};

/// Chain IDs of a layer stack from its diff IDs (the OCI image-spec's definition).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn snapshot_dir(store: &Store, chain: &str) -> Result<PathBuf> {
    let hex = super::store::digest_hex(chain)?;
    Ok(store.root().join("snapshots").join(&hex[..12]))
}

/// The snapshot directory of a chain ID, if it was unpacked.
pub fn lookup(store: &Store, chain: &str) -> Option<PathBuf> {
    let dir = snapshot_dir(store, chain).ok()?;
    match fs::read_to_string(dir.join("chain")) {
        Ok(c) if c.trim() == chain => Some(dir),
        _ => None,
    }
}

/// One layer to unpack: its blob and the diff ID the image config promises for it.
#[derive(Debug, Clone)]
pub struct LayerRef {
    pub blob: String,
    pub diff_id: String,
}

/// Make sure every layer of a stack is unpacked; returns the snapshot `fs` directories,
/// bottom first.
pub fn ensure(
    store: &Store,
    layers: &[LayerRef],
    report: &mut dyn FnMut(&str),
) -> Result<Vec<PathBuf>> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = chain_ids(&diff_ids);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, (layer, chain)) in layers.iter().zip(&chains).enumerate() {
        if let Some(d) = lookup(store, chain) {
            dirs.push(d.join("fs"));
            continue;
        }
        report(&format!(
            "unpacking layer {} ({})",
            i + 1,
            &layer.blob[..19.min(layer.blob.len())]
        ));
        let d = unpack_one(store, layer, chain, &dirs)?;
        dirs.push(d.join("fs"));
    }
    Ok(dirs)
}

/// Unpack one layer onto `lowers` (bottom first) into a new snapshot.
fn unpack_one(store: &Store, layer: &LayerRef, chain: &str, lowers: &[PathBuf]) -> Result<PathBuf> {
    let dst = snapshot_dir(store, chain)?;
    let tmp = store.root().join("snapshots").join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        &super::store::digest_hex(chain)?[..12]
    ));
    let _ = fs::remove_dir_all(&tmp);
    for d in ["fs", "work", "merged"] {
        fs::create_dir_all(tmp.join(d)).map_err(|err| Error::Io {
            step: format!("create {}", tmp.display()),
            err,
        })?;
    }
    let blob = store.open_blob(&layer.blob)?;
    let lowers = lowers.to_vec();
    let tmp2 = tmp.clone();
    let name = layer.blob.clone();
    // A dedicated thread with its own mount namespace: the overlay is never visible outside.
    let applied = std::thread::spawn(move || -> Result<extract::Applied> {
        let target = if lowers.is_empty() {
            tmp2.join("fs")
        } else {
            private_mount_namespace()?;
            let lower: Vec<String> = lowers
                .iter()
                .rev()
                .map(|p| p.display().to_string())
                .collect();
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                tmp2.join("fs").display(),
                tmp2.join("work").display()
            );
            mount(
                Some("overlay"),
                &tmp2.join("merged"),
                Some("overlay"),
                MsFlags::empty(),
                Some(opts.as_str()),
            )
            .map_err(|e| Error::Io {
                step: format!("mount overlay to apply layer {name}"),
                err: e.into(),
            })?;
            tmp2.join("merged")
        };
        let root = nix::fcntl::open(
            &target,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::Io {
            step: format!("open {}", target.display()),
            err: e.into(),
        })?;
        let res = extract::apply(root.as_fd(), &name, Box::new(blob));
        drop(root);
        if target.ends_with("merged") {
            let _ = umount2(&target, MntFlags::MNT_DETACH);
        }
        res
    })
    .join()
    .map_err(|_| Error::Invalid(format!("unpacking layer {} panicked", layer.blob)))?;
    let applied = match applied {
        Ok(a) => a,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if applied.diff_id != layer.diff_id {
        let _ = fs::remove_dir_all(&tmp);
        return Err(Error::Digest {
            what: format!("layer {} (uncompressed: the config's diff_id)", layer.blob),
            expected: layer.diff_id.clone(),
            got: applied.diff_id,
        });
    }
    let _ = fs::remove_dir_all(tmp.join("work"));
    let _ = fs::remove_dir(tmp.join("merged"));
    fs::write(tmp.join("chain"), chain).map_err(|err| Error::Io {
        step: "write chain".into(),
        err,
    })?;
    match fs::rename(&tmp, &dst) {
        Ok(()) => Ok(dst),
        // another unpack of the same layer won the race: use it, drop ours
        Err(_) if lookup(store, chain).is_some() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dst)
        }
        Err(err) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(Error::Io {
                step: format!("commit snapshot {}", dst.display()),
                err,
            })
        }
    }
}

/// Give the calling thread a mount namespace of its own, not propagating to the host.
fn private_mount_namespace() -> Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS).map_err(|e| Error::Io {
        step: "unshare mount namespace for unpacking".into(),
        err: e.into(),
    })?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| Error::Io {
        step: "make / a slave for unpacking".into(),
        err: e.into(),
    })
}

/// Is overlayfs available on this host?
pub fn overlay_supported() -> bool {
    fs::read_to_string("/proc/filesystems")
        .is_ok_and(|s| s.lines().any(|l| l.ends_with("\toverlay")))
}

/// Copy fallback (no overlay): apply every layer, in order, into one plain directory.
pub fn flatten_into(store: &Store, layers: &[LayerRef], dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|err| Error::Io {
        step: format!("create {}", dir.display()),
        err,
    })?;
    let root = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::Io {
        step: format!("open {}", dir.display()),
        err: e.into(),
    })?;
    for l in layers {
        let applied = extract::apply(root.as_fd(), &l.blob, Box::new(store.open_blob(&l.blob)?))?;
        if applied.diff_id != l.diff_id {
            return Err(Error::Digest {
                what: format!("layer {} (uncompressed: the config's diff_id)", l.blob),
                expected: l.diff_id.clone(),
                got: applied.diff_id,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "sha256:aaaa".to_string();
        let b = "sha256:bbbb".to_string();
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], sha256_digest(b"sha256:aaaa sha256:bbbb"));
    }
}
