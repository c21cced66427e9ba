//! Image store tests: real registries (Debian's docker-registry on loopback), fixture images
//! built from busybox-static with umoci and skopeo, hand-made malicious layers. They assert
//! what landed on disk (modes, owners, inodes, xattrs, times), what is mounted, what the
//! registry served, and that failures leave nothing behind.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod cli;
mod import;
mod malicious;
mod pull;
mod unpack;
