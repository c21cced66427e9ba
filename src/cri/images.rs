//! `runtime.v1.ImageService` over berth's image store. An image's CRI ID is its config digest
//! (`sha256:...`), as containerd's; its names are its repo tags.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use tonic::{Request, Response, Status};

use super::Shared;
use super::runtime::blocking;
use crate::image::store::ImageRecord;

pub struct Service(pub Arc<Shared>);

type R<T> = Result<Response<T>, Status>;

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Every image, by config digest, with its names.
fn by_id(s: &Shared) -> Result<Vec<(ImageRecord, Vec<String>)>, Status> {
    let idx = s.rt.images().store().index().map_err(internal)?;
    let mut out: Vec<(ImageRecord, Vec<String>)> = Vec::new();
    for (name, rec) in idx.images {
        match out.iter_mut().find(|(r, _)| r.config == rec.config) {
            Some((_, names)) => names.push(name),
            None => out.push((rec, vec![name])),
        }
    }
    Ok(out)
}

/// The CRI view of one image.
fn image(s: &Shared, rec: &ImageRecord, names: &[String]) -> cri::Image {
    let mut repo_tags = Vec::new();
    let mut repo_digests = Vec::new();
    for n in names {
        let repo = n.split('@').next().unwrap_or(n);
        let repo_only = match repo.rfind(':') {
            Some(i) if !repo[i..].contains('/') => &repo[..i],
            _ => repo,
        };
        if !n.contains('@') {
            repo_tags.push(n.clone());
        }
        // the digest the name resolved to, as containerd lists it: the index of a multi-platform
        // image, else its manifest (both resolve)
        let d = format!(
            "{repo_only}@{}",
            rec.index.as_deref().unwrap_or(&rec.manifest)
        );
        if !repo_digests.contains(&d) {
            repo_digests.push(d);
        }
    }
    // the image's user, as kubelet checks runAsNonRoot against it
    let user =
        s.rt.images()
            .manifest_and_config(rec)
            .ok()
            .and_then(|(_, c)| c.config().as_ref().and_then(|c| c.user().clone()))
            .unwrap_or_default();
    let user = user.split(':').next().unwrap_or("").to_string();
    let (uid, username) = match user.parse::<i64>() {
        Ok(u) => (Some(cri::Int64Value { value: u }), String::new()),
        Err(_) if user.is_empty() => (Some(cri::Int64Value { value: 0 }), String::new()),
        Err(_) => (None, user),
    };
    cri::Image {
        id: rec.config.clone(),
        repo_tags,
        repo_digests,
        size: rec.size,
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: rec.config.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

/// Find an image by name or ID; None if absent.
fn find(s: &Shared, r: &str) -> Result<Option<cri::Image>, Status> {
    let rec = match s.rt.images().resolve(r) {
        Ok((_, rec)) => rec,
        Err(crate::image::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(Status::invalid_argument(format!("image {r:?}: {e}"))),
    };
    Ok(by_id(s)?
        .into_iter()
        .find(|(x, _)| x.config == rec.config)
        .map(|(rec, names)| image(s, &rec, &names)))
}

fn spec_image(spec: Option<cri::ImageSpec>) -> Result<String, Status> {
    let i = spec.map(|s| s.image).unwrap_or_default();
    if i.is_empty() {
        return Err(Status::invalid_argument("image.image: empty"));
    }
    Ok(i)
}

#[tonic::async_trait]
impl ImageService for Service {
    async fn list_images(
        &self,
        req: Request<cri::ListImagesRequest>,
    ) -> R<cri::ListImagesResponse> {
        let filter = req
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|i| i.image)
            .unwrap_or_default();
        blocking(&self.0, move |s| {
            let images = if filter.is_empty() {
                by_id(s)?
                    .iter()
                    .map(|(rec, names)| image(s, rec, names))
                    .collect()
            } else {
                find(s, &filter)?.into_iter().collect()
            };
            Ok(Response::new(cri::ListImagesResponse { images }))
        })
        .await
    }

    async fn image_status(
        &self,
        req: Request<cri::ImageStatusRequest>,
    ) -> R<cri::ImageStatusResponse> {
        let req = req.into_inner();
        let r = spec_image(req.image)?;
        blocking(&self.0, move |s| {
            let img = find(s, &r)?;
            let mut info = HashMap::new();
            if req.verbose
                && img.is_some()
                && let Ok(v) = s.rt.images().inspect(&r)
            {
                info.insert("info".to_string(), v.to_string());
            }
            Ok(Response::new(cri::ImageStatusResponse { image: img, info }))
        })
        .await
    }

    async fn pull_image(&self, req: Request<cri::PullImageRequest>) -> R<cri::PullImageResponse> {
        let req = req.into_inner();
        let r = spec_image(req.image)?;
        let mut opts = self.0.rt.options().pull.clone();
        opts.bars = false;
        opts.unpack = true;
        if let Some(a) = req.auth {
            if !a.identity_token.is_empty() || !a.registry_token.is_empty() {
                return Err(Status::invalid_argument(
                    "auth: identity and registry tokens are not supported; give username and password (or auth)",
                ));
            }
            if !a.username.is_empty() {
                opts.creds = Some(crate::image::registry::Credentials {
                    user: a.username,
                    password: a.password,
                });
            } else if !a.auth.is_empty() {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.auth.trim())
                    .map_err(|e| Status::invalid_argument(format!("auth.auth: not base64: {e}")))?;
                let s = String::from_utf8_lossy(&raw).to_string();
                let (u, p) = s
                    .split_once(':')
                    .ok_or_else(|| Status::invalid_argument("auth.auth: not user:password"))?;
                opts.creds = Some(crate::image::registry::Credentials {
                    user: u.into(),
                    password: p.into(),
                });
            }
        }
        let image_ref = blocking(&self.0, move |s| {
            let candidates = s.cfg.mirrored(&r);
            let mut last = None;
            for c in &candidates {
                match s.rt.images().pull(c, &opts, &mut |_| {}) {
                    Ok(name) => {
                        if c != &r {
                            // pulled through a mirror: it is known by its upstream name
                            s.rt.images().tag(&name, &r).map_err(internal)?;
                            if let Ok((upstream, _)) = s.rt.images().resolve(&r)
                                && upstream != name
                            {
                                let _ = s.rt.images().remove(&name);
                            }
                        }
                        let (_, rec) = s.rt.images().resolve(&r).map_err(internal)?;
                        return Ok(rec.config);
                    }
                    Err(e) => last = Some((c.clone(), e)),
                }
            }
            let (c, e) = last.expect("at least one candidate");
            Err(match e {
                crate::image::Error::NotFound(_) => Status::not_found(format!("pull {c}: {e}")),
                crate::image::Error::Invalid(_) => {
                    Status::invalid_argument(format!("pull {c}: {e}"))
                }
                _ => Status::unknown(format!("pull {c}: {e}")),
            })
        })
        .await?;
        Ok(Response::new(cri::PullImageResponse { image_ref }))
    }

    async fn remove_image(
        &self,
        req: Request<cri::RemoveImageRequest>,
    ) -> R<cri::RemoveImageResponse> {
        let r = spec_image(req.into_inner().image)?;
        blocking(&self.0, move |s| {
            let rec = match s.rt.images().resolve(&r) {
                Ok((_, rec)) => rec,
                // idempotent: an absent image is removed
                Err(crate::image::Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(Status::invalid_argument(format!("image {r:?}: {e}"))),
            };
            // every name of the image, whichever of them (or its ID or a repo digest) was
            // given, as containerd removes all references of the image it resolved
            let names: Vec<String> = by_id(s)?
                .into_iter()
                .find(|(x, _)| x.config == rec.config)
                .map(|(_, n)| n)
                .unwrap_or_default();
            for n in names {
                match s.rt.images().remove(&n) {
                    Ok(_) | Err(crate::image::Error::NotFound(_)) => {}
                    Err(e) => return Err(internal(format!("remove image {n}: {e}"))),
                }
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _: Request<cri::ImageFsInfoRequest>,
    ) -> R<cri::ImageFsInfoResponse> {
        blocking(&self.0, |s| {
            let du = s.rt.images().disk_usage().map_err(internal)?;
            let usage = cri::FilesystemUsage {
                timestamp: super::convert::now_nanos(),
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: s.rt.options().data_root.display().to_string(),
                }),
                used_bytes: Some(cri::UInt64Value {
                    value: du.blobs + du.snapshots + du.ingest,
                }),
                inodes_used: None,
            };
            Ok(Response::new(cri::ImageFsInfoResponse {
                image_filesystems: vec![usage],
                container_filesystems: Vec::new(),
            }))
        })
        .await
    }
}
