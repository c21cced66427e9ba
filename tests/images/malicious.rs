//! Malicious layers: every way out of a snapshot an attacker could write into a tar, applied
//! alone, on top of a lower layer (through the overlay) and by the copy fallback. Nothing may
//! land outside; a refused layer names the entry and leaves no snapshot, mount or bundle.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::common::test_base;
use super::harness::*;

static N: AtomicUsize = AtomicUsize::new(0);

/// The modes every layer is tried in.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The layer alone: extracted straight into its snapshot directory.
    Alone,
    /// On top of a lower layer: extracted through an overlay of the snapshots below.
    OnLower,
    /// The copy fallback (`image unpack --copy`).
    Copy,
}

const MODES: [Mode; 3] = [Mode::Alone, Mode::OnLower, Mode::Copy];

/// A benign lower layer with its own /etc/passwd.
fn lower() -> Vec<u8> {
    layer(&[
        Entry::Dir(b"etc"),
        Entry::File(b"etc/passwd", b"image-passwd\n"),
        Entry::Dir(b"tmp"),
    ])
}

struct Outcome {
    ok: bool,
    stderr: String,
    rootfs: PathBuf,
    store: Store,
}

/// Import an image of `evil` (in `mode`) into a store of its own and unpack it.
fn unpack(evil: Vec<u8>, mode: Mode) -> Outcome {
    let s = Store::new("evil");
    let n = N.fetch_add(1, Ordering::SeqCst);
    let layers = match mode {
        Mode::OnLower => vec![lower(), evil],
        _ => vec![evil],
    };
    let layout = s.path(&format!("layout{n}"));
    write_layout(&layout, "evil", &layers, None);
    let name = format!("localhost/evil{n}");
    s.ok(&["image", "import", "--name", &name, layout.to_str().unwrap()]);
    let bundle = s.path(&format!("bundle{n}"));
    let mut args = vec!["image", "unpack"];
    if matches!(mode, Mode::Copy) {
        args.push("--copy");
    }
    args.extend([name.as_str(), bundle.to_str().unwrap()]);
    let out = s.berth(&args);
    let ok = out.status.success();
    if !ok {
        assert!(
            !bundle.exists(),
            "{mode:?}: a failed unpack left {}",
            bundle.display()
        );
        let snaps = s.snapshots();
        let lowers = usize::from(matches!(mode, Mode::OnLower));
        assert!(
            snaps.len() <= lowers,
            "{mode:?}: a refused layer left a snapshot: {snaps:?}"
        );
        s.assert_no_leftovers();
    }
    Outcome {
        ok,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        rootfs: bundle.join("rootfs"),
        store: s,
    }
}

/// Every place a name could land if an entry escaped.
fn assert_nowhere(o: &Outcome, name: &str) {
    let s = &o.store;
    let mut places: Vec<PathBuf> = vec![
        PathBuf::from("/"),
        PathBuf::from("/tmp"),
        test_base(),
        s.dir.clone(),
        s.root.clone(),
        s.root.join("snapshots"),
    ];
    for snap in s.snapshots() {
        places.push(s.root.join("snapshots").join(snap));
    }
    for p in places {
        assert!(
            fs::symlink_metadata(p.join(name)).is_err(),
            "{name} escaped into {}",
            p.display()
        );
    }
}

