//! The host side of berth's default network: masquerade and forward rules once per network,
//! not once per pod, as docker and netavark do.
//!
//! The CNI bridge plugin's `ipMasq` and the firewall plugin run `iptables` about 20 times for
//! every pod (with portmap's run, 34 of a pod start's 74 ms in `tests/bench/pods.sh`).
//! berth's default network leaves both off; instead one `iptables-restore` writes these rules
//! when the first pod joins the network, and they are removed, with the bridge, when the last
//! pod leaves:
//!
//! ```text
//! nat     POSTROUTING -s SUBNET -j BERTH-NAT-<bridge>   (comment "berth network <bridge>")
//!         BERTH-NAT-<bridge>: -d SUBNET RETURN; -d 224.0.0.0/4 RETURN; MASQUERADE
//! filter  FORWARD -j BERTH-FWD-<bridge>                 (comment "berth network <bridge>")
//!         BERTH-FWD-<bridge>: -i <bridge> ACCEPT;
//!                             -o <bridge> ctstate RELATED,ESTABLISHED,DNAT ACCEPT
//! ```
//!
//! The bridge and the rules belong to the host, whichever berth (CLI, daemon, another state
//! root or IPAM directory) made them, so their bookkeeping is host-wide too, in
//! [`STATE_DIR`] (a tmpfs: gone with a reboot, as the rules are), per bridge:
//! - who is on the network: the bridge's ports, as the kernel lists them;
//! - `<bridge>.lock` orders joins (shared: pods join concurrently) against a leave that may
//!   tear the network down (exclusive), so no pod joins a bridge that is being deleted; the
//!   last leave removes the file, so a locker checks that the file it locked is still there;
//! - `<bridge>.rules` holds the rules written, and says they are in place.
//!
//! As with docker, rules flushed behind berth's back are not noticed until the network is
//! empty again.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::pod::error::{Error, Result, io};

/// Where the host side of berth's networks is recorded (see the module's comment).
pub const STATE_DIR: &str = "/run/berth-networks";

/// A network whose masquerade and forward rules berth keeps while a pod is on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRules {
    /// The bridge the CNI bridge plugin creates.
    pub bridge: String,
    /// The pods' subnet (`10.77.0.0/16`).
    pub subnet: String,
    /// Where its lock and marker files are ([`STATE_DIR`]).
    pub state_dir: PathBuf,
}

impl HostRules {
    fn nat_chain(&self) -> String {
        format!("BERTH-NAT-{}", self.bridge)
    }
    fn fwd_chain(&self) -> String {
        format!("BERTH-FWD-{}", self.bridge)
    }
    fn comment(&self) -> String {
        format!("berth network {}", self.bridge)
    }
    fn marker(&self) -> PathBuf {
        self.state_dir.join(format!("{}.rules", self.bridge))
    }
    fn lock_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}.lock", self.bridge))
    }

    /// `iptables-restore --noflush` input that writes the rules. Declaring a chain that exists
    /// flushes it, so a repeat after a crash rewrites the chains; a repeated jump is harmless
    /// and [`teardown`] removes every copy.
    fn install_script(&self) -> String {
        let [(_, nat_jump), (_, fwd_jump)] = self.jumps();
        let (nat, fwd, b, s) = (
            self.nat_chain(),
            self.fwd_chain(),
            &self.bridge,
            &self.subnet,
        );
        format!(
            "*nat\n:{nat} - [0:0]\n-A {nat} -d {s} -j RETURN\n-A {nat} -d 224.0.0.0/4 -j RETURN\n\
             -A {nat} -j MASQUERADE\n{}\nCOMMIT\n*filter\n:{fwd} - [0:0]\n-A {fwd} -i {b} -j ACCEPT\n\
             -A {fwd} -o {b} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n{}\nCOMMIT\n",
            restore_line("-I", &nat_jump),
            restore_line("-I", &fwd_jump),
        )
    }

    /// The jump rules from the built-in chains (table, rule as `iptables` arguments after
    /// `-A`/`-I`/`-D`).
    fn jumps(&self) -> [(&'static str, Vec<String>); 2] {
        let (c, s) = (self.comment(), &self.subnet);
        let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        [
            (
                "nat",
                args(&[
                    "POSTROUTING",
                    "-s",
                    s,
                    "-m",
                    "comment",
                    "--comment",
                    &c,
                    "-j",
                    &self.nat_chain(),
                ]),
            ),
            (
                "filter",
                args(&[
                    "FORWARD",
                    "-m",
                    "comment",
                    "--comment",
                    &c,
                    "-j",
                    &self.fwd_chain(),
                ]),
            ),
        ]
    }
}

