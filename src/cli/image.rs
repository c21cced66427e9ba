//! `berth image ...`: thin wrappers over `berth::image::Images`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth::image::registry::Credentials;
use berth::image::{Images, PullOptions, pull::human};
use clap::{Parser, Subcommand};

use super::Logger;

/// berth image: the image store (pull, import, unpack into bundles).
#[derive(Debug, Parser)]
#[command(name = "berth image")]
struct ImageCli {
    /// Image store directory (default: berth's --data-root, $BERTH_DATA_ROOT or /var/lib/berth).
    #[arg(long = "data-root", global = true)]
    data_root: Option<PathBuf>,
    #[command(subcommand)]
    command: ImageCommand,
}

/// Parse and run `berth image ARGS`; returns the exit code.
pub fn main(args: &[String], data_root: &Path, log: &Logger) -> Result<i32> {
    let cli = match ImageCli::try_parse_from(
        std::iter::once("berth image").chain(args.iter().map(String::as_str)),
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    dispatch(
        cli.command,
        cli.data_root.as_deref().unwrap_or(data_root),
        log,
    )
}

/// The image verbs.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry (and unpack its layers).
    Pull {
        /// Platform to pull from a multi-platform image (default: this host's).
        #[arg(long)]
        platform: Option<String>,
        /// Registry credentials, USER:PASSWORD.
        #[arg(long)]
        creds: Option<String>,
        /// Docker-style auth.json with credentials.
        #[arg(long = "authfile")]
        auth_file: Option<PathBuf>,
        /// Speak plain HTTP to this registry (host[:port]; loopback ones always are).
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        /// Parallel layer downloads.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Only download; unpack later, on first use.
        #[arg(long = "no-unpack")]
        no_unpack: bool,
        /// Print nothing but the image's name (no progress).
        #[arg(short, long)]
        quiet: bool,
        reference: String,
    },
    /// Import an OCI layout directory, an oci-archive or a docker-archive.
    Import {
        /// Name the (first) image.
        #[arg(long)]
        name: Option<String>,
        /// Platform to take from a multi-platform image (default: this host's).
        #[arg(long)]
        platform: Option<String>,
        path: PathBuf,
    },
    /// List images.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only print names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print an image's record, manifest and config as JSON.
    Inspect { reference: String },
    /// Remove an image name, and the content nothing else uses.
    #[command(alias = "remove")]
    Rm { references: Vec<String> },
    /// Remove blobs and snapshots no image or bundle uses.
    Prune,
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Disk usage of the image store.
    Df {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Write an OCI bundle (rootfs + config.json) for an image.
    Unpack {
        /// A flat copy of the layers instead of an overlay mount.
        #[arg(long)]
        copy: bool,
        reference: String,
        bundle: PathBuf,
    },
    /// Unmount a bundle written by `image unpack` and release its snapshots.
    Unmount { bundle: PathBuf },
}

/// Run one image verb; returns the exit code.
fn dispatch(cmd: ImageCommand, data_root: &Path, log: &Logger) -> Result<i32> {
    let images = Images::new(data_root);
    let mut say = |line: &str| errln!("{line}");
    match cmd {
        ImageCommand::Pull {
            platform,
            creds,
            auth_file,
            insecure,
            jobs,
            no_unpack,
            quiet,
            reference,
        } => {
            let opts = PullOptions {
                platform,
                creds: creds.as_deref().map(Credentials::parse).transpose()?,
                auth_file,
                insecure,
                jobs,
                unpack: !no_unpack,
                bars: !quiet && std::io::stderr().is_terminal(),
                ..Default::default()
            };
            let name = if quiet {
                images.pull(&reference, &opts, &mut |_| {})?
            } else {
                images.pull(&reference, &opts, &mut say)?
            };
            outln!("{name}");
        }
        ImageCommand::Import {
            name,
            platform,
            path,
        } => {
            for n in images.import(&path, name.as_deref(), platform.as_deref())? {
                outln!("{n}");
            }
        }
        ImageCommand::Ls { format, quiet } => {
            let list = images.list()?;
            if format == "json" {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else if quiet {
                list.iter().for_each(|i| outln!("{}", i.name));
            } else {
                outln!(
                    "{:<50} {:<12} {:<12} {:>10}  CREATED",
                    "NAME",
                    "IMAGE ID",
                    "PLATFORM",
                    "SIZE"
                );
                for i in list {
                    outln!(
                        "{:<50} {:<12} {:<12} {:>10}  {}",
                        i.name,
                        i.id,
                        i.platform,
                        human(i.size),
                        ago(&i.created)
                    );
                }
            }
        }
        ImageCommand::Inspect { reference } => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&images.inspect(&reference)?)?
            );
        }
        ImageCommand::Rm { references } => {
            anyhow::ensure!(!references.is_empty(), "image rm: name at least one image");
            for r in references {
                let (name, pruned) = images.remove(&r)?;
                outln!("{name}");
                log.debug(&format!(
                    "freed {} ({} blobs, {} snapshots)",
                    human(pruned.bytes),
                    pruned.blobs,
                    pruned.snapshots
                ));
            }
        }
        ImageCommand::Prune => {
            let p = images.prune()?;
            outln!(
                "removed {} blobs and {} snapshots, {} freed",
                p.blobs,
                p.snapshots,
                human(p.bytes)
            );
        }
        ImageCommand::Tag { source, target } => outln!("{}", images.tag(&source, &target)?),
        ImageCommand::Df { format } => {
            let du = images.disk_usage()?;
            if format == "json" {
                outln!("{}", serde_json::to_string_pretty(&du)?);
            } else {
                outln!("{} images", du.images);
                outln!("{:<10} {:>10}", "blobs", human(du.blobs));
                outln!("{:<10} {:>10}", "snapshots", human(du.snapshots));
                outln!("{:<10} {:>10}", "ingest", human(du.ingest));
            }
        }
        ImageCommand::Unpack {
            copy,
            reference,
            bundle,
        } => {
            images
                .unpack(&reference, &bundle, copy, &mut say)
                .with_context(|| format!("unpack {reference} into {}", bundle.display()))?;
        }
        ImageCommand::Unmount { bundle } => images.unmount(&bundle)?,
    }
    Ok(0)
}

