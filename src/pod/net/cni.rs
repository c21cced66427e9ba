//! CNI 1.0: run the standard plugins (bridge, host-local, portmap, firewall, ...) for a pod.
//!
//! The network is the first configuration of the config dir (`.conflist`, `.conf` or `.json`,
//! by file name, as kubelet picks it), or berth's own default: a bridge `berth0` on
//! 10.77.0.0/16 (podman uses 10.88.0.0/16), host-local IPAM, and portmap for pods with
//! hostPorts; its masquerade and forward rules are written once per network (`hostnet`), not
//! per pod. ADD runs the chain in order, each plugin given the previous result; DEL runs it in
//! reverse with the cached result; a failed ADD deletes what it added.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::hostnet::{self, HostRules};
use crate::pod::error::{Error, Result, io};

/// Where configurations and plugins are, and berth's default network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniPaths {
    /// Where network configurations are looked for (the first file is used); None, or a
    /// directory with none: berth's default network.
    #[serde(default)]
    pub conf_dir: Option<PathBuf>,
    pub plugin_dirs: Vec<PathBuf>,
    /// host-local IPAM leases of the default network.
    pub ipam_dir: PathBuf,
    /// The default network's bridge.
    #[serde(default = "default_bridge")]
    pub default_bridge: String,
    /// The default network's IPv4 subnet; its first address is the gateway (the bridge).
    #[serde(default = "default_subnet")]
    pub default_subnet: String,
}

fn default_bridge() -> String {
    DEFAULT_BRIDGE.into()
}
fn default_subnet() -> String {
    DEFAULT_SUBNET.into()
}

impl Default for CniPaths {
    fn default() -> Self {
        CniPaths {
            conf_dir: None,
            plugin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            ipam_dir: "/var/lib/berth/cni/networks".into(),
            default_bridge: default_bridge(),
            default_subnet: default_subnet(),
        }
    }
}

/// A network: the parsed conflist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
    /// Where it came from (a file, or "berth default").
    pub source: String,
    /// berth's default network: masquerade and forward rules kept while a pod is on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rules: Option<HostRules>,
}

/// Where kubelet's convention puts network configurations (`berth serve`'s default).
pub const KUBELET_CONF_DIR: &str = "/etc/cni/net.d";

/// The default network's subnet.
pub const DEFAULT_SUBNET: &str = "10.77.0.0/16";
pub const DEFAULT_BRIDGE: &str = "berth0";

/// berth's default network; portmap is in the chain only for a pod with hostPorts (it has
/// nothing to do otherwise, and each plugin run costs milliseconds).
pub fn default_network(paths: &CniPaths, host_ports: bool, why: &str) -> Result<Network> {
    let (subnet, gateway) = parse_subnet(&paths.default_subnet)?;
    let bridge = &paths.default_bridge;
    if bridge.is_empty()
        || bridge.len() > 15
        || !bridge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Invalid(format!(
            "default network bridge {bridge:?}: want 1 to 15 letters, digits, '-' or '_'"
        )));
    }
    let mut plugins = vec![
        json!({"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": paths.ipam_dir}}),
    ];
    if host_ports {
        plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}}));
    }
    Ok(Network {
        name: "berth".into(),
        cni_version: "1.0.0".into(),
        plugins,
        source: format!(
            "berth's default network (bridge {bridge}, {subnet}): {why}",
            subnet = paths.default_subnet
        ),
        host_rules: Some(HostRules {
            bridge: bridge.clone(),
            subnet: subnet.clone(),
            state_dir: hostnet::STATE_DIR.into(),
        }),
    })
}

/// An IPv4 subnet `a.b.c.d/n` (n from 8 to 30) → (the subnet with host bits cleared, its first
/// address as the gateway).
fn parse_subnet(s: &str) -> Result<(String, String)> {
    let bad = |why: &str| Error::Invalid(format!("default network subnet {s:?}: {why}"));
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| bad("want a.b.c.d/prefix"))?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
    let len: u32 = len.parse().map_err(|_| bad("bad prefix length"))?;
    if !(8..=30).contains(&len) {
        return Err(bad("prefix length must be 8 to 30"));
    }
    let net = u32::from(addr) & (u32::MAX << (32 - len));
    Ok((
        format!("{}/{len}", std::net::Ipv4Addr::from(net)),
        std::net::Ipv4Addr::from(net + 1).to_string(),
    ))
}

