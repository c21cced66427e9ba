//! Fuzz the layer extractor: any byte string, as a layer (tar, gzip or zstd), applied to a
//! fresh tree that holds a symlink pointing out of it. Whatever the input does, nothing
//! outside the tree may change: the sibling directory keeps exactly its canary.
#![no_main]

use std::fs;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

static N: AtomicUsize = AtomicUsize::new(0);

fn base() -> PathBuf {
    PathBuf::from(
        std::env::var("BERTH_FUZZ_DIR")
            .unwrap_or_else(|_| format!("/run/berth-fuzz-{}", std::process::id())),
    )
}

fuzz_target!(|data: &[u8]| {
    let dir = base().join(N.fetch_add(1, Ordering::Relaxed).to_string());
    let (root, outside) = (dir.join("root"), dir.join("outside"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("canary"), "canary").unwrap();
    std::os::unix::fs::symlink("../outside", root.join("escape")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("abs-escape")).unwrap();
    let fd = nix::fcntl::open(
        &root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let _ = berth::image::extract::apply(
        fd.as_fd(),
        "fuzz",
        Box::new(std::io::Cursor::new(data.to_vec())),
    );
    drop(fd);
    let mut around: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    around.sort();
    assert_eq!(
        around,
        ["outside", "root"],
        "the layer wrote beside its root"
    );
    let mut inside: Vec<String> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, ["canary"], "the layer wrote outside its root");
    assert_eq!(
        fs::read_to_string(outside.join("canary")).unwrap(),
        "canary"
    );
    // directories without write permission for the owner are still removable by root
    fs::remove_dir_all(&dir).unwrap();
});