/// How long ago an RFC 3339 time was, as docker and podman say it ("3 days ago").
fn ago(time: &str) -> String {
    let Ok(t) =
        humantime::parse_rfc3339_weak(time.trim_end_matches('Z').split('.').next().unwrap_or(""))
    else {
        return if time.is_empty() {
            "-".into()
        } else {
            time.into()
        };
    };
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (n, unit) = match secs {
        0..60 => return "less than a minute ago".into(),
        60..3600 => (secs / 60, "minute"),
        3600..86400 => (secs / 3600, "hour"),
        86400..1209600 => (secs / 86400, "day"),
        1209600..5184000 => (secs / 604800, "week"),
        5184000..63072000 => (secs / 2592000, "month"),
        _ => (secs / 31536000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::ago;

    #[test]
    fn ages_as_docker_says_them() {
        let at = |secs: u64| {
            humantime::format_rfc3339_seconds(
                std::time::SystemTime::now() - std::time::Duration::from_secs(secs),
            )
            .to_string()
        };
        assert_eq!(ago(&at(5)), "less than a minute ago");
        assert_eq!(ago(&at(3 * 3600 + 5)), "3 hours ago");
        assert_eq!(ago(&at(86400)), "1 day ago");
        // docker (go-units' HumanDuration) counts months up to two years
        assert_eq!(ago(&at(400 * 86400)), "13 months ago");
        assert_eq!(ago(&at(3 * 365 * 86400 + 86400)), "3 years ago");
        assert_eq!(ago(""), "-");
        assert!(ago("2015-10-21T07:28:00.123456789Z").ends_with("years ago"));
    }
}
