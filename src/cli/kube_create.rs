//! `berth kube create configmap|secret`: a ConfigMap or Secret from literals, files and env
//! files, as `kubectl create` makes them; the object goes through the same checks as one
//! applied from a file.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use berth::configmap::{ConfigData, DataKind, manifest};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

#[derive(Debug, Subcommand)]
pub enum Create {
    /// A ConfigMap: `configmap NAME --from-literal K=V --from-file [K=]PATH --from-env-file F`.
    #[command(alias = "cm")]
    Configmap(Sources),
    /// A Secret: `secret generic NAME ...`, `secret tls NAME --cert C --key K`,
    /// `secret docker-registry NAME --docker-server S --docker-username U --docker-password P`.
    #[command(subcommand)]
    Secret(SecretKind),
}

#[derive(Debug, Subcommand)]
pub enum SecretKind {
    Generic(Sources),
    Tls {
        name: String,
        #[arg(long)]
        cert: String,
        #[arg(long)]
        key: String,
    },
    DockerRegistry {
        name: String,
        #[arg(long)]
        docker_server: String,
        #[arg(long)]
        docker_username: String,
        #[arg(long)]
        docker_password: String,
    },
}

#[derive(Debug, Args)]
pub struct Sources {
    name: String,
    /// KEY=VALUE.
    #[arg(long)]
    from_literal: Vec<String>,
    /// [KEY=]PATH: a file's content under its name (or KEY).
    #[arg(long)]
    from_file: Vec<String>,
    /// A file of KEY=VALUE lines (`#` comments and blank lines skipped).
    #[arg(long)]
    from_env_file: Vec<String>,
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {path}"))
}

/// The keys and values `s` gives.
fn entries(s: &Sources) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for l in &s.from_literal {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("--from-literal {l:?}: expected KEY=VALUE"))?;
        out.push((k.to_string(), v.as_bytes().to_vec()));
    }
    for f in &s.from_file {
        let (k, p) = match f.split_once('=') {
            Some((k, p)) => (k.to_string(), p.to_string()),
            None => {
                let name = Path::new(f)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, f.clone())
            }
        };
        out.push((k, read(&p)?));
    }
    for f in &s.from_env_file {
        let text = String::from_utf8(read(f)?).with_context(|| format!("{f}: not UTF-8"))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .with_context(|| format!("{f}:{}: expected KEY=VALUE", n + 1))?;
            out.push((k.to_string(), v.as_bytes().to_vec()));
        }
    }
    Ok(out)
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Make the object; returns kubectl's line (`configmap/NAME created`).
pub fn create(data: &ConfigData, namespace: &str, what: Create) -> Result<String> {
    let (kind, name, v) = match what {
        Create::Configmap(s) => {
            let mut d = Map::new();
            let mut bin = Map::new();
            for (k, v) in entries(&s)? {
                let dup = match String::from_utf8(v) {
                    Ok(t) => d.insert(k.clone(), Value::String(t)),
                    Err(e) => bin.insert(k.clone(), Value::String(b64(e.as_bytes()))),
                };
                if dup.is_some() || (d.contains_key(&k) && bin.contains_key(&k)) {
                    bail!("key {k:?} is given twice");
                }
            }
            let v = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": s.name, "namespace": namespace},
                "data": d, "binaryData": bin});
            (DataKind::ConfigMap, s.name, v)
        }
        Create::Secret(k) => {
            let (name, t, pairs) = match k {
                SecretKind::Generic(s) => (s.name.clone(), "Opaque", entries(&s)?),
                SecretKind::Tls { name, cert, key } => (
                    name,
                    "kubernetes.io/tls",
                    vec![
                        ("tls.crt".into(), read(&cert)?),
                        ("tls.key".into(), read(&key)?),
                    ],
                ),
                SecretKind::DockerRegistry {
                    name,
                    docker_server,
                    docker_username,
                    docker_password,
                } => {
                    let auth = b64(format!("{docker_username}:{docker_password}").as_bytes());
                    let cfg = json!({"auths": {docker_server: {
                        "username": docker_username, "password": docker_password, "auth": auth}}});
                    (
                        name,
                        "kubernetes.io/dockerconfigjson",
                        vec![(".dockerconfigjson".into(), cfg.to_string().into_bytes())],
                    )
                }
            };
            let mut d = Map::new();
            for (k, v) in pairs {
                if d.insert(k.clone(), Value::String(b64(&v))).is_some() {
                    bail!("key {k:?} is given twice");
                }
            }
            let v = json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace}, "type": t, "data": d});
            (DataKind::Secret, name, v)
        }
    };
    let o = manifest::read(&v, kind)?;
    if data.get(kind, namespace, &name).is_ok() {
        bail!("{} {namespace}/{name} already exists", kind.word());
    }
    data.apply(o)?;
    Ok(format!("{}/{name} created", kind.word()))
}
