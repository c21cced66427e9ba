//! What berth records about storage: StorageClasses, PersistentVolumes and claims, with the
//! phases and rules Kubernetes gives them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};

/// The version of the records this berth writes.
pub const VERSION: u32 = 1;

fn v1() -> u32 {
    1
}

/// The provisioner of berth's classes (and the CSI driver its volumes name).
pub const PROVISIONER: &str = "berth.io/local";

/// The class that exists out of the box, marked as the default.
pub const DEFAULT_CLASS: &str = "local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadOnlyMany,
    ReadWriteMany,
    ReadWriteOncePod,
}

impl AccessMode {
    pub fn parse(s: &str, path: &str) -> Result<AccessMode> {
        Ok(match s {
            "ReadWriteOnce" => AccessMode::ReadWriteOnce,
            "ReadOnlyMany" => AccessMode::ReadOnlyMany,
            "ReadWriteMany" => AccessMode::ReadWriteMany,
            "ReadWriteOncePod" => AccessMode::ReadWriteOncePod,
            _ => {
                return Err(Error::Invalid(format!(
                    "{path}: unknown access mode {s:?} (ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod)"
                )));
            }
        })
    }

    /// kubectl's short form (RWO, ROX, RWX, RWOP).
    pub fn short(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "RWO",
            AccessMode::ReadOnlyMany => "ROX",
            AccessMode::ReadWriteMany => "RWX",
            AccessMode::ReadWriteOncePod => "RWOP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReclaimPolicy {
    Retain,
    Delete,
}

impl ReclaimPolicy {
    pub fn parse(s: &str, path: &str) -> Result<ReclaimPolicy> {
        match s {
            "Retain" => Ok(ReclaimPolicy::Retain),
            "Delete" => Ok(ReclaimPolicy::Delete),
            "Recycle" => Err(Error::Invalid(format!(
                "{path}: Recycle is deprecated in Kubernetes and not supported: use Delete"
            ))),
            _ => Err(Error::Invalid(format!(
                "{path}: unknown reclaim policy {s:?} (Retain, Delete)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindingMode {
    Immediate,
    WaitForFirstConsumer,
}

/// Where a volume's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// An ext4 image file of the volume's size on a loop device: the size is enforced.
    Loopfile,
    /// A plain directory: no limit.
    Dir,
}

impl BackendKind {
    pub fn parse(s: &str, path: &str) -> Result<BackendKind> {
        match s {
            "loopfile" => Ok(BackendKind::Loopfile),
            "dir" => Ok(BackendKind::Dir),
            _ => Err(Error::Invalid(format!(
                "{path}: unknown backend {s:?} (loopfile, dir)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Loopfile => "loopfile",
            BackendKind::Dir => "dir",
        }
    }
}

/// A StorageClass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageClass {
    #[serde(default = "v1")]
    pub version: u32,
    pub name: String,
    pub provisioner: String,
    pub reclaim_policy: ReclaimPolicy,
    pub allow_volume_expansion: bool,
    pub binding_mode: BindingMode,
    pub backend: BackendKind,
    pub fs_type: String,
    /// Annotated `storageclass.kubernetes.io/is-default-class: "true"`.
    pub is_default: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created: String,
}

impl StorageClass {
    /// The class berth has out of the box.
    pub fn builtin() -> StorageClass {
        StorageClass {
            version: VERSION,
            name: DEFAULT_CLASS.into(),
            provisioner: PROVISIONER.into(),
            reclaim_policy: ReclaimPolicy::Delete,
            allow_volume_expansion: false,
            binding_mode: BindingMode::Immediate,
            backend: BackendKind::Loopfile,
            fs_type: "ext4".into(),
            is_default: true,
            labels: BTreeMap::new(),
            created: String::new(),
        }
    }
}

/// A PersistentVolume's back end, as Kubernetes' `spec.csi` or `spec.local`/`spec.hostPath`
/// name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// `csi: {driver: berth.io/local, volumeHandle, volumeAttributes: {backend, fsType}}`:
    /// a volume berth made (or will make) in its data root.
    Csi {
        handle: String,
        backend: BackendKind,
        fs_type: String,
    },
    /// `local.path` or `hostPath.path`: an existing directory (the `dir` back end, no limit).
    Path { path: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumePhase {
    Available,
    Bound,
    Released,
    Failed,
}

/// Which claim a volume is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A PersistentVolume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    #[serde(default = "v1")]
    pub version: u32,
    pub name: String,
    /// Bytes.
    pub capacity: u64,
    pub access_modes: Vec<AccessMode>,
    pub reclaim_policy: ReclaimPolicy,
    /// "" for none.
    pub class: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub source: Source,
    pub claim_ref: Option<ClaimRef>,
    pub phase: VolumePhase,
    #[serde(default)]
    pub reason: String,
    /// Made by a class's provisioner (not applied by someone).
    #[serde(default)]
    pub provisioned: bool,
    /// Deleted while bound: removed once its claim is gone (protection).
    #[serde(default)]
    pub terminating: bool,
    pub created: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimPhase {
    Pending,
    Bound,
    Lost,
}

/// What a claim asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSpec {
    /// Bytes.
    pub request: u64,
    pub access_modes: Vec<AccessMode>,
    /// None: the default class; Some(""): only class-less volumes, never provisioned.
    pub class: Option<String>,
    pub volume_name: Option<String>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

/// A PersistentVolumeClaim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    #[serde(default = "v1")]
    pub version: u32,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub spec: ClaimSpec,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub phase: ClaimPhase,
    #[serde(default)]
    pub reason: String,
    /// The volume it is bound to.
    pub volume: Option<String>,
    /// Deleted while a pod uses it: removed with the last such pod (protection).
    #[serde(default)]
    pub terminating: bool,
    pub created: String,
}

/// A name as Kubernetes wants one: an RFC 1123 DNS subdomain (lowercase letters, digits, '-'
/// and '.', starting and ending with a letter or digit, at most 253 characters).
pub fn check_name(name: &str, path: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{path}: {name:?} is not a valid name (an RFC 1123 DNS subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        )))
    }
}

/// A storage size from a Kubernetes quantity (`64Mi`, `1Gi`, `10G`); zero, negative and
/// malformed ones (`10Gb`) are refused naming `path`.
pub fn size(v: &serde_json::Value, path: &str) -> Result<u64> {
    let n = crate::pod::manifest::quantity(v, 1.0, path).map_err(|e| match e {
        crate::pod::Error::Manifest(m) => Error::Invalid(m),
        other => Error::Invalid(format!("{path}: {other}")),
    })?;
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{path}: a size must be more than 0"
        )));
    }
    Ok(n)
}