fn uniq(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

#[test]
fn dotdot_entries_are_refused() {
    for mode in MODES {
        let name = uniq("escaped");
        for path in [
            format!("../../../../../../../{name}"),
            format!("a/../../{name}"),
            format!("./x/../../../{name}"),
        ] {
            let o = unpack(
                layer(&[Entry::Dir(b"a"), Entry::File(path.as_bytes(), b"pwned")]),
                mode,
            );
            assert!(!o.ok, "{mode:?}: {path} accepted");
            assert!(
                o.stderr.contains("climbs above") && o.stderr.contains(&name),
                "{mode:?}: {}",
                o.stderr
            );
            assert_nowhere(&o, &name);
        }
    }
}

#[test]
fn absolute_paths_land_inside() {
    for mode in MODES {
        let name = uniq("abs");
        let o = unpack(
            layer(&[
                Entry::File(format!("/{name}").as_bytes(), b"inside"),
                Entry::File(format!("/tmp/{name}").as_bytes(), b"inside"),
            ]),
            mode,
        );
        assert!(o.ok, "{mode:?}: {}", o.stderr);
        assert_eq!(fs::read_to_string(o.rootfs.join(&name)).unwrap(), "inside");
        assert_eq!(
            fs::read_to_string(o.rootfs.join("tmp").join(&name)).unwrap(),
            "inside"
        );
        assert_nowhere(&o, &name);
    }
}

#[test]
fn symlinked_parents_cannot_lead_out() {
    let s = Store::new("evil-symlink");
    let outside = s.path("outside");
    fs::create_dir_all(&outside).unwrap();
    for mode in MODES {
        // an absolute symlink is resolved inside the snapshot (where the target does not exist)
        let name = uniq("pwned");
        let target = outside.display().to_string();
        let o = unpack(
            layer(&[
                Entry::Symlink(b"evil", target.as_bytes()),
                Entry::File(format!("evil/{name}").as_bytes(), b"x"),
            ]),
            mode,
        );
        assert!(
            !fs::exists(outside.join(&name)).unwrap(),
            "{mode:?}: wrote through an absolute symlink to the host"
        );
        if o.ok {
            assert!(fs::exists(o.rootfs.join(target.trim_start_matches('/')).join(&name)).unwrap());
        } else {
            assert!(
                o.stderr.contains(&format!("evil/{name}")),
                "{mode:?}: {}",
                o.stderr
            );
        }
        // a relative one that climbs: clamped at the snapshot's root
        let name = uniq("pwned-rel");
        let o = unpack(
            layer(&[
                Entry::Symlink(b"up", b"../../../../../../../.."),
                Entry::File(format!("up/{name}").as_bytes(), b"x"),
            ]),
            mode,
        );
        assert!(o.ok, "{mode:?}: {}", o.stderr);
        assert_eq!(fs::read_to_string(o.rootfs.join(&name)).unwrap(), "x");
        assert_nowhere(&o, &name);
        // a directory replaced by a symlink to the host's /tmp, then written through
        let name = uniq("pwned-swap");
        let o = unpack(
            layer(&[
                Entry::Dir(b"d"),
                Entry::Symlink(b"d", b"/tmp"),
                Entry::File(format!("d/{name}").as_bytes(), b"x"),
            ]),
            mode,
        );
        assert!(
            !fs::exists(Path::new("/tmp").join(&name)).unwrap(),
            "{mode:?}: wrote into the host's /tmp"
        );
        if o.ok {
            assert_eq!(
                fs::read_to_string(o.rootfs.join("tmp").join(&name)).unwrap(),
                "x"
            );
        }
        assert_nowhere(&o, &name);
    }
    assert_eq!(entries(&outside), Vec::<String>::new());
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let host = fs::metadata("/etc/passwd").unwrap();
    for mode in MODES {
        let o = unpack(
            layer(&[Entry::Hardlink(b"h1", b"../../../../../../../etc/passwd")]),
            mode,
        );
        assert!(
            !o.ok && o.stderr.contains("hardlink target") && o.stderr.contains("climbs above"),
            "{mode:?}: {}",
            o.stderr
        );
        // absolute targets resolve inside: the image's own /etc/passwd, if it has one
        let o = unpack(layer(&[Entry::Hardlink(b"h2", b"/etc/passwd")]), mode);
        match mode {
            Mode::OnLower => {
                assert!(o.ok, "{}", o.stderr);
                assert_eq!(
                    fs::read_to_string(o.rootfs.join("h2")).unwrap(),
                    "image-passwd\n"
                );
            }
            _ => assert!(
                !o.ok && o.stderr.contains("\"h2\"") && o.stderr.contains("hardlink target"),
                "{mode:?}: {}",
                o.stderr
            ),
        }
        // through a symlink to the host's /etc
        let o = unpack(
            layer(&[
                Entry::Symlink(b"s", b"/etc"),
                Entry::Hardlink(b"h3", b"s/passwd"),
            ]),
            mode,
        );
        if o.ok {
            assert_eq!(
                fs::read_to_string(o.rootfs.join("h3")).unwrap(),
                "image-passwd\n",
                "{mode:?}"
            );
        } else {
            assert!(o.stderr.contains("\"h3\""), "{mode:?}: {}", o.stderr);
        }
        // to a directory
        let o = unpack(
            layer(&[Entry::Dir(b"dir"), Entry::Hardlink(b"h4", b"dir")]),
            mode,
        );
        assert!(
            !o.ok && o.stderr.contains("hardlink to a directory"),
            "{mode:?}: {}",
            o.stderr
        );
    }
    let after = fs::metadata("/etc/passwd").unwrap();
    assert_eq!(
        (after.nlink(), after.ino(), after.size()),
        (host.nlink(), host.ino(), host.size()),
        "the host's /etc/passwd changed"
    );
}

#[test]
fn whiteouts_of_dot_and_dotdot_are_refused() {
    for mode in MODES {
        for wh in [&b"a/.wh..."[..], b"a/.wh..", b".wh...", b".wh."] {
            let o = unpack(
                layer(&[
                    Entry::Dir(b"a"),
                    Entry::File(b"a/keep", b"k"),
                    Entry::File(wh, b""),
                ]),
                mode,
            );
            assert!(
                !o.ok && o.stderr.contains("whiteout of no file"),
                "{mode:?} {}: {}",
                String::from_utf8_lossy(wh),
                o.stderr
            );
        }
    }
}

#[test]
fn pathological_names() {
    for mode in MODES {
        let long = vec![b'n'; 300];
        let o = unpack(layer(&[Entry::File(&long, b"x")]), mode);
        assert!(
            !o.ok && o.stderr.contains("File name too long"),
            "{mode:?}: {}",
            o.stderr
        );
        // odd but legal names are kept byte for byte
        let deep: Vec<u8> = b"d/".repeat(120).into_iter().chain(*b"leaf").collect();
        let o = unpack(
            layer(&[
                Entry::File(b"new\nline", b"1"),
                Entry::File(b"bad-\xff\xfe-utf8", b"2"),
                Entry::File(b"-dash", b"3"),
                Entry::File(&deep, b"4"),
                Entry::File(b"./././dots", b"5"),
            ]),
            mode,
        );
        assert!(o.ok, "{mode:?}: {}", o.stderr);
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(fs::read_to_string(o.rootfs.join("new\nline")).unwrap(), "1");
        assert_eq!(
            fs::read_to_string(
                o.rootfs
                    .join(std::ffi::OsStr::from_bytes(b"bad-\xff\xfe-utf8"))
            )
            .unwrap(),
            "2"
        );
        assert_eq!(
            fs::read_to_string(o.rootfs.join(std::ffi::OsStr::from_bytes(&deep))).unwrap(),
            "4"
        );
        assert_eq!(fs::read_to_string(o.rootfs.join("dots")).unwrap(), "5");
    }
}

#[test]
fn overlay_xattrs_malformed_tars_and_wrong_diff_ids_are_refused() {
    let s = Store::new("evil-misc");
    for mode in MODES {
        let o = unpack(
            layer(&[Entry::Xattr(b"f", "trusted.overlay.opaque", b"y")]),
            mode,
        );
        assert!(
            !o.ok && o.stderr.contains("reserved for overlayfs"),
            "{mode:?}: {}",
            o.stderr
        );
        let o = unpack(layer(&[Entry::Xattr(b"f", "user.fine", b"ok")]), mode);
        assert!(o.ok, "{mode:?}: {}", o.stderr);
        assert_eq!(
            xattr::get(o.rootfs.join("f"), "user.fine").unwrap(),
            Some(b"ok".to_vec())
        );
        // a tar cut in the middle of a file
        let mut cut = layer(&[Entry::File(b"big", &noise(100_000, 5))]);
        cut.truncate(50_000);
        let o = unpack(cut, mode);
        assert!(
            !o.ok && o.stderr.contains("layer sha256:"),
            "{mode:?}: {}",
            o.stderr
        );
        // garbage
        let o = unpack(noise(10_000, 9), mode);
        assert!(
            !o.ok && o.stderr.contains("layer sha256:"),
            "{mode:?}: {}",
            o.stderr
        );
    }
    // a layer that is not what the config's diff_id promises
    let layout = s.path("layout-diffid");
    let l = layer(&[Entry::File(b"a", b"a")]);
    write_layout(&layout, "x", &[l], Some(vec![sha256(b"something else")]));
    s.ok(&[
        "image",
        "import",
        "--name",
        "localhost/diffid",
        layout.to_str().unwrap(),
    ]);
    let before = s.snapshots();
    for copy in [false, true] {
        let b = s.path(&format!("bundle-diffid-{copy}"));
        let mut args = vec!["image", "unpack"];
        if copy {
            args.push("--copy");
        }
        args.extend(["localhost/diffid", b.to_str().unwrap()]);
        let err = s.fails(&args);
        assert!(
            err.contains("diff_id") && err.contains("digest mismatch"),
            "{err}"
        );
        assert!(!b.exists());
    }
    assert_eq!(s.snapshots(), before);
    s.assert_no_leftovers();
}
