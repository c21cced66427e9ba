//! `berth pod ...` and `berth ps`: thin wrappers over `berth::pod::Runtime`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth::pod::{CniPaths, ContainerInfo, LogQuery, Options, Runtime};
use clap::{Parser, Subcommand};

use super::Logger;

/// berth pod: Kubernetes-style pods (shared network, IPC and UTS; CNI; one monitor per pod).
#[derive(Debug, Parser)]
#[command(name = "berth pod")]
struct PodCli {
    #[command(flatten)]
    paths: Paths,
    #[command(subcommand)]
    command: PodCommand,
}

/// Where pods, images, logs and CNI live.
#[derive(Debug, clap::Args)]
pub struct Paths {
    /// Image store (default: berth's --data-root).
    #[arg(long = "data-root", global = true)]
    data_root: Option<PathBuf>,
    /// Container logs.
    #[arg(
        long = "log-root",
        global = true,
        env = "BERTH_LOG_ROOT",
        default_value = "/var/log/berth/pods"
    )]
    log_root: PathBuf,
    /// CNI network configurations (the first file is used). Without it, or with none in it,
    /// pods use berth's default network; `/etc/cni/net.d` (kubelet's, and podman's) is read
    /// only by `berth serve` or when given here.
    #[arg(long = "cni-conf-dir", global = true, env = "BERTH_CNI_CONF_DIR")]
    cni_conf_dir: Option<PathBuf>,
    /// CNI plugin directories, colon-separated.
    #[arg(
        long = "cni-plugin-dirs",
        global = true,
        env = "BERTH_CNI_PLUGIN_DIRS",
        default_value = "/usr/lib/cni:/opt/cni/bin"
    )]
    cni_plugin_dirs: String,
    /// Parent cgroup of pods.
    #[arg(
        long = "cgroup-parent",
        global = true,
        env = "BERTH_CGROUP_PARENT",
        default_value = "/berth"
    )]
    cgroup_parent: String,
    /// host-local IPAM state of berth's default network.
    #[arg(
        long = "cni-ipam-dir",
        global = true,
        env = "BERTH_CNI_IPAM_DIR",
        default_value = "/var/lib/berth/cni/networks"
    )]
    cni_ipam_dir: PathBuf,
    /// Bridge of berth's default network (used when the CNI config dir has no configuration).
    #[arg(
        long = "default-network-bridge",
        global = true,
        env = "BERTH_DEFAULT_BRIDGE",
        default_value = "berth0"
    )]
    default_bridge: String,
    /// IPv4 subnet of berth's default network; its first address is the bridge's.
    #[arg(
        long = "default-network-subnet",
        global = true,
        env = "BERTH_DEFAULT_SUBNET",
        default_value = "10.77.0.0/16"
    )]
    default_subnet: String,
    /// IPv4 range of Services' ClusterIPs; must not overlap the pod network.
    #[arg(
        long = "service-cidr",
        global = true,
        env = "BERTH_SERVICE_CIDR",
        default_value = berth::service::store::DEFAULT_CIDR
    )]
    service_cidr: String,
}

