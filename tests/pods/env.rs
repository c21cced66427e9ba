//! A pod test's world: its own state root, image store, log dir, CNI config (a bridge and
//! a /24 of its own) and a registry serving the fixture images. Dropping it removes every pod,
//! the bridge, and the directories, even when the test panicked.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::{BERTH, test_base};
use super::harness::Registry;

static N: AtomicUsize = AtomicUsize::new(0);

/// berth's host-wide record of its networks' rules (src/pod/hostnet.rs).
pub const NETWORK_STATE: &str = "/run/berth-networks";

pub struct PodEnv {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bridge: String,
    /// First three octets of the pod subnet (`10.79.K`).
    pub net: String,
    pub registry: Registry,
    /// This test's nft table for Services (`berth_tK_N`) and its service range
    /// (`10.78.K.0/24`): tests run in parallel and must not share VIPs.
    pub nft_table: String,
    pub service_cidr: String,
}

impl PodEnv {
    /// A test world whose pods use its own CNI configuration (a bridge plugin with ipMasq,
    /// portmap and firewall: per-pod rules, as third-party configurations have them).
    pub fn new(name: &str) -> PodEnv {
        Self::make(name, true)
    }

    /// A test world with no CNI configuration: its pods use berth's default network, with
    /// this test's own bridge and /24.
    pub fn default_network(name: &str) -> PodEnv {
        Self::make(name, false)
    }

