//! The OCI runtime: bundles in, containers out, with runc's lifecycle
//! (`create`, `start`, `state`, `kill`, `delete`, `run`, `exec`, `list`, `ps`).
//!
//! One file per verb. [`spec`] reads config.json, [`plan`] turns it into plain data, `create`
//! and `init` carry the plan out. [`Runtime`] is the entry point for Rust callers.

mod create;
mod delete;
mod error;
mod events;
mod exec;
mod foreground;
mod handshake;
pub mod hooks;
mod init;
mod kill;
mod list;
mod pause;
mod run;
mod start;
pub mod update;

pub mod default_spec;
pub mod features;
pub mod plan;
pub mod resources;
pub mod seccomp;
pub mod seccomp_default;
pub mod spec;
pub mod state;

use std::path::{Path, PathBuf};

pub use create::{CreateOptions, Created};
pub use error::{Error, Result};
pub use events::Event;
pub use exec::ExecOptions;
pub use run::{Outcome, RunOptions};
pub use state::{State, Status};

/// An OCI runtime whose container state lives under one root directory (`--root`).
///
/// Operations that start processes (`create`, `run`, `exec`) fork the calling process: call
/// them from a single-threaded process (the `berth` binary, or a small helper it spawns), since
/// a fork copies only the calling thread.
#[derive(Debug, Clone)]
pub struct Runtime {
    store: state::Store,
}

/// Default state root, as `runc` uses `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/berth";

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new(DEFAULT_ROOT)
    }
}

impl Runtime {
    /// A runtime keeping state under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            store: state::Store::new(root),
        }
    }

    /// Cache compiled seccomp programs in `dir` rather than under the state root: the pod
    /// runtime gives each pod a root of its own, and one cache for all of them, so only a
    /// host's first pod compiles the default profile.
    pub fn with_seccomp_cache(self, dir: impl Into<PathBuf>) -> Self {
        Runtime {
            store: self.store.with_seccomp_cache(dir),
        }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.store.root()
    }

    /// Create a container from a bundle: its init is set up and waits for [`Runtime::start`].
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Created> {
        create::create(&self.store, id, opts)
    }

    /// Start a created container's process. Returns warnings (failed poststart hooks).
    pub fn start(&self, id: &str) -> Result<Vec<String>> {
        start::start(&self.store, id)
    }

    /// The runtime-spec state of a container.
    pub fn state(&self, id: &str) -> Result<State> {
        let (locked, rec) = self.store.open(id, false)?;
        Ok(locked.state(&rec))
    }

    /// Send `signal` to the container's init, or with `all` to each of its processes.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        kill::kill(&self.store, id, signal, all)
    }

    /// Delete a container: its processes (with `force`, or if only created), cgroup and state.
    /// Returns warnings (failed poststop hooks).
    pub fn delete(&self, id: &str, force: bool) -> Result<Vec<String>> {
        delete::delete(&self.store, id, force)
    }

    /// Create and start a container; in the foreground, wait for it and delete it.
    pub fn run(&self, id: &str, opts: &RunOptions) -> Result<(Outcome, Vec<String>)> {
        run::run(&self.store, id, opts)
    }

    /// Run another process in a container.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<(Outcome, Vec<String>)> {
        exec::exec(&self.store, id, opts)
    }

    /// The state of every container.
    pub fn list(&self) -> Result<Vec<State>> {
        list::list(&self.store)
    }

    /// The host pids of a container's processes.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        list::ps(&self.store, id)
    }

    /// Freeze every process of the container.
    pub fn pause(&self, id: &str) -> Result<()> {
        pause::pause(&self.store, id)
    }

    /// Thaw a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        pause::resume(&self.store, id)
    }

    /// Change a container's cgroup limits.
    pub fn update(&self, id: &str, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
        update::update(&self.store, id, res)
    }

    /// The container's resource usage.
    pub fn stats(&self, id: &str) -> Result<crate::linux::cgroup::stats::Stats> {
        events::stats(&self.store, id)
    }

    /// Stats (and OOM) events every `interval` until the container stops.
    pub fn events(
        &self,
        id: &str,
        interval: std::time::Duration,
        emit: &mut dyn FnMut(&Event),
    ) -> Result<()> {
        events::stream(&self.store, id, interval, emit)
    }

    /// The process object of a container's config.json (the base `exec` builds on).
    pub fn config_process(&self, id: &str) -> Result<oci_spec::runtime::Process> {
        let (_l, rec) = self.store.open(id, false)?;
        let spec = spec::load(&rec.bundle).map_err(Error::config)?;
        spec.process()
            .clone()
            .ok_or_else(|| Error::config(spec::SpecError::new("process", "required")))
    }
}
