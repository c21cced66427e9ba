//! The layer extractor: applies a layer tar onto a directory tree, safely by construction.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` against the tree's root fd, so no
//! entry, symlinked parent or hardlink target can reach outside it; `..` that would climb above
//! the root is an error. An existing name is unlinked before a new one is created
//! (`O_EXCL|O_NOFOLLOW`), so nothing is ever written through a planted symlink or hardlink.
//! Whiteouts (`.wh.NAME`, opaque `.wh..wh..opq`) delete from the tree; when the tree is an
//! overlay of the lower layers (snapshot.rs), the kernel records those deletions as overlay
//! whiteouts in the new layer's directory.
//!
//! Decompression runs on its own thread, overlapping with hashing (the layer's diffID) and
//! writing.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use sha2::{Digest as _, Sha256};

use super::error::{Error, Result};
use super::store::hex;
use crate::linux::mount::open_in_root;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From the first bytes of the blob (media types lie more often than magic numbers).
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `sha256:` of the uncompressed tar (must match the config's diff_ids).
    pub diff_id: String,
    /// Uncompressed size.
    pub size: u64,
    pub entries: u64,
}

const CHUNK: usize = 256 * 1024;

/// Reads chunks produced by the decompression thread, which it ends when dropped: no thread
/// of a layer outlives its [`apply`].
struct ChunkReader {
    /// None once dropped (the thread's next send fails and it returns).
    rx: Option<mpsc::Receiver<io::Result<Vec<u8>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    cur: Vec<u8>,
    pos: usize,
    hasher: Sha256,
    total: u64,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            let Some(rx) = &self.rx else {
                return Ok(0);
            };
            match rx.recv() {
                Ok(Ok(c)) => {
                    self.hasher.update(&c);
                    self.total += c.len() as u64;
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        // the receiver first: a thread waiting to send wakes to an error and returns (its
        // source is a blob file: a read in progress ends soon)
        drop(self.rx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decompress `src` on a thread, sending chunks of the uncompressed stream.
fn spawn_decompressor(src: Box<dyn Read + Send>) -> ChunkReader {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(16);
    let thread = std::thread::spawn(move || {
        let mut src = io::BufReader::with_capacity(CHUNK, src);
        let head = match io::BufRead::fill_buf(&mut src) {
            Ok(h) => h.to_vec(),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut r: Box<dyn Read> = match Compression::sniff(&head) {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(src)),
            Compression::Zstd => match ruzstd::decoding::StreamingDecoder::new(src) {
                Ok(d) => Box::new(d),
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("zstd: {e}"),
                    )));
                    return;
                }
            },
            Compression::None => Box::new(src),
        };
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.send(Ok(buf)).is_err() {
                return;
            }
        }
    });
    ChunkReader {
        rx: Some(rx),
        thread: Some(thread),
        cur: Vec::new(),
        pos: 0,
        hasher: Sha256::new(),
        total: 0,
    }
}

/// Normalise an entry path to a relative path inside the root; `..` above the root is an error.
pub fn clean_entry_path(p: &Path) -> std::result::Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => {
                return Err("climbs above the layer's root with ..");
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Applies one layer's entries to a tree.
struct Applier<'a> {
    root: BorrowedFd<'a>,
    layer: &'a str,
    /// Paths this layer created (an opaque marker must not delete them).
    created: HashSet<PathBuf>,
    /// Directory times, set last (later entries would change them).
    dir_times: Vec<(PathBuf, i64)>,
}

fn cstr(p: &OsStr) -> CString {
    CString::new(p.as_bytes()).unwrap_or_default()
}

impl<'a> Applier<'a> {
    fn err(&self, entry: &Path, msg: impl std::fmt::Display) -> Error {
        Error::Layer {
            layer: self.layer.to_string(),
            entry: entry.display().to_string(),
            msg: msg.to_string(),
        }
    }

    /// The parent directory of `rel` (created as 0755 root:root if missing), resolved inside
    /// the root, and the final name.
    fn parent_of(&self, rel: &Path) -> Result<(OwnedFd, CString)> {
        let name = rel
            .file_name()
            .ok_or_else(|| self.err(rel, "has no name"))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let fd = self.ensure_dir(parent, rel)?;
        Ok((fd, cstr(name)))
    }

