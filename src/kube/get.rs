//! `berth kube get`: kubectl's tables (and `-o wide`), or the objects as Kubernetes writes
//! them (`-o json|yaml`).

use serde_json::Value;

use super::Result;
use super::objects::*;
use crate::volume::{Claim, StorageClass, VolumeStatus, Volumes, quantity_text};

/// The kinds berth knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    PersistentVolume,
    PersistentVolumeClaim,
    StorageClass,
    ConfigMap,
    Secret,
    Service,
}

impl Kind {
    /// A kind as kubectl's command line names it (`pods`, `pod`, `po`, `pv`, `pvc`, `sc`...).
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pods" | "pod" | "po" => Kind::Pod,
            "persistentvolumes" | "persistentvolume" | "pv" => Kind::PersistentVolume,
            "persistentvolumeclaims" | "persistentvolumeclaim" | "pvc" => {
                Kind::PersistentVolumeClaim
            }
            "storageclasses" | "storageclass" | "sc" => Kind::StorageClass,
            "configmaps" | "configmap" | "cm" => Kind::ConfigMap,
            "secrets" | "secret" => Kind::Secret,
            "services" | "service" | "svc" => Kind::Service,
            _ => return None,
        })
    }

    /// A kind as a manifest's `kind:` names it.
    pub fn of_manifest(s: &str) -> Option<Kind> {
        Some(match s {
            "Pod" => Kind::Pod,
            "PersistentVolume" => Kind::PersistentVolume,
            "PersistentVolumeClaim" => Kind::PersistentVolumeClaim,
            "StorageClass" => Kind::StorageClass,
            "ConfigMap" => Kind::ConfigMap,
            "Secret" => Kind::Secret,
            "Service" => Kind::Service,
            _ => return None,
        })
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::StorageClass => "storage.k8s.io/v1",
            _ => "v1",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Kind::Pod => "pod",
            Kind::PersistentVolume => "persistentvolume",
            Kind::PersistentVolumeClaim => "persistentvolumeclaim",
            Kind::StorageClass => "storageclass",
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
            Kind::Service => "service",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::PersistentVolume => "PersistentVolume",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::StorageClass => "StorageClass",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::Service => "Service",
        }
    }

    /// Namespaced kinds (pods, claims, ConfigMaps, Secrets).
    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Kind::Pod
                | Kind::PersistentVolumeClaim
                | Kind::ConfigMap
                | Kind::Secret
                | Kind::Service
        )
    }

    /// The ConfigMap/Secret kind of the configmap module.
    pub fn data_kind(self) -> Option<crate::configmap::DataKind> {
        match self {
            Kind::ConfigMap => Some(crate::configmap::DataKind::ConfigMap),
            Kind::Secret => Some(crate::configmap::DataKind::Secret),
            _ => None,
        }
    }
}

/// Columns padded as kubectl pads them (three spaces between).
fn table(rows: Vec<Vec<String>>) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// What `get` prints.
pub enum Listing {
    Table(String),
    Objects(Vec<Value>),
}

/// How `get` shows objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Show {
    /// kubectl's `-o wide` columns.
    pub wide: bool,
    /// The objects (`-o json|yaml`), not a table.
    pub objects: bool,
    /// A Secret's values (hidden otherwise).
    pub secrets: bool,
}

