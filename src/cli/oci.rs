//! The OCI verbs: thin wrappers over `berth::oci::Runtime`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth::oci::{CreateOptions, ExecOptions, Outcome, RunOptions, Runtime};
use clap::Args;
use oci_spec::runtime::Process;

use super::{Command, Logger};

/// Flags shared by `create` and `run`.
#[derive(Debug, Args)]
pub struct CreateFlags {
    /// Bundle directory (holds config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the container init's pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the terminal's master fd (SCM_RIGHTS).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Do not use pivot_root (for a root on a ramdisk).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not give the container a new session keyring.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass fds 3..3+N to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
}

impl CreateFlags {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            no_new_keyring: self.no_new_keyring,
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    flags: CreateFlags,
    id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    flags: CreateFlags,
    /// Return once the process runs.
    #[arg(short, long)]
    detach: bool,
    id: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// process.json (runtime-spec process object) to run.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Allocate a terminal.
    #[arg(short, long)]
    tty: bool,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(short, long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Add KEY=VALUE to the environment.
    #[arg(short, long)]
    env: Vec<String>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional group ids.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Pass fds 3..3+N to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Add a capability to the bounding, effective and permitted sets (and ambient when the
    /// process has inheritable ones).
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    /// Allow exec in a paused container (the process runs once it is resumed).
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// AppArmor profile of the process.
    #[arg(long)]
    apparmor: Option<String>,
    /// SELinux label of the process.
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// Run in an existing sub-cgroup of the container: [<controller>:]<path> (repeatable).
    #[arg(long)]
    cgroup: Vec<String>,
    id: String,
    /// Program and arguments (when --process is not given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Resources JSON (config.json's linux.resources) from a file, or - for stdin.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g/t; -1 unlimited).
    #[arg(long)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Memory plus swap limit.
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    /// CFS quota in microseconds (-1: none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPUs to run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (0 or -1: unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight (10..1000).
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    id: String,
}

fn update_resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{LinuxPids, LinuxResources};
    let mut res: LinuxResources = match &a.resources {
        None => LinuxResources::default(),
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("read resources from stdin")?
            } else {
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?
            };
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow::anyhow!("resources: {}: {}", e.path(), e.inner()))?
        }
    };
    let size = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| berth::oci::update::parse_size(flag, s).map_err(anyhow::Error::msg))
            .transpose()
    };
    let (limit, reservation, swap) = (
        size("--memory", &a.memory)?,
        size("--memory-reservation", &a.memory_reservation)?,
        size("--memory-swap", &a.memory_swap)?,
    );
    if limit.is_some() || reservation.is_some() || swap.is_some() {
        let mut m = res.memory().unwrap_or_default();
        if limit.is_some() {
            m.set_limit(limit);
        }
        if reservation.is_some() {
            m.set_reservation(reservation);
        }
        if swap.is_some() {
            m.set_swap(swap);
        }
        res.set_memory(Some(m));
    }
    if a.cpu_share.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
    {
        let mut c = res.cpu().clone().unwrap_or_default();
        if a.cpu_share.is_some() {
            c.set_shares(a.cpu_share);
        }
        if a.cpu_quota.is_some() {
            c.set_quota(a.cpu_quota);
        }
        if a.cpu_period.is_some() {
            c.set_period(a.cpu_period);
        }
        if a.cpuset_cpus.is_some() {
            c.set_cpus(a.cpuset_cpus.clone());
        }
        if a.cpuset_mems.is_some() {
            c.set_mems(a.cpuset_mems.clone());
        }
        res.set_cpu(Some(c));
    }
    if let Some(p) = a.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(p);
        res.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    Ok(res)
}

/// Run one OCI verb; returns the exit code.
pub fn dispatch(
    cmd: Command,
    root: &Path,
    seccomp_cache: Option<&Path>,
    log: &Logger,
) -> Result<i32> {
    let rt = match seccomp_cache {
        Some(dir) => Runtime::new(root).with_seccomp_cache(dir),
        None => Runtime::new(root),
    };
    match cmd {
        Command::Create(a) => {
            let c = rt.create(&a.id, &a.flags.options())?;
            c.warnings.iter().for_each(|w| log.warn(w));
            log.debug(&format!("created {} with init pid {}", a.id, c.pid));
        }
        Command::Start { id } => rt.start(&id)?.iter().for_each(|w| log.warn(w)),
        Command::State { id } => {
            outln!("{}", serde_json::to_string_pretty(&rt.state(&id)?)?);
        }
        Command::Kill { all, id, signal } => {
            let sig = berth::linux::signal::parse(&signal).map_err(anyhow::Error::msg)?;
            rt.kill(&id, sig, all)?;
        }
        Command::Delete { force, id } => rt.delete(&id, force)?.iter().for_each(|w| log.warn(w)),
        Command::Run(a) => {
            let opts = RunOptions {
                create: a.flags.options(),
                detach: a.detach,
            };
            let (outcome, warnings) = rt.run(&a.id, &opts)?;
            warnings.iter().for_each(|w| log.warn(w));
            if let Outcome::Exited { code } = outcome {
                return Ok(code);
            }
        }
        Command::Exec(a) => return exec(&rt, a, log),
        Command::Pause { id } => rt.pause(&id)?,
        Command::Resume { id } => rt.resume(&id)?,
        Command::Update(a) => rt.update(&a.id, &update_resources(&a)?)?,
        Command::Events {
            stats,
            interval,
            id,
        } => {
            if stats {
                let ev = berth::oci::Event {
                    kind: "stats",
                    id: id.clone(),
                    data: Some(rt.stats(&id)?),
                };
                outln!("{}", serde_json::to_string(&ev)?);
            } else {
                rt.events(&id, interval.into(), &mut |ev| {
                    outln!("{}", serde_json::to_string(ev).unwrap_or_default());
                })?;
            }
        }
        Command::List { format, quiet } => list(&rt, &format, quiet)?,
        Command::Ps {
            format,
            id: Some(id),
            ps_args,
        } => ps(&rt, &id, &format, &ps_args)?,
        Command::Spec { bundle, rootless } => {
            if rootless {
                bail!("--rootless needs user namespaces, which berth does not support yet");
            }
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} exists: remove it first", path.display());
            }
            let text = serde_json::to_string_pretty(&berth::oci::default_spec::default_spec())?;
            std::fs::write(&path, text + "\n")
                .with_context(|| format!("write {}", path.display()))?;
        }
        Command::Features => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&berth::oci::features::features())?
            );
        }
        Command::Image { .. }
        | Command::Pod { .. }
        | Command::Serve { .. }
        | Command::Kube { .. }
        | Command::Apply { .. }
        | Command::Get { .. }
        | Command::Volume { .. }
        | Command::Service { .. }
        | Command::Ps { id: None, .. } => {
            unreachable!("image, pod and pod-ps verbs are dispatched by their own modules")
        }
    }
    Ok(0)
}

