//! A client of the OCI distribution API (blocking, on ureq): manifests and blobs, anonymous,
//! basic and bearer-token auth, plain HTTP for loopback and `--insecure-registry` hosts.
//! Blobs stream to disk, resume with `Range` after an interruption, and are verified (digest
//! and size) before they enter the store.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest as _, Sha256};

use super::error::{Error, Result};
use super::model::{ACCEPT_MANIFESTS, Reference};
use super::store::{Store, hex};

/// Username and password for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    /// `user:password`.
    pub fn parse(s: &str) -> Result<Credentials> {
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| Error::Invalid("--creds: expected USER:PASSWORD".into()))?;
        Ok(Credentials {
            user: u.into(),
            password: p.into(),
        })
    }

    fn basic(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Credentials for `registry` from a docker-style auth.json (`{"auths": {HOST: {"auth": b64}}}`).
pub fn from_auth_file(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(Error::Io {
                step: format!("read {}", path.display()),
                err,
            });
        }
    };
    from_auth_json(&text, registry, &path.display().to_string())
}

/// Credentials for `registry` from the text of a docker-style auth.json (`what` names it in
/// errors; the text is never quoted).
pub fn from_auth_json(text: &str, registry: &str, what: &str) -> Result<Option<Credentials>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::Invalid(format!("{what}: not JSON (line {})", e.line())))?;
    let auths = v.get("auths").and_then(|a| a.as_object());
    let keys = [
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    let entry = auths.and_then(|a| {
        keys.iter().find_map(|k| a.get(k)).or_else(|| {
            // Docker Hub is stored under its index URL
            (registry == "docker.io")
                .then(|| a.get("https://index.docker.io/v1/"))
                .flatten()
        })
    });
    let Some(auth) = entry.and_then(|e| e.get("auth")).and_then(|a| a.as_str()) else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .map_err(|e| Error::Invalid(format!("{what}: auth for {registry}: {e}")))?;
    let s = String::from_utf8_lossy(&raw);
    Credentials::parse(&s).map(Some)
}

/// A client for one repository of one registry.
pub struct Client {
    agent: ureq::Agent,
    /// `http` or `https`.
    scheme: &'static str,
    /// host[:port] of the API.
    host: String,
    /// The registry as named in references (errors, auth files).
    pub registry: String,
    repo: String,
    creds: Option<Credentials>,
    /// Authorization header that worked last (bearer tokens are reused across threads).
    auth: Mutex<Option<String>>,
}

/// Is `host` (`host[:port]`) on a loopback address? Docker treats those as insecure by default.
pub fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .map(|(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
        .unwrap_or(host);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parse a `WWW-Authenticate: Bearer realm="..",service="..",scope=".."` challenge.
pub fn parse_challenge(h: &str) -> Option<(String, Vec<(String, String)>)> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        params.push((k.trim().to_ascii_lowercase(), v));
        s = next.trim_start_matches(',').trim();
    }
    Some((scheme.to_ascii_lowercase(), params))
}

impl Client {
    /// A client for the repository of `r`.
    pub fn new(r: &Reference, creds: Option<Credentials>, insecure: &[String]) -> Client {
        let registry = r.registry().to_string();
        let host = if registry == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            registry.clone()
        };
        let plain = is_loopback(&registry) || insecure.contains(&registry);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(10)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .build()
            .into();
        Client {
            agent,
            scheme: if plain { "http" } else { "https" },
            host,
            registry,
            repo: r.repository().to_string(),
            creds,
            auth: Mutex::new(None),
        }
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::Registry {
            registry: self.registry.clone(),
            msg: msg.into(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}/v2/{}/{}", self.scheme, self.host, self.repo, path)
    }

    /// GET with auth: anonymous first (or the header that worked before), then what the 401's
    /// challenge asks for (basic credentials, or a bearer token from its realm).
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<ureq::http::Response<ureq::Body>> {
        let send = |auth: Option<&str>| {
            let mut req = self.agent.get(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.call().map_err(|e| self.err(format!("GET {url}: {e}")))
        };
        let cached = self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let resp = send(cached.as_deref())?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| {
                self.err(format!(
                    "GET {url}: 401 without a WWW-Authenticate challenge"
                ))
            })?;
        let (scheme, params) = parse_challenge(&challenge)
            .ok_or_else(|| self.err(format!("malformed challenge {challenge:?}")))?;
        let header = match scheme.as_str() {
            "basic" => self.creds.as_ref().map(|c| c.basic()).ok_or_else(|| {
                self.err("authentication required: give --creds or an auth.json entry")
            })?,
            "bearer" => format!("Bearer {}", self.token(&params)?),
            other => return Err(self.err(format!("unsupported auth scheme {other:?}"))),
        };
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(header.clone());
        let resp = send(Some(&header))?;
        if resp.status() == 401 {
            return Err(self.err(format!("GET {url}: unauthorized (check the credentials)")));
        }
        Ok(resp)
    }

