//! `run`: create and start in one step. In the foreground it waits for the process, forwards
//! signals, proxies a terminal, deletes the container afterwards and returns the exit code.

use super::create::{self, CreateOptions, Mode, plan_bundle, spawn, write_pid_file};
use super::error::{Error, Result};
use super::foreground::Foreground;
use super::state::Store;
use crate::linux::cgroup::Layout;
use crate::linux::channel::Msg;

/// Options of `run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub create: CreateOptions,
    /// Return once the process runs instead of waiting for it.
    pub detach: bool,
}

/// How a `run` or `exec` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The process runs on; this is its host pid.
    Detached { pid: i32 },
    /// The process ended with this exit code (128+signal if killed).
    Exited { code: i32 },
}

/// `berth run`. Returns how it ended and the warnings of the setup.
pub fn run(store: &Store, id: &str, opts: &RunOptions) -> Result<(Outcome, Vec<String>)> {
    let layout = Layout::detect()?;
    let plan = plan_bundle(id, &opts.create, &layout)?;
    if plan.process.terminal && opts.detach && opts.create.console_socket.is_none() {
        return Err(Error::Invalid(
            "process.terminal is true: --console-socket is required with --detach".into(),
        ));
    }
    // Before the clone, so no signal meant for the container is lost.
    let fg = if opts.detach {
        None
    } else {
        Some(Foreground::block()?)
    };
    let s = spawn(store, id, &opts.create, &plan, &layout, Mode::Run)?;
    s.channel.send(&Msg::Go)?;
    // The init's end of the channel closes on a successful exec; a failed one reports.
    if let Some(Msg::Error(e)) = s.channel.recv()? {
        return Err(Error::Init(e)); // `s` drops: its undo removes everything
    }
    let mut post = super::start::poststart(&s.locked.read()?);
    if let Some(p) = &opts.create.pid_file {
        write_pid_file(p, s.pid)?;
    }
    let create::Spawned {
        pid,
        mut warnings,
        terminal,
        locked,
        undo,
        ..
    } = s;
    warnings.append(&mut post);
    let Some(fg) = fg else {
        undo.commit();
        return Ok((Outcome::Detached { pid }, warnings));
    };
    drop(locked); // `state` and `kill` may run while we wait
    let code = fg.wait(pid, terminal)?;
    undo.commit();
    match super::delete::delete(store, id, true) {
        Ok(mut w) => warnings.append(&mut w),
        // someone deleted it meanwhile: the exit code still stands
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    Ok((Outcome::Exited { code }, warnings))
}
