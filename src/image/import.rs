//! `image import`: an OCI image layout directory, an oci-archive (a tar of a layout) or a
//! docker-archive (`docker save`). Archives are read as a stream: each blob goes straight into
//! the store, verified against its digest; nothing from the archive is unpacked on disk.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};
use serde::Deserialize;
use serde_json::json;

use super::error::{Error, Result};
use super::model::{self, Document, Platform};
use super::store::{ImageRecord, Store, digest_hex};

/// Where blobs come from while importing.
enum Source<'a> {
    /// An OCI layout directory: copied into the store on demand (verified).
    Dir(&'a Path),
    /// An archive already streamed into the store.
    Store,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn fetch(store: &Store, src: &Source<'_>, d: &Descriptor) -> Result<()> {
    let digest = d.digest().to_string();
    if store.has_blob(&digest) {
        return Ok(());
    }
    match src {
        Source::Dir(dir) => {
            let p = dir.join("blobs/sha256").join(digest_hex(&digest)?);
            let mut f = fs::File::open(&p).map_err(|err| Error::Io {
                step: format!("open {}", p.display()),
                err,
            })?;
            store.put_stream(&mut f, &digest, Some(d.size()))
        }
        Source::Store => Err(Error::Invalid(format!("archive lacks blob {digest}"))),
    }
}

/// Names an index entry carries (containerd's full name, else a full ref.name).
fn annotated_name(d: &Descriptor) -> Option<String> {
    let a = d.annotations().as_ref()?;
    if let Some(n) = a.get("io.containerd.image.name") {
        return Some(n.clone());
    }
    a.get("org.opencontainers.image.ref.name")
        .filter(|n| n.contains('/'))
        .cloned()
}

/// The images an OCI index lists, with the names they get.
fn import_index(
    store: &Store,
    src: &Source<'_>,
    index: &ImageIndex,
    name: Option<&str>,
    platform: &Platform,
) -> Result<Vec<(String, ImageRecord)>> {
    let mut named = Vec::new();
    for (i, desc) in index.manifests().iter().enumerate() {
        fetch(store, src, desc)?;
        let bytes = store.read_blob(desc.digest().as_ref())?;
        let (manifest_desc, index_digest) =
            match model::parse_document(&bytes, Some(desc.media_type().as_ref()))? {
                Document::Index(sub) => {
                    let chosen = select_platform(&sub, platform)?.clone();
                    // every platform's manifest is kept, the chosen one is named
                    for m in sub.manifests() {
                        let _ = fetch(store, src, m);
                    }
                    fetch(store, src, &chosen)?;
                    (chosen, Some(desc.digest().to_string()))
                }
                Document::Manifest(_) => (desc.clone(), None),
            };
        let rec = record_for(store, src, &manifest_desc, index_digest)?;
        let tag = desc
            .annotations()
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.ref.name").cloned());
        let n = match (name, annotated_name(desc), tag) {
            // one image: --name is its whole name
            (Some(n), _, _) if index.manifests().len() == 1 => n.to_string(),
            // several: --name is the repository, each keeps its tag
            (Some(n), _, Some(t)) if !t.contains('/') && !t.contains(':') => {
                let r = model::parse_reference(n)?;
                format!("{}/{}:{t}", r.registry(), r.repository())
            }
            (_, Some(n), _) => n,
            (_, _, t) => {
                return Err(Error::Invalid(format!(
                    "index.json: image #{i} is named only {:?}: give a name (or, for several images, a repository) with --name",
                    t.unwrap_or_default()
                )));
            }
        };
        named.push((model::store_name(&model::parse_reference(&n)?), rec));
    }
    Ok(named)
}
/// Pick the manifest for `platform` from an index.
pub fn select_platform<'a>(index: &'a ImageIndex, platform: &Platform) -> Result<&'a Descriptor> {
    index
        .manifests()
        .iter()
        .find(|m| m.platform().as_ref().is_some_and(|p| platform.matches(p)))
        .ok_or_else(|| {
            let have: Vec<String> = index
                .manifests()
                .iter()
                .filter_map(|m| {
                    m.platform()
                        .as_ref()
                        .map(|p| format!("{}/{}", p.os(), p.architecture()))
                })
                .collect();
            Error::Invalid(format!(
                "no image for platform {platform} (the index has {})",
                have.join(", ")
            ))
        })
}