    /// A bearer token from the challenge's realm (with basic credentials when we have them).
    fn token(&self, params: &[(String, String)]) -> Result<String> {
        let get = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        let realm = get("realm").ok_or_else(|| self.err("bearer challenge without a realm"))?;
        let mut req = self.agent.get(realm);
        if let Some(s) = get("service") {
            req = req.query("service", s);
        }
        let scope = get("scope")
            .map(String::from)
            .unwrap_or_else(|| format!("repository:{}:pull", self.repo));
        req = req.query("scope", &scope);
        if let Some(c) = &self.creds {
            req = req.header("Authorization", &c.basic());
        }
        let mut resp = req
            .call()
            .map_err(|e| self.err(format!("token from {realm}: {e}")))?;
        if !resp.status().is_success() {
            return Err(self.err(format!("token from {realm}: HTTP {}", resp.status())));
        }
        let body: serde_json::Value = serde_json::from_slice(
            &resp
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_vec()
                .map_err(|e| self.err(format!("token: {e}")))?,
        )
        .map_err(|e| self.err(format!("token: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| self.err(format!("token from {realm}: no token in the answer")))
    }

    /// A manifest or index by tag or digest: (bytes, media type, digest). When fetched by
    /// digest, the bytes are checked against it.
    pub fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Option<String>, String)> {
        let url = self.url(&format!("manifests/{reference}"));
        let mut resp = self.get(&url, &[("Accept", ACCEPT_MANIFESTS)])?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                return Err(self.err(format!(
                    "{}/{}:{reference}: manifest unknown",
                    self.registry, self.repo
                )));
            }
            s => return Err(self.err(format!("GET {url}: HTTP {s}"))),
        }
        let mt = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| self.err(format!("read manifest: {e}")))?;
        let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(Error::Digest {
                what: format!("manifest {}/{}", self.registry, self.repo),
                expected: reference.into(),
                got: digest,
            });
        }
        Ok((bytes, mt, digest))
    }

    /// Download a blob into the store: streamed into `ingest/<hex>.partial` (resuming what a
    /// previous attempt left), verified, then renamed into `blobs/`. `progress` gets the bytes
    /// added.
    pub fn blob(
        &self,
        store: &Store,
        digest: &str,
        size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        if store.has_blob(digest) {
            progress(size);
            return Ok(());
        }
        store.init()?;
        let partial = store.ingest_path(digest)?;
        // one download of a blob at a time, across processes: pulls of one image at once
        // would otherwise write the same partial file over each other
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(|err| Error::Io {
                step: format!("open {}", partial.display()),
                err,
            })?;
        let mut file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
            step: format!("lock {}", partial.display()),
            err: e.into(),
        })?;
        // the download we waited for brought it (our file is then the committed blob)
        if store.has_blob(digest) {
            progress(size);
            return Ok(());
        }
        let mut hasher = Sha256::new();
        // re-hash what is there; a partial longer than the blob is garbage
        let mut have = io::copy(&mut &*file, &mut HashWrite(&mut hasher)).unwrap_or(0);
        if have > size {
            hasher = Sha256::new();
            have = 0;
        }
        let url = self.url(&format!("blobs/{digest}"));
        let range = format!("bytes={have}-");
        let headers: Vec<(&str, &str)> = if have > 0 && have < size {
            vec![("Range", &range)]
        } else {
            vec![]
        };
        let mut resp = self.get(&url, &headers)?;
        let status = resp.status().as_u16();
        let append = match status {
            206 if have > 0 => true,
            200 => {
                // the server sent the whole blob: start over
                hasher = Sha256::new();
                have = 0;
                false
            }
            416 if have == size => true, // we had it all already
            404 => return Err(self.err(format!("blob {digest} unknown"))),
            s => return Err(self.err(format!("GET {url}: HTTP {s}"))),
        };
        if have > 0 {
            progress(have);
        }
        let positioned = if append {
            file.seek(io::SeekFrom::End(0)).map(|_| ())
        } else {
            file.set_len(0)
                .and_then(|_| file.seek(io::SeekFrom::Start(0)).map(|_| ()))
        };
        positioned.map_err(|err| Error::Io {
            step: format!("write {}", partial.display()),
            err,
        })?;
        let mut w = io::BufWriter::with_capacity(1 << 20, &*file);
        if status != 416 {
            let mut body = resp
                .body_mut()
                .with_config()
                .limit(size.saturating_sub(have) + 1)
                .reader();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = w.flush();
                        return Err(self.err(format!(
                            "download {digest}: {e} (kept {} bytes to resume)",
                            have
                        )));
                    }
                };
                w.write_all(&buf[..n]).map_err(|err| Error::Io {
                    step: format!("write {}", partial.display()),
                    err,
                })?;
                hasher.update(&buf[..n]);
                have += n as u64;
                progress(n as u64);
            }
        }
        w.flush().map_err(|err| Error::Io {
            step: format!("write {}", partial.display()),
            err,
        })?;
        drop(w);
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        if got != digest || have != size {
            // a corrupt or oversized blob never enters the store, nor stays to be resumed
            let _ = fs::remove_file(&partial);
            return Err(Error::Digest {
                what: format!("blob from {} ({have} of {size} bytes)", self.registry),
                expected: digest.into(),
                got,
            });
        }
        store.commit_file(&partial, digest)
    }

    /// `ingest` path of a blob (for tests of resumption).
    pub fn partial_path(store: &Store, digest: &str) -> Result<PathBuf> {
        store.ingest_path(digest)
    }
}

struct HashWrite<'a>(&'a mut Sha256);

impl Write for HashWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_hosts() {
        let (s, p) = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#).unwrap();
        assert_eq!(s, "bearer");
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull".into()));
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#)
                .unwrap()
                .0,
            "basic"
        );
        assert!(
            is_loopback("127.0.0.1:5000") && is_loopback("localhost") && is_loopback("[::1]:5000")
        );
        assert!(!is_loopback("quay.io") && !is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn auth_files() {
        let p = std::env::temp_dir().join(format!("berth-auth-{}.json", std::process::id()));
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        fs::write(
            &p,
            format!(r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{b64}"}}}}}}"#),
        )
        .unwrap();
        let c = from_auth_file(&p, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "s3cret"));
        assert_eq!(from_auth_file(&p, "quay.io").unwrap(), None);
        fs::remove_file(&p).unwrap();
    }
}
