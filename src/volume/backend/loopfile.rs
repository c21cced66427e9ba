//! `loopfile`: an ext4 image file in berth's data root, allocated in full (`fallocate`: the
//! space is the volume's, never over-committed), made with `mkfs.ext4 -m 0 -E nodiscard` (a
//! loop device turns discards into hole punches), attached to a loop device and mounted while
//! a pod uses it. The image is sized so that the file system offers at least the request
//! (`df` shows request to request + 5%); writes past it fail with ENOSPC.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{MntFlags, MsFlags};

use super::Backend;
use crate::volume::error::{Error, Result, io, sys};
use crate::volume::model::{BackendKind, Source, Volume};
use crate::volume::store::Store;

pub struct Loopfile {
    pub store: Store,
}

/// The options every volume's file system is made with (the bench's floor runs the same).
pub const MKFS: &[&str] = &[
    "-q",
    "-F",
    "-t",
    "ext4",
    "-m",
    "0",
    "-E",
    "nodiscard",
    "-b",
    "4096",
];

const MIB: u64 = 1 << 20;

/// The journal mkfs.ext4 gives a file system of `blocks` 4 KiB blocks (e2fsprogs'
/// `ext2fs_default_journal_size`).
fn journal_blocks(blocks: u64) -> u64 {
    match blocks {
        0..2048 => 0,
        2048..32768 => 1024,
        32768..262144 => 4096,
        262144..524288 => 8192,
        524288..4194304 => 16384,
        4194304..8388608 => 32768,
        8388608..16777216 => 65536,
        16777216..33554432 => 131072,
        _ => 262144,
    }
}

/// The image size whose file system offers at least `size` bytes, and at most about 4% more:
/// the request, its inode tables, the journal, bitmaps, reserved descriptor blocks and a
/// constant, in 4 KiB blocks. mke2fs.conf gives a file system under 512 MiB ("small") one
/// 256-byte inode per 4 KiB, a larger one ("default") one per 16 KiB; an image that the small
/// estimate puts over 512 MiB is made at least 512 MiB, so that mkfs picks the default type the
/// estimate assumed. Fitted against mkfs.ext4 1.47 from 8 MiB to 20 GiB (unit test); a guess
/// that still falls short grows (the caller reads the superblock).
fn image_size(size: u64) -> u64 {
    let estimate = |inodes: u64, reserved: u64| {
        let overhead = inodes
            + journal_blocks(size / 4096) * 4096
            + size / 2048
            + size / reserved
            + 512 * 1024;
        (size + overhead).div_ceil(4096) * 4096
    };
    let small = estimate(size / 16, 100);
    if small < 512 * MIB {
        small
    } else {
        estimate(size / 64, 240).max(512 * MIB)
    }
}

/// What a freshly made ext4 image offers: its free blocks times the block size (from the
/// superblock at byte 1024).
fn offered(image: &Path) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(image).map_err(io(format!("open {}", image.display())))?;
    let mut sb = [0u8; 1024];
    f.seek(SeekFrom::Start(1024))
        .and_then(|_| f.read_exact(&mut sb))
        .map_err(io(format!("read the superblock of {}", image.display())))?;
    let le32 = |o: usize| u64::from(u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]));
    if sb[56..58] != [0x53, 0xef] {
        return Err(Error::Failed(format!(
            "{}: no ext4 superblock",
            image.display()
        )));
    }
    let block = 1024u64 << le32(24);
    let free = le32(12) | (le32(0x158) << 32);
    Ok(free * block)
}