/// Fetch config and layers of a manifest and describe the image.
fn record_for(
    store: &Store,
    src: &Source<'_>,
    desc: &Descriptor,
    index: Option<String>,
) -> Result<ImageRecord> {
    fetch(store, src, desc)?;
    let digest = desc.digest().to_string();
    let Document::Manifest(m) = model::parse_document(&store.read_blob(&digest)?, None)? else {
        return Err(Error::Invalid(format!(
            "{digest} is an index, not an image manifest"
        )));
    };
    fetch(store, src, m.config())?;
    let cfg = model::parse_config(&store.read_blob(m.config().digest().as_ref())?)?;
    let mut size = desc.size() + m.config().size();
    for l in m.layers() {
        fetch(store, src, l)?;
        size += l.size();
    }
    Ok(ImageRecord {
        manifest: digest,
        index,
        config: m.config().digest().to_string(),
        platform: format!("{}/{}", cfg.os(), cfg.architecture()),
        size,
        created: now(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Import a directory, an oci-archive or a docker-archive; returns the names set. Names are
/// set only when every image was imported; a failed import removes the blobs it added.
pub fn import(
    store: &Store,
    path: &Path,
    name: Option<&str>,
    platform: &Platform,
) -> Result<Vec<String>> {
    store.init()?;
    let before = store.blob_digests()?;
    match read_images(store, path, name, platform) {
        Ok(named) => {
            let mut names = Vec::new();
            for (n, rec) in named {
                store.set_name(&n, rec)?;
                names.push(n);
            }
            Ok(names)
        }
        Err(e) => {
            for d in store.blob_digests()?.difference(&before) {
                let _ = fs::remove_file(store.blob_path(d)?);
            }
            Err(e)
        }
    }
}

fn read_images(
    store: &Store,
    path: &Path,
    name: Option<&str>,
    platform: &Platform,
) -> Result<Vec<(String, ImageRecord)>> {
    if path.is_dir() {
        let layout = fs::read_to_string(path.join("oci-layout")).map_err(|_| {
            Error::Invalid(format!(
                "{}: not an OCI image layout (no oci-layout file)",
                path.display()
            ))
        })?;
        check_layout(&layout, path)?;
        let index = read_index(&path.join("index.json"))?;
        return import_index(store, &Source::Dir(path), &index, name, platform);
    }
    let mut f = fs::File::open(path).map_err(|err| Error::Io {
        step: format!("open {}", path.display()),
        err,
    })?;
    not_a_tar(&mut f).map_or(Ok(()), |what| {
        Err(Error::Invalid(format!(
            "{}: not an image archive (an oci-archive or docker-archive tar, or an OCI layout \
             directory): {what}",
            path.display()
        )))
    })?;
    let mut archive = tar::Archive::new(f);
    // path in the archive → (digest, size), for docker archives
    let mut files: HashMap<PathBuf, (String, u64)> = HashMap::new();
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let entries = archive
        .entries()
        .map_err(|e| Error::Invalid(format!("{}: not a tar archive: {e}", path.display())))?;
    for (n, e) in entries.enumerate() {
        // (the tar crate's message may quote the bytes it read: not repeated here)
        let mut e = e.map_err(|_| {
            Error::Invalid(format!(
                "{}: malformed tar: entry {} is not a valid tar header",
                path.display(),
                n + 1
            ))
        })?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let p =
            super::extract::clean_entry_path(&e.path().map_err(|e| Error::Invalid(e.to_string()))?)
                .map_err(|m| Error::Invalid(format!("{}: {m}", path.display())))?;
        let ps = p.to_string_lossy().into_owned();
        if matches!(
            ps.as_str(),
            "index.json" | "oci-layout" | "manifest.json" | "repositories"
        ) {
            let mut b = Vec::new();
            e.take(1 << 24)
                .read_to_end(&mut b)
                .map_err(|err| Error::Io {
                    step: format!("read {ps}"),
                    err,
                })?;
            small.insert(ps, b);
        } else if let Some(hex) = ps.strip_prefix("blobs/sha256/") {
            let digest = format!("sha256:{hex}");
            digest_hex(&digest)?;
            let size = e.header().size().ok();
            store.put_stream(&mut e, &digest, size)?;
            files.insert(p, (digest, size.unwrap_or(0)));
        } else {
            let (digest, size) = store.put_stream_any(&mut e)?;
            files.insert(p, (digest, size));
        }
    }
    if let Some(layout) = small.get("oci-layout") {
        check_layout(&String::from_utf8_lossy(layout), path)?;
        let index: ImageIndex =
            serde_json::from_slice(small.get("index.json").ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: oci-archive without index.json",
                    path.display()
                ))
            })?)
            .map_err(|e| Error::Invalid(format!("{}: index.json: {e}", path.display())))?;
        return import_index(store, &Source::Store, &index, name, platform);
    }
    let manifest = small.get("manifest.json").ok_or_else(|| {
        Error::Invalid(format!(
            "{}: neither an oci-archive nor a docker-archive (no manifest.json)",
            path.display()
        ))
    })?;
    let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(manifest)
        .map_err(|e| Error::Invalid(format!("{}: manifest.json: {e}", path.display())))?;
    let mut named = Vec::new();
    for (i, ent) in entries.iter().enumerate() {
        let get = |p: &str| {
            let key = super::extract::clean_entry_path(Path::new(p)).unwrap_or_default();
            files.get(&key).cloned().ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: manifest.json names {p:?}, which the archive lacks",
                    path.display()
                ))
            })
        };
        let (cfg_digest, cfg_size) = get(&ent.config)?;
        let cfg = model::parse_config(&store.read_blob(&cfg_digest)?)?;
        let mut layers = Vec::new();
        let mut size = cfg_size;
        for l in &ent.layers {
            let (d, s) = get(l)?;
            let mut head = [0u8; 4];
            let n = store.open_blob(&d)?.read(&mut head).unwrap_or(0);
            let mt = match super::extract::Compression::sniff(&head[..n]) {
                super::extract::Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                super::extract::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                super::extract::Compression::None => "application/vnd.oci.image.layer.v1.tar",
            };
            layers.push(json!({"mediaType": mt, "digest": d, "size": s}));
            size += s;
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": model::MT_OCI_MANIFEST,
            "config": {"mediaType": model::MT_OCI_CONFIG, "digest": cfg_digest, "size": cfg_size},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let mdigest = store.put_bytes(&bytes, None)?;
        let rec = ImageRecord {
            manifest: mdigest,
            index: None,
            config: cfg_digest,
            platform: format!("{}/{}", cfg.os(), cfg.architecture()),
            size: size + bytes.len() as u64,
            created: now(),
        };
        let tags: Vec<String> = match (name, &ent.repo_tags) {
            (Some(n), _) if entries.len() == 1 => vec![n.to_string()],
            (_, Some(t)) if !t.is_empty() => t.clone(),
            _ => {
                return Err(Error::Invalid(format!(
                    "{}: image #{i} has no RepoTags: give it a name with --name",
                    path.display()
                )));
            }
        };
        for t in tags {
            named.push((model::store_name(&model::parse_reference(&t)?), rec.clone()));
        }
    }
    Ok(named)
}

