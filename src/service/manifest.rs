//! `kind: Service` → a record and how it asks for its IP, checked as Kubernetes does: ports
//! 1–65535, every port named when there are several, names and (port, protocol) unique,
//! `type: ClusterIP` only (NodePort and LoadBalancer follow later), `clusterIP` an address,
//! empty or `None` (headless). Unknown fields are refused with their path.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Error, IpRequest, Protocol, Result, Service, ServicePort, TargetPort, VERSION};
use crate::pod::manifest::schema::{Shape, Shape::*};
use crate::volume::manifest::{META, check, map, string};

const SERVICE: Shape = Obj(&[
    ("apiVersion", Scalar),
    ("kind", Scalar),
    ("metadata", META),
    (
        "spec",
        Obj(&[
            ("selector", StrMap),
            (
                "ports",
                List(&Obj(&[
                    ("name", Scalar),
                    ("protocol", Scalar),
                    ("port", Scalar),
                    ("targetPort", Scalar),
                ])),
            ),
            ("type", Scalar),
            ("clusterIP", Scalar),
            ("clusterIPs", List(&Scalar)),
            // what `kubectl get -o yaml` shows of every ClusterIP service: accepted with
            // the values berth implements, refused by path otherwise
            ("ipFamilies", List(&Scalar)),
            ("ipFamilyPolicy", Scalar),
            ("sessionAffinity", Scalar),
            ("internalTrafficPolicy", Scalar),
        ]),
    ),
    ("status", Any),
]);

fn bad(path: &str, m: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{path}: {m}"))
}

/// An RFC 1035 label (a service's name, a port's name): lowercase letters, digits and '-',
/// starting with a letter, at most 63.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn port_number(v: &Value, path: &str) -> Result<u16> {
    match v.as_u64() {
        Some(n @ 1..=65535) => Ok(n as u16),
        _ => Err(bad(path, format!("{v} is not a port (1-65535)"))),
    }
}

/// `path` holds one of the values berth implements (or nothing: the first is the default).
fn only(v: &Value, path: &str, allowed: &[&str], why: &str) -> Result<()> {
    match string(v, path)? {
        Some(s) if !allowed.contains(&s.as_str()) => {
            Err(bad(path, format!("{s:?} is not supported: {why}")))
        }
        _ => Ok(()),
    }
}

/// Read a Service document.
pub fn read(v: &Value) -> Result<(Service, IpRequest)> {
    check(v, &SERVICE)?;
    let name = string(v, "metadata.name")?.unwrap_or_default();
    if !is_label(&name) {
        return Err(bad(
            "metadata.name",
            format!(
                "{name:?} is not a valid service name (lowercase letters, digits and '-', starting with a letter, at most 63)"
            ),
        ));
    }
    let namespace = string(v, "metadata.namespace")?.unwrap_or_else(|| "default".into());
    crate::volume::model::check_name(&namespace, "metadata.namespace")?;
    match string(v, "spec.type")?.as_deref() {
        None | Some("ClusterIP") => {}
        Some(t) => {
            return Err(bad(
                "spec.type",
                format!("{t:?} is not supported yet (ClusterIP)"),
            ));
        }
    }
    // single-stack IPv4, as a Kubernetes cluster without IPv6 service ranges: berth's service
    // range is IPv4 (so only `table ip`), and a pod's IPv6 address, if its CNI network gives
    // it one, is not an endpoint
    let v4 = "services are IPv4 single-stack (the service range is IPv4)";
    for (i, f) in v["spec"]["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if f != "IPv4" {
            return Err(bad(
                &format!("spec.ipFamilies[{i}]"),
                format!("{f} is not supported: {v4}"),
            ));
        }
    }
    only(
        v,
        "spec.ipFamilyPolicy",
        &["SingleStack", "PreferDualStack"],
        v4,
    )?;
    only(v, "spec.sessionAffinity", &["None"], "not supported yet")?;
    only(
        v,
        "spec.internalTrafficPolicy",
        &["Cluster"],
        "one node: every endpoint is local",
    )?;
    let ip = match string(v, "spec.clusterIP")?.as_deref() {
        None | Some("") => IpRequest::Any,
        Some("None") => IpRequest::None,
        Some(a) => IpRequest::Given(
            a.parse()
                .map_err(|_| bad("spec.clusterIP", format!("{a:?} is not an IPv4 address")))?,
        ),
    };
    let list = v["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if list.is_empty() && ip != IpRequest::None {
        return Err(bad("spec.ports", "at least one port is required"));
    }
    let mut ports: Vec<ServicePort> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let pname = p["name"].as_str().unwrap_or_default().to_string();
        if list.len() > 1 && pname.is_empty() {
            return Err(bad(
                &format!("{path}.name"),
                "required when a service has more than one port",
            ));
        }
        if !pname.is_empty() && !is_label(&pname) {
            return Err(bad(
                &format!("{path}.name"),
                format!("{pname:?} is not a valid port name"),
            ));
        }
        if !pname.is_empty() && ports.iter().any(|o| o.name == pname) {
            return Err(bad(
                &format!("{path}.name"),
                format!("{pname:?} is used twice"),
            ));
        }
        let protocol = match p["protocol"].as_str() {
            None | Some("TCP") => Protocol::TCP,
            Some("UDP") => Protocol::UDP,
            Some(o) => {
                return Err(bad(
                    &format!("{path}.protocol"),
                    format!("{o:?}: expected TCP or UDP"),
                ));
            }
        };
        let port = port_number(&p["port"], &format!("{path}.port"))?;
        if ports
            .iter()
            .any(|o| o.port == port && o.protocol == protocol)
        {
            return Err(bad(
                &format!("{path}.port"),
                format!("{port}/{protocol:?} is used twice"),
            ));
        }
        let target = match &p["targetPort"] {
            Value::Null => TargetPort::Number(port),
            Value::String(s) if s.parse::<u16>().is_ok() => TargetPort::Number(port_number(
                &Value::from(s.parse::<u64>().unwrap_or(0)),
                &format!("{path}.targetPort"),
            )?),
            Value::String(s) => {
                let ok = s.len() <= 15
                    && s.bytes().any(|b| b.is_ascii_lowercase())
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    return Err(bad(
                        &format!("{path}.targetPort"),
                        format!(
                            "{s:?} is not a port name (at most 15 lowercase letters, digits and '-')"
                        ),
                    ));
                }
                TargetPort::Name(s.clone())
            }
            n => TargetPort::Number(port_number(n, &format!("{path}.targetPort"))?),
        };
        ports.push(ServicePort {
            name: pname,
            protocol,
            port,
            target,
        });
    }
    let selector: BTreeMap<String, String> = map(v, "spec.selector");
    Ok((
        Service {
            version: VERSION,
            namespace,
            name,
            uid: string(v, "metadata.uid")?.unwrap_or_default(),
            labels: map(v, "metadata.labels"),
            selector,
            ports,
            cluster_ip: None,
            created: String::new(),
        },
        ip,
    ))
}

