//! Snapshots and bundles: whiteouts and every entry type as the kernel sees them, overlay
//! rootfs vs copy fallback, shared snapshots, leases, prune, and bundles that `berth run` runs.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;

use super::harness::*;

/// The tree of the `multi` fixture: three layers folded, whiteouts applied.
fn assert_multi_tree(rootfs: &Path) {
    let data = rootfs.join("data");
    assert_eq!(fs::read_to_string(data.join("keep")).unwrap(), "kept\n");
    // file whiteout, directory whiteout, opaque directory
    assert!(
        !data.join("gone").exists(),
        "data/gone survived its whiteout"
    );
    assert!(
        !rootfs.join("olddir").exists(),
        "olddir survived its whiteout"
    );
    let mut opq: Vec<String> = entries(&rootfs.join("opq"));
    opq.sort();
    assert_eq!(
        opq,
        vec!["new"],
        "the opaque marker must hide the lower opq/ entries"
    );
    for n in ["keep", "h1", "h2", "sym", "fifo", "suid", "owned", "attr"] {
        assert!(
            fs::symlink_metadata(data.join(n)).is_ok(),
            "data/{n} missing"
        );
    }
    assert!(
        entries(&data).iter().all(|n| !n.starts_with(".wh.")),
        "whiteout files leaked: {:?}",
        entries(&data)
    );
    // hardlinks share an inode
    let (h1, h2) = (
        fs::metadata(data.join("h1")).unwrap(),
        fs::metadata(data.join("h2")).unwrap(),
    );
    assert_eq!((h1.ino(), h1.nlink()), (h2.ino(), 2));
    // symlink, fifo, modes, owners, xattrs, times
    assert_eq!(fs::read_link(data.join("sym")).unwrap(), Path::new("keep"));
    assert!(
        fs::metadata(data.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        fs::metadata(data.join("suid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    let owned = fs::metadata(data.join("owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o777),
        (1000, 1000, 0o640)
    );
    assert_eq!(
        xattr::get(data.join("attr"), "user.berth").unwrap(),
        Some(b"yes".to_vec())
    );
    assert_eq!(
        h1.mtime(),
        981173106,
        "mtime of data/h1 (2001-02-03T04:05:06Z)"
    );
    assert_eq!(
        fs::symlink_metadata(data.join("sym")).unwrap().mtime(),
        981173106
    );
    assert_eq!(
        fs::metadata(rootfs.join("bin/busybox"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0o111
    );
}

#[test]
fn whiteouts_and_entry_types_on_an_overlay_rootfs_that_runs() {
    let reg = Registry::fixtures("open");
    let r = format!("{}/berth/multi", reg.host());
    let s = Store::new("unpack-multi");
    s.ok(&["image", "pull", &r]);
    let b = s.path("bundle");
    s.ok(&["image", "unpack", &r, b.to_str().unwrap()]);
    let rootfs = b.join("rootfs");
    // an overlay of the three snapshots (top first) with the bundle's own upper dir
    let mi = mountinfo(&rootfs).expect("rootfs is a mount");
    assert!(mi.contains(" - overlay overlay "), "{mi}");
    let snaps = s.root.join("snapshots").display().to_string();
    assert_eq!(mi.matches(&snaps).count(), 3, "three lower snapshots: {mi}");
    assert!(
        mi.contains(&format!("upperdir={}/.berth/upper", b.display())),
        "{mi}"
    );
    assert_multi_tree(&rootfs);
    // config.json from the image config
    let cfg: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["process"]["args"],
        serde_json::json!([
            "/bin/sh",
            "-c",
            "id -u; id -g; pwd; echo $GREETING; cat keep"
        ])
    );
    assert_eq!(cfg["process"]["cwd"], "/data");
    assert_eq!(
        cfg["process"]["user"]["uid"], 1000,
        "User \"user\" resolved through the image's /etc/passwd"
    );
    assert!(
        cfg["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("GREETING=hello-multi"))
    );
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.exposedPorts"],
        "8080/tcp"
    );
    assert_eq!(cfg["annotations"]["org.example.role"], "test");
    let (code, out, err) = run_bundle(&s, &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1000\n1000\n/data\nhello-multi\nkept\n");
    // writes go to the bundle's upper dir, never into a snapshot
    fs::write(rootfs.join("data/keep"), "changed\n").unwrap();
    assert_eq!(
        fs::read_to_string(b.join(".berth/upper/data/keep")).unwrap(),
        "changed\n"
    );
    let lower_keep: Vec<String> = s
        .snapshots()
        .iter()
        .filter_map(|d| {
            fs::read_to_string(s.root.join("snapshots").join(d).join("fs/data/keep")).ok()
        })
        .collect();
    assert_eq!(lower_keep, vec!["kept\n"]);
    // the lease keeps the snapshots through rm + prune while the bundle is mounted
    s.ok(&["image", "rm", &r]);
    assert_eq!(s.snapshots().len(), 3, "leased snapshots were pruned");
    s.ok(&["image", "unmount", b.to_str().unwrap()]);
    assert!(mountinfo(&rootfs).is_none(), "rootfs still mounted");
    s.ok(&["image", "prune"]);
    assert_eq!(s.snapshots(), Vec::<String>::new());
    assert_eq!(s.blobs(), Vec::<String>::new());
    s.assert_no_leftovers();
}

#[test]
fn the_copy_fallback_makes_the_same_tree() {
    let reg = Registry::fixtures("open");
    let r = format!("{}/berth/multi", reg.host());
    let s = Store::new("unpack-copy");
    s.ok(&["image", "pull", "--no-unpack", &r]);
    assert_eq!(s.snapshots(), Vec::<String>::new(), "--no-unpack unpacked");
    let b = s.path("bundle");
    s.ok(&["image", "unpack", "--copy", &r, b.to_str().unwrap()]);
    assert!(
        mountinfo(&b.join("rootfs")).is_none(),
        "a copy is not a mount"
    );
    assert_eq!(
        s.snapshots(),
        Vec::<String>::new(),
        "a copy needs no snapshots"
    );
    assert_multi_tree(&b.join("rootfs"));
    let (code, out, err) = run_bundle(&s, &b);
    assert_eq!(
        (code, out.as_str()),
        (0, "1000\n1000\n/data\nhello-multi\nkept\n"),
        "{err}"
    );
}

#[test]
fn layers_are_unpacked_once_and_shared() {
    let reg = Registry::fixtures("open");
    let s = Store::new("unpack-shared");
    let base = format!("{}/berth/base", reg.host());
    let multi = format!("{}/berth/multi", reg.host());
    s.ok(&["image", "pull", &base]);
    let after_base = s.snapshots();
    assert_eq!(after_base.len(), 1);
    s.ok(&["image", "pull", &multi]);
    let all = s.snapshots();
    assert_eq!(all.len(), 3, "multi reuses base's snapshot: {all:?}");
    assert!(all.contains(&after_base[0]));
    // two bundles of one image: the same lower dirs, each its own upper
    let (b1, b2) = (s.path("b1"), s.path("b2"));
    s.ok(&["image", "unpack", &multi, b1.to_str().unwrap()]);
    s.ok(&["image", "unpack", &multi, b2.to_str().unwrap()]);
    let lower = |b: &Path| {
        let mi = mountinfo(&b.join("rootfs")).unwrap();
        mi.split("lowerdir=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(lower(&b1), lower(&b2));
    fs::write(b1.join("rootfs/only-in-b1"), "1").unwrap();
    assert!(!b2.join("rootfs/only-in-b1").exists());
    // tag, ls, df, rm of one name keeps what the other uses
    s.ok(&["image", "tag", &multi, "localhost/again:v2"]);
    let names = s.names();
    assert!(
        names.contains(&"localhost/again:v2".to_string()),
        "{names:?}"
    );
    let ls = s.ok(&["image", "ls"]);
    assert!(
        ls.contains("localhost/again:v2") && ls.contains("IMAGE ID"),
        "{ls}"
    );
    let df: Value = serde_json::from_str(&s.ok(&["image", "df", "--format", "json"])).unwrap();
    assert_eq!(df["images"], 3);
    assert!(
        df["blobs"].as_u64().unwrap() > 1_000_000 && df["snapshots"].as_u64().unwrap() > 1_000_000,
        "{df}"
    );
    s.ok(&["image", "rm", &multi]);
    let err = s.fails(&["image", "inspect", &multi]);
    assert!(err.contains("not in the store"), "{err}");
    s.ok(&["image", "inspect", "localhost/again:v2"]);
    for b in [&b1, &b2] {
        s.ok(&["image", "unmount", b.to_str().unwrap()]);
    }
    s.ok(&["image", "rm", "localhost/again:v2", &base]);
    assert_eq!(s.names(), Vec::<String>::new());
    assert_eq!(s.snapshots(), Vec::<String>::new());
    assert_eq!(s.blobs(), Vec::<String>::new());
    s.assert_no_leftovers();
}

#[test]
fn unpack_errors_name_the_problem_and_leave_nothing() {
    let reg = Registry::fixtures("open");
    let s = Store::new("unpack-errors");
    let r = format!("{}/berth/base", reg.host());
    let b = s.path("bundle");
    let err = s.fails(&["image", "unpack", &r, b.to_str().unwrap()]);
    assert!(err.contains("not in the store"), "{err}");
    assert!(!b.exists(), "a bundle dir was left");
    s.ok(&["image", "pull", &r]);
    fs::create_dir_all(&b).unwrap();
    fs::write(b.join("config.json"), "{}").unwrap();
    let err = s.fails(&["image", "unpack", &r, b.to_str().unwrap()]);
    assert!(err.contains("already a bundle"), "{err}");
    assert_eq!(fs::read_to_string(b.join("config.json")).unwrap(), "{}");
    assert!(!b.join("rootfs").exists());
    let err = s.fails(&["image", "rm", "localhost/nothing"]);
    assert!(err.contains("localhost/nothing"), "{err}");
    s.assert_no_leftovers();
}
