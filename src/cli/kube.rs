//! `berth kube ...` (and the aliases `berth apply`, `berth get`): thin wrappers over
//! `berth::kube`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth::kube::{self, ApplyOptions, Kind, Listing};
use berth::volume::Volumes;
use clap::{Parser, Subcommand};

use super::pod::{Paths, made, options};

/// berth kube: Kubernetes objects (Pod, PersistentVolume, PersistentVolumeClaim, StorageClass,
/// ConfigMap, Secret) on this node, as kubectl users expect.
#[derive(Debug, Parser)]
#[command(name = "berth kube")]
struct KubeCli {
    #[command(flatten)]
    paths: Paths,
    #[command(subcommand)]
    command: KubeCommand,
}

#[derive(Debug, Subcommand)]
enum KubeCommand {
    /// Create or update the objects of a file (YAML or JSON, several documents; `-` is stdin).
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// How long to wait for claims to be bound and pods to start.
        #[arg(long, default_value = "60s")]
        timeout: humantime::Duration,
        /// Do not wait for pods to start.
        #[arg(short, long)]
        detach: bool,
    },
    /// Delete the objects of a file, or one object: `delete pvc data`.
    Delete {
        #[arg(short = 'f', long = "filename")]
        file: Option<PathBuf>,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// KIND NAME (pod, pv, pvc, storageclass, configmap, secret).
        what: Vec<String>,
    },
    /// List objects of a kind (pods, pv, pvc, storageclass), or one by name.
    Get {
        kind: String,
        name: Option<String>,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Every namespace.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        /// wide, json or yaml.
        #[arg(short, long, value_parser = ["wide", "json", "yaml"])]
        output: Option<String>,
        /// Print Secrets' values (base64, as Kubernetes stores them); hidden otherwise.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Create a ConfigMap or Secret from literals and files, as `kubectl create` does.
    Create {
        #[command(subcommand)]
        what: super::kube_create::Create,
        #[arg(short, long, default_value = "default", global = true)]
        namespace: String,
    },
}

/// The documents of a file (`-`: stdin).
pub(super) fn read_docs(file: &Path) -> Result<Vec<kube::Document>> {
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read stdin")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?
    };
    kube::parse(&text).with_context(|| file.display().to_string())
}

/// Parse and run `berth kube ARGS` (`verb` given: `berth apply|get ARGS`).
pub fn main(verb: Option<&str>, args: &[String], root: &Path, data_root: &Path) -> Result<i32> {
    let argv = std::iter::once("berth kube")
        .chain(verb)
        .chain(args.iter().map(String::as_str));
    let cli = match KubeCli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    let mut o = options(root, data_root, &cli.paths, None, vec![]);
    if let KubeCommand::Apply { timeout, .. } = &cli.command {
        o.bind_timeout = (*timeout).into();
    }
    let rt = made(o);
    let vols = Volumes::new(&rt.options().data_root);
    match cli.command {
        KubeCommand::Apply {
            file,
            timeout,
            detach,
        } => {
            let docs = read_docs(&file)?;
            let opts = ApplyOptions {
                timeout: timeout.into(),
                detach,
                pods_must_be_new: false,
            };
            kube::apply(&rt, &vols, &docs, &opts, &mut |l| errln!("{l}"), &mut |o| {
                outln!("{} {}", o.what, o.applied)
            })?;
        }
        KubeCommand::Create { what, namespace } => {
            let data = berth::configmap::ConfigData::new(&rt.options().data_root);
            outln!("{}", super::kube_create::create(&data, &namespace, what)?);
            // pods that waited for it start
            kube::start_pending(&rt, &mut |l| errln!("{l}"));
        }
        KubeCommand::Delete {
            file,
            namespace,
            what,
        } => {
            let results = match (file, what.as_slice()) {
                (Some(f), []) => kube::delete(&rt, &vols, &read_docs(&f)?),
                (None, [kind, name]) => {
                    let k = Kind::parse(kind).with_context(|| {
                        format!(
                            "{kind:?}: not a kind (pod, pv, pvc, storageclass, configmap, secret)"
                        )
                    })?;
                    vec![(
                        format!("{}/{name}", k.singular()),
                        kube::delete_named(&rt, &vols, k, name, &namespace).map(|_| ()),
                    )]
                }
                _ => bail!("kube delete: give -f FILE, or KIND NAME"),
            };
            let mut failed = 0;
            for (what, r) in results {
                match r {
                    Ok(()) => outln!("{what} deleted"),
                    Err(e) => {
                        failed += 1;
                        errln!("berth: error: {what}: {e}");
                    }
                }
            }
            if failed > 0 {
                return Ok(1);
            }
        }
        KubeCommand::Get {
            kind,
            name,
            namespace,
            all_namespaces,
            output,
            show_secrets,
        } => {
            let k = Kind::parse(&kind).with_context(|| {
                format!("{kind:?}: not a kind (pods, pv, pvc, storageclass, configmaps, secrets)")
            })?;
            let ns = (!all_namespaces).then_some(namespace.as_str());
            let objects = matches!(output.as_deref(), Some("json" | "yaml"));
            let wide = output.as_deref() == Some("wide");
            let show = kube::Show {
                wide,
                objects,
                secrets: show_secrets,
            };
            match kube::get(&rt, &vols, k, name.as_deref(), ns, show)? {
                Listing::Table(t) if t.is_empty() => match ns {
                    Some(n) if k.namespaced() => errln!("No resources found in {n} namespace."),
                    _ => errln!("No resources found"),
                },
                Listing::Table(t) => out!("{t}"),
                Listing::Objects(mut objs) => {
                    // one object by name is printed alone, a listing as kubectl's List
                    let v = if name.is_some() && objs.len() == 1 {
                        objs.remove(0)
                    } else {
                        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objs})
                    };
                    if output.as_deref() == Some("yaml") {
                        out!("{}", yaml_serde::to_string(&v)?);
                    } else {
                        outln!("{}", serde_json::to_string_pretty(&v)?);
                    }
                }
            }
        }
    }
    Ok(0)
}