/// A rule as an `iptables-restore` line: the operation, then its arguments (quoted where they
/// hold a space).
fn restore_line(op: &str, rule: &[String]) -> String {
    let quoted: Vec<String> = rule
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect();
    format!("{op} {}", quoted.join(" "))
}

/// Run `add` (the CNI ADD) as a pod joining the network: the network's rules are written
/// first if they are not in place.
pub fn join<T>(network: &str, rules: &HostRules, add: impl FnOnce() -> Result<T>) -> Result<T> {
    let marker = rules.marker();
    let current = || fs::read_to_string(&marker).is_ok_and(|t| t == rules.install_script());
    let _held = loop {
        let lock = lock(rules, FlockArg::LockShared)?;
        if current() {
            break lock;
        }
        // the first pod: write the rules while no one else joins or leaves (the shared lock
        // is let go for a moment: the network may have been torn down meanwhile)
        lock.relock(FlockArg::LockExclusive)
            .map_err(crate::pod::error::sys(format!(
                "lock {}",
                rules.lock_path().display()
            )))?;
        if !still_linked(&lock, &rules.lock_path()) {
            continue;
        }
        if !current() {
            restore(&rules.install_script()).map_err(|e| {
                Error::Cni(format!("write the host rules of network {network}: {e}"))
            })?;
            write_marker(&marker, &rules.install_script())?;
        }
        break lock;
    };
    add()
}

/// After a pod's CNI DEL: when no pod is left on the network (its bridge has no port), remove
/// its rules, its bridge and its files.
pub fn leave(network: &str, rules: &HostRules) -> Result<()> {
    let _lock = lock(rules, FlockArg::LockExclusive)?;
    let marker = rules.marker();
    if marker.exists() {
        if ports(&rules.bridge) > 0 {
            return Ok(());
        }
        teardown(rules)
            .map_err(|e| Error::Cni(format!("remove the host rules of network {network}: {e}")))?;
        crate::linux::sys::delete_bridge(&rules.bridge).map_err(io(format!(
            "delete bridge {} of network {network}",
            rules.bridge
        )))?;
        fs::remove_file(&marker).map_err(io(format!("remove {}", marker.display())))?;
    }
    // no rules (torn down just now, or by a leave that came first): the lock file goes too,
    // while still held; lockers that opened it check that it is still linked
    let _ = fs::remove_file(rules.lock_path());
    let _ = fs::remove_dir(&rules.state_dir);
    Ok(())
}

/// Lock the network's lock file, (re)made if a last leave removed it.
fn lock(rules: &HostRules, arg: FlockArg) -> Result<Flock<OwnedFd>> {
    let path = rules.lock_path();
    loop {
        fs::create_dir_all(&rules.state_dir)
            .map_err(io(format!("create {}", rules.state_dir.display())))?;
        let f = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            // the directory went with a last leave between the two calls
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            r => r.map_err(io(format!("open {}", path.display())))?,
        };
        let lock = Flock::lock(OwnedFd::from(f), arg).map_err(|(_, e)| Error::Io {
            step: format!("lock {}", path.display()),
            err: e.into(),
        })?;
        if still_linked(&lock, &path) {
            return Ok(lock);
        }
    }
}

