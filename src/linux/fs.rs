//! The one way berth writes a record: [`write_atomic`] (or, for state that dies with a
//! reboot, [`write_atomic_volatile`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A temporary name next to `path`, unique to this process and call (concurrent writers of
/// one record never share it).
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Replace `path` with `data` so that a reader, or the file system after a crash, sees the old
/// content or the new one, never a part: a temporary file, fsync, rename over `path`, fsync of
/// the directory (which makes the rename itself durable). For what must outlive the machine
/// (the image store, caches).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write(path, data, true)
}

/// [`write_atomic`] without the fsyncs, for state that describes running processes (OCI and
/// pod state, pid files, under `/run`): it means nothing after a reboot, so it needs no
/// durability, only atomicity — readers and a berth killed at any point see the old content
/// or the new one (the rename is atomic whether or not it reached the disk). On a disk-backed
/// `/run` the fsyncs would cost about a millisecond per record.
pub fn write_atomic_volatile(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write(path, data, false)
}

fn write(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let tmp = temp_name(path);
    let r = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
        return r;
    }
    if !durable {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("berth-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("record.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic_volatile(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("record.json")]);
        // a directory that does not exist: an error, nothing made
        assert!(write_atomic(&dir.join("no/such"), b"x").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
