//! `/proc/<pid>/mountinfo`: which mounts there are, where, and how they propagate.

use std::path::{Path, PathBuf};

/// One line of mountinfo (`36 25 0:31 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u32,
    pub parent: u32,
    /// The path of the mounted filesystem that is seen here (`/` unless a bind of a subtree).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
}

impl Entry {
    /// Mounts and unmounts below it propagate to its peers (`shared:N`).
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }

    /// It receives mounts from a master (`master:N`).
    pub fn is_slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }
}

/// Undo mountinfo's octal escapes of space, tab, newline and backslash.
pub fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Parse a mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Entry> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split_whitespace();
    let id = l.next()?.parse().ok()?;
    let parent = l.next()?.parse().ok()?;
    let _dev = l.next()?;
    let root = PathBuf::from(unescape(l.next()?));
    let mount_point = PathBuf::from(unescape(l.next()?));
    let _opts = l.next()?;
    let optional = l.map(String::from).collect();
    let mut r = right.split_whitespace();
    Some(Entry {
        id,
        parent,
        root,
        mount_point,
        optional,
        fs_type: r.next()?.to_string(),
        source: unescape(r.next().unwrap_or("")),
    })
}

/// The mounts of this process's mount namespace.
pub fn read() -> std::io::Result<Vec<Entry>> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|t| parse(&t))
}

/// The mount that holds `path` (an absolute, symlink-free path): the one with the longest
/// mount point above it, the last mounted of those on the same point (it is on top).
pub fn containing<'a>(mounts: &'a [Entry], path: &Path) -> Option<&'a Entry> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m)
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub fn below(mounts: &[Entry], dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| m.mount_point.starts_with(dir))
        .map(|m| m.mount_point.clone())
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
        40 27 0:50 / /mnt/a\\040b rw master:3 - tmpfs tmpfs rw\n\
        41 27 0:51 /sub /mnt rw - tmpfs none rw\n\
        42 41 0:52 / /mnt/x rw shared:7 master:2 - tmpfs t rw\n\
        bad line\n";

    #[test]
    fn parses_fields_and_propagation() {
        let m = parse(TEXT);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].mount_point, PathBuf::from("/mnt/a b"));
        assert!(m[0].is_shared() && !m[0].is_slave());
        assert!(m[1].is_slave() && !m[1].is_shared());
        assert!(m[3].is_shared() && m[3].is_slave());
        assert_eq!(m[2].root, PathBuf::from("/sub"));
        assert_eq!(m[3].fs_type, "tmpfs");
    }

    #[test]
    fn finds_the_mount_holding_a_path() {
        let m = parse(TEXT);
        assert_eq!(containing(&m, Path::new("/etc")).unwrap().id, 27);
        assert_eq!(containing(&m, Path::new("/mnt/x/y")).unwrap().id, 42);
        assert_eq!(containing(&m, Path::new("/mnt/a b/c")).unwrap().id, 40);
        assert_eq!(containing(&m, Path::new("/mnt/other")).unwrap().id, 41);
        assert_eq!(
            below(&m, Path::new("/mnt")),
            vec![PathBuf::from("/mnt/a b"), "/mnt/x".into(), "/mnt".into()]
        );
    }
}
