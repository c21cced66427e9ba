//! # berth
//!
//! A Linux container runtime for Kubernetes-style pods. This crate is both the `berth` binary
//! and a library exposing the same operations.
//!
//! The OCI runtime ([`oci`]) runs runtime-spec bundles with runc's lifecycle:
//!
//! ```no_run
//! use berth::oci::{CreateOptions, Runtime};
//!
//! let rt = Runtime::new("/run/berth");
//! let opts = CreateOptions { bundle: "/path/to/bundle".into(), ..Default::default() };
//! let created = rt.create("web", &opts)?;
//! println!("init pid {}", created.pid);
//! rt.start("web")?;
//! println!("{:?}", rt.state("web")?.status);
//! rt.kill("web", libc::SIGTERM, false)?;
//! rt.delete("web", true)?;
//! # Ok::<(), berth::oci::Error>(())
//! ```
//!
//! Images ([`image`]) are pulled or imported into a content store and unpacked into
//! copy-on-write snapshots; `Images::unpack` writes a bundle the runtime runs.
//!
//! Pods ([`pod`]) group containers around shared namespaces, CNI and one monitor per pod;
//! [`cri`] serves them to kubelet and crictl as the Kubernetes CRI (`berth serve`).
//! Volumes ([`volume`]) are PersistentVolumes and claims with enforced sizes, which pods use;
//! [`kube`] applies multi-kind Kubernetes YAML to all of them.
//!
//! Layers: [`oci`] (spec → plan → apply, one file per verb) uses [`linux`] (namespaces,
//! mounts, cgroups, processes; all `unsafe` code is in [`linux::sys`]).

pub mod configmap;
pub mod cri;
pub(crate) mod fault;
pub mod http2;
pub mod image;
pub mod kube;
pub mod linux;
pub mod oci;
pub mod pod;
pub mod records;
pub mod service;
pub mod undo;
pub mod volume;

// The embeddable surface, by layer (each module's docs show how to use it).
pub use cri::{Config as CriConfig, serve};
pub use image::{Images, PullOptions};
pub use oci::{CreateOptions, ExecOptions, RunOptions};
/// The pod runtime: the library's entry point (the CRI's verbs in Rust types).
pub use pod::{ContainerConfig, Options, PodConfig, Runtime};
pub use volume::Volumes;
