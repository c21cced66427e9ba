//! The host side of berth's default network: masquerade and forward rules once per network,
//! not once per pod, as docker and netavark do.
//!
//! The CNI bridge plugin's `ipMasq` and the firewall plugin run `iptables` about 20 times for
//! every pod (with portmap's run, 34 of a pod start's 74 ms in `tests/bench/pods.sh`).
//! berth's default network leaves both off; instead one `iptables-restore` writes these rules when the first
//! pod joins the network, and they are removed, with the bridge, when the last pod leaves:
//!
//! ```text
//! nat     POSTROUTING -s SUBNET -j BERTH-NAT-<bridge>   (comment "berth network <bridge>")
//!         BERTH-NAT-<bridge>: -d SUBNET RETURN; -d 224.0.0.0/4 RETURN; MASQUERADE
//! filter  FORWARD -j BERTH-FWD-<bridge>                 (comment "berth network <bridge>")
//!         BERTH-FWD-<bridge>: -i <bridge> ACCEPT;
//!                             -o <bridge> ctstate RELATED,ESTABLISHED,DNAT ACCEPT
//! ```
//!
//! Who is on the network: host-local's leases in the network's IPAM directory. A lock file
//! there orders joins (shared: pods join concurrently) against a leave that may tear the
//! network down (exclusive), so no pod joins a bridge that is being deleted. A marker file
//! holding the boot ID says the rules are in place (rules do not survive a reboot; the
//! directory, on /var/lib, does). As with docker, rules flushed behind berth's back are not
//! noticed until the network is empty again.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::error::{Error, Result, io};

/// A network whose masquerade and forward rules berth keeps while a pod is on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRules {
    /// The bridge the CNI bridge plugin creates.
    pub bridge: String,
    /// The pods' subnet (`10.77.0.0/16`).
    pub subnet: String,
    /// host-local's data directory: leases in `<dir>/<network name>/`, and berth's lock and
    /// marker files next to them.
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
    fn marker(&self, network: &str) -> PathBuf {
        self.state_dir.join(format!("{network}.rules"))
    }

    /// `iptables-restore --noflush` input that writes the rules. Declaring a chain that exists
    /// flushes it, so a repeat after a crash rewrites the chains; a repeated jump is harmless
    /// and [`teardown`] removes every copy.
    fn install_script(&self) -> String {
        let (nat, fwd, c, b, s) = (
            self.nat_chain(),
            self.fwd_chain(),
            self.comment(),
            &self.bridge,
            &self.subnet,
        );
        format!(
            "*nat\n:{nat} - [0:0]\n-A {nat} -d {s} -j RETURN\n-A {nat} -d 224.0.0.0/4 -j RETURN\n\
             -A {nat} -j MASQUERADE\n-I POSTROUTING -s {s} -m comment --comment \"{c}\" -j {nat}\n\
             COMMIT\n*filter\n:{fwd} - [0:0]\n-A {fwd} -i {b} -j ACCEPT\n\
             -A {fwd} -o {b} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n\
             -I FORWARD -m comment --comment \"{c}\" -j {fwd}\nCOMMIT\n"
        )
    }

    /// The jump rules, as `iptables` arguments after `-t TABLE -D`.
    fn jumps(&self) -> [(&'static str, Vec<String>); 2] {
        let c = self.comment();
        [
            (
                "nat",
                [
                    "POSTROUTING",
                    "-s",
                    &self.subnet,
                    "-m",
                    "comment",
                    "--comment",
                    &c,
                    "-j",
                    &self.nat_chain(),
                ]
                .map(String::from)
                .to_vec(),
            ),
            (
                "filter",
                [
                    "FORWARD",
                    "-m",
                    "comment",
                    "--comment",
                    &c,
                    "-j",
                    &self.fwd_chain(),
                ]
                .map(String::from)
                .to_vec(),
            ),
        ]
    }
}