/// Bytes as Kubernetes quantities are written (`64Mi`, `1Gi`, or bytes).
pub fn quantity_text(n: u64) -> String {
    for (unit, suffix) in [
        (1u64 << 40, "Ti"),
        (1 << 30, "Gi"),
        (1 << 20, "Mi"),
        (1 << 10, "Ki"),
    ] {
        if n >= unit && n % unit == 0 {
            return format!("{}{suffix}", n / unit);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_sizes_as_kubernetes_takes_them() {
        assert!(check_name("data-1.x", "m").is_ok());
        for bad in ["", "Data", "-a", "a-", "a_b", &"a".repeat(254)] {
            assert!(check_name(bad, "metadata.name").is_err(), "{bad}");
        }
        assert_eq!(size(&json!("64Mi"), "s").unwrap(), 64 << 20);
        assert_eq!(size(&json!("1G"), "s").unwrap(), 1_000_000_000);
        for bad in [
            json!("10Gb"),
            json!("-1Gi"),
            json!("0"),
            json!(0),
            json!([1]),
        ] {
            let e = size(&bad, "spec.capacity.storage").unwrap_err().to_string();
            assert!(e.contains("spec.capacity.storage"), "{e}");
        }
        assert_eq!(quantity_text(64 << 20), "64Mi");
        assert_eq!(quantity_text(1 << 30), "1Gi");
        assert_eq!(quantity_text(1_000_000_000), "1000000000");
        assert!(AccessMode::parse("ReadWriteOnce", "a").is_ok());
        assert!(
            AccessMode::parse("RWO", "spec.accessModes[0]")
                .unwrap_err()
                .to_string()
                .contains("spec.accessModes[0]")
        );
        assert!(ReclaimPolicy::parse("Keep", "r").is_err());
    }
}
