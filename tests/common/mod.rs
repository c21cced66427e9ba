//! Shared harness of the root integration tests: a unique container per test with its own
//! state root, bundle, rootfs copy and cgroup path, removed on drop (also when the test panics),
//! and helpers that read what the kernel did.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Base directory for everything tests create.
pub fn test_base() -> PathBuf {
    PathBuf::from(std::env::var("BERTH_TEST_DIR").unwrap_or_else(|_| "/run/berth-test".into()))
}

/// The busybox rootfs fixture, built once (under a lock) from Debian's busybox-static.
pub fn rootfs_fixture() -> PathBuf {
    let dir = Path::new(MANIFEST).join("rootfs-fixtures/build");
    let rootfs = dir.join("busybox");
    if rootfs.join("bin/busybox").exists() {
        return rootfs;
    }
    fs::create_dir_all(&dir).unwrap();
    let lock = fs::File::create(dir.join(".lock")).unwrap();
    let _l = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    if !rootfs.join("bin/busybox").exists() {
        let st = Command::new(Path::new(MANIFEST).join("rootfs-fixtures/build-rootfs.sh"))
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success(), "building the rootfs fixture failed");
    }
    rootfs
}

/// An example config from runtime-spec/examples.
pub fn example(name: &str) -> Value {
    let p = Path::new(MANIFEST).join("runtime-spec/examples").join(name);
    serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Which cgroup version this host runs.
pub fn cgroup_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// A test container: id, state root, bundle. Everything is removed on drop.
pub struct Ctr {
    pub id: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub config: Value,
    /// Absolute cgroupsPath given to the container.
    pub cgroup: String,
}

impl Ctr {
    /// A container named after the test, from `runtime-spec/examples/base.json`.
    pub fn new(name: &str) -> Ctr {
        Ctr::from_config(name, example("base.json"))
    }

    pub fn from_config(name: &str, mut config: Value) -> Ctr {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{name}-{}-{n}", std::process::id());
        let dir = test_base().join(&id);
        let _ = fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(rootfs_fixture())
            .arg(bundle.join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success());
        let cgroup = format!("/berth-test-{id}");
        if config.get("linux").is_some() && config["linux"].get("cgroupsPath").is_none() {
            config["linux"]["cgroupsPath"] = Value::String(cgroup.clone());
        }
        let c = Ctr {
            root: dir.join("state"),
            id,
            dir,
            bundle,
            config,
            cgroup,
        };
        c.write_config();
        c
    }

    pub fn write_config(&self) {
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_string_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Change the config (then it is rewritten).
    pub fn set(&mut self, pointer: &str, v: Value) -> &mut Self {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut self.config
        } else {
            self.config
                .pointer_mut(parent)
                .unwrap_or_else(|| panic!("no {parent}"))
        };
        target[key] = v;
        self.write_config();
        self
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", serde_json::json!(args))
    }

    /// `berth --root <root> ARGS`.
    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `berth ARGS` for commands that leave a process behind holding their stdio (create,
    /// run --detach, exec --detach): stdout and stderr go to files, so nothing waits for a pipe
    /// to close.
    pub fn berth_detached(&self, args: &[&str]) -> Output {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let (o, e) = (
            self.dir.join(format!("out.{n}")),
            self.dir.join(format!("err.{n}")),
        );
        let status = Command::new(BERTH)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&o).unwrap())
            .stderr(fs::File::create(&e).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: fs::read(&o).unwrap(),
            stderr: fs::read(&e).unwrap(),
        }
    }

    /// `berth_detached` asserting success.
    pub fn ok_detached(&self, args: &[&str]) -> String {
        succeeded(args, self.berth_detached(args))
    }

    /// Like `berth` but asserting success.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.berth(args))
    }

    /// `berth run` in the foreground, in the background of the test.
    pub fn spawn_run(&self) -> std::process::Child {
        Command::new(BERTH)
            .args([
                "--root",
                self.root.to_str().unwrap(),
                "run",
                "--bundle",
                &self.bundle_arg(),
                &self.id,
            ])
            .spawn()
            .unwrap()
    }

    /// The container's pids (`ps --format json`).
    pub fn pids(&self) -> Vec<i32> {
        serde_json::from_str(&self.ok(&["ps", "--format", "json", &self.id])).unwrap()
    }

    /// `berth ARGS` that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            !out.status.success(),
            "berth {args:?} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn bundle_arg(&self) -> String {
        self.bundle.to_string_lossy().into_owned()
    }

    /// create (init waiting) and return the pid.
    pub fn create(&self) -> i32 {
        let pidfile = self.dir.join("pid");
        let b = self.bundle_arg();
        let p = pidfile.to_string_lossy().into_owned();
        self.ok_detached(&["create", "--bundle", &b, "--pid-file", &p, &self.id]);
        read_pid(&pidfile)
    }

    /// create + start.
    pub fn start(&self) -> i32 {
        let pid = self.create();
        self.ok(&["start", &self.id]);
        pid
    }

    /// Run in the foreground: (exit code, stdout, stderr).
    pub fn run(&self) -> (i32, String, String) {
        let b = self.bundle_arg();
        let out = self.berth(&["run", "--bundle", &b, &self.id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn state(&self) -> Value {
        serde_json::from_str(&self.ok(&["state", &self.id])).unwrap()
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    /// Wait until the container's status is `want`.
    pub fn wait_status(&self, want: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            // tolerate "does not exist" while a concurrent create is still running
            let out = self.berth(&["state", &self.id]);
            let s = serde_json::from_slice::<Value>(&out.stdout)
                .map(|v| v["status"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            if s == want {
                return;
            }
            assert!(Instant::now() < end, "status stayed {s}, wanted {want}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The host directories of the container's cgroup (every v1 hierarchy, or the v2 dir).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_dirs_of(&self.cgroup)
    }

    /// The container's cgroup dir holding `controller`'s files.
    pub fn cgroup_file(&self, controller: &str, file: &str) -> String {
        let dir = if cgroup_v2() {
            PathBuf::from("/sys/fs/cgroup").join(self.cgroup.trim_start_matches('/'))
        } else {
            PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(self.cgroup.trim_start_matches('/'))
        };
        fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
            .trim()
            .to_string()
    }

    /// Assert that nothing of the container is left on the host: state, cgroups, processes,
    /// mounts.
    pub fn assert_gone(&self) {
        assert!(
            !self.root.join(&self.id).exists(),
            "state dir of {} left behind",
            self.id
        );
        for d in self.cgroup_dirs() {
            assert!(!d.exists(), "cgroup {} left behind", d.display());
        }
        let procs = processes_mentioning(&self.id);
        assert!(procs.is_empty(), "processes left behind: {procs:?}");
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let b = self.dir.to_string_lossy();
        assert!(!mi.contains(b.as_ref()), "mounts left behind under {b}");
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = Command::new(BERTH)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
        for d in self.cgroup_dirs() {
            let _ = fs::remove_dir(d);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The stdout of a successful berth command; panics with its stderr otherwise.
fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "berth {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every host cgroup directory of an absolute cgroupsPath.
pub fn cgroup_dirs_of(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    if cgroup_v2() {
        return vec![PathBuf::from("/sys/fs/cgroup").join(rel)];
    }
    let mut out = Vec::new();
    for e in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "unified" || name == "systemd" {
            continue;
        }
        out.push(e.path().join(rel));
    }
    out
}

/// Pids of processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(c) = fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(needle) {
                // zombies are gone for our purposes once reaped; skip them
                let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                if !stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
                {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// A line `Key:\tvalue` of /proc/<pid>/status.
pub fn status_field(pid: i32, key: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in status of {pid}"))
        .trim()
        .to_string()
}

/// The namespace link of a process, e.g. `net:[4026531840]`.
pub fn ns(pid: i32, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Wait until `pid`'s command is `comm` (the init has exec'd).
pub fn wait_comm(pid: i32, comm: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let c = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if c.trim() == comm {
            return;
        }
        assert!(Instant::now() < end, "{pid} is {c:?}, not {comm}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The pid written to a pid file.
pub fn read_pid(p: &Path) -> i32 {
    fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

/// Wait until a file exists and return its content.
pub fn wait_file(p: &Path) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = fs::read_to_string(p) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(Instant::now() < end, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}