    fn make(name: &str, conflist: bool) -> PodEnv {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = test_base().join(format!("pod-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("net.d")).unwrap();
        let k = (std::process::id() as usize * 7 + n) % 250 + 1;
        let bridge = format!("bp{k}x{n}");
        let net = format!("10.79.{k}");
        // BERTH_TEST_CNI=plain (the cgroup v2 VM, which has no iptables): bridge and
        // host-local only, no per-pod rules
        let plain = std::env::var("BERTH_TEST_CNI").is_ok_and(|v| v == "plain");
        let mut plugins = vec![serde_json::json!(
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": !plain, "hairpinMode": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": format!("{net}.0/24")}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": dir.join("ipam")}})];
        if !plain {
            plugins.push(
                serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            );
            plugins.push(serde_json::json!({"type": "firewall"}));
        }
        let conf =
            serde_json::json!({"cniVersion": "1.0.0", "name": format!("t{k}"), "plugins": plugins});
        if conflist {
            fs::write(dir.join("net.d/10-test.conflist"), conf.to_string()).unwrap();
        }
        let e = PodEnv {
            root: dir.join("run"),
            dir,
            bridge,
            net,
            registry: Registry::fixtures("open"),
            nft_table: format!("berth_t{k}_{n}"),
            service_cidr: format!("10.78.{k}.0/24"),
        };
        // rules of an earlier run of this subnet killed before its drop (seen in CI)
        e.remove_cni_rules();
        e
    }

    /// An image of the fixture registry (`base`: busybox).
    pub fn image(&self, name: &str) -> String {
        format!("{}/berth/{name}", self.registry.host())
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_in(&self.root, args)
    }

    /// A berth command with another state root (another CLI user, or a daemon, on the same
    /// host); it must be a directory `run*` of this test's, so that dropping the test world
    /// removes its pods too.
    pub fn cmd_in(&self, root: &Path, args: &[&str]) -> Command {
        self.cmd_of(Path::new(BERTH), root, args)
    }

    /// A berth command of another `binary` (an older berth, for upgrade tests).
    pub fn cmd_of(&self, binary: &Path, root: &Path, args: &[&str]) -> Command {
        assert!(root.starts_with(&self.dir), "{}", root.display());
        let mut c = Command::new(binary);
        c.arg("--root")
            .arg(root)
            .env("BERTH_DATA_ROOT", self.dir.join("data"))
            .env("BERTH_LOG_ROOT", self.dir.join("logs"))
            .env("BERTH_CNI_CONF_DIR", self.dir.join("net.d"))
            .env("BERTH_CNI_IPAM_DIR", self.ipam_default())
            .env("BERTH_DEFAULT_BRIDGE", &self.bridge)
            .env("BERTH_DEFAULT_SUBNET", format!("{}.0/24", self.net))
            .env("BERTH_CGROUP_PARENT", self.cgroup_parent())
            .env("REGISTRY_AUTH_FILE", self.dir.join("no-auth.json"))
            .env("BERTH_NFT_TABLE", &self.nft_table)
            .env("BERTH_SERVICE_CIDR", &self.service_cidr)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(&self.root, args)
    }

    /// [`PodEnv::ok`] with another state root (see [`PodEnv::cmd_in`]).
    pub fn ok_in(&self, root: &Path, args: &[&str]) -> String {
        let out = self.cmd_in(root, args).output().unwrap();
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A manifest of one pod whose container `c` sleeps (on the host's network if asked).
    pub fn sleeper(&self, name: &str, host_network: bool) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  hostNetwork: {host_network}\n  containers: [{{name: c, image: {}, command: [sleep, \"1000\"]}}]\n",
            self.image("base")
        )
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            !out.status.success(),
            "berth {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `berth pod run --detach` of a manifest (with a short restart back-off): the pod is
    /// made, its containers start on their own (tests wait for what they look at; the wait
    /// of `pod run` itself is tested in cli.rs); returns the pod ID.
    pub fn run(&self, yaml: &str) -> String {
        let f = self.file(yaml);
        self.ok(&[
            "pod",
            "run",
            "--detach",
            "--restart-backoff",
            "200ms",
            f.to_str().unwrap(),
        ])
        .trim()
        .to_string()
    }

    /// `berth pod run` that must fail; returns its stderr.
    pub fn run_fails(&self, yaml: &str) -> String {
        let f = self.file(yaml);
        self.fails(&["pod", "run", f.to_str().unwrap()])
    }

    /// A manifest written to a file of its own in the test's directory (threads of one test
    /// never share one).
    pub fn file(&self, yaml: &str) -> PathBuf {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let f = self.dir.join(format!("m{n}.yaml"));
        fs::write(&f, yaml).unwrap();
        f
    }

    /// `berth kube apply -f` of `yaml`; returns its stdout.
    pub fn apply(&self, yaml: &str) -> String {
        let f = self.file(yaml);
        self.ok(&["kube", "apply", "-f", f.to_str().unwrap()])
    }

    /// `berth kube apply -f` of `yaml` that must fail; returns its stderr.
    pub fn apply_fails(&self, yaml: &str) -> String {
        let f = self.file(yaml);
        self.fails(&["kube", "apply", "-f", f.to_str().unwrap()])
    }

    /// `berth kube get ARGS -o json`.
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["kube", "get"];
        a.extend(args);
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// The ID of the pod named `name`.
    pub fn pod_id(&self, name: &str) -> String {
        self.inspect(name)["id"].as_str().unwrap().to_string()
    }

    /// The pod's logs once they contain `want` (20 s at most).
    pub fn log_until(&self, name: &str, want: &str) -> String {
        let t = std::time::Instant::now();
        loop {
            let l = self.ok(&["pod", "logs", name]);
            if l.contains(want) {
                return l;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(20),
                "{want:?} never in: {l}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn inspect(&self, pod: &str) -> Value {
        serde_json::from_str(&self.ok(&["pod", "inspect", pod])).unwrap()
    }

    /// The status of container `name` of a pod.
    pub fn container(&self, pod: &str, name: &str) -> Value {
        let v = self.inspect(pod);
        v["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["config"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no container {name} in {v}"))
    }

    /// Wait until container `name` is in `state` (Running, Exited); returns its status.
    pub fn wait(&self, pod: &str, name: &str, state: &str) -> Value {
        let t = Instant::now();
        loop {
            let c = self.container(pod, name);
            if c["status"]["state"] == state {
                return c;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "container {name} never became {state}: {c}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until `berth pod exec` of `cmd` prints `want` (servers need a moment to listen).
    pub fn wait_exec(&self, pod: &str, ctr: &str, cmd: &[&str], want: &str) -> String {
        let t = Instant::now();
        loop {
            let mut args = vec!["pod", "exec", "-c", ctr, pod, "--"];
            args.extend(cmd);
            let out = self.berth(&args);
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            if s.contains(want) {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{cmd:?} in {ctr} never printed {want:?}: {s} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The host pid of a container's process, once it runs the container's program (a
    /// started container's init may still be on its way to exec).
    pub fn pid(&self, pod: &str, name: &str) -> i32 {
        let pid = self.wait(pod, name, "Running")["status"]["pid"]
            .as_i64()
            .unwrap() as i32;
        let t = Instant::now();
        while fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "berth-monitor" || c.trim() == "berth")
            || fs::read_link(format!("/proc/{pid}/ns/mnt")).is_err()
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "container {name} (pid {pid}) never exec'd"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        pid
    }

    /// Ports on this test's bridge (one veth per pod), as the kernel lists them.
    pub fn bridge_ports(&self) -> usize {
        fs::read_dir(format!("/sys/class/net/{}/brif", self.bridge))
            .map(|rd| rd.count())
            .unwrap_or(0)
    }

    /// The parent cgroup of this test's pods.
    pub fn cgroup_parent(&self) -> String {
        format!(
            "/berth-test-{}",
            self.dir.file_name().unwrap().to_string_lossy()
        )
    }

    /// The comment on the default network's jump rules (see src/pod/hostnet.rs).
    pub fn rules_comment(&self) -> String {
        format!("berth network {}", self.bridge)
    }

    /// berth's files about this test's bridge in the host-wide network state dir
    /// (src/pod/hostnet.rs), sorted.
    pub fn network_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(NETWORK_STATE)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.split('.').next() == Some(self.bridge.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// What a panicking default-network test may leave: its jump rules and chains, its files.
    fn remove_host_rules(&self) {
        for f in self.network_files() {
            let _ = fs::remove_file(Path::new(NETWORK_STATE).join(f));
        }
        let _ = fs::remove_dir(NETWORK_STATE);
        let ipt = |args: &[&str]| {
            Command::new("iptables")
                .arg("-w")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let (c, subnet) = (self.rules_comment(), format!("{}.0/24", self.net));
        let (nat, fwd) = (
            format!("BERTH-NAT-{}", self.bridge),
            format!("BERTH-FWD-{}", self.bridge),
        );
        #[rustfmt::skip]
        let jumps = [
            ("nat", vec!["POSTROUTING", "-s", &subnet, "-m", "comment", "--comment", &c, "-j", &nat], &nat),
            ("filter", vec!["FORWARD", "-m", "comment", "--comment", &c, "-j", &fwd], &fwd),
        ];
        for (table, jump, chain) in jumps {
            for _ in 0..16 {
                let mut a = vec!["-t", table, "-D"];
                a.extend(&jump);
                if !ipt(&a) {
                    break;
                }
            }
            ipt(&["-t", table, "-F", chain]);
            ipt(&["-t", table, "-X", chain]);
        }
        self.remove_cni_rules();
    }

    /// The rules CNI's bridge plugin made for this test's network (`name: "tK"`, sources in
    /// its /24) that `pod rm` did not remove: a berth bug when found at drop (said on
    /// stderr), or a test run killed before its drop when found at start. The host must not
    /// keep them: a later test given the same subnet would see them.
    fn remove_cni_rules(&self) {
        let name = format!("name: \\\"t{}\\\"", self.net.rsplit('.').next().unwrap());
        let src = format!("-s {}.", self.net);
        let Ok(out) = Command::new("iptables-save").args(["-t", "nat"]).output() else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        for rule in text
            .lines()
            .filter(|l| l.starts_with("-A POSTROUTING ") && l.contains(&src) && l.contains(&name))
        {
            eprintln!("test world {}: CNI rule left: {rule}", self.dir.display());
            let chain = rule.rsplit(" -j ").next().unwrap_or_default();
            // iptables-save quotes the comment; the shell is the simplest faithful reader
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "iptables -w -t nat {}",
                    rule.replacen("-A", "-D", 1)
                ))
                .status();
            for op in ["-F", "-X"] {
                let _ = Command::new("iptables")
                    .args(["-w", "-t", "nat", op, chain])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// The IPAM (and host rules) directory of berth's default network.
    pub fn ipam_default(&self) -> PathBuf {
        self.dir.join("ipam-default")
    }

    pub fn pod_dir(&self, pod_id: &str) -> PathBuf {
        self.root.join("pods").join(pod_id)
    }
}

impl Drop for PodEnv {
    fn drop(&mut self) {
        let roots = fs::read_dir(&self.dir).into_iter().flatten().flatten();
        for root in roots.filter(|r| r.file_name().to_string_lossy().starts_with("run")) {
            for e in fs::read_dir(root.path().join("pods"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self
                    .cmd_in(&root.path(), &["pod", "rm", "-f", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .stderr(Stdio::null())
            .status();
        self.remove_host_rules();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.nft_table])
            .stderr(Stdio::null())
            .status();
        for d in super::common::cgroup_dirs_of(&self.cgroup_parent()) {
            let _ = fs::remove_dir(d);
        }
        for m in super::harness::mounts_under(&self.dir).iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `/proc/<pid>/ns/<kind>` of a process.
pub fn ns(pid: i32, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// Lines of `iptables-save` (both tables) that mention `needle` (none where there is no
/// iptables: the cgroup v2 VM).
pub fn iptables_mentioning(needle: &str) -> Vec<String> {
    let out = match Command::new("iptables-save").output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("iptables-save: {e}"),
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// Host network interfaces.
pub fn links() -> Vec<String> {
    fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

pub fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Does `pid` run (zombies waiting for a slow reaper do not count)?
pub fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}
