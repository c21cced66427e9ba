//! The content store under the data root:
//!
//! ```text
//! <data-root>/blobs/sha256/<hex>        content-addressed blobs (manifests, configs, layers)
//! <data-root>/ingest/<hex>.partial      downloads in progress (resumable; never read as blobs)
//! <data-root>/images.json               name → manifest digest (written atomically)
//! <data-root>/snapshots/                unpacked layers (see snapshot.rs)
//! <data-root>/leases/<name>             snapshots in use by a bundle
//! <data-root>/lock                      flock serialising changes of the index and GC
//! ```
//! A blob enters `blobs/` only by rename after its digest and size were verified, so a blob
//! that exists is always whole and correct.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::{Error, Result};

/// Default data root, as containerd uses /var/lib/containerd.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";

/// One named image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Digest of the image manifest (platform-specific).
    pub manifest: String,
    /// Digest of the index the manifest was chosen from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Digest of the image config.
    pub config: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Total size of the manifest, config and layers (compressed).
    pub size: u64,
    /// RFC 3339 time the name was set.
    pub created: String,
}

/// `images.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    pub images: BTreeMap<String, ImageRecord>,
}

/// The store at a data root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Exclusive hold on the store's index (and on GC).
pub struct StoreLock(#[allow(dead_code)] Flock<OwnedFd>);

/// A pull in progress: its lease file lives as long as this guard.
pub struct PullLease {
    path: PathBuf,
}

impl Drop for PullLease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, checked.
pub fn digest_hex(digest: &str) -> Result<&str> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        Error::Invalid(format!(
            "digest {digest:?}: only sha256 digests are supported"
        ))
    })?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(Error::Invalid(format!("digest {digest:?} is malformed")));
    }
    Ok(hex)
}

/// A writer that hashes and counts what passes through.
pub struct HashingWriter<W: Write> {
    pub inner: W,
    pub hasher: Sha256,
    pub written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// `sha256:<hex>` of everything written.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex(&self.hasher.clone().finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn io_err(step: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let step = step.into();
    move |err| Error::Io { step, err }
}

impl Store {
    /// The store at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the directory layout.
    pub fn init(&self) -> Result<()> {
        for d in ["blobs/sha256", "ingest", "snapshots/by-chain", "leases"] {
            let p = self.root.join(d);
            fs::create_dir_all(&p).map_err(io_err(format!("create {}", p.display())))?;
        }
        Ok(())
    }

