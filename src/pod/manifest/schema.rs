//! What berth implements of a Pod, as a shape every manifest is checked against before it is
//! read: an unknown field is an error naming its path, never silently dropped.

use serde_json::Value;

use crate::pod::error::{Error, Result};

/// The shape of the supported part of a Pod.
pub(crate) enum Shape {
    /// A string, number or boolean (its type is checked when it is read).
    Scalar,
    /// A map of strings (labels, annotations, resource lists).
    StrMap,
    List(&'static Shape),
    Obj(&'static [(&'static str, Shape)]),
    /// Anything (a field berth accepts and ignores, such as a PV's nodeAffinity on one node).
    Any,
}
use Shape::*;

const STRS: Shape = List(&Scalar);
const FIELD_REF: Shape = Obj(&[("apiVersion", Scalar), ("fieldPath", Scalar)]);
const RESOURCE_REF: Shape = Obj(&[
    ("containerName", Scalar),
    ("resource", Scalar),
    ("divisor", Scalar),
]);
const KEY_REF: Shape = Obj(&[("name", Scalar), ("key", Scalar), ("optional", Scalar)]);
const NAME_REF: Shape = Obj(&[("name", Scalar), ("optional", Scalar)]);
const ITEMS: Shape = List(&Obj(&[("key", Scalar), ("path", Scalar), ("mode", Scalar)]));
const DOWNWARD_ITEMS: Shape = List(&Obj(&[
    ("path", Scalar),
    ("fieldRef", FIELD_REF),
    ("resourceFieldRef", RESOURCE_REF),
    ("mode", Scalar),
]));
const CONFIGMAP_SOURCE: Shape = Obj(&[
    ("name", Scalar),
    ("items", ITEMS),
    ("defaultMode", Scalar),
    ("optional", Scalar),
]);
const SECRET_SOURCE: Shape = Obj(&[
    ("secretName", Scalar),
    ("items", ITEMS),
    ("defaultMode", Scalar),
    ("optional", Scalar),
]);
const DOWNWARD_SOURCE: Shape = Obj(&[("items", DOWNWARD_ITEMS), ("defaultMode", Scalar)]);
const PROJECTION: Shape = Obj(&[
    (
        "configMap",
        Obj(&[("name", Scalar), ("items", ITEMS), ("optional", Scalar)]),
    ),
    (
        "secret",
        Obj(&[("name", Scalar), ("items", ITEMS), ("optional", Scalar)]),
    ),
    ("downwardAPI", Obj(&[("items", DOWNWARD_ITEMS)])),
]);
const PORT_HOST: Shape = Obj(&[("port", Scalar), ("host", Scalar)]);
const PROBE: Shape = Obj(&[
    ("exec", Obj(&[("command", STRS)])),
    (
        "httpGet",
        Obj(&[
            ("path", Scalar),
            ("port", Scalar),
            ("host", Scalar),
            ("scheme", Scalar),
            (
                "httpHeaders",
                List(&Obj(&[("name", Scalar), ("value", Scalar)])),
            ),
        ]),
    ),
    ("tcpSocket", PORT_HOST),
    ("grpc", Obj(&[("port", Scalar), ("service", Scalar)])),
    ("initialDelaySeconds", Scalar),
    ("periodSeconds", Scalar),
    ("timeoutSeconds", Scalar),
    ("successThreshold", Scalar),
    ("failureThreshold", Scalar),
    ("terminationGracePeriodSeconds", Scalar),
]);
const RESOURCE_LIST: Shape = Obj(&[("cpu", Scalar), ("memory", Scalar)]);
const CONTAINER: Shape = Obj(&[
    ("name", Scalar),
    ("image", Scalar),
    ("imagePullPolicy", Scalar),
    ("command", STRS),
    ("args", STRS),
    (
        "env",
        List(&Obj(&[
            ("name", Scalar),
            ("value", Scalar),
            (
                "valueFrom",
                Obj(&[
                    ("configMapKeyRef", KEY_REF),
                    ("secretKeyRef", KEY_REF),
                    ("fieldRef", FIELD_REF),
                    ("resourceFieldRef", RESOURCE_REF),
                ]),
            ),
        ])),
    ),
    (
        "envFrom",
        List(&Obj(&[
            ("prefix", Scalar),
            ("configMapRef", NAME_REF),
            ("secretRef", NAME_REF),
        ])),
    ),
    ("workingDir", Scalar),
    (
        "ports",
        List(&Obj(&[
            ("name", Scalar),
            ("containerPort", Scalar),
            ("hostPort", Scalar),
            ("hostIP", Scalar),
            ("protocol", Scalar),
        ])),
    ),
    (
        "resources",
        Obj(&[("requests", RESOURCE_LIST), ("limits", RESOURCE_LIST)]),
    ),
    (
        "volumeMounts",
        List(&Obj(&[
            ("name", Scalar),
            ("mountPath", Scalar),
            ("readOnly", Scalar),
            ("subPath", Scalar),
            ("mountPropagation", Scalar),
        ])),
    ),
    (
        "securityContext",
        Obj(&[
            ("runAsUser", Scalar),
            ("runAsGroup", Scalar),
            ("runAsNonRoot", Scalar),
            ("capabilities", Obj(&[("add", STRS), ("drop", STRS)])),
            ("privileged", Scalar),
            ("readOnlyRootFilesystem", Scalar),
            ("allowPrivilegeEscalation", Scalar),
        ]),
    ),
    ("stdin", Scalar),
    ("tty", Scalar),
    ("terminationMessagePolicy", Scalar),
    ("startupProbe", PROBE),
    ("livenessProbe", PROBE),
    ("readinessProbe", PROBE),
]);
/// Every object's metadata. The fields the API server sets are accepted and ignored, so
/// what `kubectl get -o yaml` (or `berth kube get -o yaml`) shows applies back.
pub(crate) const META: Shape = Obj(&[
    ("name", Scalar),
    ("namespace", Scalar),
    ("uid", Scalar),
    ("labels", StrMap),
    ("annotations", StrMap),
    ("creationTimestamp", Any),
    ("resourceVersion", Any),
    ("generation", Any),
    ("selfLink", Any),
    ("managedFields", Any),
]);

