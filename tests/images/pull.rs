//! `image pull` from a real registry: manifest kinds, compressions, platforms, auth, corrupt
//! blobs, interrupted downloads, pulls of one image at once, and a second pull that downloads
//! nothing.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::*;

fn inspect(s: &Store, r: &str) -> Value {
    serde_json::from_str(&s.ok(&["image", "inspect", r])).unwrap()
}

#[test]
fn pulls_oci_docker_zstd_and_uncompressed_images() {
    let reg = Registry::fixtures("open");
    let h = reg.host();
    // Docker schema 2 and OCI manifests of the same one-layer image
    for (repo, mt) in [
        ("base", "application/vnd.oci.image.config.v1+json"),
        (
            "base-docker",
            "application/vnd.docker.container.image.v1+json",
        ),
    ] {
        let s = Store::new("pull-kind");
        let r = format!("{h}/berth/{repo}");
        assert_eq!(s.ok(&["image", "pull", &r]).trim(), format!("{r}:latest"));
        let v = inspect(&s, &r);
        assert_eq!(v["manifest"]["config"]["mediaType"], mt, "{repo}");
        assert_eq!(v["image"]["platform"], "linux/amd64");
        // the name resolves by image ID too
        let id = v["image"]["config"].as_str().unwrap()[7..19].to_string();
        assert_eq!(inspect(&s, &id)["name"], format!("{r}:latest"));
        assert_eq!(s.snapshots().len(), 1, "one layer, one snapshot");
        let b = s.path("bundle");
        s.ok(&["image", "unpack", &r, b.to_str().unwrap()]);
        let (code, out, err) = run_bundle(&s, &b);
        assert_eq!(
            (code, out.as_str()),
            (0, "hello from base\n"),
            "{repo}: {err}"
        );
        s.ok(&["image", "unmount", b.to_str().unwrap()]);
        s.assert_no_leftovers();
    }
    // zstd and uncompressed layers, each into a fresh store so that its layers are inflated
    for repo in ["zstd", "plain", "multi"] {
        let s = Store::new("pull-comp");
        let r = format!("{h}/berth/{repo}");
        s.ok(&["image", "pull", &r]);
        let v = inspect(&s, &r);
        let mts: Vec<&str> = v["manifest"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap())
            .collect();
        let want = match repo {
            "zstd" => "application/vnd.oci.image.layer.v1.tar+zstd",
            "plain" => "application/vnd.oci.image.layer.v1.tar",
            _ => "application/vnd.oci.image.layer.v1.tar+gzip",
        };
        assert!(mts.iter().all(|m| *m == want), "{repo}: {mts:?}");
        assert_eq!(
            s.snapshots().len(),
            3,
            "{repo}: three layers unpacked while pulling"
        );
        let b = s.path("bundle");
        s.ok(&["image", "unpack", &r, b.to_str().unwrap()]);
        let rootfs = b.join("rootfs");
        assert_eq!(
            fs::read_to_string(rootfs.join("data/keep")).unwrap(),
            "kept\n",
            "{repo}"
        );
        assert!(
            !rootfs.join("data/gone").exists(),
            "{repo}: whiteout not applied"
        );
        assert!(rootfs.join("bin/busybox").exists());
        s.ok(&["image", "unmount", b.to_str().unwrap()]);
        s.assert_no_leftovers();
    }
}