fn exec(rt: &Runtime, a: ExecArgs, log: &Logger) -> Result<i32> {
    let process: Process = match &a.process {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner()))?
        }
        None => {
            if a.args.is_empty() {
                bail!("exec: give a program to run, or --process");
            }
            let mut p = rt.config_process(&a.id)?;
            p.set_args(Some(a.args.clone()));
            // runc: --tty only when given; otherwise the config's terminal setting
            if a.tty {
                p.set_terminal(Some(true));
            }
            // a variable given again replaces the config's (the last one wins, as in runc)
            let mut env = p.env().clone().unwrap_or_default();
            for kv in &a.env {
                let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
                env.push(kv.clone());
            }
            p.set_env(Some(env));
            if let Some(cwd) = &a.cwd {
                p.set_cwd(cwd.clone());
            }
            if let Some(u) = &a.user {
                let (uid, gid) = match u.split_once(':') {
                    Some((u, g)) => (u.parse::<u32>(), g.parse::<u32>().map(Some)),
                    None => (u.parse::<u32>(), Ok(None)),
                };
                let (Ok(uid), Ok(gid)) = (uid, gid) else {
                    bail!("--user {u:?}: expected UID[:GID] as numbers");
                };
                p.user_mut().set_uid(uid);
                if let Some(g) = gid {
                    p.user_mut().set_gid(g);
                }
            }
            if !a.additional_gids.is_empty() {
                p.user_mut()
                    .set_additional_gids(Some(a.additional_gids.clone()));
            }
            if a.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if let Some(profile) = &a.apparmor {
                p.set_apparmor_profile(Some(profile.clone()));
            }
            if let Some(label) = &a.process_label {
                p.set_selinux_label(Some(label.clone()));
            }
            add_caps(&mut p, &a.cap)?;
            p
        }
    };
    let opts = ExecOptions {
        process,
        console_socket: a.console_socket,
        detach: a.detach,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        sub_cgroups: a
            .cgroup
            .iter()
            .map(|c| match c.split_once(':') {
                Some((ctrl, path)) => (Some(ctrl.to_string()), PathBuf::from(path)),
                None => (None, PathBuf::from(c)),
            })
            .collect(),
    };
    let (outcome, warnings) = rt.exec(&a.id, &opts)?;
    warnings.iter().for_each(|w| log.warn(w));
    Ok(match outcome {
        Outcome::Exited { code } => code,
        Outcome::Detached { .. } => 0,
    })
}

/// `exec --cap`: into bounding, effective and permitted, and ambient when the process has an
/// inheritable set (ambient capabilities need it), as runc does.
fn add_caps(p: &mut Process, caps: &[String]) -> Result<()> {
    if caps.is_empty() {
        return Ok(());
    }
    let mut c = p.capabilities().clone().unwrap_or_default();
    for name in caps {
        // as config.json spells them
        let cap: oci_spec::runtime::Capability =
            serde_json::from_value(serde_json::Value::String(name.to_ascii_uppercase()))
                .map_err(|_| anyhow::anyhow!("--cap {name:?}: unknown capability (CAP_NAME)"))?;
        let add = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.insert(cap);
            Some(s)
        };
        c.set_bounding(add(c.bounding()));
        c.set_effective(add(c.effective()));
        c.set_permitted(add(c.permitted()));
        if c.inheritable().is_some() {
            c.set_ambient(add(c.ambient()));
        }
    }
    p.set_capabilities(Some(c));
    Ok(())
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let states = rt.list()?;
    if quiet {
        states.iter().for_each(|s| outln!("{}", s.id));
    } else if format == "json" {
        outln!("{}", serde_json::to_string(&states)?);
    } else {
        let rows: Vec<[String; 6]> = states
            .iter()
            .map(|s| {
                [
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    if s.owner.is_empty() {
                        "root".into()
                    } else {
                        s.owner.clone()
                    },
                ]
            })
            .collect();
        let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
        let mut width = [0usize; 6];
        for r in std::iter::once(&header).chain(rows.iter()) {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        for r in std::iter::once(&header).chain(rows.iter()) {
            let line: Vec<String> = r
                .iter()
                .zip(width)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            outln!("{}", line.join("   ").trim_end());
        }
    }
    Ok(())
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.ps(id)?;
    if format == "json" {
        outln!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    outln!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            outln!("{line}");
        }
    }
    Ok(())
}