pub(super) const POD: Shape = Obj(&[
    ("apiVersion", Scalar),
    ("kind", Scalar),
    ("metadata", META),
    (
        "spec",
        Obj(&[
            ("containers", List(&CONTAINER)),
            ("initContainers", List(&CONTAINER)),
            ("hostname", Scalar),
            ("hostNetwork", Scalar),
            ("shareProcessNamespace", Scalar),
            ("dnsPolicy", Scalar),
            (
                "dnsConfig",
                Obj(&[
                    ("nameservers", STRS),
                    ("searches", STRS),
                    (
                        "options",
                        List(&Obj(&[("name", Scalar), ("value", Scalar)])),
                    ),
                ]),
            ),
            (
                "securityContext",
                Obj(&[
                    (
                        "sysctls",
                        List(&Obj(&[("name", Scalar), ("value", Scalar)])),
                    ),
                    ("runAsUser", Scalar),
                    ("runAsGroup", Scalar),
                    ("runAsNonRoot", Scalar),
                ]),
            ),
            (
                "volumes",
                List(&Obj(&[
                    ("name", Scalar),
                    (
                        "emptyDir",
                        Obj(&[("medium", Scalar), ("sizeLimit", Scalar)]),
                    ),
                    ("hostPath", Obj(&[("path", Scalar), ("type", Scalar)])),
                    (
                        "persistentVolumeClaim",
                        Obj(&[("claimName", Scalar), ("readOnly", Scalar)]),
                    ),
                    ("configMap", CONFIGMAP_SOURCE),
                    ("secret", SECRET_SOURCE),
                    ("downwardAPI", DOWNWARD_SOURCE),
                    (
                        "projected",
                        Obj(&[("sources", List(&PROJECTION)), ("defaultMode", Scalar)]),
                    ),
                ])),
            ),
            ("terminationGracePeriodSeconds", Scalar),
            ("restartPolicy", Scalar),
            ("imagePullSecrets", List(&Obj(&[("name", Scalar)]))),
        ]),
    ),
]);

/// Check `v` against `shape`; the first unsupported field is an error naming its path.
pub(crate) fn check(v: &Value, shape: &Shape, path: &str) -> Result<()> {
    let bad = |p: &str, m: &str| Err(Error::Manifest(format!("{p}: {m}")));
    match (shape, v) {
        (_, Value::Null) | (Any, _) => Ok(()),
        (Scalar, Value::String(_) | Value::Number(_) | Value::Bool(_)) => Ok(()),
        (Scalar, _) => bad(path, "expected a string, number or boolean"),
        (StrMap, Value::Object(m)) => {
            for (k, v) in m {
                if !v.is_string() {
                    return bad(&format!("{path}.{k}"), "expected a string");
                }
            }
            Ok(())
        }
        (StrMap, _) => bad(path, "expected a map of strings"),
        (List(item), Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                check(v, item, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (List(_), _) => bad(path, "expected a list"),
        (Obj(fields), Value::Object(m)) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match fields.iter().find(|(n, _)| n == k) {
                    Some((_, s)) => check(v, s, &p)?,
                    None => return bad(&p, "not supported"),
                }
            }
            Ok(())
        }
        (Obj(_), _) => bad(path, "expected an object"),
    }
}

// --- the supported part of a Pod, as serde reads it (after `check`)