/// Load the network: the first configuration file of the config dir, else the default
/// (`host_ports`: the pod maps host ports).
pub fn load(paths: &CniPaths, host_ports: bool) -> Result<Network> {
    let Some(conf_dir) = &paths.conf_dir else {
        return default_network(paths, host_ports, "no CNI configuration directory given");
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(conf_dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Error::Io {
                step: format!("read CNI config dir {}", conf_dir.display()),
                err: e,
            });
        }
    };
    files.sort();
    let Some(f) = files.first() else {
        let why = format!("no configuration in {}", conf_dir.display());
        return default_network(paths, host_ports, &why);
    };
    let text = std::fs::read_to_string(f).map_err(io(format!("read {}", f.display())))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| Error::Cni(format!("{}: {e}", f.display())))?;
    let bad = |m: &str| Error::Cni(format!("{}: {m}", f.display()));
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no \"name\""))?
        .to_string();
    let version = v
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("1.0.0")
        .to_string();
    let plugins = match v.get("plugins") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(_) => return Err(bad("\"plugins\" must be a non-empty list")),
        // a single-plugin .conf
        None => vec![v.clone()],
    };
    for (i, p) in plugins.iter().enumerate() {
        if p.get("type").and_then(Value::as_str).is_none() {
            return Err(bad(&format!("plugins[{i}] has no \"type\"")));
        }
    }
    Ok(Network {
        name,
        cni_version: version,
        plugins,
        source: format!("CNI configuration {}", f.display()),
        host_rules: None,
    })
}

