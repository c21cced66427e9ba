//! Pod tests: real pods from Kubernetes manifests, real CNI plugins (Debian's
//! containernetworking-plugins) on a bridge of each test's own, images from a real registry.
//! They assert what the kernel shows: namespace inodes, process trees, cgroup files, routes and
//! connections, mounts, exit statuses, and that removal leaves nothing.

#[path = "../common/mod.rs"]
mod common;
mod env;
#[path = "../common/grpc_health.rs"]
mod grpc_health;
#[path = "../images/harness.rs"]
#[allow(dead_code)]
mod harness;

mod cli;
mod config;
mod crash;
mod example;
mod failures;
mod lifecycle;
mod limits;
mod namespaces;
mod network;
mod probes;
mod services;
mod upgrade;
mod volumes;
