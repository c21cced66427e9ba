//! The one way berth writes a record: [`write_atomic`] (or, for state that dies with a
//! reboot, [`write_atomic_volatile`]; for several records at once, [`write_atomic_all`]).

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

/// [`write_atomic`] of several files that must all be durable before the caller goes on:
/// the temporary files are written, their fsyncs run at once (a journaling file system
/// commits them together, where one after the other each waits for its own commit), then
/// the renames, in order, then the fsyncs of their directories, at once. A crash leaves each
/// file old or new; the caller orders the files so that any mix is one it can read.
pub fn write_atomic_all(files: &[(&Path, &[u8])]) -> std::io::Result<()> {
    let tmps: Vec<PathBuf> = files.iter().map(|(p, _)| temp_name(p)).collect();
    let made = (|| -> std::io::Result<()> {
        let mut handles = Vec::new();
        for ((_, data), tmp) in files.iter().zip(&tmps) {
            let mut f = fs::File::create(tmp)?;
            f.write_all(data)?;
            handles.push(f);
        }
        all(handles.iter().map(|f| move || f.sync_all()))?;
        for ((path, _), tmp) in files.iter().zip(&tmps) {
            fs::rename(tmp, path)?;
        }
        Ok(())
    })();
    if made.is_err() {
        for t in &tmps {
            let _ = fs::remove_file(t);
        }
        made?;
    }
    let mut dirs: Vec<&Path> = files
        .iter()
        .map(|(p, _)| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    all(dirs
        .into_iter()
        .map(|d| move || fs::File::open(d)?.sync_all()))
}

/// Run `jobs` at once, one thread each but the first; the first error.
fn all<F>(jobs: impl Iterator<Item = F>) -> std::io::Result<()>
where
    F: FnOnce() -> std::io::Result<()> + Send,
{
    let mut jobs = jobs.collect::<Vec<_>>().into_iter();
    let Some(first) = jobs.next() else {
        return Ok(());
    };
    std::thread::scope(|s| {
        let others: Vec<_> = jobs.map(|j| s.spawn(j)).collect();
        let mut r = first();
        for h in others {
            let o = h
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread panicked")));
            if r.is_ok() {
                r = o;
            }
        }
        r
    })
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
        // several at once, in two directories
        fs::create_dir_all(dir.join("sub")).unwrap();
        let (a, b) = (dir.join("a.json"), dir.join("sub/b.json"));
        write_atomic_all(&[(&a, b"A"), (&b, b"B")]).unwrap();
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&b).unwrap()),
            (b"A".to_vec(), b"B".to_vec())
        );
        assert!(write_atomic_all(&[(&a, b"A2"), (&dir.join("no/such"), b"x")]).is_err());
        assert_eq!(fs::read(&a).unwrap(), b"A", "none renamed when one fails");
        fs::remove_file(&a).unwrap();
        fs::remove_dir_all(dir.join("sub")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
