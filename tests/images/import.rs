//! `image import`: OCI layout directories, oci-archives and docker-archives, with the names
//! they carry or `--name`; bad archives are refused without leaving blobs or names.

use std::fs;

use serde_json::Value;

use super::harness::*;

#[test]
fn an_oci_layout_needs_a_repository_for_its_short_tags() {
    let fx = images_fixture();
    let oci = fx.join("oci");
    let s = Store::new("import-layout");
    let err = s.fails(&["image", "import", oci.to_str().unwrap()]);
    assert!(err.contains("--name") && err.contains("\"base\""), "{err}");
    assert_eq!(s.names(), Vec::<String>::new());
    assert_eq!(
        s.blobs(),
        Vec::<String>::new(),
        "a failed import kept blobs"
    );
    let out = s.ok(&[
        "image",
        "import",
        "--name",
        "localhost/fx",
        oci.to_str().unwrap(),
    ]);
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "localhost/fx:arm64",
            "localhost/fx:base",
            "localhost/fx:multi",
            "localhost/fx:multiarch",
            "localhost/fx:plain",
            "localhost/fx:zstd"
        ]
    );
    let v: Value =
        serde_json::from_str(&s.ok(&["image", "inspect", "localhost/fx:arm64"])).unwrap();
    assert_eq!(v["config"]["architecture"], "arm64");
    let v: Value =
        serde_json::from_str(&s.ok(&["image", "inspect", "localhost/fx:multiarch"])).unwrap();
    assert_eq!(
        v["config"]["architecture"], "amd64",
        "the index entry for this host"
    );
    // zstd first in this store, so its layers are the ones inflated
    let b = s.path("bundle");
    s.ok(&["image", "unpack", "localhost/fx:zstd", b.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(b.join("rootfs/data/keep")).unwrap(),
        "kept\n"
    );
    assert!(!b.join("rootfs/data/gone").exists());
    s.ok(&["image", "unmount", b.to_str().unwrap()]);
    s.assert_no_leftovers();
}

#[test]
fn archives_oci_and_docker() {
    let fx = images_fixture();
    let s = Store::new("import-archives");
    let oci_tar = fx.join("base-oci.tar");
    let err = s.fails(&["image", "import", oci_tar.to_str().unwrap()]);
    assert!(err.contains("--name"), "{err}");
    assert_eq!(
        s.blobs(),
        Vec::<String>::new(),
        "a failed import kept blobs"
    );
    assert_eq!(
        s.ok(&[
            "image",
            "import",
            "--name",
            "localhost/base",
            oci_tar.to_str().unwrap()
        ])
        .trim(),
        "localhost/base:latest"
    );
    let docker_tar = fx.join("multi-docker.tar");
    assert_eq!(
        s.ok(&["image", "import", docker_tar.to_str().unwrap()])
            .trim(),
        "docker.io/berth/multi:v1"
    );
    let b = s.path("bundle");
    s.ok(&["image", "unpack", "berth/multi:v1", b.to_str().unwrap()]);
    let (code, out, err) = run_bundle(&s, &b);
    assert_eq!(
        (code, out.as_str()),
        (0, "1000\n1000\n/data\nhello-multi\nkept\n"),
        "{err}"
    );
    s.ok(&["image", "unmount", b.to_str().unwrap()]);
    let b2 = s.path("bundle2");
    s.ok(&["image", "unpack", "localhost/base", b2.to_str().unwrap()]);
    let (code, out, err) = run_bundle(&s, &b2);
    assert_eq!((code, out.as_str()), (0, "hello from base\n"), "{err}");
    s.ok(&["image", "unmount", b2.to_str().unwrap()]);
    s.assert_no_leftovers();
}

#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    let s = Store::new("import-bad");
    // not a tar at all
    let junk = s.path("junk.tar");
    fs::write(&junk, noise(4096, 3)).unwrap();
    let err = s.fails(&["image", "import", junk.to_str().unwrap()]);
    assert!(err.contains(junk.to_str().unwrap()), "{err}");
    // a tar that is neither kind
    let other = s.path("other.tar");
    fs::write(&other, layer(&[Entry::File(b"hello", b"hi")])).unwrap();
    let err = s.fails(&["image", "import", other.to_str().unwrap()]);
    assert!(
        err.contains("neither an oci-archive nor a docker-archive"),
        "{err}"
    );
    // a layout whose layer does not match its digest
    let l = s.path("layout");
    write_layout(&l, "x", &[layer(&[Entry::File(b"a", b"a")])], None);
    let idx: Value = serde_json::from_slice(&fs::read(l.join("index.json")).unwrap()).unwrap();
    let m: Value = serde_json::from_slice(
        &fs::read(
            l.join("blobs/sha256")
                .join(&idx["manifests"][0]["digest"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    let ld = m["layers"][0]["digest"].as_str().unwrap();
    fs::write(
        l.join("blobs/sha256").join(&ld[7..]),
        layer(&[Entry::File(b"a", b"b")]),
    )
    .unwrap();
    let err = s.fails(&[
        "image",
        "import",
        "--name",
        "localhost/x",
        l.to_str().unwrap(),
    ]);
    assert!(err.contains("digest mismatch") && err.contains(ld), "{err}");
    // a directory that is no layout, a missing path
    let err = s.fails(&["image", "import", s.dir.to_str().unwrap()]);
    assert!(err.contains("not an OCI image layout"), "{err}");
    let err = s.fails(&["image", "import", "/nonexistent/berth.tar"]);
    assert!(err.contains("/nonexistent/berth.tar"), "{err}");
    assert_eq!(s.names(), Vec::<String>::new());
    assert_eq!(s.blobs(), Vec::<String>::new(), "failed imports kept blobs");
    s.assert_no_leftovers();
}