#[derive(Debug, Subcommand)]
enum PodCommand {
    /// Run the pods of a Kubernetes manifest (YAML or JSON; several documents run several pods).
    Run {
        /// First restart back-off (kubelet's: 10s).
        #[arg(long = "restart-backoff", default_value = "10s")]
        restart_backoff: humantime::Duration,
        /// Registries to speak plain HTTP to.
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        /// How long to wait for the pod to start: every init container exited 0 and every
        /// other container's program running; a failure before that ends with its reason.
        #[arg(long, default_value = "60s")]
        timeout: humantime::Duration,
        /// Do not wait for the pod to start: print its ID once it is made.
        #[arg(short, long)]
        detach: bool,
        file: PathBuf,
    },
    /// List pods.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// A pod's record, containers and their statuses as JSON.
    Inspect { pod: String },
    /// Stop a pod's containers (grace period, then SIGKILL) and take its network down.
    Stop {
        /// Grace period (default: the pod's terminationGracePeriodSeconds).
        #[arg(short = 't', long)]
        time: Option<u64>,
        pods: Vec<String>,
    },
    /// Remove pods (running ones with --force).
    Rm {
        #[arg(short, long)]
        force: bool,
        pods: Vec<String>,
    },
    /// Print a container's logs.
    Logs {
        /// The container (default: the pod's only app container).
        #[arg(short, long)]
        container: Option<String>,
        #[arg(short, long)]
        follow: bool,
        #[arg(long)]
        tail: Option<usize>,
        /// Only records newer than this (a duration like 10m, or an RFC 3339 time).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        timestamps: bool,
        pod: String,
    },
    /// Run a command in a container of a pod.
    Exec {
        #[arg(short, long)]
        container: Option<String>,
        /// Keep stdin open (it always is: the command gets berth's stdin).
        #[arg(short, long)]
        interactive: bool,
        /// Give the command a terminal.
        #[arg(short, long)]
        tty: bool,
        pod: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Print pod and container lifecycle events as JSON lines until interrupted.
    Events {
        /// How often the state is compared.
        #[arg(long, default_value = "100ms")]
        interval: humantime::Duration,
    },
    /// Resource usage of a pod's containers.
    Stats {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        pod: Option<String>,
    },
}

pub(super) fn runtime(
    root: &Path,
    data_root: &Path,
    p: &Paths,
    backoff: Option<Duration>,
    insecure: Vec<String>,
) -> Runtime {
    made(options(root, data_root, p, backoff, insecure))
}

/// The pod runtime's options from the command line.
pub(super) fn options(
    root: &Path,
    data_root: &Path,
    p: &Paths,
    backoff: Option<Duration>,
    insecure: Vec<String>,
) -> Options {
    let mut o = Options {
        root: root.to_path_buf(),
        data_root: p
            .data_root
            .clone()
            .unwrap_or_else(|| data_root.to_path_buf()),
        log_root: p.log_root.clone(),
        cni: CniPaths {
            conf_dir: p.cni_conf_dir.clone(),
            plugin_dirs: p
                .cni_plugin_dirs
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            ipam_dir: p.cni_ipam_dir.clone(),
            default_bridge: p.default_bridge.clone(),
            default_subnet: p.default_subnet.clone(),
        },
        cgroup_parent: p.cgroup_parent.clone(),
        service_cidr: p.service_cidr.clone(),
        ..Options::default()
    };
    if let Some(b) = backoff {
        o.restart_backoff = b;
    }
    o.pull.insecure = insecure;
    o.pull.bars = std::io::stderr().is_terminal();
    o
}

/// The pod runtime, after what a killed berth left half done is rolled back (or finished).
pub(super) fn made(o: Options) -> Runtime {
    let volumes = berth::volume::Volumes::new(&o.data_root);
    let rt = Runtime::new(o);
    for what in rt.repair().into_iter().chain(volumes.repair()) {
        errln!("berth: warning: {what}");
    }
    rt
}

/// Parse and run `berth pod ARGS`; returns the exit code.
pub fn main(args: &[String], root: &Path, data_root: &Path, log: &Logger) -> Result<i32> {
    let cli = match PodCli::try_parse_from(
        std::iter::once("berth pod").chain(args.iter().map(String::as_str)),
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    match cli.command {
        PodCommand::Run {
            restart_backoff,
            insecure,
            timeout,
            detach,
            file,
        } => {
            let mut o = options(
                root,
                data_root,
                &cli.paths,
                Some(restart_backoff.into()),
                insecure,
            );
            o.bind_timeout = timeout.into();
            let rt = made(o);
            // the kinds `kube apply` takes; a pod of a name that exists is refused, and the
            // IDs of the pods made are printed (before waiting for them to start)
            let docs = super::kube::read_docs(&file)?;
            let vols = berth::volume::Volumes::new(&rt.options().data_root);
            let opts = berth::kube::ApplyOptions {
                timeout: timeout.into(),
                detach,
                pods_must_be_new: true,
            };
            berth::kube::apply(
                &rt,
                &vols,
                &docs,
                &opts,
                &mut |l| errln!("{l}"),
                &mut |o| match &o.pod_id {
                    Some(id) => outln!("{id}"),
                    None => errln!("{} {}", o.what, o.applied),
                },
            )?;
        }
        PodCommand::Ls { format, quiet } => {
            let rt = runtime(root, data_root, &cli.paths, None, vec![]);
            let pods = rt.list_pods()?;
            if format == "json" {
                let st: Vec<_> = pods
                    .iter()
                    .filter_map(|p| rt.pod_status(&p.id).ok())
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&st)?);
            } else if quiet {
                pods.iter().for_each(|p| outln!("{}", p.id));
            } else {
                outln!(
                    "{:<14} {:<24} {:<12} {:<9} {:<16} {:>5} {:>8}  CREATED",
                    "POD ID",
                    "NAME",
                    "NAMESPACE",
                    "STATE",
                    "IP",
                    "READY",
                    "RESTARTS"
                );
                for p in pods {
                    // as kubectl counts them: app containers ready, and their restarts
                    let (ready, total, restarts) = rt
                        .pod_status(&p.id)
                        .map(|s| {
                            let apps: Vec<_> = s
                                .containers
                                .iter()
                                .filter(|c| !c.record.config.init)
                                .collect();
                            (
                                apps.iter().filter(|c| c.status.ready).count(),
                                s.waiting
                                    .as_ref()
                                    .map_or(apps.len(), |w| w.containers.len()),
                                apps.iter().map(|c| c.status.restart_count).sum::<u32>(),
                            )
                        })
                        .unwrap_or((0, 0, 0));
                    outln!(
                        "{:<14} {:<24} {:<12} {:<9} {:<16} {:>5} {:>8}  {}",
                        &p.id[..12],
                        p.config.name,
                        p.config.namespace,
                        format!("{:?}", p.state),
                        p.ips
                            .first()
                            .cloned()
                            .unwrap_or_else(|| if p.config.host_network {
                                "host".into()
                            } else {
                                "-".into()
                            }),
                        format!("{ready}/{total}"),
                        restarts,
                        p.created
                    );
                }
            }
        }
        PodCommand::Inspect { pod } => {
            let rt = runtime(root, data_root, &cli.paths, None, vec![]);
            outln!("{}", serde_json::to_string_pretty(&rt.pod_status(&pod)?)?);
        }
        PodCommand::Stop { time, pods } => {
            let rt = runtime(root, data_root, &cli.paths, None, vec![]);
            if pods.is_empty() {
                bail!("pod stop: name at least one pod");
            }
            for p in pods {
                rt.stop_pod_sandbox(&p, time.map(Duration::from_secs))?;
                outln!("{p}");
            }
        }
        PodCommand::Rm { force, pods } => {
            let rt = runtime(root, data_root, &cli.paths, None, vec![]);
            if pods.is_empty() {
                bail!("pod rm: name at least one pod");
            }
            for p in pods {
                rt.remove_pod_sandbox(&p, force)?;
                outln!("{p}");
            }
        }
        PodCommand::Logs {
            container,
            follow,
            tail,
            since,
            timestamps,
            pod,
        } => {
            let rt = runtime(root, data_root, &cli.paths, None, vec![]);
            let c = pick(&rt, &pod, container.as_deref())?;
            let since = since
                .map(|s| -> Result<std::time::SystemTime> {
                    if let Ok(d) = humantime::parse_duration(&s) {
                        return Ok(std::time::SystemTime::now() - d);
                    }
                    humantime::parse_rfc3339_weak(&s)
                        .with_context(|| format!("--since {s:?}: not a duration or a time"))
                })
                .transpose()?;
            let q = LogQuery {
                since,
                tail,
                timestamps,
            };
            if follow {
                super::output::end_when_reader_goes();
            }
            rt.logs(&c.record.id, &q, follow, &mut std::io::stdout().lock())?;
        }
        PodCommand::Exec {
            container,
            interactive: _,
            tty,
            pod,
            command,
        } => {
            let rt = runtime(root, data_root, &cli.paths, None, vec![]);
            let c = pick(&rt, &pod, container.as_deref())?;
            return Ok(rt.exec(&c.record.id, &command, tty)?);
        }
        PodCommand::Events { interval } => {
            let rt = runtime(root, data_root, &cli.paths, None, vec![]);
            // a reader that went away ends it (output.rs)
            super::output::end_when_reader_goes();
            rt.events(interval.into(), &|| false, &mut |e| {
                outln!("{}", serde_json::to_string(e).unwrap_or_default())
            })?;
        }
        PodCommand::Stats { format, pod } => {
            let rt = runtime(root, data_root, &cli.paths, None, vec![]);
            let ctrs: Vec<(String, ContainerInfo)> = match pod {
                Some(p) => {
                    let st = rt.pod_status(&p)?;
                    st.containers
                        .into_iter()
                        .map(|c| (st.record.config.name.clone(), c))
                        .collect()
                }
                None => rt
                    .list_containers()?
                    .into_iter()
                    .map(|(p, c)| (p.config.name, c))
                    .collect(),
            };
            let mut rows = Vec::new();
            for (pod, c) in ctrs {
                if c.status.state != berth::pod::ContainerState::Running {
                    continue;
                }
                match rt.stats(&c.record.id) {
                    Ok(s) => rows.push((pod, c.record.config.name.clone(), c.record.id.clone(), s)),
                    Err(e) => log.warn(&format!("stats of {}: {e}", c.record.config.name)),
                }
            }
            if format == "json" {
                let v: Vec<_> = rows.iter().map(|(p, n, id, s)| serde_json::json!({"pod": p, "container": n, "id": id, "stats": s})).collect();
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                outln!(
                    "{:<20} {:<20} {:>14} {:>14} {:>6}",
                    "POD",
                    "CONTAINER",
                    "CPU (ns)",
                    "MEMORY",
                    "PIDS"
                );
                for (p, n, _, s) in rows {
                    outln!(
                        "{:<20} {:<20} {:>14} {:>14} {:>6}",
                        p,
                        n,
                        s.cpu.usage.total,
                        s.memory.usage.usage,
                        s.pids.current
                    );
                }
            }
        }
    }
    Ok(0)
}

