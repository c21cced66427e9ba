//! A volume's files written as kubelet's atomic writer does, so a reader in the container
//! sees the old set of files or the new one, never a mix nor a half-written file:
//!
//! ```text
//! <volume>/..2026_12_05_05_30_00.123456789/<path>   this version's files
//! <volume>/..data -> ..2026_12_05_05_30_00.123456789  swapped by one rename
//! <volume>/<top> -> ..data/<top>                     one link per top-level name
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::Result;
use crate::volume::error_io as io;

/// One file of a volume: its path (relative, checked), content and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Make `dir`'s content `files` (unchanged files are rewritten too: versions are whole).
pub fn write(dir: &Path, files: &[File]) -> Result<()> {
    fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let stamp = humantime::format_rfc3339_nanos(std::time::SystemTime::now())
        .to_string()
        .replace(['-', ':', 'T'], "_")
        .trim_end_matches('Z')
        .to_string();
    let version = format!("..{stamp}");
    let vdir = dir.join(&version);
    fs::create_dir(&vdir).map_err(io(format!("create {}", vdir.display())))?;
    fs::set_permissions(&vdir, fs::Permissions::from_mode(0o755)).ok();
    for f in files {
        let p = vdir.join(&f.path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        fs::write(&p, &f.bytes).map_err(io(format!("write {}", p.display())))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(f.mode))
            .map_err(io(format!("set the mode of {}", p.display())))?;
    }
    // the swap
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&version, &tmp).map_err(io(format!("link {}", tmp.display())))?;
    fs::rename(&tmp, dir.join("..data"))
        .map_err(io(format!("swap {}", dir.join("..data").display())))?;
    // top-level links: add the new, remove the gone
    let tops: BTreeSet<&str> = files
        .iter()
        .filter_map(|f| f.path.split('/').next())
        .collect();
    for t in &tops {
        let link = dir.join(t);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{t}"), &link)
                .map_err(io(format!("link {}", link.display())))?;
        }
    }
    for e in fs::read_dir(dir)
        .map_err(io(format!("read {}", dir.display())))?
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        let stale_link = !n.starts_with("..") && !tops.contains(n.as_str());
        let stale_version = n.starts_with("..") && n != "..data" && n != version;
        if stale_link {
            let _ = fs::remove_file(e.path());
        } else if stale_version && e.path().is_dir() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_swap_whole_and_stale_names_go() {
        let d = std::env::temp_dir().join(format!("berth-project-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let d = Dir(d);
        let f = |p: &str, b: &str| File {
            path: p.into(),
            bytes: b.into(),
            mode: 0o644,
        };
        write(d.path(), &[f("a", "1"), f("sub/b", "2")]).unwrap();
        assert_eq!(fs::read_to_string(d.path().join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(d.path().join("sub/b")).unwrap(), "2");
        let first = fs::read_link(d.path().join("..data")).unwrap();
        write(d.path(), &[f("a", "3"), f("c", "4")]).unwrap();
        assert_eq!(fs::read_to_string(d.path().join("a")).unwrap(), "3");
        assert_eq!(fs::read_to_string(d.path().join("c")).unwrap(), "4");
        assert!(fs::symlink_metadata(d.path().join("sub")).is_err());
        assert!(!d.path().join(first).exists());
        let mut names: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4, "{names:?}"); // ..<version>, ..data, a, c
    }

    /// A directory removed when the test ends, even by a panic.
    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
