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
    id: String,
    /// Program and arguments (when --process is not given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Run one OCI verb; returns the exit code.
pub fn dispatch(cmd: Command, root: &Path, log: &Logger) -> Result<i32> {
    let rt = Runtime::new(root);
    match cmd {
        Command::Create(a) => {
            let c = rt.create(&a.id, &a.flags.options())?;
            c.warnings.iter().for_each(|w| log.warn(w));
            log.debug(&format!("created {} with init pid {}", a.id, c.pid));
        }
        Command::Start { id } => rt.start(&id)?.iter().for_each(|w| log.warn(w)),
        Command::State { id } => {
            println!("{}", serde_json::to_string_pretty(&rt.state(&id)?)?);
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
        Command::List { format, quiet } => list(&rt, &format, quiet)?,
        Command::Ps {
            format,
            id,
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
            println!(
                "{}",
                serde_json::to_string_pretty(&berth::oci::features::features())?
            );
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
            p.set_terminal(Some(a.tty));
            let mut env = p.env().clone().unwrap_or_default();
            env.extend(a.env.iter().cloned());
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
            p
        }
    };
    let opts = ExecOptions {
        process,
        console_socket: a.console_socket,
        detach: a.detach,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
    };
    let (outcome, warnings) = rt.exec(&a.id, &opts)?;
    warnings.iter().for_each(|w| log.warn(w));
    Ok(match outcome {
        Outcome::Exited { code } => code,
        Outcome::Detached { .. } => 0,
    })
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let states = rt.list()?;
    if quiet {
        states.iter().for_each(|s| println!("{}", s.id));
    } else if format == "json" {
        println!("{}", serde_json::to_string(&states)?);
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
            println!("{}", line.join("   ").trim_end());
        }
    }
    Ok(())
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.ps(id)?;
    if format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
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
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
