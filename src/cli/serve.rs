//! `berth serve`: the CRI daemon (see `berth::cri`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;

/// berth serve: the Kubernetes CRI v1 (RuntimeService, ImageService) on a unix socket.
#[derive(Debug, Parser)]
#[command(name = "berth serve")]
struct ServeCli {
    /// Where to listen (default: the config's `listen`, else unix:///run/berth/berth.sock).
    #[arg(long)]
    listen: Option<String>,
    /// A TOML configuration file (see the README).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Streaming server address for exec, attach and port-forward (IP:PORT).
    #[arg(long = "stream-address")]
    stream_address: Option<String>,
}

pub fn main(args: &[String], root: &Path, data_root: &Path) -> Result<i32> {
    let cli = ServeCli::parse_from(
        std::iter::once("berth serve".to_string()).chain(args.iter().cloned()),
    );
    let mut cfg = match &cli.config {
        Some(p) => berth::cri::Config::load(p)?,
        None => {
            // without a file, berth's global --root and --data-root (and their env) apply
            berth::cri::Config {
                state_root: root.to_path_buf(),
                data_root: data_root.to_path_buf(),
                ..Default::default()
            }
        }
    };
    if let Some(l) = cli.listen {
        cfg.listen = l;
    }
    if let Some(a) = cli.stream_address {
        cfg.stream_address = a;
    }
    cfg.check()?; // the flags get the file's checks too
    berth::cri::serve(cfg, |_| {})?;
    Ok(0)
}
