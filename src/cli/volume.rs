//! `berth volume ...`: volumes for people who do not write YAML (over `berth::volume`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use berth::volume::{AccessMode, BackendKind, Volumes, quantity_text};
use clap::{Parser, Subcommand};

/// berth volume: persistent volumes with enforced sizes.
#[derive(Debug, Parser)]
#[command(name = "berth volume")]
struct VolumeCli {
    /// Image store directory, where volumes live (default: berth's --data-root).
    #[arg(long = "data-root", global = true)]
    data_root: Option<PathBuf>,
    #[command(subcommand)]
    command: VolumeCommand,
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Make a volume (Retain) and a claim of its name that pods use
    /// (`persistentVolumeClaim: {claimName: NAME}`).
    Create {
        name: String,
        /// Its size (64Mi, 1Gi): writes past it fail with ENOSPC.
        #[arg(long)]
        size: String,
        /// ReadWriteOnce (default), ReadWriteOncePod, ReadOnlyMany, ReadWriteMany; repeatable.
        #[arg(long = "access-mode")]
        access_modes: Vec<String>,
        /// loopfile (default: the size is enforced) or dir (no limit).
        #[arg(long, default_value = "loopfile")]
        backend: String,
        /// The claim's namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// List volumes with their size, use and claim.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// A volume's record, usage and users as JSON.
    Inspect { name: String },
    /// Remove volumes with their data and claims (refused while a pod uses one).
    #[command(alias = "remove")]
    Rm { names: Vec<String> },
    /// Make a Released volume (its claim deleted, Retain) Available again; its data stays.
    Release { name: String },
}

pub fn main(args: &[String], data_root: &Path) -> Result<i32> {
    let cli = match VolumeCli::try_parse_from(
        std::iter::once("berth volume").chain(args.iter().map(String::as_str)),
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    let vols = Volumes::new(cli.data_root.as_deref().unwrap_or(data_root));
    for what in vols.repair() {
        errln!("berth: warning: {what}");
    }
    match cli.command {
        VolumeCommand::Create {
            name,
            size,
            access_modes,
            backend,
            namespace,
        } => {
            let size = berth::volume::size(&serde_json::Value::String(size), "--size")?;
            let mut modes = Vec::new();
            for m in &access_modes {
                modes.push(AccessMode::parse(m, "--access-mode")?);
            }
            if modes.is_empty() {
                modes.push(AccessMode::ReadWriteOnce);
            }
            let backend = BackendKind::parse(&backend, "--backend")?;
            let v = vols.create(&name, &namespace, size, modes, backend)?;
            outln!("{}", v.name);
        }
        VolumeCommand::Ls { format } => {
            let all: Vec<_> = vols
                .volumes()?
                .into_iter()
                .map(|v| vols.status(v))
                .collect();
            if format == "json" {
                outln!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(0);
            }
            outln!(
                "{:<24} {:>9} {:>10} {:>10} {:<10} {:<8} {:<10} {:<24} BACKEND",
                "NAME",
                "CAPACITY",
                "LIMIT",
                "USED",
                "MODES",
                "RECLAIM",
                "STATUS",
                "CLAIM"
            );
            for s in all {
                let v = &s.volume;
                let (backend, limit) = match (&v.source, s.limit) {
                    (_, None) => ("dir", "no limit".to_string()),
                    (berth::volume::Source::Csi { backend, .. }, Some(l)) => {
                        (backend.name(), berth::image::pull::human(l))
                    }
                    (_, Some(l)) => ("dir", berth::image::pull::human(l)),
                };
                outln!(
                    "{:<24} {:>9} {:>10} {:>10} {:<10} {:<8} {:<10} {:<24} {backend}",
                    v.name,
                    quantity_text(v.capacity),
                    limit,
                    s.used
                        .map(berth::image::pull::human)
                        .unwrap_or_else(|| "-".into()),
                    v.access_modes
                        .iter()
                        .map(|m| m.short())
                        .collect::<Vec<_>>()
                        .join(","),
                    format!("{:?}", v.reclaim_policy),
                    format!("{:?}", v.phase),
                    v.claim_ref
                        .as_ref()
                        .map(|c| format!("{}/{}", c.namespace, c.name))
                        .unwrap_or_else(|| "-".into()),
                );
            }
        }
        VolumeCommand::Inspect { name } => {
            let s = vols.status(vols.volume(&name)?);
            outln!("{}", serde_json::to_string_pretty(&s)?);
        }
        VolumeCommand::Rm { names } => {
            anyhow::ensure!(!names.is_empty(), "volume rm: name at least one volume");
            for n in names {
                vols.remove(&n)?;
                outln!("{n}");
            }
        }
        VolumeCommand::Release { name } => {
            vols.release(&name)?;
            outln!("{name}");
        }
    }
    Ok(0)
}
