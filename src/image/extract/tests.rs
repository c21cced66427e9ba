//! The extractor's rules on paths, and its thread's life.

use super::*;

#[test]
fn the_decompressor_thread_ends_before_apply_returns() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Not a tar; every read after the first takes 20 ms; says when it is dropped (by
    /// the thread that owns it, as it ends).
    struct Slow {
        left: usize,
        first: bool,
        gone: Arc<AtomicBool>,
    }
    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !std::mem::take(&mut self.first) {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let n = buf.len().min(self.left);
            buf[..n].fill(0xff);
            self.left -= n;
            Ok(n)
        }
    }
    impl Drop for Slow {
        fn drop(&mut self) {
            self.gone.store(true, Ordering::SeqCst);
        }
    }
    let dir = std::env::temp_dir().join(format!("berth-extract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = nix::fcntl::open(
        &dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let gone = Arc::new(AtomicBool::new(false));
    let src = Slow {
        left: 8 * CHUNK,
        first: true,
        gone: gone.clone(),
    };
    let _ = apply(root.as_fd(), "slow", Box::new(src));
    assert!(
        gone.load(Ordering::SeqCst),
        "the decompressor thread outlived apply"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn entry_paths_stay_inside() {
    assert_eq!(
        clean_entry_path(Path::new("./a/b/../c")).unwrap(),
        PathBuf::from("a/c")
    );
    assert_eq!(
        clean_entry_path(Path::new("/etc/passwd")).unwrap(),
        PathBuf::from("etc/passwd")
    );
    assert!(clean_entry_path(Path::new("a/../../etc")).is_err());
    assert!(clean_entry_path(Path::new("../x")).is_err());
    assert_eq!(clean_entry_path(Path::new("./")).unwrap(), PathBuf::new());
}

#[test]
fn sniffs_compression() {
    assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
    assert_eq!(
        Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
        Compression::Zstd
    );
    assert_eq!(Compression::sniff(b"usta"), Compression::None);
}
