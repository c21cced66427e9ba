//! `berth service ls|inspect` (Services with their endpoints) and the hidden `berth service
//! __resync` that pod monitors and the pod layer run after a change (`berth::service`).

use std::path::Path;

use anyhow::Result;
use berth::service::{self, ServiceConfig, Services, endpoints::Endpoint};
use clap::{Parser, Subcommand};

use super::pod::{Paths, options};

/// berth service: Services (a stable virtual IP and name for pods), as `kube apply` made them.
#[derive(Debug, Parser)]
#[command(name = "berth service")]
struct ServiceCli {
    #[command(flatten)]
    paths: Paths,
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// List services: type, cluster IP, ports and ready endpoints.
    Ls {
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
    },
    /// A service with every matching pod: its address, ports and why it does not serve.
    Inspect {
        name: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// Bring the rules and names in line (run by pod monitors and berth itself).
    #[command(name = "__resync", hide = true)]
    Resync,
}

/// `80/TCP,53/UDP`.
pub fn ports_text(s: &service::Service) -> String {
    if s.ports.is_empty() {
        return "<none>".into();
    }
    s.ports
        .iter()
        .map(|p| format!("{}/{:?}", p.port, p.protocol))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn main(args: &[String], root: &Path, data_root: &Path) -> Result<i32> {
    let argv = std::iter::once("berth service").chain(args.iter().map(String::as_str));
    let cli = match ServiceCli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    if let ServiceCommand::Resync = cli.command {
        // the state root says whose services it serves (none: nothing to do)
        let Some(cfg) = ServiceConfig::of_root(root) else {
            return Ok(0);
        };
        let rt = berth::Runtime::new(options(root, &cfg.data_root, &cli.paths, None, vec![]));
        service::resync(&rt, &cfg)?;
        return Ok(0);
    }
    let rt = berth::Runtime::new(options(root, data_root, &cli.paths, None, vec![]));
    let services = Services::new(&rt.options().data_root);
    let (all, _) = service::resync::current(&rt, &services)?;
    match cli.command {
        ServiceCommand::Ls {
            namespace,
            all_namespaces,
        } => {
            let mut rows = vec![
                vec![
                    "NAMESPACE",
                    "NAME",
                    "TYPE",
                    "CLUSTER-IP",
                    "PORTS",
                    "ENDPOINTS",
                ]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>(),
            ];
            for (s, eps) in all
                .iter()
                .filter(|(s, _)| all_namespaces || s.namespace == namespace)
            {
                rows.push(vec![
                    s.namespace.clone(),
                    s.name.clone(),
                    "ClusterIP".into(),
                    s.cluster_ip.map_or("None".into(), |a| a.to_string()),
                    ports_text(s),
                    eps.iter().filter(|e| e.ready()).count().to_string(),
                ]);
            }
            let widths: Vec<usize> = (0..rows[0].len())
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in rows {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                outln!("{}", line.join("   ").trim_end());
            }
        }
        ServiceCommand::Inspect { name, namespace } => {
            let Some((s, eps)) = all
                .iter()
                .find(|(s, _)| s.name == name && s.namespace == namespace)
            else {
                anyhow::bail!("service {namespace}/{name} not found");
            };
            let eps: Vec<serde_json::Value> = eps
                .iter()
                .map(|e: &Endpoint| {
                    serde_json::json!({"pod": e.pod, "podId": e.pod_id, "ip": e.ip,
                        "ports": e.ports, "ready": e.ready(), "why": e.why})
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"service": s, "endpoints": eps}))?
            );
        }
        ServiceCommand::Resync => unreachable!("handled above"),
    }
    Ok(0)
}