#[test]
fn an_index_gives_the_platform_asked_for() {
    let reg = Registry::fixtures("open");
    let r = format!("{}/berth/multiarch", reg.host());
    let s = Store::new("pull-platform");
    s.ok(&["image", "pull", &r]);
    let v = inspect(&s, &r);
    assert_eq!(v["config"]["architecture"], "amd64");
    assert!(v["image"]["index"].as_str().unwrap().starts_with("sha256:"));
    let amd = v["image"]["manifest"].clone();
    s.ok(&["image", "pull", "--platform", "linux/arm64", &r]);
    let v = inspect(&s, &r);
    assert_eq!(v["config"]["architecture"], "arm64");
    assert_eq!(v["image"]["platform"], "linux/arm64");
    assert_ne!(v["image"]["manifest"], amd);
    // a platform the index lacks: a clear error that lists what it has, and no new name
    let s2 = Store::new("pull-platform-bad");
    let err = s2.fails(&["image", "pull", "--platform", "linux/s390x", &r]);
    assert!(
        err.contains("no image for platform linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
    assert_eq!(s2.names(), Vec::<String>::new());
    s2.assert_no_leftovers();
    let err = s2.fails(&["image", "pull", "--platform", "linux", &r]);
    assert!(
        err.contains("--platform") && err.contains("os/arch"),
        "{err}"
    );
}

#[test]
fn a_second_pull_downloads_nothing() {
    let reg = Registry::fixtures("open");
    let r = format!("{}/berth/multi", reg.host());
    let s = Store::new("pull-twice");
    let first = s.ok_err(&["image", "pull", &r]);
    assert!(first.contains("3 to download"), "{first}");
    let blobs = reg.blob_requests().len();
    assert_eq!(
        blobs,
        4,
        "config and three layers: {:?}",
        reg.blob_requests()
    );
    let snaps = s.snapshots();
    let second = s.ok_err(&["image", "pull", &r]);
    assert!(second.contains("0 to download"), "{second}");
    assert_eq!(
        reg.blob_requests().len(),
        blobs,
        "the second pull fetched blobs: {:?}",
        reg.blob_requests()
    );
    assert!(!second.contains("unpacking"), "{second}");
    assert_eq!(s.snapshots(), snaps);
    // an image sharing the bottom layer downloads only what it lacks
    s.ok(&["image", "pull", &format!("{}/berth/base", reg.host())]);
    assert_eq!(
        reg.blob_requests().len(),
        blobs + 1,
        "only base's config: {:?}",
        reg.blob_requests()
    );
}

#[test]
fn pulls_of_one_image_at_once_download_each_blob_once_and_intact() {
    let reg = Registry::fixtures("open");
    let r = format!("{}/berth/multi", reg.host());
    let s = Store::new("pull-at-once");
    // before the fix, pulls at once wrote one partial file over each other and committed
    // blobs whose content was not their digest
    std::thread::scope(|scope| {
        for _ in 0..12 {
            scope.spawn(|| s.ok(&["image", "pull", &r]));
        }
    });
    for b in s.blobs() {
        let data = fs::read(s.root.join("blobs/sha256").join(&b)).unwrap();
        assert_eq!(
            sha256(&data),
            format!("sha256:{b}"),
            "blob {b} is not its digest"
        );
    }
    assert_eq!(
        reg.blob_requests().len(),
        4,
        "each blob is downloaded once: {:?}",
        reg.blob_requests()
    );
    s.assert_no_leftovers();
}

#[test]
fn basic_auth_from_creds_or_an_auth_file() {
    let reg = Registry::fixtures("basic");
    let r = format!("{}/berth/base", reg.host());
    let s = Store::new("pull-basic");
    let err = s.fails(&["image", "pull", &r]);
    assert!(err.contains("authentication required"), "{err}");
    let err = s.fails(&["image", "pull", "--creds", "alice:wrong", &r]);
    assert!(err.contains("unauthorized"), "{err}");
    let err = s.fails(&["image", "pull", "--creds", "alice", &r]);
    assert!(
        err.contains("--creds") && err.contains("USER:PASSWORD"),
        "{err}"
    );
    assert_eq!(s.names(), Vec::<String>::new());
    s.ok(&["image", "pull", "--creds", "alice:s3cret", &r]);
    let s2 = Store::new("pull-authfile");
    let auth = s2.path("auth.json");
    fs::write(
        &auth,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "YWxpY2U6czNjcmV0"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    s2.ok(&["image", "pull", "--authfile", auth.to_str().unwrap(), &r]);
    assert_eq!(s2.names(), vec![format!("{r}:latest")]);
}

#[test]
fn bearer_token_auth() {
    let tokens = TokenServer::start();
    let realm = tokens.realm();
    let reg = Registry::start(
        "token",
        &images_fixture().join("registry"),
        &[("REGISTRY_AUTH_TOKEN_REALM", &realm)],
    );
    let r = format!("{}/berth/multi", reg.host());
    let s = Store::new("pull-token");
    let err = s.fails(&["image", "pull", &r]);
    assert!(err.contains("token from") && err.contains("401"), "{err}");
    assert_eq!(tokens.issued.load(std::sync::atomic::Ordering::SeqCst), 0);
    s.ok(&["image", "pull", "--creds", "alice:s3cret", &r]);
    // one token, reused by the parallel layer downloads
    let issued = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&issued), "{issued} tokens issued");
    assert_eq!(s.snapshots().len(), 3);
}

#[test]
fn a_corrupt_blob_is_rejected_and_nothing_is_kept() {
    let s = Store::new("pull-corrupt");
    let storage = s.path("registry");
    let st = Command::new("cp")
        .arg("-a")
        .arg(images_fixture().join("registry"))
        .arg(&storage)
        .status()
        .unwrap();
    assert!(st.success());
    // flip one byte of base's layer in the registry's storage
    let reg = Registry::start("open", &storage, &[]);
    let r = format!("{}/berth/base", reg.host());
    let probe = Store::new("pull-corrupt-probe");
    probe.ok(&["image", "pull", "--no-unpack", &r]);
    let layer = inspect(&probe, &r)["manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let data = storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer[7..9])
        .join(&layer[7..])
        .join("data");
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&data, &bytes).unwrap();
    let err = s.fails(&["image", "pull", &r]);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert!(
        !s.blobs().contains(&layer[7..].to_string()),
        "the corrupt layer entered the store"
    );
    assert_eq!(s.names(), Vec::<String>::new());
    assert_eq!(s.snapshots(), Vec::<String>::new());
    s.assert_no_leftovers();
}

#[test]
fn a_pull_cut_off_by_a_dying_registry_resumes() {
    let s = Store::new("pull-resume");
    // one 40 MB incompressible layer, served through a proxy that passes 10 MB/s
    let big = noise(40 << 20, 7);
    let layer_tar = layer(&[Entry::File(b"big", &big)]);
    let layout = s.path("layout");
    write_layout(&layout, "big", std::slice::from_ref(&layer_tar), None);
    let storage = s.path("registry");
    store_in_registry(&layout, &storage, "berth/big");
    let mut reg = Registry::start("open", &storage, &[]);
    let proxy = SlowProxy::start(reg.port, 10 << 20);
    let r = format!("127.0.0.1:{}/berth/big", proxy.port);
    let digest = sha256(&layer_tar);
    let partial = s
        .root
        .join("ingest")
        .join(format!("{}.partial", &digest[7..]));
    let child = Spawned::new(
        Command::new(super::common::BERTH)
            .env("BERTH_DATA_ROOT", &s.root)
            .args(["image", "pull", &r])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < 8 << 20 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "download did not progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    reg.kill();
    let out = child.wait_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "pull succeeded without its registry: {err}"
    );
    let kept = fs::metadata(&partial).unwrap().len();
    assert!(
        kept > 0 && kept < layer_tar.len() as u64,
        "kept {kept} bytes"
    );
    assert!(
        !s.blobs().contains(&digest[7..].to_string()),
        "an incomplete blob entered the store"
    );
    assert_eq!(s.names(), Vec::<String>::new());
    reg.restart();
    let err = s.ok_err(&["image", "pull", &r]);
    assert!(err.contains("resuming at"), "{err}");
    assert!(
        reg.requests()
            .iter()
            .any(|l| l.contains("/blobs/sha256:") && l.contains("\" 206 ")),
        "no ranged request: {:?}",
        reg.requests()
    );
    assert!(s.blobs().contains(&digest[7..].to_string()));
    s.assert_no_leftovers();
    let b = s.path("bundle");
    s.ok(&["image", "unpack", &r, b.to_str().unwrap()]);
    assert_eq!(fs::read(b.join("rootfs/big")).unwrap(), big);
    s.ok(&["image", "unmount", b.to_str().unwrap()]);
}

#[test]
fn bad_references_and_unknown_images() {
    let reg = Registry::fixtures("open");
    let s = Store::new("pull-bad");
    let err = s.fails(&["image", "pull", "Not/A:Valid:Ref"]);
    assert!(err.contains("image reference \"Not/A:Valid:Ref\""), "{err}");
    let err = s.fails(&["image", "pull", &format!("{}/berth/nope", reg.host())]);
    assert!(
        err.contains("manifest unknown") && err.contains("berth/nope"),
        "{err}"
    );
    let err = s.fails(&["image", "pull", &format!("{}/berth/base:v9", reg.host())]);
    assert!(err.contains("base:v9"), "{err}");
    // nothing listens there
    let err = s.fails(&["image", "pull", "127.0.0.1:1/berth/base"]);
    assert!(err.contains("registry 127.0.0.1:1"), "{err}");
    assert_eq!(s.names(), Vec::<String>::new());
    s.assert_no_leftovers();
}

#[test]
fn prune_during_a_pull_keeps_what_the_pull_fetched() {
    let s = Store::new("pull-prune");
    // a small layer that arrives first and a 24 MB one that takes ~3 s through the proxy
    let small = layer(&[Entry::File(b"small", b"first")]);
    let big = layer(&[Entry::File(b"big", &noise(24 << 20, 11))]);
    let layout = s.path("layout");
    write_layout(&layout, "two", &[small.clone(), big.clone()], None);
    let storage = s.path("registry");
    store_in_registry(&layout, &storage, "berth/two");
    let reg = Registry::start("open", &storage, &[]);
    let proxy = SlowProxy::start(reg.port, 8 << 20);
    let r = format!("127.0.0.1:{}/berth/two", proxy.port);
    let child = Spawned::new(
        Command::new(super::common::BERTH)
            .env("BERTH_DATA_ROOT", &s.root)
            .args(["image", "pull", "--jobs", "1", &r])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let small_blob = sha256(&small)[7..].to_string();
    let t = Instant::now();
    while !s.blobs().contains(&small_blob) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the first layer never arrived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // a stale lease of a process that is gone must not hold anything
    fs::write(s.root.join("leases/pull-999999999-0"), sha256(b"gone")).unwrap();
    s.ok(&["image", "prune"]);
    assert!(
        s.blobs().contains(&small_blob),
        "prune removed a blob of a running pull"
    );
    assert!(
        !s.root.join("leases/pull-999999999-0").exists(),
        "a stale pull lease survived prune"
    );
    let out = child.wait_with_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        entries(&s.root.join("leases")),
        Vec::<String>::new(),
        "the pull's lease outlived it"
    );
    let b = s.path("bundle");
    s.ok(&["image", "unpack", &r, b.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(b.join("rootfs/small")).unwrap(), "first");
    assert_eq!(fs::metadata(b.join("rootfs/big")).unwrap().len(), 24 << 20);
    s.ok(&["image", "unmount", b.to_str().unwrap()]);
    s.assert_no_leftovers();
}

#[test]
fn a_terminal_gets_progress_bars() {
    let reg = Registry::fixtures("open");
    let s = Store::new("pull-tty");
    let cmd = format!(
        "{} image pull {}/berth/multi",
        super::common::BERTH,
        reg.host()
    );
    // script(1) gives the pull a pseudo-terminal and copies what it draws
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("BERTH_DATA_ROOT", &s.root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\x1b[") && text.contains("/s") && text.contains("done"),
        "no progress bars: {text}"
    );
    // without a terminal: plain lines
    let s2 = Store::new("pull-notty");
    let err = s2.ok_err(&["image", "pull", &format!("{}/berth/multi", reg.host())]);
    assert!(
        !err.contains("\x1b[") && err.contains("downloaded") && err.contains("unpacked"),
        "{err}"
    );
}
