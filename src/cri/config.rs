//! `berth serve --config FILE`: the daemon's settings, in TOML. Every key is optional; unknown
//! keys are refused with their name, so a typo is not silently ignored.
//!
//! ```toml
//! listen = "unix:///run/berth/berth.sock"
//! state_root = "/run/berth"
//! data_root = "/var/lib/berth"
//! log_root = "/var/log/berth/pods"
//! cgroup_parent = "/berth"
//! cgroup_driver = "cgroupfs"          # "systemd" is refused: berth writes cgroupfs itself
//! default_seccomp = "unconfined"      # a container that asks for no seccomp profile gets
//!                                     # this one: or "runtime/default", or a profile's path
//! stream_address = "127.0.0.1:0"      # exec/attach/port-forward server (0: any free port)
//! log_level = "info"                  # error, warn, info, debug
//! slow_rpc = "1s"                     # RPCs that take longer are logged at warn
//! service_cidr = "10.78.0.0/16"       # Services' ClusterIPs (`berth kube apply` on this
//!                                     # node; under kubelet, kube-proxy's): must not overlap
//!                                     # the pod network
//!
//! [cni]
//! conf_dir = "/etc/cni/net.d"
//! plugin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
//! ipam_dir = "/var/lib/berth/cni/networks"
//! default_bridge = "berth0"           # berth's default network, used when conf_dir has none
//! default_subnet = "10.77.0.0/16"
//!
//! [registry]
//! insecure = ["registry.lan:5000"]
//! [registry.mirrors."docker.io"]
//! endpoints = ["http://127.0.0.1:5000"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The daemon's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub state_root: PathBuf,
    pub data_root: PathBuf,
    pub log_root: PathBuf,
    pub cgroup_parent: String,
    pub cgroup_driver: String,
    pub default_seccomp: String,
    pub stream_address: String,
    pub log_level: String,
    /// RPCs that take longer than this are logged (humantime: `1s`, `500ms`).
    pub slow_rpc: String,
    pub service_cidr: String,
    pub cni: Cni,
    pub registry: Registry,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cni {
    pub conf_dir: PathBuf,
    pub plugin_dirs: Vec<PathBuf>,
    pub ipam_dir: PathBuf,
    pub default_bridge: String,
    pub default_subnet: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registry {
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Upstream registry host (`docker.io`) → mirrors tried first, in order.
    pub mirrors: BTreeMap<String, Mirror>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mirror {
    /// `http://host:port` or `https://host[:port]` (or a bare `host:port`, https).
    pub endpoints: Vec<String>,
}

impl Default for Cni {
    fn default() -> Self {
        let d = crate::pod::net::cni::CniPaths::default();
        Cni {
            // kubelet's convention (the CLI's pods use berth's default network instead)
            conf_dir: crate::pod::net::cni::KUBELET_CONF_DIR.into(),
            plugin_dirs: d.plugin_dirs,
            ipam_dir: d.ipam_dir,
            default_bridge: d.default_bridge,
            default_subnet: d.default_subnet,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let o = crate::pod::Options::default();
        Config {
            listen: "unix:///run/berth/berth.sock".into(),
            state_root: o.root,
            data_root: o.data_root,
            log_root: o.log_root,
            cgroup_parent: o.cgroup_parent,
            cgroup_driver: "cgroupfs".into(),
            // containerd's unset_seccomp_profile: what asks for nothing gets nothing
            default_seccomp: "unconfined".into(),
            stream_address: "127.0.0.1:0".into(),
            log_level: "info".into(),
            slow_rpc: "1s".into(),
            service_cidr: o.service_cidr,
            cni: Cni::default(),
            registry: Registry::default(),
        }
    }
}

impl Config {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        c.check()?;
        Ok(c)
    }

    /// Check every field (as `load` and `parse` do; for settings changed after loading).
    pub fn check(&self) -> Result<()> {
        if self.cgroup_driver != "cgroupfs" {
            bail!(
                "cgroup_driver: {:?} is not supported: berth manages cgroups directly (\"cgroupfs\")",
                self.cgroup_driver
            );
        }
        if !matches!(self.log_level.as_str(), "error" | "warn" | "info" | "debug") {
            bail!(
                "log_level: {:?} is not one of error, warn, info, debug",
                self.log_level
            );
        }
        self.socket_path()?;
        self.stream_address
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("stream_address: {:?} is not IP:PORT", self.stream_address))?;
        self.seccomp()?;
        self.slow_rpc()?;
        crate::service::store::check_range(
            &self.service_cidr,
            "service_cidr",
            &self.cni.default_subnet,
        )?;
        for (host, m) in &self.registry.mirrors {
            for e in &m.endpoints {
                mirror_host(e).with_context(|| format!("registry.mirrors.{host:?}.endpoints"))?;
            }
        }
        Ok(())
    }

    /// `slow_rpc` as a duration.
    pub fn slow_rpc(&self) -> Result<std::time::Duration> {
        humantime::parse_duration(&self.slow_rpc).with_context(|| {
            format!(
                "slow_rpc: {:?} is not a duration (1s, 500ms)",
                self.slow_rpc
            )
        })
    }

    /// The unix socket path of `listen`.
    pub fn socket_path(&self) -> Result<PathBuf> {
        match self.listen.strip_prefix("unix://") {
            Some(p) if p.starts_with('/') => Ok(p.into()),
            _ if self.listen.starts_with('/') => Ok(self.listen.clone().into()),
            _ => bail!(
                "listen: {:?} is not unix:///ABSOLUTE/PATH (berth serves CRI on a unix socket)",
                self.listen
            ),
        }
    }

    /// The seccomp filter of containers whose security context asks for none (neither
    /// `seccomp` nor `seccomp_profile_path`): containerd's `unset_seccomp_profile`.
    pub fn seccomp(&self) -> Result<crate::pod::Seccomp> {
        Ok(match self.default_seccomp.as_str() {
            "runtime/default" | "" => crate::pod::Seccomp::RuntimeDefault,
            "unconfined" => crate::pod::Seccomp::Unconfined,
            p if p.starts_with('/') => crate::pod::Seccomp::Localhost(p.into()),
            other => bail!(
                "default_seccomp: {other:?} is not \"runtime/default\", \"unconfined\" or an absolute path"
            ),
        })
    }

    /// The pod runtime's options from these settings.
    pub fn options(&self) -> crate::pod::Options {
        let mut o = crate::pod::Options {
            root: self.state_root.clone(),
            data_root: self.data_root.clone(),
            log_root: self.log_root.clone(),
            cni: crate::pod::net::cni::CniPaths {
                conf_dir: Some(self.cni.conf_dir.clone()),
                plugin_dirs: self.cni.plugin_dirs.clone(),
                ipam_dir: self.cni.ipam_dir.clone(),
                default_bridge: self.cni.default_bridge.clone(),
                default_subnet: self.cni.default_subnet.clone(),
            },
            cgroup_parent: self.cgroup_parent.clone(),
            service_cidr: self.service_cidr.clone(),
            ..Default::default()
        };
        o.pull.insecure = self.registry.insecure.clone();
        for m in self.registry.mirrors.values() {
            for e in &m.endpoints {
                if e.starts_with("http://")
                    && let Ok(h) = mirror_host(e)
                {
                    o.pull.insecure.push(h);
                }
            }
        }
        o
    }

    /// The references to try for `image`: its mirrors' (in order), then itself.
    pub fn mirrored(&self, image: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(r) = crate::image::model::parse_reference(image) {
            if let Some(m) = self.registry.mirrors.get(r.registry()) {
                let whole = r.whole();
                let rest = &whole[r.registry().len()..];
                for e in &m.endpoints {
                    if let Ok(h) = mirror_host(e) {
                        out.push(format!("{h}{rest}"));
                    }
                }
            }
        }
        out.push(image.to_string());
        out
    }
}

/// `http://host:port/` → `host:port`.
fn mirror_host(endpoint: &str) -> Result<String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
        bail!("{endpoint:?} is not [http[s]://]HOST[:PORT]");
    }
    Ok(host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_full_file() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            c.socket_path().unwrap(),
            PathBuf::from("/run/berth/berth.sock")
        );
        // containerd's unset_seccomp_profile: nothing asked, nothing applied
        assert_eq!(c.seccomp().unwrap(), crate::pod::Seccomp::Unconfined);
        assert_eq!(c.slow_rpc().unwrap(), std::time::Duration::from_secs(1));
        assert!(Config::parse("slow_rpc = \"soon\"").is_err());
        let c = Config::parse(
            r#"
listen = "unix:///tmp/x.sock"
state_root = "/run/x"
slow_rpc = "250ms"
default_seccomp = "runtime/default"
service_cidr = "10.124.0.0/20"
[cni]
conf_dir = "/etc/x"
default_bridge = "cbr0"
default_subnet = "10.123.0.0/24"
[registry]
insecure = ["reg:5000"]
[registry.mirrors."docker.io"]
endpoints = ["http://127.0.0.1:5000"]
"#,
        )
        .unwrap();
        assert_eq!(c.state_root, PathBuf::from("/run/x"));
        assert_eq!(c.cni.conf_dir, PathBuf::from("/etc/x"));
        assert_eq!(c.seccomp().unwrap(), crate::pod::Seccomp::RuntimeDefault);
        assert_eq!(c.slow_rpc().unwrap(), std::time::Duration::from_millis(250));
        assert_eq!(
            c.mirrored("busybox"),
            vec![
                "127.0.0.1:5000/library/busybox:latest".to_string(),
                "busybox".to_string()
            ]
        );
        assert_eq!(
            c.mirrored("quay.io/a/b:1"),
            vec!["quay.io/a/b:1".to_string()]
        );
        let o = c.options();
        assert!(o.pull.insecure.contains(&"127.0.0.1:5000".to_string()));
        assert_eq!(
            (o.cni.default_bridge.as_str(), o.cni.default_subnet.as_str()),
            ("cbr0", "10.123.0.0/24")
        );
        assert_eq!(o.service_cidr, "10.124.0.0/20");
        let d = Config::parse("").unwrap().options();
        assert_eq!(
            (d.cni.default_bridge.as_str(), d.cni.default_subnet.as_str()),
            ("berth0", "10.77.0.0/16")
        );
        assert_eq!(d.service_cidr, "10.78.0.0/16");
    }

    #[test]
    fn bad_files_name_the_field() {
        let e = Config::parse("lisen = \"x\"").unwrap_err();
        assert!(format!("{e:#}").contains("lisen"), "{e:#}");
        let e = Config::parse("cgroup_driver = \"systemd\"").unwrap_err();
        assert!(format!("{e:#}").contains("cgroup_driver"), "{e:#}");
        let e = Config::parse("listen = \"tcp://1.2.3.4:5\"").unwrap_err();
        assert!(format!("{e:#}").contains("listen"), "{e:#}");
        let e = Config::parse("[registry.mirrors.\"docker.io\"]\nendpoints = [\"http://a/b\"]")
            .unwrap_err();
        assert!(format!("{e:#}").contains("mirrors"), "{e:#}");
        let e = Config::parse("default_seccomp = \"strict\"").unwrap_err();
        assert!(format!("{e:#}").contains("default_seccomp"), "{e:#}");
        let e = Config::parse("service_cidr = \"10.78.0.0\"").unwrap_err();
        assert!(format!("{e:#}").starts_with("service_cidr: "), "{e:#}");
        let e = Config::parse("service_cidr = \"10.77.0.0/24\"").unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "service_cidr: the service range 10.77.0.0/24 overlaps the pod network 10.77.0.0/16"
        );
    }
}