    /// Take the store's lock (index changes, GC).
    pub fn lock(&self) -> Result<StoreLock> {
        self.init()?;
        let path = self.root.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("open {}", path.display())))?;
        let l =
            Flock::lock(OwnedFd::from(f), FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
                step: format!("lock {}", path.display()),
                err: e.into(),
            })?;
        Ok(StoreLock(l))
    }

    /// Hold the content of `manifests` against `prune` while a pull fetches it: a lease file
    /// naming them, removed when the returned guard drops (or by `prune`, once its process is
    /// gone).
    pub fn pull_lease(&self, manifests: &[&str]) -> Result<PullLease> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self
            .root
            .join("leases")
            .join(format!("pull-{}-{n}", std::process::id()));
        fs::write(&path, manifests.join("\n"))
            .map_err(io_err(format!("write {}", path.display())))?;
        Ok(PullLease { path })
    }

    /// Manifests that pulls in progress hold; leases of processes that are gone are removed.
    pub fn pulling(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.root.join("leases")) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("pull-").and_then(|r| r.split('-').next()) else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_file(e.path());
                continue;
            }
            if let Ok(text) = fs::read_to_string(e.path()) {
                out.extend(
                    text.lines()
                        .filter(|l| l.starts_with("sha256:"))
                        .map(String::from),
                );
            }
        }
        Ok(out)
    }

    /// Every blob in the store.
    pub fn blob_digests(&self) -> Result<std::collections::HashSet<String>> {
        let dir = self.root.join("blobs/sha256");
        Ok(fs::read_dir(&dir)
            .map_err(io_err(format!("read {}", dir.display())))?
            .flatten()
            .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
            .collect())
    }

    /// Path of a blob.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// Path of a partial download of a blob.
    pub fn ingest_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("ingest")
            .join(format!("{}.partial", digest_hex(digest)?)))
    }

    /// Is the blob in the store?
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Read a whole (small) blob.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::Invalid(format!("blob {digest} is not in the store")),
            _ => Error::Io {
                step: format!("read {}", p.display()),
                err: e,
            },
        })
    }

    /// Open a blob for streaming.
    pub fn open_blob(&self, digest: &str) -> Result<fs::File> {
        let p = self.blob_path(digest)?;
        fs::File::open(&p).map_err(io_err(format!("open blob {}", p.display())))
    }

    /// Store bytes whose digest must be `digest` (or any digest if `None`); returns the digest.
    pub fn put_bytes(&self, bytes: &[u8], digest: Option<&str>) -> Result<String> {
        let got = sha256_digest(bytes);
        if let Some(want) = digest {
            if want != got {
                return Err(Error::Digest {
                    what: "blob".into(),
                    expected: want.into(),
                    got,
                });
            }
        }
        if self.has_blob(&got) {
            return Ok(got);
        }
        self.init()?;
        let tmp =
            self.root
                .join("ingest")
                .join(format!("put-{}-{}", std::process::id(), &got[7..19]));
        fs::write(&tmp, bytes).map_err(io_err(format!("write {}", tmp.display())))?;
        self.commit_file(&tmp, &got)?;
        Ok(got)
    }

    /// Copy a stream into the store, verifying digest and size before it becomes a blob.
    pub fn put_stream(&self, r: &mut dyn Read, digest: &str, size: Option<u64>) -> Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        self.init()?;
        let tmp = self.root.join("ingest").join(format!(
            "copy-{}-{}",
            std::process::id(),
            digest_hex(digest)?
        ));
        let f = fs::File::create(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, f));
        let res = io::copy(r, &mut w).and_then(|_| w.flush());
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io {
                step: format!("copy blob {digest}"),
                err: e,
            });
        }
        let got = w.digest();
        if got != digest || size.is_some_and(|s| s != w.written) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Digest {
                what: format!(
                    "blob ({} bytes, expected {})",
                    w.written,
                    size.map_or("any".into(), |s| s.to_string())
                ),
                expected: digest.into(),
                got,
            });
        }
        self.commit_file(&tmp, digest)
    }

    /// Copy a stream into the store as a blob of whatever digest it has; returns (digest, size).
    pub fn put_stream_any(&self, r: &mut dyn Read) -> Result<(String, u64)> {
        self.init()?;
        let tmp = self.root.join("ingest").join(format!(
            "any-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let f = fs::File::create(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, f));
        if let Err(e) = io::copy(r, &mut w).and_then(|_| w.flush()) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io {
                step: "copy blob".into(),
                err: e,
            });
        }
        let (digest, size) = (w.digest(), w.written);
        drop(w);
        if self.has_blob(&digest) {
            let _ = fs::remove_file(&tmp);
        } else {
            self.commit_file(&tmp, &digest)?;
        }
        Ok((digest, size))
    }

    /// Move a verified file into `blobs/` (atomic rename, read-only).
    pub fn commit_file(&self, tmp: &Path, digest: &str) -> Result<()> {
        let dst = self.blob_path(digest)?;
        let _ = fs::set_permissions(tmp, std::os::unix::fs::PermissionsExt::from_mode(0o444));
        fs::rename(tmp, &dst).map_err(io_err(format!("commit blob {digest}")))
    }

    /// Read the image index.
    pub fn index(&self) -> Result<Index> {
        let p = self.root.join("images.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Invalid(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index {
                version: 1,
                images: BTreeMap::new(),
            }),
            Err(e) => Err(Error::Io {
                step: format!("read {}", p.display()),
                err: e,
            }),
        }
    }

    /// Replace the image index (hold the store lock).
    pub fn write_index(&self, _lock: &StoreLock, idx: &Index) -> Result<()> {
        self.init()?;
        let p = self.root.join("images.json");
        let mut idx = idx.clone();
        idx.version = 1;
        crate::linux::fs::write_atomic(
            &p,
            &serde_json::to_vec_pretty(&idx).expect("index serialises"),
        )
        .map_err(io_err(format!("write {}", p.display())))
    }

    /// Set (or move) a name.
    pub fn set_name(&self, name: &str, rec: ImageRecord) -> Result<()> {
        let lock = self.lock()?;
        let mut idx = self.index()?;
        idx.images.insert(name.to_string(), rec);
        self.write_index(&lock, &idx)
    }

    /// Names in use by bundles (leases): snapshot ids they hold.
    pub fn leased_snapshots(&self) -> Result<Vec<String>> {
        let dir = self.root.join("leases");
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("pull-") {
                continue;
            }
            if let Ok(text) = fs::read_to_string(e.path()) {
                out.extend(
                    text.lines()
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
            }
        }
        Ok(out)
    }

    /// Disk usage of a directory tree (bytes of regular files).
    pub fn du(path: &Path) -> u64 {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return 0;
        };
        if meta.is_file() {
            return meta.len();
        }
        if !meta.is_dir() {
            return 0;
        }
        fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| Store::du(&e.path())).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_and_content_addressed() {
        let dir = std::env::temp_dir().join(format!("berth-store-unit-{}", std::process::id()));
        let s = Store::new(&dir);
        let d = s.put_bytes(b"hello", None).unwrap();
        assert_eq!(
            d,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        let world = sha256_digest(b"world");
        let e = s
            .put_stream(&mut &b"tampered"[..], &world, Some(8))
            .unwrap_err();
        assert!(!s.has_blob(&world), "a tampered blob entered the store");
        assert!(matches!(e, Error::Digest { .. }), "{e}");
        let other = sha256_digest(b"other");
        assert!(
            s.put_stream(&mut &b"other"[..], &other, Some(9)).is_err(),
            "size is checked too"
        );
        s.put_stream(&mut &b"other"[..], &other, Some(5)).unwrap();
        assert!(s.has_blob(&other));
        assert_eq!(
            fs::read_dir(dir.join("ingest")).unwrap().count(),
            0,
            "no temp files left"
        );
        assert!(digest_hex("sha256:../../etc").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