/// Is the locked file still the one at `path` (a last leave unlinks it while holding it)?
fn still_linked(lock: &Flock<OwnedFd>, path: &Path) -> bool {
    match (nix::sys::stat::fstat(&**lock), fs::metadata(path)) {
        (Ok(held), Ok(now)) => held.st_ino == now.ino() && held.st_dev == now.dev(),
        _ => false,
    }
}

/// How many interfaces the bridge has (pods' veths), as the kernel lists them.
fn ports(bridge: &str) -> usize {
    fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

fn write_marker(path: &Path, text: &str) -> Result<()> {
    crate::linux::fs::write_atomic_volatile(path, text.as_bytes())
        .map_err(io(format!("write {}", path.display())))
}

/// Remove the rules: one `iptables-restore` in the usual case (one jump each), else rule by
/// rule, tolerating what is already gone (a crash between writing and recording them).
fn teardown(rules: &HostRules) -> std::result::Result<(), String> {
    let [(_, nat_jump), (_, fwd_jump)] = rules.jumps();
    let script = format!(
        "*nat\n{}\n-F {nat}\n-X {nat}\nCOMMIT\n*filter\n{}\n-F {fwd}\n-X {fwd}\nCOMMIT\n",
        restore_line("-D", &nat_jump),
        restore_line("-D", &fwd_jump),
        nat = rules.nat_chain(),
        fwd = rules.fwd_chain(),
    );
    if restore(&script).is_ok() {
        return Ok(());
    }
    for ((table, jump), chain) in rules
        .jumps()
        .iter()
        .zip([rules.nat_chain(), rules.fwd_chain()])
    {
        // every copy of the jump; a bound in case iptables keeps answering success
        for _ in 0..16 {
            let mut args = vec!["-t".to_string(), table.to_string(), "-D".into()];
            args.extend(jump.iter().cloned());
            if iptables(&args).is_err() {
                break;
            }
        }
        let _ = iptables(&["-t", table, "-F", &chain].map(String::from));
        if let Err(e) = iptables(&["-t", table, "-X", &chain].map(String::from)) {
            // gone already is fine; still there is not
            if iptables(&["-t", table, "-n", "-L", &chain].map(String::from)).is_ok() {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn command(bin: &str) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn finish(
    bin: &str,
    out: std::io::Result<std::process::Output>,
) -> std::result::Result<(), String> {
    let out = out.map_err(|e| format!("run {bin}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{bin}: {} [{}]",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

fn iptables(args: &[String]) -> std::result::Result<(), String> {
    finish(
        "iptables",
        command("iptables")
            .arg("-w")
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
}

fn restore(script: &str) -> std::result::Result<(), String> {
    let bin = "iptables-restore";
    let mut child = command(bin)
        .args(["--noflush", "-w"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {bin}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    // the script is a few hundred bytes: it fits the pipe, no writer thread needed
    let wrote = stdin.write_all(script.as_bytes());
    drop(stdin);
    let r = finish(bin, child.wait_with_output());
    wrote.map_err(|e| format!("write to {bin}: {e}"))?;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HostRules {
        HostRules {
            bridge: "berth0".into(),
            subnet: "10.77.0.0/16".into(),
            state_dir: "/x".into(),
        }
    }

    #[test]
    fn install_script_names_the_bridge_and_subnet() {
        let s = rules().install_script();
        assert!(s.contains(":BERTH-NAT-berth0 - [0:0]\n"));
        assert!(s.contains(
            "-I POSTROUTING -s 10.77.0.0/16 -m comment --comment \"berth network berth0\" -j BERTH-NAT-berth0\n"
        ));
        assert!(s.contains("-A BERTH-FWD-berth0 -i berth0 -j ACCEPT\n"));
        assert_eq!(s.matches("COMMIT\n").count(), 2);
    }

    #[test]
    fn a_missing_bridge_has_no_ports() {
        assert_eq!(ports("berth-no-such"), 0);
    }
}
