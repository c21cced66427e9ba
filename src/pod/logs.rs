//! Container logs in the CRI format kubelet and crictl read:
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`, one record per line; a line longer
//! than [`MAX_LINE`] is split into partial (`P`) records ended by a full (`F`) one. Files
//! rotate by size: `0.log` → `0.log.1` → ... (kept: [`KEEP`]).

use std::fs;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::error::{Result, io};

/// Longest record before a line is split (kubelet's is 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;
/// Rotated files kept besides the current one.
pub const KEEP: usize = 4;
/// Size at which a log file rotates.
pub const MAX_SIZE: u64 = 10 * 1024 * 1024;

/// A log file being written.
pub struct LogWriter {
    path: PathBuf,
    file: fs::File,
    size: u64,
    max_size: u64,
}

impl LogWriter {
    pub fn open(path: &Path, max_size: u64) -> Result<LogWriter> {
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(format!("open log {}", path.display())))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
        })
    }

    /// Write one record.
    pub fn record(&mut self, stream: &str, partial: bool, text: &[u8]) {
        let ts = humantime::format_rfc3339_nanos(SystemTime::now());
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(
            format!("{ts} {stream} {} ", if partial { "P" } else { "F" }).as_bytes(),
        );
        line.extend_from_slice(text);
        line.push(b'\n');
        if self.size + line.len() as u64 > self.max_size && self.size > 0 {
            self.rotate();
        }
        if self.file.write_all(&line).is_ok() {
            self.size += line.len() as u64;
        }
    }

    /// Reopen the file (after a `ReopenContainerLog`, or an outside rotation).
    pub fn reopen(&mut self) -> Result<()> {
        *self = LogWriter::open(&self.path.clone(), self.max_size)?;
        Ok(())
    }

    fn rotate(&mut self) {
        let name = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = fs::remove_file(name(KEEP));
        for n in (1..KEEP).rev() {
            let _ = fs::rename(name(n), name(n + 1));
        }
        let _ = fs::rename(&self.path, name(1));
        if let Ok(w) = LogWriter::open(&self.path.clone(), self.max_size) {
            *self = w;
        }
    }
}

/// Splits a stream into records: complete lines, and partial records of long lines.
#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feed bytes; `emit(partial, text)` gets each record.
    pub fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(bool, &[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            let mut s = start;
            while end - s > MAX_LINE {
                emit(true, &self.buf[s..s + MAX_LINE]);
                s += MAX_LINE;
            }
            emit(false, &self.buf[s..end]);
            start = end + 1;
        }
        self.buf.drain(..start);
        while self.buf.len() > MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            emit(true, &self.buf);
            self.buf = rest;
        }
    }

    /// End of the stream: what is left is a last, unterminated line.
    pub fn finish(&mut self, emit: &mut dyn FnMut(bool, &[u8])) {
        if !self.buf.is_empty() {
            emit(false, &self.buf);
            self.buf.clear();
        }
    }
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: String,
    pub stream: String,
    pub partial: bool,
    pub text: Vec<u8>,
}

pub fn parse_record(line: &[u8]) -> Option<Record> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let stream = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default().to_vec();
    Some(Record {
        time,
        stream,
        partial: tag == b"P",
        text,
    })
}

/// What to show of a log.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only records at or after this time.
    pub since: Option<SystemTime>,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
}

/// Print the records of a log file to `out` as the container wrote them (partials joined).
/// Returns the offset read up to (for following).
pub fn copy(path: &Path, q: &LogQuery, out: &mut dyn Write) -> Result<u64> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(super::error::Error::Io {
                step: format!("open {}", path.display()),
                err: e,
            });
        }
    };
    let mut r = std::io::BufReader::new(f);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let n = r
            .read_until(b'\n', &mut raw)
            .map_err(io(format!("read {}", path.display())))?;
        if n == 0 || raw.last() != Some(&b'\n') {
            break; // the writer is mid-record: leave it for the next read
        }
        offset += n as u64;
        let Some(rec) = parse_record(&raw[..raw.len() - 1]) else {
            continue;
        };
        if let Some(since) = q.since {
            match humantime::parse_rfc3339(&rec.time) {
                Ok(t) if t < since => continue,
                _ => {}
            }
        }
        if current.is_empty() && q.timestamps {
            current.extend_from_slice(rec.time.as_bytes());
            current.push(b' ');
        }
        current.extend_from_slice(&rec.text);
        if !rec.partial {
            current.push(b'\n');
            lines.push(std::mem::take(&mut current));
        }
    }
    let skip = q.tail.map_or(0, |t| lines.len().saturating_sub(t));
    for l in &lines[skip..] {
        out.write_all(l).map_err(io("write logs"))?;
    }
    Ok(offset)
}

/// Follow a log file from `offset` until `done()` says the writer finished and nothing more
/// came; handles rotation (the file shrinking or being replaced).
pub fn follow(
    path: &Path,
    mut offset: u64,
    q: &LogQuery,
    out: &mut dyn Write,
    done: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let mut ino = inode(path);
    let mut idle_after_done = 0;
    loop {
        let mut progressed = false;
        if let Ok(mut f) = fs::File::open(path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if inode(path) != ino || len < offset {
                offset = 0; // rotated
                ino = inode(path);
            }
            if len > offset {
                f.seek(SeekFrom::Start(offset)).map_err(io("seek log"))?;
                let mut buf = Vec::new();
                f.take(len - offset)
                    .read_to_end(&mut buf)
                    .map_err(io("read log"))?;
                let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                for line in buf[..complete]
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                {
                    if let Some(rec) = parse_record(line) {
                        // a reader that went away ends the follow
                        if q.timestamps {
                            out.write_all(format!("{} ", rec.time).as_bytes())
                                .map_err(io("write logs"))?;
                        }
                        out.write_all(&rec.text).map_err(io("write logs"))?;
                        if !rec.partial {
                            out.write_all(b"\n").map_err(io("write logs"))?;
                        }
                    }
                }
                out.flush().map_err(io("write logs"))?;
                offset += complete as u64;
                progressed = complete > 0;
            }
        }
        if !progressed {
            if done() {
                idle_after_done += 1;
                if idle_after_done > 2 {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn inode(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_into_full_and_partial_records() {
        let mut s = LineSplitter::default();
        let mut got: Vec<(bool, Vec<u8>)> = Vec::new();
        s.feed(b"one\ntw", &mut |p, t| got.push((p, t.to_vec())));
        s.feed(b"o\n", &mut |p, t| got.push((p, t.to_vec())));
        let long = vec![b'x'; MAX_LINE + 10];
        s.feed(&long, &mut |p, t| got.push((p, t.to_vec())));
        s.feed(b"\nend", &mut |p, t| got.push((p, t.to_vec())));
        s.finish(&mut |p, t| got.push((p, t.to_vec())));
        assert_eq!(got[0], (false, b"one".to_vec()));
        assert_eq!(got[1], (false, b"two".to_vec()));
        assert_eq!(got[2], (true, vec![b'x'; MAX_LINE]));
        assert_eq!(got[3], (false, vec![b'x'; 10]));
        assert_eq!(got[4], (false, b"end".to_vec()));
    }

    #[test]
    fn records_round_trip_and_rotate() {
        let dir = std::env::temp_dir().join(format!("berth-logs-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let p = dir.join("0.log");
        let mut w = LogWriter::open(&p, 200).unwrap();
        w.record("stdout", true, b"hel");
        w.record("stdout", false, b"lo");
        w.record("stderr", false, b"oops");
        let text = fs::read_to_string(&p).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.ends_with(" stdout P hel") && first.contains('T') && first.contains('Z'),
            "{first}"
        );
        let mut out = Vec::new();
        copy(&p, &LogQuery::default(), &mut out).unwrap();
        assert_eq!(out, b"hello\noops\n");
        let mut tail = Vec::new();
        copy(
            &p,
            &LogQuery {
                tail: Some(1),
                ..Default::default()
            },
            &mut tail,
        )
        .unwrap();
        assert_eq!(tail, b"oops\n");
        for _ in 0..10 {
            w.record("stdout", false, b"0123456789012345678901234567890123456789");
        }
        assert!(dir.join("0.log.1").exists(), "no rotation");
        assert!(fs::metadata(&p).unwrap().len() <= 200);
        fs::remove_dir_all(&dir).unwrap();
    }
}
