//! Image documents: manifests, indexes and configs (OCI and Docker schema 2), references and
//! platforms.

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

/// An image reference: `[registry/]repository[:tag][@digest]`, normalised as Docker does.
///
/// Parsed by hand (the distribution grammar is small): the regex other parsers compile costs
/// ~17 MB of memory and milliseconds in every process that reads one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    pub fn registry(&self) -> &str {
        &self.registry
    }
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
    /// `registry/repository[:tag][@digest]`.
    pub fn whole(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: one path component of a repository.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `host[:port]`, an IPv4 address or a bracketed IPv6 one.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) if h.parse::<std::net::Ipv6Addr>().is_ok() => ("x", p.strip_prefix(':')),
            _ => return false,
        }
    } else {
        match r.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    host_ok
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

impl std::str::FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference> {
        let err = |m: &str| Error::Invalid(format!("image reference {s:?}: {m}"));
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let (algo, hex) = d
                    .split_once(':')
                    .ok_or_else(|| err("digest lacks an algorithm"))?;
                let ok = match algo {
                    "sha256" => hex.len() == 64,
                    "sha512" => hex.len() == 128,
                    _ => false,
                };
                if !ok
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(err("malformed digest"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // a tag follows the last ':' that is not part of the registry's port
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            let b = t.as_bytes();
            let ok = !b.is_empty()
                && b.len() <= 128
                && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
            if !ok {
                return Err(err("malformed tag"));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, remainder)
            }
            _ => ("docker.io", name),
        };
        let registry = if registry == "index.docker.io" {
            "docker.io"
        } else {
            registry
        };
        if !valid_registry(registry) {
            return Err(err("malformed registry"));
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(err(
                "repository components must be lowercase letters and digits, joined by '.', '_', '__' or '-'",
            ));
        }
        let repository = if registry == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > 255 {
            return Err(err("name longer than 255 characters"));
        }
        Ok(Reference {
            registry: registry.into(),
            repository,
            tag: tag.map(String::from),
            digest,
        })
    }
}

/// Normalise a user's reference the way Docker does (`busybox` → `docker.io/library/busybox:latest`).
pub fn parse_reference(s: &str) -> Result<Reference> {
    let mut r: Reference = s.parse()?;
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some("latest".into());
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
        for (input, want) in [
            ("library/busybox:1.36", "docker.io/library/busybox:1.36"),
            ("me/app", "docker.io/me/app:latest"),
            ("index.docker.io/me/app", "docker.io/me/app:latest"),
            ("localhost/app:v", "localhost/app:v"),
            (
                "localhost:5000/a/b-c__d.e",
                "localhost:5000/a/b-c__d.e:latest",
            ),
            ("[::1]:5000/x:y", "[::1]:5000/x:y"),
            ("quay.io/a/b:v1.2_3-rc", "quay.io/a/b:v1.2_3-rc"),
        ] {
            assert_eq!(
                store_name(&parse_reference(input).unwrap()),
                want,
                "{input}"
            );
        }
        for bad in [
            "",
            ":tag",
            "a/",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a/b:",
            "a/b:-x",
            "a@sha256:12",
            "a@md5:00",
            "Host:x/y",
            "host:port/a",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_reference("a//b").unwrap_err().to_string();
        assert!(e.contains("\"a//b\"") && e.contains("lowercase"), "{e}");
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
    }
}