impl Loopfile {
    /// Allocate `image` and make its file system, running `meanwhile` while mkfs does.
    fn make(&self, image: &Path, len: u64, meanwhile: &mut dyn FnMut()) -> Result<()> {
        let f = fs::File::create(image).map_err(io(format!("create {}", image.display())))?;
        nix::fcntl::fallocate(
            f.as_fd(),
            nix::fcntl::FallocateFlags::empty(),
            0,
            len as i64,
        )
        .map_err(sys(format!(
            "allocate {} bytes for {}",
            len,
            image.display()
        )))?;
        drop(f);
        let child = Command::new("mkfs.ext4")
            .args(MKFS)
            .arg(image)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("run mkfs.ext4"))?;
        meanwhile();
        let out = child.wait_with_output().map_err(io("wait for mkfs.ext4"))?;
        if !out.status.success() {
            return Err(Error::Failed(format!(
                "mkfs.ext4 {}: {}",
                image.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// Is something mounted at `p`?
fn mounted(p: &Path) -> bool {
    crate::linux::mountinfo::read()
        .map(|ms| ms.iter().any(|m| m.mount_point == p))
        .unwrap_or(false)
}

impl Backend for Loopfile {
    fn source(&self, pv: &str, _fs_type: &str) -> Source {
        // create refuses any other
        Source::Csi {
            handle: pv.to_string(),
            backend: BackendKind::Loopfile,
            fs_type: "ext4".into(),
        }
    }

    fn create(
        &self,
        pv: &str,
        size: u64,
        fs_type: &str,
        meanwhile: &mut dyn FnMut(),
    ) -> Result<()> {
        if fs_type != "ext4" {
            return Err(Error::Invalid(format!(
                "fsType {fs_type:?}: the loopfile back end makes ext4 (xfs follows later)"
            )));
        }
        let image = self.store.image(pv);
        if let Some(d) = image.parent() {
            fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        }
        let made = (|| {
            let mut len = image_size(size);
            // a guess short of the request grows once or twice (the superblock says)
            for _ in 0..3 {
                self.make(&image, len, meanwhile)?;
                let got = offered(&image)?;
                if got >= size {
                    return Ok(());
                }
                len += (size - got).div_ceil(4096) * 4096 + MIB;
            }
            Err(Error::Failed(format!(
                "{}: could not size the file system to {size} bytes",
                image.display()
            )))
        })();
        if let Err(e) = made {
            let _ = fs::remove_file(&image);
            return Err(e);
        }
        Ok(())
    }

    fn attach(&self, v: &Volume) -> Result<PathBuf> {
        let Source::Csi { handle, .. } = &v.source else {
            return Err(Error::Failed(format!(
                "volume {}: not a loopfile volume",
                v.name
            )));
        };
        let mnt = self.store.mount_point(&v.name);
        if mounted(&mnt) {
            return Ok(mnt);
        }
        fs::create_dir_all(&mnt).map_err(io(format!("create {}", mnt.display())))?;
        let image = self.store.image(handle);
        if !image.exists() {
            return Err(Error::Failed(format!(
                "volume {}: its image {} is gone",
                v.name,
                image.display()
            )));
        }
        // attached with autoclear: the device goes with the mount (and after a reboot, none
        // is left: attached again here)
        let (dev, _held) = match crate::linux::loopdev::find(&image) {
            Some(d) => {
                let f = fs::File::open(&d).map_err(io(format!("open {}", d.display())))?;
                (d, f)
            }
            None => crate::linux::loopdev::attach(&image, true)
                .map_err(io(format!("attach {} to a loop device", image.display())))?,
        };
        nix::mount::mount(
            Some(&dev),
            &mnt,
            Some("ext4"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(sys(format!("mount {} on {}", dev.display(), mnt.display())))?;
        Ok(mnt)
    }

    fn detach(&self, v: &Volume) -> Result<()> {
        let mnt = self.store.mount_point(&v.name);
        if mounted(&mnt) {
            if let Err(e) = nix::mount::umount(&mnt) {
                // a process outside any pod holds it: the loop device goes when it lets go
                nix::mount::umount2(&mnt, MntFlags::MNT_DETACH)
                    .map_err(sys(format!("unmount {} ({e})", mnt.display())))?;
            }
        }
        Ok(())
    }

    fn delete(&self, v: &Volume) -> Result<()> {
        self.detach(v)?;
        let _ = fs::remove_dir(self.store.mount_point(&v.name));
        if let Source::Csi { handle, .. } = &v.source {
            let image = self.store.image(handle);
            if let Some(dev) = crate::linux::loopdev::find(&image) {
                let _ = crate::linux::loopdev::detach(&dev);
            }
            match fs::remove_file(&image) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("remove {}", image.display()))(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn usage(&self, v: &Volume) -> Option<(u64, Option<u64>)> {
        let mnt = self.store.mount_point(&v.name);
        if !mounted(&mnt) {
            return Some((v.capacity, None));
        }
        let s = nix::sys::statvfs::statvfs(&mnt).ok()?;
        let unit = s.fragment_size();
        Some((
            s.blocks() * unit,
            Some((s.blocks() - s.blocks_free()) * unit),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first guess is right: mkfs.ext4 on an image of that size (a sparse file: the
    /// geometry is the same) offers the request and at most 4% more, so provisioning runs
    /// mkfs once.
    #[test]
    fn one_mkfs_gives_the_request_and_at_most_4_percent_more() {
        let dir = std::env::temp_dir().join(format!("berth-loopfile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let img = dir.join("fit.img");
        let mut failures = Vec::new();
        for mib in [
            8u64, 16, 64, 128, 256, 460, 470, 480, 512, 1024, 4096, 10240,
        ] {
            let size = mib * MIB;
            let len = image_size(size);
            fs::File::create(&img).unwrap().set_len(len).unwrap();
            let ok = Command::new("mkfs.ext4")
                .args(MKFS)
                .arg(&img)
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .output()
                .unwrap();
            assert!(
                ok.status.success(),
                "{}",
                String::from_utf8_lossy(&ok.stderr)
            );
            let got = offered(&img).unwrap();
            if got < size || got > size + size / 25 {
                failures.push(format!("{mib} MiB: image {len}, offers {got}"));
            }
        }
        let _ = fs::remove_dir_all(&dir);
        assert!(failures.is_empty(), "{failures:?}");
    }
}
