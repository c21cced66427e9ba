//! A container's `startupProbe`, `livenessProbe` and `readinessProbe`, read from the document
//! with Kubernetes' rules: zero or omitted values take the defaults, negative ones are refused,
//! `successThreshold` is 1 for liveness and startup, exactly one handler, a named port is one
//! the container declares, none on init containers.

use serde_json::Value;

use crate::pod::error::{Error, Result};
use crate::pod::probe::*;

fn bad(path: &str, m: impl std::fmt::Display) -> Error {
    Error::Manifest(format!("{path}: {m}"))
}

/// The probes of container `c` (at `path`; `init`: an init container, which may have none).
pub(super) fn of(c: &Value, path: &str, init: bool) -> Result<Probes> {
    let mut out = Probes::default();
    for (field, kind) in [
        ("startupProbe", Kind::Startup),
        ("livenessProbe", Kind::Liveness),
        ("readinessProbe", Kind::Readiness),
    ] {
        let Some(v) = c.get(field).filter(|v| !v.is_null()) else {
            continue;
        };
        let p = format!("{path}.{field}");
        if init {
            return Err(bad(&p, "init containers cannot have probes"));
        }
        let probe = one(v, c, &p, kind)?;
        match kind {
            Kind::Startup => out.startup = Some(probe),
            Kind::Liveness => out.liveness = Some(probe),
            Kind::Readiness => out.readiness = Some(probe),
        }
    }
    Ok(out)
}

fn one(v: &Value, c: &Value, path: &str, kind: Kind) -> Result<Probe> {
    let num = |field: &str, default: u32| -> Result<u32> {
        match v.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(0) => Ok(default),
                Some(k) if k < 0 => Err(bad(
                    &format!("{path}.{field}"),
                    format!("{k}: must be greater than or equal to 0"),
                )),
                Some(k) => u32::try_from(k)
                    .map_err(|_| bad(&format!("{path}.{field}"), format!("{k}: too large"))),
                None => Err(bad(&format!("{path}.{field}"), "expected an integer")),
            },
            Some(_) => Err(bad(&format!("{path}.{field}"), "expected an integer")),
        }
    };
    let success_threshold = num("successThreshold", SUCCESS_THRESHOLD)?;
    if kind != Kind::Readiness && success_threshold != 1 {
        return Err(bad(
            &format!("{path}.successThreshold"),
            format!("{success_threshold}: must be 1 for {} probes", kind.name()),
        ));
    }
    let termination_grace_s = match v.get("terminationGracePeriodSeconds") {
        None | Some(Value::Null) => None,
        Some(g) => {
            let p = format!("{path}.terminationGracePeriodSeconds");
            if kind == Kind::Readiness {
                return Err(bad(&p, "not allowed on readiness probes"));
            }
            match g.as_i64() {
                Some(k) if k > 0 => Some(k as u64),
                _ => return Err(bad(&p, "must be a positive integer")),
            }
        }
    };
    let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .filter(|h| v.get(*h).is_some_and(|x| !x.is_null()))
        .collect();
    let handler = match handlers.as_slice() {
        [one] => handler(one, &v[*one], c, &format!("{path}.{one}"))?,
        [] => {
            return Err(bad(
                path,
                "needs a handler: one of exec, httpGet, tcpSocket and grpc",
            ));
        }
        more => {
            return Err(bad(
                path,
                format!(
                    "has {} handlers ({}): give exactly one",
                    more.len(),
                    more.join(", ")
                ),
            ));
        }
    };
    Ok(Probe {
        handler,
        initial_delay_s: num("initialDelaySeconds", 0)?,
        period_s: num("periodSeconds", PERIOD_S)?,
        timeout_s: num("timeoutSeconds", TIMEOUT_S)?,
        success_threshold,
        failure_threshold: num("failureThreshold", FAILURE_THRESHOLD)?,
        termination_grace_s,
    })
}

fn str_of<'a>(v: &'a Value, field: &str, path: &str) -> Result<Option<&'a str>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(&format!("{path}.{field}"), "expected a string")),
    }
}

fn handler(name: &str, h: &Value, c: &Value, path: &str) -> Result<Handler> {
    let host = || -> Result<Option<String>> {
        Ok(str_of(h, "host", path)?
            .filter(|s| !s.is_empty())
            .map(str::to_string))
    };
    Ok(match name {
        "exec" => {
            let command: Vec<String> = match h.get("command") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad(&format!("{path}.command"), "expected strings"))?,
                _ => Vec::new(),
            };
            if command.is_empty() {
                return Err(bad(
                    &format!("{path}.command"),
                    "required (a command to run)",
                ));
            }
            Handler::Exec { command }
        }
        "httpGet" => {
            let https = match str_of(h, "scheme", path)? {
                None | Some("HTTP") => false,
                Some("HTTPS") => true,
                Some(o) => {
                    return Err(bad(
                        &format!("{path}.scheme"),
                        format!("{o:?}: expected HTTP or HTTPS"),
                    ));
                }
            };
            let req_path = str_of(h, "path", path)?.unwrap_or("/");
            let req_path = if req_path.starts_with('/') {
                req_path.to_string()
            } else {
                format!("/{req_path}")
            };
            if req_path
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b < 0x20)
            {
                return Err(bad(&format!("{path}.path"), "must not contain spaces"));
            }
            let mut headers = Vec::new();
            for (i, x) in h
                .get("httpHeaders")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let p = format!("{path}.httpHeaders[{i}]");
                let name = str_of(x, "name", &p)?.unwrap_or("");
                let ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
                if !ok {
                    return Err(bad(
                        &format!("{p}.name"),
                        format!("{name:?} is not a header name"),
                    ));
                }
                let value = str_of(x, "value", &p)?.unwrap_or("");
                if value.contains(['\r', '\n']) {
                    return Err(bad(&format!("{p}.value"), "must not contain line breaks"));
                }
                headers.push((name.to_string(), value.to_string()));
            }
            Handler::Http {
                https,
                host: host()?,
                path: req_path,
                port: port(h, c, path)?,
                headers,
            }
        }
        "tcpSocket" => Handler::Tcp {
            host: host()?,
            port: port(h, c, path)?,
        },
        _ => {
            let p = format!("{path}.port");
            let port = match h.get("port").and_then(Value::as_i64) {
                Some(k) if (1..=65535).contains(&k) => k as u16,
                _ => return Err(bad(&p, "required: a port number 1-65535")),
            };
            Handler::Grpc {
                port,
                service: str_of(h, "service", path)?.unwrap_or("").to_string(),
            }
        }
    })
}

/// A handler's `port`: a number, or the name of one of the container's ports.
fn port(h: &Value, c: &Value, path: &str) -> Result<u16> {
    let p = format!("{path}.port");
    match h.get("port") {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(k) if (1..=65535).contains(&k) => Ok(k as u16),
            _ => Err(bad(&p, format!("{n}: must be 1-65535"))),
        },
        Some(Value::String(s)) if s.parse::<u16>().is_ok_and(|k| k > 0) => {
            Ok(s.parse().expect("checked"))
        }
        Some(Value::String(name)) => c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|x| x.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|x| x.get("containerPort").and_then(Value::as_u64))
            .and_then(|k| u16::try_from(k).ok())
            .ok_or_else(|| bad(&p, format!("no container port named {name:?}"))),
        _ => Err(bad(
            &p,
            "required: a port number or a container port's name",
        )),
    }
}