    fn ensure_dir(&self, dir: &Path, entry: &Path) -> Result<OwnedFd> {
        match open_in_root(self.root, dir, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err(self.err(
                    entry,
                    format!("open parent {}: {}", dir.display(), io::Error::from(e)),
                ));
            }
        }
        let mut cur = PathBuf::new();
        let mut fd = open_in_root(self.root, Path::new(""), OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| self.err(entry, io::Error::from(e)))?;
        for c in dir.components() {
            cur.push(c);
            match open_in_root(self.root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(next) => fd = next,
                Err(Errno::ENOENT) => {
                    match nix::sys::stat::mkdirat(
                        fd.as_fd(),
                        c.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(self.err(
                                entry,
                                format!("mkdir {}: {}", cur.display(), io::Error::from(e)),
                            ));
                        }
                    }
                    fd = open_in_root(self.root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY)
                        .map_err(|e| {
                            self.err(
                                entry,
                                format!("open {}: {}", cur.display(), io::Error::from(e)),
                            )
                        })?;
                }
                Err(e) => {
                    return Err(self.err(
                        entry,
                        format!("open {}: {}", cur.display(), io::Error::from(e)),
                    ));
                }
            }
        }
        Ok(fd)
    }

    /// Remove whatever is at `name` in `parent` (a whole directory tree too).
    fn remove(&self, parent: BorrowedFd<'_>, name: &CString, entry: &Path) -> Result<()> {
        match nix::unistd::unlinkat(
            parent,
            name.as_c_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) | Err(Errno::EPERM) => {
                let dir = nix::fcntl::openat(
                    parent,
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| {
                    self.err(entry, format!("open for removal: {}", io::Error::from(e)))
                })?;
                self.clear_dir(dir.as_fd(), entry, None)?;
                match nix::unistd::unlinkat(
                    parent,
                    name.as_c_str(),
                    nix::unistd::UnlinkatFlags::RemoveDir,
                ) {
                    Ok(()) | Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err(self.err(entry, format!("remove: {}", io::Error::from(e)))),
                }
            }
            Err(e) => Err(self.err(entry, format!("remove: {}", io::Error::from(e)))),
        }
    }

    /// Remove every child of `dir`, except those `keep` says this layer created.
    fn clear_dir(
        &self,
        dir: BorrowedFd<'_>,
        entry: &Path,
        keep: Option<(&Path, &HashSet<PathBuf>)>,
    ) -> Result<()> {
        let d = nix::dir::Dir::openat(
            dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err(entry, format!("read directory: {}", io::Error::from(e))))?;
        let mut d = d;
        let names: Vec<CString> = d
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for n in names {
            if let Some((base, created)) = keep {
                if created.contains(&base.join(OsStr::from_bytes(n.as_bytes()))) {
                    continue;
                }
            }
            self.remove(dir, &n, entry)?;
        }
        Ok(())
    }

    fn apply_entry(&mut self, entry: &mut tar::Entry<'_, ChunkReader>) -> Result<()> {
        let raw = entry
            .path()
            .map_err(|e| self.err(Path::new("?"), e))?
            .into_owned();
        let rel = clean_entry_path(&raw).map_err(|m| self.err(&raw, m))?;
        if rel.as_os_str().is_empty() {
            return Ok(()); // "./": the root itself
        }
        let name = rel.file_name().unwrap_or_default().as_bytes().to_vec();
        // whiteouts
        if name == b".wh..wh..opq" {
            let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
            let fd = self.ensure_dir(&dir, &raw)?;
            let created = std::mem::take(&mut self.created);
            let res = self.clear_dir(fd.as_fd(), &raw, Some((&dir, &created)));
            self.created = created;
            return res;
        }
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            if hidden.starts_with(b".wh.") {
                return Ok(()); // aufs metadata (.wh..wh.plnk etc.)
            }
            // `.wh..` would delete the directory itself, `.wh...` its parent
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.err(&raw, "whiteout of no file (., .. or an empty name)"));
            }
            let (parent, _) = self.parent_of(&rel)?;
            return self.remove(
                parent.as_fd(),
                &CString::new(hidden).unwrap_or_default(),
                &raw,
            );
        }

        let h = entry.header().clone();
        let kind = h.entry_type();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let mtime = h.mtime().unwrap_or(0) as i64;
        let (parent, cname) = self.parent_of(&rel)?;
        let p = parent.as_fd();
        let step = |what: &str, e: Errno| self.err(&raw, format!("{what}: {}", io::Error::from(e)));

        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let is_dir =
                    nix::sys::stat::fstatat(p, cname.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                        .unwrap_or(false);
                if !is_dir {
                    self.remove(p, &cname, &raw)?;
                    nix::sys::stat::mkdirat(p, cname.as_c_str(), Mode::from_bits_truncate(mode))
                        .map_err(|e| step("mkdir", e))?;
                }
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.remove(p, &cname, &raw)?;
                let fd = nix::fcntl::openat(
                    p,
                    cname.as_c_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(mode),
                )
                .map_err(|e| step("create", e))?;
                let mut f = std::fs::File::from(fd);
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.err(&raw, format!("read: {e}"))),
                    };
                    f.write_all(&buf[..n])
                        .map_err(|e| self.err(&raw, format!("write: {e}")))?;
                }
                self.set_xattrs(entry, &f, &raw)?;
            }
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.err(&raw, e))?
                    .ok_or_else(|| self.err(&raw, "symlink without a target"))?
                    .into_owned();
                self.remove(p, &cname, &raw)?;
                nix::unistd::symlinkat(target.as_os_str(), p, cname.as_c_str())
                    .map_err(|e| step("symlink", e))?;
            }
            T::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.err(&raw, e))?
                    .ok_or_else(|| self.err(&raw, "hardlink without a target"))?
                    .into_owned();
                let target = clean_entry_path(&target)
                    .map_err(|m| self.err(&raw, format!("hardlink target {m}")))?;
                // resolved inside the root: a link can only ever point at a file of this tree
                let src = open_in_root(self.root, &target, OFlag::O_PATH | OFlag::O_NOFOLLOW)
                    .map_err(|e| {
                        self.err(
                            &raw,
                            format!(
                                "hardlink target {}: {}",
                                target.display(),
                                io::Error::from(e)
                            ),
                        )
                    })?;
                let st =
                    nix::sys::stat::fstat(&src).map_err(|e| step("stat hardlink target", e))?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    return Err(self.err(&raw, "hardlink to a directory"));
                }
                self.remove(p, &cname, &raw)?;
                nix::unistd::linkat(
                    src.as_fd(),
                    c"",
                    p,
                    cname.as_c_str(),
                    AtFlags::AT_EMPTY_PATH,
                )
                .map_err(|e| step("link", e))?;
                self.created.insert(rel);
                return Ok(()); // a hardlink shares the target's owner, mode and times
            }
            T::Char | T::Block | T::Fifo => {
                let k = match kind {
                    T::Char => SFlag::S_IFCHR,
                    T::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = nix::sys::stat::makedev(
                    h.device_major().ok().flatten().unwrap_or(0) as u64,
                    h.device_minor().ok().flatten().unwrap_or(0) as u64,
                );
                self.remove(p, &cname, &raw)?;
                nix::sys::stat::mknodat(
                    p,
                    cname.as_c_str(),
                    k,
                    Mode::from_bits_truncate(mode),
                    dev,
                )
                .map_err(|e| step("mknod", e))?;
            }
            // pax and GNU long-name headers are consumed by the tar reader
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => return Ok(()),
            other => return Err(self.err(&raw, format!("unsupported entry type {other:?}"))),
        }
        nix::unistd::fchownat(
            p,
            cname.as_c_str(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| step("chown", e))?;
        if kind != T::Symlink {
            // after chown, which clears setuid/setgid bits
            nix::sys::stat::fchmodat(
                p,
                cname.as_c_str(),
                Mode::from_bits_truncate(mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| step("chmod", e))?;
        }
        if kind != T::Directory {
            let t = TimeSpec::new(mtime, 0);
            nix::sys::stat::utimensat(
                p,
                cname.as_c_str(),
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| step("set times", e))?;
        }
        if kind == T::Directory {
            self.dir_times.push((rel.clone(), mtime));
        }
        self.created.insert(rel);
        Ok(())
    }

    fn set_xattrs(
        &self,
        entry: &mut tar::Entry<'_, ChunkReader>,
        f: &std::fs::File,
        raw: &Path,
    ) -> Result<()> {
        let Ok(Some(exts)) = entry.pax_extensions() else {
            return Ok(());
        };
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                // overlayfs's own attributes would forge whiteouts or redirects in a snapshot
                if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                    return Err(self.err(raw, format!("xattr {name} is reserved for overlayfs")));
                }
                use xattr::FileExt;
                f.set_xattr(name, ext.value_bytes())
                    .map_err(|e| self.err(raw, format!("set xattr {name}: {e}")))?;
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        for (rel, mtime) in self.dir_times.iter().rev() {
            let (parent, name) = match (rel.parent(), rel.file_name()) {
                (Some(p), Some(n)) => (p, n),
                _ => continue,
            };
            let Ok(fd) = open_in_root(self.root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY) else {
                continue;
            };
            let t = TimeSpec::new(*mtime, 0);
            let _ = nix::sys::stat::utimensat(
                fd.as_fd(),
                name,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
        Ok(())
    }
}

/// Apply a (compressed or not) layer stream onto the tree at `root`. `layer` names it in errors.
pub fn apply(root: BorrowedFd<'_>, layer: &str, src: Box<dyn Read + Send>) -> Result<Applied> {
    let reader = spawn_decompressor(src);
    let mut archive = tar::Archive::new(reader);
    let mut applier = Applier {
        root,
        layer,
        created: HashSet::new(),
        dir_times: Vec::new(),
    };
    let mut entries = 0;
    let iter = archive
        .entries()
        .map_err(|e| applier.err(Path::new("?"), e))?;
    for e in iter {
        let mut e = e.map_err(|e| applier.err(Path::new("?"), format!("malformed tar: {e}")))?;
        applier.apply_entry(&mut e)?;
        entries += 1;
    }
    applier.finish()?;
    // The diffID covers the whole uncompressed stream, padding after the end marker included.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| Error::Io {
        step: format!("read layer {layer}"),
        err: e,
    })?;
    Ok(Applied {
        diff_id: format!("sha256:{}", hex(&rest.hasher.clone().finalize())),
        size: rest.total,
        entries,
    })
}

#[cfg(test)]
mod tests;