/// The container `name` of a pod, or its only app container.
fn pick(rt: &Runtime, pod: &str, name: Option<&str>) -> Result<ContainerInfo> {
    if let Some(n) = name {
        return Ok(rt.find_container(Some(pod), n)?.1);
    }
    let st = rt.pod_status(pod)?;
    let apps: Vec<ContainerInfo> = st
        .containers
        .into_iter()
        .filter(|c| !c.record.config.init)
        .collect();
    match apps.len() {
        1 => Ok(apps.into_iter().next().expect("one")),
        0 => bail!("pod {pod} has no containers"),
        _ => {
            let names: Vec<&str> = apps.iter().map(|c| c.record.config.name.as_str()).collect();
            bail!(
                "pod {pod} has several containers ({}): choose one with -c",
                names.join(", ")
            )
        }
    }
}

/// `berth ps` without a container ID: the containers of every pod.
pub fn ps(root: &Path, data_root: &Path, format: &str) -> Result<()> {
    let paths = Paths::parse_env();
    let rt = runtime(root, data_root, &paths, None, vec![]);
    let all = rt.list_containers()?;
    if format == "json" {
        let v: Vec<_> = all
            .iter()
            .map(|(p, c)| serde_json::json!({"pod": p.config.name, "pod_id": p.id, "container": c}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!(
        "{:<14} {:<20} {:<30} {:<8} {:>5} {:>8}  POD",
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "STATE",
        "EXIT",
        "RESTARTS"
    );
    for (p, c) in all {
        outln!(
            "{:<14} {:<20} {:<30} {:<8} {:>5} {:>8}  {}",
            &c.record.id[..12],
            c.record.config.name,
            c.record.image,
            format!("{:?}", c.status.state),
            c.status
                .exit_code
                .map(|e| e.to_string())
                .unwrap_or_default(),
            c.status.restart_count,
            p.config.name
        );
    }
    Ok(())
}

impl Paths {
    /// The defaults and environment, for `berth ps` (which has no pod flags).
    fn parse_env() -> Paths {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            p: Paths,
        }
        Only::parse_from(["berth"]).p
    }
}