/// One pod's attachment to a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS` (K8S_POD_NAMESPACE, K8S_POD_NAME, ...).
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`), passed as runtimeConfig to plugins that declare them.
    pub runtime_config: Value,
}

/// What ADD produced, cached for CHECK and DEL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cached {
    pub network: Network,
    pub attachment: Attachment,
    pub result: Value,
}

impl Cached {
    /// The pod's IP addresses (without prefix length).
    pub fn ips(&self) -> Vec<String> {
        self.result
            .get("ips")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|ip| ip.get("address").and_then(Value::as_str))
                    .map(|s| s.split('/').next().unwrap_or(s).to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn find_plugin(paths: &CniPaths, kind: &str) -> Result<PathBuf> {
    if kind.contains('/') {
        return Err(Error::Cni(format!(
            "plugin type {kind:?} is not a plain name"
        )));
    }
    paths
        .plugin_dirs
        .iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let dirs: Vec<String> = paths
                .plugin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            Error::Cni(format!("plugin {kind:?} not found in {}", dirs.join(":")))
        })
}

/// The stdin of one plugin call.
fn plugin_conf(net: &Network, plugin: &Value, att: &Attachment, prev: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = json!(net.name);
    conf["cniVersion"] = json!(net.cni_version);
    if let Some(p) = prev {
        conf["prevResult"] = p.clone();
    }
    // runtimeConfig: only the capabilities the plugin declares
    if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
        let mut rc = serde_json::Map::new();
        for (cap, on) in caps {
            if on.as_bool() == Some(true) {
                if let Some(v) = att.runtime_config.get(cap) {
                    rc.insert(cap.clone(), v.clone());
                }
            }
        }
        if !rc.is_empty() {
            conf["runtimeConfig"] = Value::Object(rc);
        }
    }
    conf
}

/// Run one plugin; its stdout JSON (or an error built from its CNI error object).
fn exec(
    paths: &CniPaths,
    command: &str,
    net: &Network,
    plugin: &Value,
    att: &Attachment,
    prev: Option<&Value>,
) -> Result<Value> {
    let kind = plugin["type"].as_str().unwrap_or_default();
    let bin = find_plugin(paths, kind)?;
    let conf = plugin_conf(net, plugin, att, prev);
    let args: Vec<String> = att.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cni_path: Vec<String> = paths
        .plugin_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let mut child = Command::new(&bin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &att.container_id)
        .env("CNI_NETNS", &att.netns)
        .env("CNI_IFNAME", &att.ifname)
        .env("CNI_ARGS", args.join(";"))
        .env("CNI_PATH", cni_path.join(":"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(format!("run CNI plugin {}", bin.display())))?;
    let input = serde_json::to_vec(&conf).expect("JSON serialises");
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child
        .wait_with_output()
        .map_err(io(format!("wait for CNI plugin {kind}")))?;
    let _ = writer.join();
    if !out.status.success() {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let msg = v
            .get("msg")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        let details = v
            .get("details")
            .and_then(Value::as_str)
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(Error::Cni(format!(
            "{kind} {command} for {}: {msg}{details} [{}]",
            att.container_id, out.status
        )));
    }
    if command == "ADD" {
        serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Cni(format!("{kind} ADD: invalid result: {e}")))
    } else {
        Ok(Value::Null)
    }
}

/// ADD the pod to the network; on failure, what was added is deleted again.
pub fn add(paths: &CniPaths, net: &Network, att: &Attachment) -> Result<Cached> {
    let Some(rules) = &net.host_rules else {
        return add_chain(paths, net, att);
    };
    hostnet::join(&net.name, rules, || add_chain(paths, net, att)).inspect_err(|_| {
        // the network may be empty again (this pod was its first)
        let _ = hostnet::leave(&net.name, rules);
    })
}

fn add_chain(paths: &CniPaths, net: &Network, att: &Attachment) -> Result<Cached> {
    let mut prev: Option<Value> = None;
    for (i, p) in net.plugins.iter().enumerate() {
        match exec(paths, "ADD", net, p, att, prev.as_ref()) {
            Ok(r) => prev = Some(r),
            Err(e) => {
                // undo the plugins that ran, and the failed one (it may have done half)
                for q in net.plugins[..=i].iter().rev() {
                    let _ = exec(paths, "DEL", net, q, att, prev.as_ref());
                }
                return Err(e);
            }
        }
    }
    Ok(Cached {
        network: net.clone(),
        attachment: att.clone(),
        result: prev.unwrap_or(Value::Null),
    })
}

/// DEL the pod from the network it was added to (every plugin is run; the first error is
/// returned after all ran).
pub fn del(paths: &CniPaths, cached: &Cached) -> Result<()> {
    let mut first = None;
    // a DEL after an ADD that never answered (a killed caller) has no result to pass
    let prev = (!cached.result.is_null()).then_some(&cached.result);
    for p in cached.network.plugins.iter().rev() {
        if let Err(e) = exec(paths, "DEL", &cached.network, p, &cached.attachment, prev) {
            first.get_or_insert(e);
        }
    }
    if let Some(rules) = &cached.network.host_rules {
        if let Err(e) = hostnet::leave(&cached.network.name, rules) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Write the cache next to the pod.
pub fn save(path: &Path, c: &Cached) -> Result<()> {
    crate::pod::store::write_json(path, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_only_for_declared_capabilities() {
        let paths = CniPaths::default();
        let net = default_network(&paths, true, "test").unwrap();
        let att = Attachment {
            container_id: "c".into(),
            netns: "/x".into(),
            ifname: "eth0".into(),
            args: vec![],
            runtime_config: json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}),
        };
        let bridge = plugin_conf(&net, &net.plugins[0], &att, None);
        assert!(bridge.get("runtimeConfig").is_none());
        assert_eq!(bridge["name"], "berth");
        let pm = plugin_conf(&net, &net.plugins[1], &att, Some(&json!({"ips": []})));
        assert_eq!(pm["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(pm["prevResult"], json!({"ips": []}));
    }

    #[test]
    fn default_network_only_runs_portmap_for_host_ports() {
        let paths = CniPaths::default();
        let types = |n: Network| -> Vec<String> {
            n.plugins
                .iter()
                .map(|p| p["type"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            types(default_network(&paths, false, "test").unwrap()),
            ["bridge"]
        );
        assert_eq!(
            types(default_network(&paths, true, "test").unwrap()),
            ["bridge", "portmap"]
        );
        let n = default_network(&paths, false, "test").unwrap();
        assert_eq!(n.plugins[0]["ipMasq"], false);
        assert_eq!(n.plugins[0]["ipam"]["ranges"][0][0]["gateway"], "10.77.0.1");
        assert_eq!(n.host_rules.unwrap().subnet, "10.77.0.0/16");
    }

    #[test]
    fn default_subnet_is_validated() {
        assert_eq!(
            parse_subnet("10.81.3.7/24").unwrap(),
            ("10.81.3.0/24".into(), "10.81.3.1".into())
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/31",
            "10.0.0.0/4",
            "fd00::/64",
            "10.0.0.300/16",
            "10.0.0.0/x",
        ] {
            let e = parse_subnet(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let paths = CniPaths {
            default_bridge: "a-name-that-is-too-long".into(),
            ..CniPaths::default()
        };
        assert!(
            default_network(&paths, false, "test")
                .unwrap_err()
                .to_string()
                .contains("default network bridge")
        );
    }
}
