//! CRI tests: a real `berth serve` on a unix socket of each test's own, driven by a Rust gRPC
//! client (k8s-cri's generated types) through every RPC, with real pods on a CNI bridge of the
//! test's own and images from a real registry. They check what the kernel shows (namespaces,
//! cgroup files, processes, mounts), the gRPC codes of failures, concurrency, a daemon killed
//! with SIGKILL and started again, and a client that sends the socket path as `:authority`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../pods/env.rs"]
#[allow(dead_code)]
mod env;
#[path = "../images/harness.rs"]
#[allow(dead_code)]
mod harness;

#[allow(dead_code)]
mod daemon;

mod authority;
mod exec_stop;
mod failures;
mod images;
mod lifecycle;
mod mounts_users;
mod observe;
mod portforward;
mod restart;
mod seccomp;
mod security;
mod streaming;