fn check_layout(text: &str, path: &Path) -> Result<()> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::Invalid(format!("{}: oci-layout: {e}", path.display())))?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(ver) if ver.starts_with("1.") => Ok(()),
        other => Err(Error::Invalid(format!(
            "{}: unsupported imageLayoutVersion {other:?}",
            path.display()
        ))),
    }
}

fn read_index(p: &Path) -> Result<ImageIndex> {
    let b = fs::read(p).map_err(|err| Error::Io {
        step: format!("read {}", p.display()),
        err,
    })?;
    serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
}

/// Why a file is not a tar archive, from its first block (None: it looks like one). The file
/// is left at its start.
fn not_a_tar(f: &mut fs::File) -> Option<String> {
    use std::io::{Read, Seek};
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let _ = f.rewind();
    let what = match &head[..n] {
        [] => "the file is empty",
        [0x1f, 0x8b, ..] => "it is gzip-compressed (decompress it first)",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "it is zstd-compressed (decompress it first)",
        [b'{', ..] | [b'[', ..] => "it looks like JSON",
        h if h.len() < 512 => "it is shorter than one tar block",
        h if !tar_checksum_ok(h) => {
            if h.iter()
                .all(|b| b.is_ascii() && (*b >= 0x20 || b"\t\r\n".contains(b)))
            {
                "it looks like text"
            } else {
                "it has no tar header"
            }
        }
        _ => return None,
    };
    Some(what.into())
}

/// Does a 512-byte block carry a valid tar header checksum?
fn tar_checksum_ok(h: &[u8]) -> bool {
    let field = String::from_utf8_lossy(&h[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want
}
