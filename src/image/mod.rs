//! Images: a content-addressed store, pulls from registries speaking the OCI distribution API,
//! imports of OCI layouts and oci/docker archives, layers unpacked once into copy-on-write
//! snapshots, and OCI bundles made from images.
//!
//! ```no_run
//! use berth::image::{Images, PullOptions};
//! let images = Images::new("/var/lib/berth");
//! let name = images.pull("busybox", &PullOptions::default(), &mut |line| eprintln!("{line}"))?;
//! images.unpack(&name, "/run/bundles/web".as_ref(), false, &mut |_| {})?;
//! // berth run --bundle /run/bundles/web web
//! # Ok::<(), berth::image::Error>(())
//! ```

pub mod bundle;
pub mod error;
pub mod extract;
pub mod import;
pub mod model;
pub mod pull;
pub mod registry;
pub mod snapshot;
pub mod store;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::Serialize;

pub use error::{Error, Result};
use model::{Document, Platform};
pub use pull::PullOptions;
use snapshot::LayerRef;
use store::{ImageRecord, Store};

/// The image store API.
#[derive(Debug, Clone)]
pub struct Images {
    store: Store,
}

/// One line of `image ls`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    pub name: String,
    /// The config digest, as Docker's image ID.
    pub id: String,
    pub digest: String,
    pub platform: String,
    pub size: u64,
    /// When the image was built (its config's `created`; empty if it has none).
    pub created: String,
    /// When it was pulled or imported here.
    pub pulled: String,
}

/// `image df`.
#[derive(Debug, Clone, Serialize)]
pub struct DiskUsage {
    pub images: usize,
    pub blobs: u64,
    pub snapshots: u64,
    pub ingest: u64,
}

/// What `prune`/`rm` reclaimed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    pub blobs: usize,
    pub snapshots: usize,
    pub bytes: u64,
}

impl Images {
    /// The store at `data_root`.
    pub fn new(data_root: impl Into<PathBuf>) -> Self {
        Images {
            store: Store::new(data_root),
        }
    }

