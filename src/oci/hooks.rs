//! Lifecycle hooks: run a hook with the container's state JSON on its stdin, its own env and
//! args, and an optional timeout.
//!
//! Where each kind runs (runtime-spec): prestart and createRuntime in the runtime's namespaces
//! during create, after the container's namespaces exist and before pivot_root (the parent runs
//! them while the init waits); createContainer in the container's mount namespace before
//! pivot_root and startContainer in the container just before the program (the init runs
//! them); poststart after the program started (`start`/`run`), poststop after delete. A failure
//! of the first four fails the operation; of the last two it is a warning (runc kills the
//! container when a poststart hook fails; the runtime-spec says warn).
//!
//! A hook without `env` inherits the environment of what runs it, as runc's do: berth's for
//! the runtime's hooks, the container process's for createContainer and startContainer.

use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use oci_spec::runtime::Hook;

use crate::linux::sys;

/// Run `hooks` in order; the first failure stops and is returned, naming the hook.
pub fn run_all(kind: &str, hooks: &[Hook], state: &str) -> Result<(), String> {
    run_all_with(kind, hooks, state, None)
}

/// [`run_all`] for hooks that run in the container: without `env` of their own they get the
/// container process's `env`.
pub fn run_all_in_container(
    kind: &str,
    hooks: &[Hook],
    state: &str,
    env: &[std::ffi::CString],
) -> Result<(), String> {
    run_all_with(kind, hooks, state, Some(env))
}

fn run_all_with(
    kind: &str,
    hooks: &[Hook],
    state: &str,
    env: Option<&[std::ffi::CString]>,
) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state, env)
            .map_err(|e| format!("{kind} hook #{i} ({}): {e}", h.path().display()))?;
    }
    Ok(())
}

/// Run `hooks` in order, turning failures into warnings (poststart, poststop).
pub fn run_all_warn(kind: &str, hooks: &[Hook], state: &str) -> Vec<String> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            run_one(h, state, None)
                .err()
                .map(|e| format!("{kind} hook #{i} ({}): {e}", h.path().display()))
        })
        .collect()
}

fn run_one(h: &Hook, state: &str, inherit: Option<&[std::ffi::CString]>) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((arg0, rest)) = args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
    }
    let env: Option<Vec<&[u8]>> = match (h.env(), inherit) {
        (Some(list), _) => Some(list.iter().map(|s| s.as_bytes()).collect()),
        (None, Some(container)) => Some(container.iter().map(|s| s.to_bytes()).collect()),
        // the runtime's own environment
        (None, None) => None,
    };
    if let Some(env) = env {
        cmd.env_clear();
        for kv in env {
            if let Some(eq) = kv.iter().position(|b| *b == b'=') {
                cmd.env(
                    std::ffi::OsStr::from_bytes(&kv[..eq]),
                    std::ffi::OsStr::from_bytes(&kv[eq + 1..]),
                );
            }
        }
    }
    // Output goes to an in-memory file, read after the hook ends: pipes could fill up and
    // block a hook that writes much while nobody reads.
    let out = sys::memfd("berth-hook-output").map_err(|e| format!("create output file: {e}"))?;
    let out = std::fs::File::from(out);
    let err_copy = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(out.try_clone().map_err(|e| e.to_string())?));
    cmd.stderr(Stdio::from(err_copy));
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // a hook that does not read its stdin is fine
        let _ = stdin.write_all(state.as_bytes());
    }
    if let Some(secs) = h.timeout() {
        if secs <= 0 {
            return Err(format!("timeout {secs} must be positive"));
        }
        let pidfd = sys::pidfd_open(child.id() as i32).map_err(|e| e.to_string())?;
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let ms = (secs as u64 * 1000).min(i32::MAX as u64) as i32;
        let ready = poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        )
        .map_err(|e| e.to_string())?;
        if ready == 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {secs}s"));
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut f = out;
    let _ = f.rewind();
    let _ = f.take(4096).read_to_string(&mut text);
    let text = text.trim();
    Err(if text.is_empty() {
        format!("{status}")
    } else {
        format!("{status}: {text}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn state_env_args_and_failures() {
        let dir = std::env::temp_dir().join(format!("berth-hook-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {0}; echo \" $X $0\" >> {0}", out.display())],
            "env": ["X=from-env"]
        }));
        run_all("createRuntime", &[h], "{\"id\":\"c\"}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"c\"} from-env sh\n"
        );

        let bad = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo oops >&2; exit 3"]}),
        );
        let e = run_all("prestart", std::slice::from_ref(&bad), "{}").unwrap_err();
        assert_eq!(e, "prestart hook #0 (/bin/sh): exit status: 3: oops");
        assert_eq!(run_all_warn("poststop", &[bad], "{}").len(), 1);

        let slow =
            hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}));
        let e = run_all("createContainer", &[slow], "{}").unwrap_err();
        assert!(e.ends_with("timed out after 1s"), "{e}");
        let missing = hook(serde_json::json!({"path": "/no/such/hook"}));
        assert!(
            run_all("poststart", &[missing], "{}")
                .unwrap_err()
                .contains("No such file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
