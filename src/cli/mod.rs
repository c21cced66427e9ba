//! The `berth` command line: runc's commands and flags, so podman, containerd or a person can
//! use berth in runc's place. Each verb is a few lines that call the library.

#[macro_use]
mod output;
mod image;
mod kube;
mod kube_create;
mod log;
mod oci;
mod pod;
mod serve;
mod service;
mod volume;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use log::Logger;

/// berth: a container runtime for Kubernetes-style pods (runc-compatible OCI runtime).
#[derive(Debug, Parser)]
#[command(name = "berth", disable_version_flag = true)]
pub struct Cli {
    /// Directory for container state (a tmpfs).
    #[arg(long, global = true, default_value = berth::oci::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Also write log lines (errors, warnings) to this file.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the --log file.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Log debug messages too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Cache compiled seccomp programs here instead of under --root (the pod runtime shares
    /// one cache among its pods' roots).
    #[arg(long = "seccomp-cache", global = true, hide = true)]
    pub seccomp_cache: Option<PathBuf>,
    /// Use systemd to manage cgroups (not implemented: berth writes cgroupfs directly).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Image store directory (blobs, snapshots, images.json).
    #[arg(long = "data-root", global = true, env = "BERTH_DATA_ROOT", default_value = berth::image::store::DEFAULT_DATA_ROOT)]
    pub data_root: PathBuf,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process starts with `start`.
    Create(oci::CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container.
    Kill {
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container (and its cgroup and state).
    Delete {
        /// Kill the container first if it runs.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container.
    Run(oci::RunArgs),
    /// Run a process in a running container.
    Exec(oci::ExecArgs),
    /// List containers.
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only print ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List a container's processes (with an ID, as runc), or the containers of every pod.
    Ps {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: Option<String>,
        /// Arguments for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a container's cgroup limits.
    Update(oci::UpdateArgs),
    /// Print resource usage (--stats: once), or stats and OOM events every interval.
    Events {
        /// Print the usage once and exit.
        #[arg(long)]
        stats: bool,
        /// Time between stats events (like 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: humantime::Duration,
        id: String,
    },
    /// Write a default config.json.
    Spec {
        /// Directory to write config.json into.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Rootless containers need user namespaces (not supported yet).
        #[arg(long)]
        rootless: bool,
    },
    /// Print the runtime-spec features JSON.
    Features,
    /// Manage images: pull, import, ls, inspect, rm, prune, tag, df, unpack, unmount
    /// (`berth image --help`).
    // Parsed by cli::image only when asked for: building its clap tree on every runtime
    // call would cost the OCI verbs page faults and time.
    #[command(disable_help_flag = true)]
    Image {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run and manage pods: run (a Kubernetes manifest), ls, inspect, stop, rm, logs, exec,
    /// stats (`berth pod --help`).
    #[command(disable_help_flag = true)]
    Pod {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Kubernetes objects on this node: apply, get, delete Pods, PersistentVolumes, claims and
    /// StorageClasses from YAML (`berth kube --help`).
    #[command(disable_help_flag = true)]
    Kube {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// `berth kube apply` (`berth apply -f FILE`).
    #[command(disable_help_flag = true)]
    Apply {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// `berth kube get` (`berth get pods`).
    #[command(disable_help_flag = true)]
    Get {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Persistent volumes with enforced sizes: create, ls, inspect, rm, release
    /// (`berth volume --help`).
    #[command(disable_help_flag = true)]
    Volume {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Services: ls, inspect (made by `berth kube apply`; `berth service --help`).
    #[command(disable_help_flag = true)]
    Service {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Serve the Kubernetes CRI (RuntimeService and ImageService) on a unix socket, for kubelet
    /// and crictl (`berth serve --help`).
    #[command(disable_help_flag = true)]
    Serve {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Run the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let logger = match Logger::new(cli.log.as_deref(), &cli.log_format, cli.debug) {
        Ok(l) => l,
        Err(e) => {
            errln!(
                "berth: error: open log {}: {e}",
                cli.log.clone().unwrap_or_default().display()
            );
            return 1;
        }
    };
    if cli.version {
        // one write, so `berth --version | head -1` does not meet a closed pipe
        let text = format!(
            "berth version {}\nspec: {}\n",
            env!("CARGO_PKG_VERSION"),
            berth::oci::state::OCI_VERSION
        );
        let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
        return 0;
    }
    let Some(command) = cli.command else {
        logger.error("no command given (try --help)");
        return 1;
    };
    if cli.systemd_cgroup {
        logger.error("the systemd cgroup driver is not supported: berth manages cgroups directly (cgroupfs); drop --systemd-cgroup");
        return 1;
    }
    let result = match command {
        Command::Image { args } => image::main(&args, &cli.data_root, &logger),
        Command::Pod { args } => pod::main(&args, &cli.root, &cli.data_root, &logger),
        Command::Serve { args } => serve::main(&args, &cli.root, &cli.data_root),
        Command::Kube { args } => kube::main(None, &args, &cli.root, &cli.data_root),
        Command::Apply { args } => kube::main(Some("apply"), &args, &cli.root, &cli.data_root),
        Command::Get { args } => kube::main(Some("get"), &args, &cli.root, &cli.data_root),
        Command::Volume { args } => volume::main(&args, &cli.data_root),
        Command::Service { args } => service::main(&args, &cli.root, &cli.data_root),
        Command::Ps {
            format, id: None, ..
        } => pod::ps(&cli.root, &cli.data_root, &format).map(|_| 0),
        other => oci::dispatch(other, &cli.root, cli.seccomp_cache.as_deref(), &logger),
    };
    match result {
        Ok(code) => code,
        Err(e) if output::broken_pipe(&e) => berth::linux::sys::die_of_sigpipe(),
        Err(e) => {
            logger.error(&format!("{e:#}"));
            1
        }
    }
}
