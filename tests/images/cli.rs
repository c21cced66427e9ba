//! `berth image` as docker and podman users expect it: CREATED is the image's build time, the
//! ID `pull` prints is the one `ls` shows, `-q` prints only the result, a file that is not an
//! archive is named as such (its content is not dumped), and progress adds up.

use std::fs;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::harness::*;

#[test]
fn image_ls_and_pull_agree_on_what_an_image_is() {
    let reg = Registry::fixtures("open");
    let r = format!("{}/berth/multi", reg.host());
    let s = Store::new("cli-ls");
    let said = s.ok_err(&["image", "pull", &r]);
    let list: Value = serde_json::from_str(&s.ok(&["image", "ls", "--format", "json"])).unwrap();
    let img = &list[0];
    let id = img["id"].as_str().unwrap();
    assert!(said.contains(&format!("image ID {id}")), "{said}");
    // CREATED: the config's time, not the pull's
    let config = config_blob(&s, &r);
    assert_eq!(img["created"], config["created"], "{img}");
    assert_ne!(img["created"], img["pulled"], "{img}");
    let table = s.ok(&["image", "ls"]);
    assert!(table.contains(id) && table.contains(" ago"), "{table}");
    // -q: the name on stdout, nothing else anywhere
    let s2 = Store::new("cli-q");
    let out = s2.berth(&["image", "pull", "-q", &r]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{r}:latest")
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// The image's config, read from its blob in the store (not from berth's report of it).
fn config_blob(s: &Store, r: &str) -> Value {
    let v: Value = serde_json::from_str(&s.ok(&["image", "inspect", r])).unwrap();
    let digest = v["image"]["config"].as_str().unwrap();
    let blob = s
        .root
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&fs::read(&blob).unwrap()).unwrap()
}

#[test]
fn importing_what_is_not_an_archive_says_so_without_its_content() {
    let s = Store::new("cli-notar");
    let f = s.path("notes.txt");
    let secret = "this text is not an image archive: SECRET-WORD-42\n".repeat(20);
    fs::write(&f, &secret).unwrap();
    let err = s.fails(&["image", "import", f.to_str().unwrap()]);
    assert!(
        err.contains(f.to_str().unwrap()) && err.contains("not an image archive"),
        "{err}"
    );
    assert!(!err.contains("SECRET-WORD"), "{err}");
    assert!(err.lines().count() <= 2, "{err}");
    s.assert_no_leftovers();
}

#[test]
fn progress_bars_add_up_to_the_header() {
    let reg = Registry::fixtures("open");
    let s = Store::new("cli-bars");
    // base first: multi shares its bottom layer, so one of multi's three is present
    s.ok(&["image", "pull", &format!("{}/berth/base", reg.host())]);
    let cmd = format!(
        "{} image pull {}/berth/multi",
        super::common::BERTH,
        reg.host()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("BERTH_DATA_ROOT", &s.root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 layers, 2 to download"), "{text}");
    assert!(text.contains("already present"), "{text}");
}
