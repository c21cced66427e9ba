//! Image documents: manifests, indexes and configs (OCI and Docker schema 2), references and
//! platforms.

use oci_spec::distribution::Reference;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde_json::Value;

use super::error::{Error, Result};

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The Accept header for manifests: every kind berth reads.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A fetched manifest-ish document.
// Parsed once per pull or import, never stored in bulk: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Document {
    Index(ImageIndex),
    Manifest(ImageManifest),
}

/// Parse a manifest or index by its media type (from the document, else the transport's).
pub fn parse_document(bytes: &[u8], transport_type: Option<&str>) -> Result<Document> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Invalid(format!("manifest: invalid JSON: {e}")))?;
    let mt = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .or(transport_type)
        .unwrap_or("");
    let is_index = mt == MT_OCI_INDEX
        || mt == MT_DOCKER_LIST
        || (mt.is_empty() && v.get("manifests").is_some());
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        return Err(Error::Invalid(
            "manifest: Docker schema 1 is not supported".into(),
        ));
    }
    let field_err = |e: serde_path_to_error::Error<serde_json::Error>| {
        Error::Invalid(format!("manifest: {}: {}", e.path(), e.inner()))
    };
    if is_index {
        Ok(Document::Index(
            serde_path_to_error::deserialize(v).map_err(field_err)?,
        ))
    } else {
        Ok(Document::Manifest(
            serde_path_to_error::deserialize(v).map_err(field_err)?,
        ))
    }
}

/// Parse an image config.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de)
        .map_err(|e| Error::Invalid(format!("image config: {}: {}", e.path(), e.inner())))
}

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform berth runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::Invalid(format!(
                "--platform {s:?}: expected os/arch[/variant]"
            ))),
        }
    }

    /// Does an index entry's platform fit?
    pub fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        let os = p.os().to_string();
        let arch = p.architecture().to_string();
        os == self.os
            && arch == self.arch
            && match (&self.variant, p.variant()) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Normalise a user's reference the way Docker does (`busybox` → `docker.io/library/busybox:latest`).
pub fn parse_reference(s: &str) -> Result<Reference> {
    let r: Reference = s
        .parse()
        .map_err(|e| Error::Invalid(format!("image reference {s:?}: {e}")))?;
    if r.tag().is_none() && r.digest().is_none() {
        return Ok(Reference::with_tag(
            r.registry().to_string(),
            r.repository().to_string(),
            "latest".into(),
        ));
    }
    Ok(r)
}

/// The name an image is stored under: the full normalised reference.
pub fn store_name(r: &Reference) -> String {
    r.whole()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_like_docker() {
        assert_eq!(
            store_name(&parse_reference("busybox").unwrap()),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            store_name(&parse_reference("127.0.0.1:5000/a/b:v1").unwrap()),
            "127.0.0.1:5000/a/b:v1"
        );
        let d = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let r = parse_reference(&format!("quay.io/x/y@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d));
        assert!(parse_reference("UPPER/case").is_err());
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
    }
}
