//! Objects as kubectl shows them: a pod's table row (READY, STATUS, RESTARTS, AGE) and every
//! kind as Kubernetes writes it (`-o json|yaml`).

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::pod::{ContainerState, PodState, PodStatus};
use crate::volume::{Claim, StorageClass, VolumeStatus, quantity_text};

/// How long ago, as kubectl prints ages (`45s`, `12m`, `3h`, `2d`).
pub(super) fn age(time: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(time.trim_end_matches('Z')) else {
        return "<unknown>".into();
    };
    let s = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub(super) fn modes(m: &[crate::volume::AccessMode]) -> String {
    m.iter().map(|m| m.short()).collect::<Vec<_>>().join(",")
}

pub(super) fn used(s: &VolumeStatus) -> String {
    match (s.limit, s.used) {
        (None, _) => "no limit".into(),
        (Some(_), Some(u)) => crate::image::pull::human(u),
        (Some(_), None) => "<detached>".into(),
    }
}

/// READY, STATUS, RESTARTS and AGE of a pod, as kubectl shows them.
pub(super) fn pod_row(p: &PodStatus) -> Vec<String> {
    let apps: Vec<_> = p
        .containers
        .iter()
        .filter(|c| !c.record.config.init)
        .collect();
    let running = apps
        .iter()
        .filter(|c| c.status.state == ContainerState::Running)
        .count();
    let ready = apps.iter().filter(|c| c.status.ready).count();
    let restarts: u32 = apps.iter().map(|c| c.status.restart_count).sum();
    let status =
        if p.record.state == PodState::NotReady && running == 0 {
            "Stopped".to_string()
        } else if let Some(c) = p.containers.iter().find(|c| {
            c.status.state == ContainerState::Exited && c.status.exit_code.unwrap_or(0) != 0
        }) {
            c.status.reason.clone().unwrap_or_else(|| "Error".into())
        } else if !apps.is_empty() && running == apps.len() {
            "Running".into()
        } else if apps
            .iter()
            .all(|c| c.status.state == ContainerState::Exited)
            && !apps.is_empty()
        {
            "Completed".into()
        } else {
            "Pending".into()
        };
    // waiting for a ConfigMap or Secret: no container made yet
    let (total, status) = match &p.waiting {
        Some(w) => (w.containers.len(), w.reason.clone()),
        None => (apps.len(), status),
    };
    vec![
        p.record.config.name.clone(),
        format!("{ready}/{total}"),
        status,
        restarts.to_string(),
        age(&p.record.created),
    ]
}

pub(super) fn pod_object(p: &PodStatus) -> Value {
    let waiting = p.waiting.iter().flat_map(|w| {
        w.containers.iter().map(move |name| {
            json!({"name": name, "ready": false, "restartCount": 0, "started": false,
                   "state": {"waiting": {"reason": w.reason, "message": w.message}}})
        })
    });
    let statuses: Vec<Value> = p
        .containers
        .iter()
        .map(|c| {
            json!({"name": c.record.config.name, "image": c.record.config.image,
                   "ready": c.status.ready,
                   "restartCount": c.status.restart_count,
                   "started": c.status.state == ContainerState::Running,
                   "lastState": c.status.last_exit.as_ref().map_or(json!({}), |l| json!({"terminated": {"exitCode": l.exit_code, "reason": l.reason, "message": l.message, "finishedAt": l.finished_at}})),
                   "state": match c.status.state {
                       ContainerState::Running => json!({"running": {"startedAt": c.status.started_at}}),
                       ContainerState::Exited => json!({"terminated": {"exitCode": c.status.exit_code, "reason": c.status.reason, "message": c.status.message, "finishedAt": c.status.finished_at}}),
                       _ => json!({"waiting": {"reason": "ContainerCreating"}}),
                   }})
        })
        .chain(waiting)
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": p.record.config.name, "namespace": p.record.config.namespace,
                     "uid": p.record.config.uid, "labels": p.record.config.labels,
                     "creationTimestamp": p.record.created},
        "status": {"phase": pod_row(p)[2], "podIP": p.record.ips.first(),
                   "podIPs": p.record.ips.iter().map(|i| json!({"ip": i})).collect::<Vec<_>>(),
                   "conditions": p.conditions,
                   "containerStatuses": statuses}})
}

pub(super) fn volume_object(s: &VolumeStatus) -> Value {
    let v = &s.volume;
    let mut spec = json!({"capacity": {"storage": quantity_text(v.capacity)},
        "accessModes": v.access_modes, "volumeMode": "Filesystem",
        "persistentVolumeReclaimPolicy": v.reclaim_policy, "storageClassName": v.class});
    match &v.source {
        crate::volume::Source::Csi {
            handle,
            backend,
            fs_type,
        } => {
            spec["csi"] = json!({"driver": crate::volume::PROVISIONER, "volumeHandle": handle,
                "volumeAttributes": {"backend": backend.name(), "fsType": fs_type}});
        }
        crate::volume::Source::Path { path } => spec["local"] = json!({"path": path}),
    }
    if let Some(c) = &v.claim_ref {
        spec["claimRef"] = json!({"kind": "PersistentVolumeClaim", "namespace": c.namespace, "name": c.name, "uid": c.uid});
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": v.name, "labels": v.labels, "creationTimestamp": v.created},
        "spec": spec,
        "status": {"phase": v.phase, "reason": v.reason, "used": s.used, "users": s.users}})
}

pub(super) fn claim_object(c: &Claim, capacity: Option<u64>) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": c.name, "namespace": c.namespace, "uid": c.uid, "labels": c.labels,
                     "creationTimestamp": c.created},
        "spec": {"accessModes": c.spec.access_modes,
                 "resources": {"requests": {"storage": quantity_text(c.spec.request)}},
                 "storageClassName": c.spec.class, "volumeName": c.volume, "volumeMode": "Filesystem",
                 "selector": if c.spec.selector.is_empty() { Value::Null } else { json!({"matchLabels": c.spec.selector}) }},
        "status": {"phase": c.phase, "reason": c.reason, "accessModes": c.spec.access_modes,
                   "capacity": capacity.map(|n| json!({"storage": quantity_text(n)}))}})
}

pub(super) fn class_object(c: &StorageClass) -> Value {
    let mut meta = json!({"name": c.name, "labels": c.labels, "creationTimestamp": c.created});
    if c.is_default {
        meta["annotations"] = json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": meta,
        "provisioner": c.provisioner, "reclaimPolicy": c.reclaim_policy,
        "volumeBindingMode": c.binding_mode, "allowVolumeExpansion": c.allow_volume_expansion,
        "parameters": {"backend": c.backend.name(), "fsType": c.fs_type}})
}