    /// The underlying content store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Find an image by name (normalised as Docker does), by `repo@digest` (any image of that
    /// repository whose manifest or index has that digest, whichever name it was pulled by),
    /// or by ID prefix (12+ hex digits).
    pub fn resolve(&self, r: &str) -> Result<(String, ImageRecord)> {
        let idx = self.store.index()?;
        if let Ok(parsed) = model::parse_reference(r) {
            let name = model::store_name(&parsed);
            if let Some(rec) = idx.images.get(&name) {
                return Ok((name, rec.clone()));
            }
            if let Some(d) = parsed.digest() {
                let same_repo = |n: &str| {
                    model::parse_reference(n).is_ok_and(|o| {
                        o.registry() == parsed.registry() && o.repository() == parsed.repository()
                    })
                };
                if let Some((n, rec)) = idx.images.iter().find(|(n, rec)| {
                    (rec.manifest == d || rec.index.as_deref() == Some(d)) && same_repo(n)
                }) {
                    return Ok((n.clone(), rec.clone()));
                }
            }
        }
        let id = r.strip_prefix("sha256:").unwrap_or(r);
        if id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some((n, rec)) = idx.images.iter().find(|(_, rec)| {
                rec.config[7..].starts_with(id) || rec.manifest[7..].starts_with(id)
            }) {
                return Ok((n.clone(), rec.clone()));
            }
        }
        Err(Error::NotFound(r.to_string()))
    }

    /// Every named image.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        Ok(self
            .store
            .index()?
            .images
            .into_iter()
            .map(|(name, rec)| ImageSummary {
                name,
                id: rec.config[7..19].to_string(),
                digest: rec.manifest.clone(),
                platform: rec.platform.clone(),
                size: rec.size,
                created: self.built(&rec.config),
                pulled: rec.created.clone(),
            })
            .collect())
    }

    /// The `created` time of an image's config (empty if absent or unreadable).
    fn built(&self, config: &str) -> String {
        self.store
            .read_blob(config)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["created"].as_str().map(String::from))
            .unwrap_or_default()
    }

    /// The manifest and config of an image.
    pub fn manifest_and_config(
        &self,
        rec: &ImageRecord,
    ) -> Result<(ImageManifest, ImageConfiguration)> {
        let Document::Manifest(m) =
            model::parse_document(&self.store.read_blob(&rec.manifest)?, None)?
        else {
            return Err(Error::Invalid(format!(
                "{} is not an image manifest",
                rec.manifest
            )));
        };
        let cfg = model::parse_config(&self.store.read_blob(&rec.config)?)?;
        Ok((m, cfg))
    }

    /// `image inspect`: the record, manifest and config as one JSON document.
    pub fn inspect(&self, r: &str) -> Result<serde_json::Value> {
        let (name, rec) = self.resolve(r)?;
        let manifest: serde_json::Value =
            serde_json::from_slice(&self.store.read_blob(&rec.manifest)?)
                .map_err(|e| Error::Invalid(e.to_string()))?;
        let config: serde_json::Value = serde_json::from_slice(&self.store.read_blob(&rec.config)?)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(serde_json::json!({"name": name, "image": rec, "manifest": manifest, "config": config}))
    }

    /// Give an image another name.
    pub fn tag(&self, src: &str, dst: &str) -> Result<String> {
        let (_, rec) = self.resolve(src)?;
        let name = model::store_name(&model::parse_reference(dst)?);
        self.store.set_name(&name, rec)?;
        Ok(name)
    }

    /// Remove a name; content no other name or bundle uses is collected.
    pub fn remove(&self, r: &str) -> Result<(String, Pruned)> {
        let (name, _) = self.resolve(r)?;
        {
            let lock = self.store.lock()?;
            let mut idx = self.store.index()?;
            idx.images.remove(&name);
            self.store.write_index(&lock, &idx)?;
        }
        Ok((name, self.prune()?))
    }

    /// Import an OCI layout, oci-archive or docker-archive.
    pub fn import(
        &self,
        path: &Path,
        name: Option<&str>,
        platform: Option<&str>,
    ) -> Result<Vec<String>> {
        let platform = platform
            .map(Platform::parse)
            .transpose()?
            .unwrap_or_else(Platform::host);
        import::import(&self.store, path, name, &platform)
    }

    /// Pull from a registry; returns the stored name.
    pub fn pull(
        &self,
        r: &str,
        opts: &PullOptions,
        report: &mut dyn FnMut(&str),
    ) -> Result<String> {
        pull::pull(&self.store, r, opts, report)
    }

    /// The layers of an image with the diff IDs its config promises.
    pub fn layers(&self, rec: &ImageRecord) -> Result<Vec<LayerRef>> {
        let (m, cfg) = self.manifest_and_config(rec)?;
        let diff_ids = cfg.rootfs().diff_ids();
        if diff_ids.len() != m.layers().len() {
            return Err(Error::Invalid(format!(
                "image config lists {} diff_ids for {} layers",
                diff_ids.len(),
                m.layers().len()
            )));
        }
        Ok(m.layers()
            .iter()
            .zip(diff_ids)
            .map(|(l, d)| LayerRef {
                blob: l.digest().to_string(),
                diff_id: d.clone(),
            })
            .collect())
    }

    /// Unpack an image's layers into snapshots (each once); returns their directories.
    pub fn snapshots(&self, r: &str, report: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>> {
        let (_, rec) = self.resolve(r)?;
        snapshot::ensure(&self.store, &self.layers(&rec)?, report)
    }

    /// Write an OCI bundle for an image: rootfs (an overlay of its snapshots, or with `copy` a
    /// flat copy) and config.json. A mounted rootfs stays until [`Images::unmount`].
    pub fn unpack(
        &self,
        r: &str,
        bundle: &Path,
        copy: bool,
        report: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let (name, rec) = self.resolve(r)?;
        let layers = self.layers(&rec)?;
        let (_, cfg) = self.manifest_and_config(&rec)?;
        if bundle.join("config.json").exists() {
            return Err(Error::Invalid(format!(
                "{}: already a bundle (config.json exists)",
                bundle.display()
            )));
        }
        fs::create_dir_all(bundle).map_err(|err| Error::Io {
            step: format!("create {}", bundle.display()),
            err,
        })?;
        let bundle = std::path::absolute(bundle).map_err(|err| Error::Io {
            step: "absolute bundle path".into(),
            err,
        })?;
        let result = (|| -> Result<()> {
            if copy || !snapshot::overlay_supported() {
                snapshot::flatten_into(&self.store, &layers, &bundle.join("rootfs"))?;
            } else {
                let dirs = snapshot::ensure(&self.store, &layers, report)?;
                let lease = bundle::lease_path(&self.store, &bundle);
                let mut text: String = dirs
                    .iter()
                    .filter_map(|d| {
                        d.parent()?
                            .file_name()
                            .map(|n| format!("{}\n", n.to_string_lossy()))
                    })
                    .collect();
                text.push_str(&format!("# bundle {}\n", bundle.display()));
                fs::write(&lease, text).map_err(|err| Error::Io {
                    step: format!("write lease {}", lease.display()),
                    err,
                })?;
                bundle::mount_rootfs(&bundle, &dirs)?;
            }
            let spec = bundle::config_json(&cfg, &bundle.join("rootfs"), &name)?;
            fs::write(
                bundle.join("config.json"),
                serde_json::to_vec_pretty(&spec).expect("spec serialises"),
            )
            .map_err(|err| Error::Io {
                step: "write config.json".into(),
                err,
            })
        })();
        if result.is_err() {
            let _ = self.unmount(&bundle);
            let _ = fs::remove_dir_all(bundle.join("rootfs"));
            let _ = fs::remove_dir_all(bundle.join(".berth"));
            let _ = fs::remove_file(bundle.join("config.json"));
            let _ = fs::remove_dir(&bundle);
        }
        result
    }

    /// Unmount a bundle's rootfs and drop its lease.
    pub fn unmount(&self, bundle: &Path) -> Result<()> {
        let bundle = std::path::absolute(bundle).map_err(|err| Error::Io {
            step: "absolute bundle path".into(),
            err,
        })?;
        bundle::unmount_rootfs(&bundle)?;
        let _ = fs::remove_file(bundle::lease_path(&self.store, &bundle));
        Ok(())
    }

    /// Remove blobs and snapshots no image and no bundle uses, and unfinished downloads.
    pub fn prune(&self) -> Result<Pruned> {
        let _lock = self.store.lock()?;
        let idx = self.store.index()?;
        let mut keep_blobs: HashSet<String> = HashSet::new();
        let mut keep_snaps: HashSet<String> = self.store.leased_snapshots()?.into_iter().collect();
        let mut roots: Vec<&str> = Vec::new();
        for rec in idx.images.values() {
            roots.push(&rec.manifest);
            if let Some(i) = &rec.index {
                keep_blobs.insert(i.clone());
                // the other platforms' manifests stay with their index
                if let Ok(Document::Index(ix)) = self
                    .store
                    .read_blob(i)
                    .and_then(|b| model::parse_document(&b, None))
                {
                    for m in ix.manifests() {
                        keep_blobs.insert(m.digest().to_string());
                    }
                }
            }
        }
        // what pulls in progress have fetched so far
        let pulling = self.store.pulling()?;
        keep_blobs.extend(pulling.iter().cloned());
        roots.extend(pulling.iter().map(String::as_str));
        for m in roots {
            self.keep_manifest(m, &mut keep_blobs, &mut keep_snaps)?;
        }
        let mut out = Pruned::default();
        let blobs = self.store.root().join("blobs/sha256");
        for e in fs::read_dir(&blobs)
            .map(|rd| rd.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let d = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep_blobs.contains(&d) {
                out.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path()).map_err(|err| Error::Io {
                    step: format!("remove {}", e.path().display()),
                    err,
                })?;
                out.blobs += 1;
            }
        }
        let snaps = self.store.root().join("snapshots");
        for e in fs::read_dir(&snaps)
            .map(|rd| rd.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if n == "by-chain" || keep_snaps.contains(&n) {
                continue;
            }
            // unfinished unpacks of a running pull are younger than a minute
            if n.starts_with(".tmp-")
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|a| a.as_secs() < 60))
            {
                continue;
            }
            out.bytes += Store::du(&e.path());
            fs::remove_dir_all(e.path()).map_err(|err| Error::Io {
                step: format!("remove {}", e.path().display()),
                err,
            })?;
            out.snapshots += 1;
        }
        let ingest = self.store.root().join("ingest");
        for e in fs::read_dir(&ingest)
            .map(|rd| rd.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|a| a.as_secs() >= 60))
            {
                out.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(out)
    }

    /// Keep a manifest, its config, its layers and their snapshots (whatever of them exists).
    fn keep_manifest(
        &self,
        manifest: &str,
        blobs: &mut HashSet<String>,
        snaps: &mut HashSet<String>,
    ) -> Result<()> {
        blobs.insert(manifest.to_string());
        let Ok(bytes) = self.store.read_blob(manifest) else {
            return Ok(());
        };
        let Ok(Document::Manifest(m)) = model::parse_document(&bytes, None) else {
            return Ok(());
        };
        let config = m.config().digest().to_string();
        blobs.insert(config.clone());
        blobs.extend(m.layers().iter().map(|l| l.digest().to_string()));
        let Ok(cfg) = self
            .store
            .read_blob(&config)
            .and_then(|b| model::parse_config(&b))
        else {
            return Ok(());
        };
        for chain in snapshot::chain_ids(cfg.rootfs().diff_ids()) {
            snaps.insert(store::digest_hex(&chain)?[..12].to_string());
        }
        Ok(())
    }

    /// Disk usage of the store.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let r = self.store.root();
        Ok(DiskUsage {
            images: self.store.index()?.images.len(),
            blobs: Store::du(&r.join("blobs")),
            snapshots: Store::du(&r.join("snapshots")),
            ingest: Store::du(&r.join("ingest")),
        })
    }
}