/// List objects of `kind` (one, if `name` is given) in `namespace` (None: all namespaces),
/// as a table or as objects.
pub fn get(
    rt: &crate::pod::Runtime,
    vols: &Volumes,
    kind: Kind,
    name: Option<&str>,
    namespace: Option<&str>,
    show: Show,
) -> Result<Listing> {
    let (wide, objects) = (show.wide, show.objects);
    let keep = |n: &str| name.is_none_or(|w| w == n);
    let (rows, objs) = match kind {
        Kind::Service => {
            let services = crate::service::Services::new(&rt.options().data_root);
            let (all, _) = crate::service::resync::current(rt, &services)?;
            let mut head: Vec<String> =
                ["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "ENDPOINTS", "AGE"]
                    .map(String::from)
                    .to_vec();
            if wide {
                head.push("SELECTOR".into());
            }
            if namespace.is_none() {
                head.insert(0, "NAMESPACE".into());
            }
            let mut rows = vec![head];
            let mut objs = Vec::new();
            for (s, eps) in all
                .iter()
                .filter(|(s, _)| keep(&s.name) && namespace.is_none_or(|n| n == s.namespace))
            {
                let ready = eps.iter().filter(|e| e.ready()).count();
                let mut r = vec![
                    s.name.clone(),
                    "ClusterIP".into(),
                    s.cluster_ip.map_or("None".into(), |a| a.to_string()),
                    s.ports
                        .iter()
                        .map(|p| format!("{}/{:?}", p.port, p.protocol))
                        .collect::<Vec<_>>()
                        .join(","),
                    ready.to_string(),
                    age(&s.created),
                ];
                if wide {
                    r.push(
                        s.selector
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                }
                if namespace.is_none() {
                    r.insert(0, s.namespace.clone());
                }
                rows.push(r);
                objs.push(crate::service::manifest::to_value(s, ready));
            }
            (rows, objs)
        }
        Kind::ConfigMap | Kind::Secret => {
            let dk = kind.data_kind().expect("a data kind");
            let data = crate::configmap::ConfigData::new(&rt.options().data_root);
            let list: Vec<_> = data
                .list(dk, namespace)?
                .into_iter()
                .filter(|o| keep(&o.name))
                .collect();
            let mut head = vec!["NAME".to_string()];
            if kind == Kind::Secret {
                head.push("TYPE".into());
            }
            head.extend(["DATA".into(), "AGE".into()]);
            if namespace.is_none() {
                head.insert(0, "NAMESPACE".into());
            }
            let mut rows = vec![head];
            for o in &list {
                let mut r = vec![o.name.clone()];
                if kind == Kind::Secret {
                    r.push(o.secret_type.clone());
                }
                r.extend([o.data.len().to_string(), age(&o.created)]);
                if namespace.is_none() {
                    r.insert(0, o.namespace.clone());
                }
                rows.push(r);
            }
            let objs = list
                .iter()
                .map(|o| crate::configmap::manifest::to_value(o, show.secrets))
                .collect();
            (rows, objs)
        }
        Kind::Pod => {
            let mut pods = Vec::new();
            for p in rt.list_pods()? {
                if keep(&p.config.name) && namespace.is_none_or(|n| n == p.config.namespace) {
                    pods.push(rt.pod_status(&p.id)?);
                }
            }
            let mut rows = vec![
                vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>(),
            ];
            if wide {
                rows[0].extend(["IP".into(), "NODE".into()]);
            }
            if namespace.is_none() {
                rows[0].insert(0, "NAMESPACE".into());
            }
            let node = hostname();
            for p in &pods {
                let mut r = pod_row(p);
                if wide {
                    r.push(
                        p.record
                            .ips
                            .first()
                            .cloned()
                            .unwrap_or_else(|| "<none>".into()),
                    );
                    r.push(node.clone());
                }
                if namespace.is_none() {
                    r.insert(0, p.record.config.namespace.clone());
                }
                rows.push(r);
            }
            (rows, pods.iter().map(pod_object).collect::<Vec<_>>())
        }
        Kind::PersistentVolume => {
            let vs: Vec<VolumeStatus> = vols
                .volumes()?
                .into_iter()
                .filter(|v| keep(&v.name))
                .map(|v| vols.status(v))
                .collect();
            let mut rows = vec![
                [
                    "NAME",
                    "CAPACITY",
                    "ACCESS MODES",
                    "RECLAIM POLICY",
                    "STATUS",
                    "CLAIM",
                    "STORAGECLASS",
                    "REASON",
                    "AGE",
                ]
                .map(String::from)
                .to_vec(),
            ];
            if wide {
                rows[0].push("USED".into());
            }
            for s in &vs {
                let v = &s.volume;
                let mut r = vec![
                    v.name.clone(),
                    quantity_text(v.capacity),
                    modes(&v.access_modes),
                    format!("{:?}", v.reclaim_policy),
                    if v.terminating {
                        "Terminating".into()
                    } else {
                        format!("{:?}", v.phase)
                    },
                    v.claim_ref
                        .as_ref()
                        .map(|c| format!("{}/{}", c.namespace, c.name))
                        .unwrap_or_default(),
                    v.class.clone(),
                    v.reason.clone(),
                    age(&v.created),
                ];
                if wide {
                    r.push(used(s));
                }
                rows.push(r);
            }
            (rows, vs.iter().map(volume_object).collect())
        }
        Kind::PersistentVolumeClaim => {
            let cs: Vec<Claim> = vols
                .claims(namespace)?
                .into_iter()
                .filter(|c| keep(&c.name))
                .collect();
            let mut rows = vec![
                [
                    "NAME",
                    "STATUS",
                    "VOLUME",
                    "CAPACITY",
                    "ACCESS MODES",
                    "STORAGECLASS",
                    "AGE",
                ]
                .map(String::from)
                .to_vec(),
            ];
            if wide {
                rows[0].extend(["VOLUMEMODE".into(), "USED".into()]);
            }
            if namespace.is_none() {
                rows[0].insert(0, "NAMESPACE".into());
            }
            let mut objs = Vec::new();
            for c in &cs {
                let v = c.volume.as_ref().and_then(|v| vols.volume(v).ok());
                let st = v.clone().map(|v| vols.status(v));
                let class = crate::volume::bind::class_of(c, &vols.classes()?);
                let mut r = vec![
                    c.name.clone(),
                    if c.terminating {
                        "Terminating".into()
                    } else {
                        format!("{:?}", c.phase)
                    },
                    c.volume.clone().unwrap_or_default(),
                    v.as_ref()
                        .map(|v| quantity_text(v.capacity))
                        .unwrap_or_default(),
                    v.as_ref()
                        .map(|v| modes(&v.access_modes))
                        .unwrap_or_default(),
                    class,
                    age(&c.created),
                ];
                if wide {
                    r.push("Filesystem".into());
                    r.push(st.as_ref().map(used).unwrap_or_default());
                }
                if namespace.is_none() {
                    r.insert(0, c.namespace.clone());
                }
                rows.push(r);
                objs.push(claim_object(c, v.as_ref().map(|v| v.capacity)));
            }
            (rows, objs)
        }
        Kind::StorageClass => {
            let cs: Vec<StorageClass> = vols
                .classes()?
                .into_iter()
                .filter(|c| keep(&c.name))
                .collect();
            let mut rows = vec![
                [
                    "NAME",
                    "PROVISIONER",
                    "RECLAIMPOLICY",
                    "VOLUMEBINDINGMODE",
                    "ALLOWVOLUMEEXPANSION",
                    "AGE",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for c in &cs {
                rows.push(vec![
                    if c.is_default {
                        format!("{} (default)", c.name)
                    } else {
                        c.name.clone()
                    },
                    c.provisioner.clone(),
                    format!("{:?}", c.reclaim_policy),
                    format!("{:?}", c.binding_mode),
                    c.allow_volume_expansion.to_string(),
                    if c.created.is_empty() {
                        "<builtin>".into()
                    } else {
                        age(&c.created)
                    },
                ]);
            }
            (rows, cs.iter().map(class_object).collect())
        }
    };
    if let Some(n) = name
        && objs.is_empty()
    {
        return Err(super::Error::Invalid(format!(
            "{} {n:?} not found",
            kind.singular()
        )));
    }
    if objects {
        return Ok(Listing::Objects(objs));
    }
    if rows.len() == 1 {
        return Ok(Listing::Table(String::new()));
    }
    Ok(Listing::Table(table(rows)))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}
