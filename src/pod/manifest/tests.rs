//! Pod manifests: what is read, and what is refused by path.

use super::*;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  hostname: www
  shareProcessNamespace: true
  restartPolicy: OnFailure
  securityContext:
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "80"}]
  volumes:
  - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
  - {name: host, hostPath: {path: /srv, type: DirectoryOrCreate}}
  initContainers:
  - {name: setup, image: busybox, command: [sh, -c, "true"]}
  containers:
  - name: app
    image: quay.io/org/app:v1
    args: [serve]
    env: [{name: A, value: "1"}]
    ports: [{containerPort: 80, hostPort: 8080}]
    resources: {limits: {cpu: 500m, memory: 128Mi}, requests: {cpu: 250m}}
    volumeMounts: [{name: scratch, mountPath: /scratch}, {name: host, mountPath: /data, readOnly: true, subPath: x}]
    securityContext: {runAsUser: 1000, capabilities: {add: [NET_ADMIN], drop: [ALL]}, readOnlyRootFilesystem: true}
---
"#;

#[test]
fn a_pod_manifest_becomes_configs() {
    let pods = parse(POD).unwrap();
    assert_eq!(pods.len(), 1);
    let p = &pods[0];
    assert_eq!(
        (p.pod.name.as_str(), p.pod.namespace.as_str()),
        ("web", "default")
    );
    assert_eq!(p.pod.hostname.as_deref(), Some("www"));
    assert!(p.pod.share_pid);
    assert_eq!(p.pod.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(p.pod.sysctls["net.ipv4.ip_unprivileged_port_start"], "80");
    assert_eq!(
        p.pod.port_mappings,
        vec![PortMapping {
            container_port: 80,
            host_port: 8080,
            protocol: "tcp".into(),
            host_ip: None
        }]
    );
    assert_eq!(
        p.pod.volumes[0].source,
        VolumeSource::EmptyDir {
            memory: true,
            size_limit: Some(64 << 20)
        }
    );
    let (init, app) = (&p.containers[0], &p.containers[1]);
    assert!(init.init && !app.init);
    assert_eq!(
        init.pull,
        PullPolicy::Always,
        "an image without a tag is pulled always"
    );
    assert_eq!(app.pull, PullPolicy::IfNotPresent);
    assert_eq!(app.resources.cpu_quota, Some(50_000));
    assert_eq!(app.resources.cpu_shares, Some(256));
    assert_eq!(app.resources.memory_limit, Some(128 << 20));
    assert_eq!(app.security.run_as_user, Some(1000));
    assert_eq!(app.security.caps_add, vec!["NET_ADMIN"]);
    assert!(app.security.readonly_rootfs && app.security.allow_privilege_escalation);
    assert_eq!(
        app.mounts[1].source,
        MountSource::Volume {
            name: "host".into(),
            sub_path: Some("x".into())
        }
    );
    assert!(app.mounts[1].readonly);
}

#[test]
fn unsupported_and_malformed_fields_are_named() {
    let cases = [
        (
            "spec:\n  containers:\n  - {name: a, image: x}\n  - {name: b, image: x, lifecycle: {}}",
            "spec.containers[1].lifecycle: not supported",
        ),
        (
            "spec:\n  nodeSelector: {a: b}\n  containers: [{name: a, image: x}]",
            "spec.nodeSelector: not supported",
        ),
        (
            "spec:\n  containers: [{name: a, image: x, env: [{name: A, valueFrom: {}}]}]",
            "spec.containers[0].env[0].valueFrom: needs fieldRef or resourceFieldRef",
        ),
        (
            "spec:\n  containers: [{name: a, image: x, env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k, extra: 1}}}]}]",
            "spec.containers[0].env[0].valueFrom.secretKeyRef.extra: not supported",
        ),
        (
            "spec:\n  volumes: [{name: v, configMap: {name: c, items: [{key: 'a b', path: p}]}}]\n  containers: [{name: a, image: x}]",
            "spec.volumes[0].configMap.items[0].key",
        ),
        (
            "spec:\n  volumes: [{name: v, secret: {secretName: s, defaultMode: 0778}}]\n  containers: [{name: a, image: x}]",
            "spec.volumes[0].secret.defaultMode",
        ),
        (
            "spec:\n  volumes: [{name: v, projected: {sources: [{}]}}]\n  containers: [{name: a, image: x}]",
            "spec.volumes[0].projected.sources[0]: needs one of",
        ),
        (
            "spec:\n  containers: [{name: a, image: x, resources: {limits: {cpu: lots}}}]",
            "spec.containers[0].resources.limits.cpu: \"lots\" is not a quantity",
        ),
        (
            "spec:\n  containers: [{name: A_b, image: x}]",
            "spec.containers[0].name",
        ),
        (
            "spec:\n  containers: [{name: a, image: x, volumeMounts: [{name: v, mountPath: /v}]}]",
            "spec.containers[0].volumeMounts[0].name: no volume \"v\"",
        ),
        (
            "spec:\n  containers: []",
            "spec.containers: a pod needs at least one container",
        ),
        (
            "spec:\n  restartPolicy: Sometimes\n  containers: [{name: a, image: x}]",
            "spec.restartPolicy",
        ),
        (
            "spec:\n  containers: [{name: a, image: x}, {name: a, image: y}]",
            "spec.containers[1].name: \"a\" is used twice",
        ),
    ];
    for (spec, want) in cases {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\n{spec}\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains(want), "{spec}\n→ {e}\nwanted {want}");
    }
    let e = parse("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: p}\nspec: {containers: [{name: a, image: x}]}\n").unwrap_err().to_string();
    assert!(e.contains("apiVersion"), "{e}");
    let e = parse("kind: Pod\n  bad: [yaml").unwrap_err().to_string();
    assert!(e.contains("document 1"), "{e}");
}

#[test]
fn quantities() {
    let q = |s: &str, unit| quantity(&Value::String(s.into()), unit, "x").unwrap();
    assert_eq!(q("500m", 1000.0), 500);
    assert_eq!(q("1.5", 1000.0), 1500);
    assert_eq!(q("128Mi", 1.0), 128 << 20);
    assert_eq!(q("1G", 1.0), 1_000_000_000);
    assert_eq!(q("2e3", 1.0), 2000);
    assert!(quantity(&Value::String("-1".into()), 1.0, "x").is_err());
    assert!(quantity(&Value::String("1Q".into()), 1.0, "x").is_err());
}
