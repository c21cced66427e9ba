//! Harness of the image tests: a data root per test, real registries (Debian's docker-registry)
//! on loopback serving the fixture images, a token server for bearer auth, a throttling proxy,
//! and hand-made OCI layouts for layers no tool would write. Everything is removed on drop.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::common::{BERTH, rootfs_fixture, test_base};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The image fixtures (rootfs-fixtures/build-images.sh), built once under a lock.
pub fn images_fixture() -> PathBuf {
    let rootfs = rootfs_fixture();
    let dir = Path::new(MANIFEST).join("rootfs-fixtures/build");
    let images = dir.join("images");
    if images.join("registry").exists() {
        return images;
    }
    let lock = fs::File::create(dir.join(".lock-images")).unwrap();
    let _l = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    if !images.join("registry").exists() {
        let st = Command::new(Path::new(MANIFEST).join("rootfs-fixtures/build-images.sh"))
            .arg(&rootfs)
            .arg(&images)
            .status()
            .unwrap();
        assert!(st.success(), "building the image fixtures failed");
    }
    images
}

pub fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// A data root (and room for bundles) of one test.
pub struct Store {
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl Store {
    pub fn new(name: &str) -> Store {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = test_base().join(format!("img-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Store {
            root: dir.join("data"),
            dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .env("BERTH_DATA_ROOT", &self.root)
            .env("REGISTRY_AUTH_FILE", self.dir.join("no-auth.json"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Run and expect success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and expect success; returns stderr (progress lines).
    pub fn ok_err(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Run and expect failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            !out.status.success(),
            "berth {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn names(&self) -> Vec<String> {
        let v: Value =
            serde_json::from_str(&self.ok(&["image", "ls", "--format", "json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn blobs(&self) -> Vec<String> {
        entries(&self.root.join("blobs/sha256"))
    }

    pub fn snapshots(&self) -> Vec<String> {
        entries(&self.root.join("snapshots"))
            .into_iter()
            .filter(|n| n != "by-chain")
            .collect()
    }

    /// Nothing half-done: no unfinished snapshot, no download in progress, nothing mounted.
    pub fn assert_no_leftovers(&self) {
        let tmp: Vec<String> = self
            .snapshots()
            .into_iter()
            .filter(|n| n.starts_with(".tmp"))
            .collect();
        assert!(tmp.is_empty(), "unfinished snapshots left: {tmp:?}");
        assert_eq!(
            entries(&self.root.join("ingest")),
            Vec::<String>::new(),
            "downloads left in ingest/"
        );
        assert_eq!(mounts_under(&self.dir), Vec::<String>::new(), "mounts left");
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        for m in mounts_under(&self.dir).iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Mount points at or below `dir` (in mount order).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| *m == d || m.starts_with(&format!("{d}/")))
        .collect()
}

/// The mountinfo line of a mount point.
pub fn mountinfo(point: &Path) -> Option<String> {
    let p = point.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(p.as_str()))
        .map(String::from)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until the registry `child` says in its log (from byte `from` on) that it listens.
/// A connect alone is not proof: the port may have been handed to another test's registry
/// between [`free_port`] and the bind, and then this one exits with "address already in use"
/// while the connect reaches the other (seen once: the other test ended and took its
/// registry along). Returns false if the port was taken.
fn wait_listening(child: &mut Child, log: &Path, from: usize) -> bool {
    let t = Instant::now();
    loop {
        let text = fs::read(log).unwrap_or_default();
        let text = String::from_utf8_lossy(text.get(from..).unwrap_or_default());
        if text.contains("listening on") {
            return true;
        }
        if let Ok(Some(st)) = child.try_wait() {
            if text.contains("address already in use") {
                return false;
            }
            panic!("registry exited at start: {st}; its log:\n{text}");
        }
        // (30 s: in the cgroup v2 VM, emulated and running two test threads, 10 s was
        // seen to pass once)
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "registry did not listen; its log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A docker-registry process on 127.0.0.1 (killed on drop).
pub struct Registry {
    child: Option<Child>,
    pub port: u16,
    mode: String,
    storage: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Registry {
    /// `mode`: open, basic or token (registry-MODE.yml of the fixtures).
    pub fn start(mode: &str, storage: &Path, env: &[(&str, &str)]) -> Registry {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let log = test_base().join(format!("registry-{}-{n}.log", std::process::id()));
        fs::create_dir_all(test_base()).unwrap();
        let mut r = Registry {
            child: None,
            port: free_port(),
            mode: mode.into(),
            storage: storage.into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log,
        };
        for _ in 0..5 {
            if r.spawn() {
                return r;
            }
            r.port = free_port();
        }
        panic!("no free port for a registry in 5 tries");
    }

    /// The fixture registry, serving the images of build-images.sh.
    pub fn fixtures(mode: &str) -> Registry {
        Registry::start(mode, &images_fixture().join("registry"), &[])
    }

    /// Start again (same port, same storage) after [`Registry::kill`].
    pub fn restart(&mut self) {
        assert!(
            self.spawn(),
            "port {} taken while the registry was down",
            self.port
        );
    }

    /// Start on `self.port`; false if the port was taken.
    fn spawn(&mut self) -> bool {
        let cfg = images_fixture().join(format!("registry-{}.yml", self.mode));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new("setpriv");
        // the registry dies with the thread that started it, even if this test is killed
        cmd.args(["--pdeathsig", "KILL", "--", "docker-registry", "serve"])
            .arg(&cfg)
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{}", self.port))
            .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &self.storage)
            .env("REGISTRY_LOG_ACCESSLOG_DISABLED", "false")
            .env("REGISTRY_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let from = fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
        let mut child = cmd.spawn().expect("start docker-registry");
        if !wait_listening(&mut child, &self.log, from) {
            return false;
        }
        self.child = Some(child);
        true
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The access log so far: one line per request.
    pub fn requests(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET ") || l.contains("\"HEAD "))
            .map(String::from)
            .collect()
    }

    /// Requests for blobs (layers and configs).
    pub fn blob_requests(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|l| l.contains("/blobs/sha256:"))
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_file(&self.log);
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A token server for the registry's bearer auth: grants what a request's scope asks when
/// basic credentials alice:s3cret come with it; signs RS256 JWTs with the fixture key
/// (through openssl), carrying the certificate the registry trusts (x5c).
pub struct TokenServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub issued: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    pub fn start() -> TokenServer {
        let fx = images_fixture();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let (stop2, issued2) = (stop.clone(), issued.clone());
        let pem = fs::read_to_string(fx.join("token.crt")).unwrap();
        let cert: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let key = fx.join("token.key");
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut auth = None;
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                }
                let ok_auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
                if auth.as_deref() != Some(&format!("Basic {ok_auth}")) {
                    let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let query = first
                    .split(' ')
                    .nth(1)
                    .and_then(|p| p.split_once('?'))
                    .map(|(_, q)| q.to_string())
                    .unwrap_or_default();
                let scope = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("scope="))
                    .map(|s| {
                        s.replace("%3A", ":")
                            .replace("%2F", "/")
                            .replace("%2C", ",")
                    })
                    .unwrap_or_default();
                let access: Vec<Value> = scope
                    .split(' ')
                    .filter_map(|s| {
                        let mut p = s.splitn(3, ':');
                        let (t, n, a) = (p.next()?, p.next()?, p.next()?);
                        Some(json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
                    })
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [cert]});
                let claims = json!({"iss": "berth-test", "sub": "alice", "aud": "berth-registry",
                    "exp": now + 600, "nbf": now - 60, "iat": now, "jti": format!("t{now}"), "access": access});
                let signing_input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let mut ossl = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                ossl.stdin
                    .take()
                    .unwrap()
                    .write_all(signing_input.as_bytes())
                    .unwrap();
                let sig = ossl.wait_with_output().unwrap().stdout;
                let body = json!({"token": format!("{signing_input}.{}", b64url(&sig)), "expires_in": 600}).to_string();
                issued2.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            port,
            stop,
            issued,
            thread: Some(thread),
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP proxy to a local port that passes at most `rate` bytes per second towards the client.
pub struct SlowProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    pub fn start(upstream: u16, rate: usize) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                let (mut client, mut server) = (client, server);
                let stop3 = stop2.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; (rate / 20).max(1)];
                    loop {
                        if stop3.load(Ordering::SeqCst) {
                            break;
                        }
                        let n = match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        SlowProxy { port, stop }
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One entry of a hand-made layer: raw path bytes, so that `..`, absolute and odd names can
/// be written as an attacker would.
pub enum Entry<'a> {
    File(&'a [u8], &'a [u8]),
    Dir(&'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
    /// A file with one extended attribute (a PAX `SCHILY.xattr.` record).
    Xattr(&'a [u8], &'a str, &'a [u8]),
}

/// An uncompressed layer tar of `entries` (ustar/GNU headers written byte by byte).
pub fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (path, kind, link, data): (&[u8], tar::EntryType, &[u8], &[u8]) = match e {
            Entry::File(p, d) => (p, tar::EntryType::Regular, b"", d),
            Entry::Dir(p) => (p, tar::EntryType::Directory, b"", b""),
            Entry::Symlink(p, t) => (p, tar::EntryType::Symlink, t, b""),
            Entry::Hardlink(p, t) => (p, tar::EntryType::Link, t, b""),
            Entry::Xattr(p, k, v) => {
                let mut rec = format!(" SCHILY.xattr.{k}=").into_bytes();
                rec.extend_from_slice(v);
                rec.push(b'\n');
                // the length prefix counts itself
                let mut len = rec.len() + 1;
                while format!("{len}").len() + rec.len() != len {
                    len += 1;
                }
                let mut data = format!("{len}").into_bytes();
                data.extend_from_slice(&rec);
                let mut xh = tar::Header::new_ustar();
                xh.as_ustar_mut().unwrap().name[..9].copy_from_slice(b"PaxHeader");
                xh.set_entry_type(tar::EntryType::XHeader);
                xh.set_size(data.len() as u64);
                xh.set_mode(0o644);
                xh.set_cksum();
                out.extend_from_slice(xh.as_bytes());
                out.extend_from_slice(&data);
                out.resize(out.len().div_ceil(512) * 512, 0);
                (p, tar::EntryType::Regular, b"", b"x")
            }
        };
        if path.len() > 100 || link.len() > 100 {
            // GNU long name / long link records before the entry
            for (bytes, k) in [(path, b'L'), (link, b'K')] {
                if bytes.len() <= 100 {
                    continue;
                }
                let mut lh = tar::Header::new_gnu();
                lh.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
                lh.set_entry_type(tar::EntryType::new(k));
                lh.set_size(bytes.len() as u64 + 1);
                lh.set_mode(0o644);
                lh.set_cksum();
                out.extend_from_slice(lh.as_bytes());
                out.extend_from_slice(bytes);
                out.push(0);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
        }
        let g = h.as_gnu_mut().unwrap();
        let n = path.len().min(100);
        g.name[..n].copy_from_slice(&path[..n]);
        let n = link.len().min(100);
        g.linkname[..n].copy_from_slice(&link[..n]);
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000_000);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Write an OCI layout at `dir` holding one image of `layers` (stored as given: uncompressed
/// or not), tagged `tag`. `diff_ids` default to the digests of the layers (right for
/// uncompressed ones). Returns the manifest digest.
pub fn write_layout(
    dir: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    diff_ids: Option<Vec<String>>,
) -> String {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    let put = |b: &[u8]| {
        let d = sha256(b);
        fs::write(dir.join("blobs/sha256").join(&d[7..]), b).unwrap();
        d
    };
    let mut descs = Vec::new();
    for l in layers {
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(l), "size": l.len()}));
    }
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha256(l)).collect());
    let config = json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    .to_string();
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config.as_bytes()), "size": config.len()},
        "layers": descs})
    .to_string();
    let md = put(manifest.as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    md
}

/// Put the image of an OCI layout into a registry's storage directory, as `repo:latest`
/// (what a push would leave, without recompressing anything).
pub fn store_in_registry(layout: &Path, storage: &Path, repo: &str) {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = |d: &str| layout.join("blobs/sha256").join(&d[7..]);
    let manifest: Value = serde_json::from_slice(&fs::read(blob(&m)).unwrap()).unwrap();
    let base = storage.join("docker/registry/v2");
    let put = |d: &str, link: PathBuf| {
        let h = &d[7..];
        let dir = base.join("blobs/sha256").join(&h[..2]).join(h);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(blob(d), dir.join("data")).unwrap();
        fs::create_dir_all(&link).unwrap();
        fs::write(link.join("link"), d).unwrap();
    };
    let repo_dir = base.join("repositories").join(repo);
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    digests.extend(
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string()),
    );
    for d in &digests {
        put(d, repo_dir.join("_layers/sha256").join(&d[7..]));
    }
    put(
        &m,
        repo_dir.join("_manifests/revisions/sha256").join(&m[7..]),
    );
    let tag = repo_dir.join("_manifests/tags/latest");
    for l in [tag.join("current"), tag.join("index/sha256").join(&m[7..])] {
        fs::create_dir_all(&l).unwrap();
        fs::write(l.join("link"), &m).unwrap();
    }
}

/// Run a bundle written by `image unpack` as a container (own state root and cgroup);
/// returns (exit code, stdout, stderr).
pub fn run_bundle(store: &Store, bundle: &Path) -> (i32, String, String) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let id = format!("img-{}-{n}", std::process::id());
    let cfg_path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    let cgroup = format!("/berth-test-{id}");
    cfg["linux"]["cgroupsPath"] = Value::String(cgroup.clone());
    fs::write(&cfg_path, cfg.to_string()).unwrap();
    let out = Command::new(BERTH)
        .arg("--root")
        .arg(store.path("state"))
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new(BERTH)
        .arg("--root")
        .arg(store.path("state"))
        .args(["delete", "--force", &id])
        .stderr(Stdio::null())
        .status();
    for d in super::common::cgroup_dirs_of(&cgroup) {
        let _ = fs::remove_dir(d);
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A deterministic, incompressible byte string.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A berth process a test started; killed if the test ends (or panics) before it exits.
pub struct Spawned(Option<Child>);

impl Spawned {
    pub fn new(child: Child) -> Spawned {
        Spawned(Some(child))
    }

    #[allow(dead_code)]
    pub fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }

    pub fn wait_with_output(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