/// Run `add` (the CNI ADD) as a pod joining the network: the network's rules are written
/// first if they are not in place.
pub fn join<T>(network: &str, rules: &HostRules, add: impl FnOnce() -> Result<T>) -> Result<T> {
    let lock = lock(rules, network, FlockArg::LockShared)?;
    let boot = boot_id();
    let marker = rules.marker(network);
    let current = |m: &Path| fs::read_to_string(m).is_ok_and(|t| t == marker_text(&boot, rules));
    if !current(&marker) {
        // the first pod: write the rules while no one else joins or leaves
        lock.relock(FlockArg::LockExclusive)
            .map_err(super::error::sys(format!(
                "lock {}",
                lock_path(rules, network).display()
            )))?;
        if !current(&marker) {
            restore(&rules.install_script()).map_err(|e| {
                Error::Cni(format!("write the host rules of network {network}: {e}"))
            })?;
            write_marker(&marker, &marker_text(&boot, rules))?;
        }
    }
    add()
}

/// After a pod's CNI DEL: when no pod is left on the network, remove its rules and bridge.
pub fn leave(network: &str, rules: &HostRules) -> Result<()> {
    let _lock = lock(rules, network, FlockArg::LockExclusive)?;
    let marker = rules.marker(network);
    if !marker.exists() || leases(&rules.state_dir.join(network)) > 0 {
        return Ok(());
    }
    teardown(rules)
        .map_err(|e| Error::Cni(format!("remove the host rules of network {network}: {e}")))?;
    crate::linux::sys::delete_bridge(&rules.bridge).map_err(io(format!(
        "delete bridge {} of network {network}",
        rules.bridge
    )))?;
    fs::remove_file(&marker).map_err(io(format!("remove {}", marker.display())))
}

fn lock_path(rules: &HostRules, network: &str) -> PathBuf {
    rules.state_dir.join(format!("{network}.lock"))
}

fn lock(rules: &HostRules, network: &str, arg: FlockArg) -> Result<Flock<OwnedFd>> {
    let path = lock_path(rules, network);
    fs::create_dir_all(&rules.state_dir)
        .map_err(io(format!("create {}", rules.state_dir.display())))?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("open {}", path.display())))?;
    Flock::lock(OwnedFd::from(f), arg).map_err(|(_, e)| Error::Io {
        step: format!("lock {}", path.display()),
        err: e.into(),
    })
}

/// How many pods hold an address: host-local names each lease file after its address.
fn leases(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn marker_text(boot: &str, rules: &HostRules) -> String {
    format!("{boot}\n{}\n", rules.install_script())
}

fn write_marker(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("rules.tmp");
    fs::write(&tmp, text).map_err(io(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("write {}", path.display())))
}

/// Remove the rules: one `iptables-restore` in the usual case (one jump each), else rule by
/// rule, tolerating what is already gone (a crash between writing and recording them).
fn teardown(rules: &HostRules) -> std::result::Result<(), String> {
    let quote = |a: &String| {
        if a.contains(' ') {
            format!("\"{a}\"")
        } else {
            a.clone()
        }
    };
    let [(_, nat_jump), (_, fwd_jump)] = rules.jumps();
    let script = format!(
        "*nat\n-D {}\n-F {nat}\n-X {nat}\nCOMMIT\n*filter\n-D {}\n-F {fwd}\n-X {fwd}\nCOMMIT\n",
        nat_jump.iter().map(quote).collect::<Vec<_>>().join(" "),
        fwd_jump.iter().map(quote).collect::<Vec<_>>().join(" "),
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
    fn leases_count_address_files_only() {
        let d = std::env::temp_dir().join(format!("berth-leases-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        for f in [
            "10.77.0.2",
            "10.77.0.3",
            "lock",
            "last_reserved_ip.0",
            "fd00::2",
        ] {
            fs::File::create(d.join(f)).unwrap();
        }
        assert_eq!(leases(&d), 3);
        fs::remove_dir_all(&d).unwrap();
        assert_eq!(leases(&d), 0);
    }
}
