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
/// [`stage_all`], then [`Staged::commit`].
pub fn write_atomic_all(files: &[(&Path, &[u8])]) -> std::io::Result<()> {
    stage_all(files)?.commit()
}

/// Files written and durable under temporary names, not yet in place: the slow half of
/// [`write_atomic_all`], which a caller may run while it does other work (a volume's
/// records while its file system is made). Dropped uncommitted, the temporaries go; a
/// process killed before commit leaves them, for [`remove_stale_temps`].
#[must_use = "staged files are removed unless committed"]
pub struct Staged {
    /// (temporary, final) paths, in the caller's order.
    files: Vec<(PathBuf, PathBuf)>,
}

/// Write each file under a temporary name and fsync them at once (a journaling file system
/// commits them together, where one after the other each waits for its own commit).
pub fn stage_all(files: &[(&Path, &[u8])]) -> std::io::Result<Staged> {
    let mut staged = Staged { files: Vec::new() };
    let mut handles = Vec::new();
    for (path, data) in files {
        let tmp = temp_name(path);
        let mut f = fs::File::create(&tmp)?;
        staged.files.push((tmp, path.to_path_buf()));
        f.write_all(data)?;
        handles.push(f);
    }
    all(handles.iter().map(|f| move || f.sync_all()))?;
    Ok(staged)
}

impl Staged {
    /// Rename each file into place, in order, then fsync their directories. A crash
    /// leaves each file old or new; the caller orders the files so that any mix is one it can
    /// read.
    pub fn commit(mut self) -> std::io::Result<()> {
        let files = std::mem::take(&mut self.files);
        for (i, (tmp, path)) in files.iter().enumerate() {
            if let Err(e) = fs::rename(tmp, path) {
                for (t, _) in &files[i..] {
                    let _ = fs::remove_file(t);
                }
                return Err(e);
            }
        }
        let mut dirs: Vec<&Path> = files
            .iter()
            .map(|(_, p)| match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        // one after the other: the first commit holds every rename (directory entries are
        // metadata, in the journal), so the others find little left to do
        for d in dirs {
            fs::File::open(d)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Remove the temporaries in `dir` of writers that died before their rename (their process
/// is gone); returns how many.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let pid = name
            .strip_prefix('.')
            .and_then(|r| r.rsplit_once(".tmp-"))
            .and_then(|(_, t)| t.split_once('-'))
            .and_then(|(pid, seq)| seq.parse::<u64>().ok().and(pid.parse::<u32>().ok()));
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
            && fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
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
        // staged and dropped: nothing in place, no temporary; committed: in place
        let staged = stage_all(&[(&a, b"A3")]).unwrap();
        drop(staged);
        assert_eq!(fs::read(&a).unwrap(), b"A");
        stage_all(&[(&a, b"A4")]).unwrap().commit().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"A4");
        // a dead writer's temporary goes, a live one's stays
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        for pid in [dead, me] {
            fs::write(dir.join(format!(".a.json.tmp-{pid}-7")), b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(&dir), 1);
        assert!(dir.join(format!(".a.json.tmp-{me}-7")).exists());
        fs::remove_file(&a).unwrap();
        fs::remove_dir_all(dir.join("sub")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