/// The object as Kubernetes shows it.
pub fn to_value(s: &Service, endpoints: usize) -> Value {
    let ports: Vec<Value> = s
        .ports
        .iter()
        .map(|p| {
            let mut o = serde_json::json!({"protocol": format!("{:?}", p.protocol), "port": p.port,
                "targetPort": match &p.target { TargetPort::Number(n) => Value::from(*n), TargetPort::Name(n) => Value::from(n.clone()) }});
            if !p.name.is_empty() {
                o["name"] = Value::from(p.name.clone());
            }
            o
        })
        .collect();
    let ip = s.cluster_ip.map_or("None".to_string(), |a| a.to_string());
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": s.name, "namespace": s.namespace, "uid": s.uid,
                     "creationTimestamp": s.created, "labels": s.labels},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip.clone()],
                 "selector": s.selector, "ports": ports, "ipFamilies": ["IPv4"],
                 "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"endpoints": endpoints},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: Value) -> Result<(Service, IpRequest)> {
        read(
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}),
        )
    }

    #[test]
    fn services_are_checked_as_kubernetes_does() {
        let (s, ip) =
            svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}))
                .unwrap();
        assert_eq!(ip, IpRequest::Any);
        assert_eq!(s.ports[0].target, TargetPort::Name("http".into()));
        let (s, _) = svc(json!({"ports": [{"port": 53, "protocol": "UDP"}]})).unwrap();
        assert_eq!(s.ports[0].target, TargetPort::Number(53));
        assert_eq!(
            svc(json!({"clusterIP": "None"})).unwrap().1,
            IpRequest::None
        );
        // what kubectl shows of a ClusterIP service reads back
        let shown = json!({"ports": [{"port": 80}], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                           "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"});
        svc(shown).unwrap();
        for (spec, want) in [
            (json!({"ports": [{"port": 0}]}), "spec.ports[0].port"),
            (json!({"ports": [{"port": 70000}]}), "spec.ports[0].port"),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"port": 81}]}),
                "spec.ports[1].name: required",
            ),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
                "spec.ports[1].name: \"a\" is used twice",
            ),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
                "spec.ports[1].port: 80/TCP is used twice",
            ),
            (
                json!({"ports": [{"port": 80, "protocol": "SCTP"}]}),
                "spec.ports[0].protocol",
            ),
            (
                json!({"ports": [{"port": 80}], "type": "NodePort"}),
                "spec.type",
            ),
            (
                json!({"ports": [{"port": 80}], "clusterIP": "10.78.0.999"}),
                "spec.clusterIP",
            ),
            (
                json!({"ports": [{"port": 80}], "selector": ["a"]}),
                "spec.selector",
            ),
            (
                json!({"ports": [{"port": 80}], "sessionAffinity": "ClientIP"}),
                "spec.sessionAffinity: \"ClientIP\" is not supported",
            ),
            (
                json!({"ports": [{"port": 80}], "ipFamilies": ["IPv4", "IPv6"]}),
                "spec.ipFamilies[1]: \"IPv6\" is not supported: services are IPv4 single-stack",
            ),
            (
                json!({"ports": [{"port": 80}], "ipFamilyPolicy": "RequireDualStack"}),
                "spec.ipFamilyPolicy: \"RequireDualStack\" is not supported",
            ),
            (
                json!({"ports": [{"port": 80}], "internalTrafficPolicy": "Local"}),
                "spec.internalTrafficPolicy",
            ),
            (json!({"ports": []}), "spec.ports: at least one"),
        ] {
            let e = svc(spec.clone()).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
