//! ConfigMaps, Secrets and the downward API as real pods see them: files, modes and the
//! tmpfs under secret volumes, environment from every source with `$(VAR)` expansion, a
//! changed ConfigMap reaching a running pod atomically, missing references waiting, pull
//! credentials from `imagePullSecrets`, and no Secret value anywhere it should not be.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::env::*;

/// A ConfigMap, a Secret and a pod using them every way (host network: no bridge needed).
fn everything(e: &PodEnv, secret: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data:
  mode: fast
  app.conf: "level=3\n"
  1st: x
binaryData:
  blob: AAEC
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData:
  password: {secret}
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {{tier: web}}
spec:
  restartPolicy: Never
  hostNetwork: true
  volumes:
  - name: cfg
    configMap:
      name: settings
      items: [{{key: app.conf, path: conf/app.conf, mode: 0600}}]
  - name: sec
    secret: {{secretName: creds, defaultMode: 0400}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: mem, resourceFieldRef: {{containerName: c, resource: limits.memory, divisor: 1Mi}}}}
  - name: all
    projected:
      sources:
      - configMap: {{name: settings, items: [{{key: mode, path: m}}]}}
      - secret: {{name: creds}}
      - downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}
  containers:
  - name: c
    image: {image}
    resources: {{limits: {{memory: 64Mi}}}}
    envFrom:
    - {{prefix: CM_, configMapRef: {{name: settings}}}}
    - {{configMapRef: {{name: settings}}}}
    env:
    - {{name: MODE, valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}}}
    - {{name: PASS, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    - {{name: GONE, valueFrom: {{configMapKeyRef: {{name: settings, key: nope, optional: true}}}}}}
    - {{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    - {{name: MEM_MI, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}
    - {{name: GREETING, value: "$(POD) runs $(MODE), $$(MODE) stays, $(UNKNOWN) too"}}
    command: [sh, -c]
    args:
    - |
      echo "arg=$(MODE)"
      env | grep -E '^(CM_|MODE|PASS|GONE|POD|NODE|MEM_MI|GREETING)' | sort
      for f in /cfg/conf/app.conf /sec/password /info/labels /info/mem /all/m /all/password /all/name; do
        echo "file $f $(stat -L -c %a "$f") $(cat "$f" | tr '\n' '|')"
      done
      echo "write: $(touch /cfg/x 2>&1 | grep -o 'Read-only' )"
      echo done
      sleep 1000
    volumeMounts:
    - {{name: cfg, mountPath: /cfg}}
    - {{name: sec, mountPath: /sec}}
    - {{name: info, mountPath: /info}}
    - {{name: all, mountPath: /all}}
"#,
        image = e.image("base")
    )
}

#[test]
fn files_env_and_the_downward_api_as_the_container_sees_them() {
    let e = PodEnv::new("cfg-all");
    let secret = format!("pw-{}-zz", std::process::id());
    let out = e.apply(&everything(&e, &secret));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "configmap/settings created",
            "secret/creds created",
            "pod/app created"
        ]
    );
    let l = e.log_until("app", "done");
    let host = nix::unistd::gethostname().unwrap();
    for want in [
        "arg=fast".to_string(),
        "CM_mode=fast".into(),
        "MODE=fast".into(),
        format!("PASS={secret}"),
        "POD=app".into(),
        format!("NODE={}", host.to_string_lossy()),
        "MEM_MI=64".into(),
        "GREETING=app runs fast, $(MODE) stays, $(UNKNOWN) too".into(),
        "file /cfg/conf/app.conf 600 level=3|".into(),
        format!("file /sec/password 400 {secret}"),
        "file /info/labels 644 tier=\"web\"".into(),
        "file /info/mem 644 64".into(),
        "file /all/m 644 fast".into(),
        format!("file /all/password 644 {secret}"),
        "file /all/name 644 app".into(),
        "write: Read-only".into(),
    ] {
        assert!(l.contains(&want), "{want:?} not in:\n{l}");
    }
    // an optional key that is missing sets nothing; an invalid envFrom name is skipped
    assert!(!l.contains("GONE="), "{l}");
    let c = e.container("app", "c");
    assert!(
        c["config"]["annotations"]["berth.io/envfrom-skipped"]
            .as_str()
            .unwrap()
            .contains("1st (from configmap default/settings)"),
        "{c}"
    );
    // secret, downward and projected volumes are tmpfs mounts of their own; a lone
    // ConfigMap's lives on the state root's file system, as /etc/hosts does (which may be a
    // tmpfs too: the cgroup v2 VM's root is one), so compare devices, not only types
    let pid = e.pid("app", "c");
    let mi = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mount = |at: &str| {
        let l = mi
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(at))
            .unwrap_or_else(|| panic!("{at} not mounted:\n{mi}"));
        let dev = l.split(' ').nth(2).unwrap().to_string();
        let fstype = l
            .split(" - ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        (dev, fstype)
    };
    let hosts = mount("/etc/hosts");
    for at in ["/sec", "/info", "/all"] {
        let (dev, fstype) = mount(at);
        assert_eq!(fstype, "tmpfs", "{at}");
        assert_ne!(dev, hosts.0, "{at} is not a tmpfs of its own");
    }
    assert_eq!(mount("/cfg").0, hosts.0);
    // kubelet's atomic-writer layout
    let vol = e.pod_dir(&e.pod_id("app")).join("volumes/cfg");
    assert!(
        fs::read_link(vol.join("..data"))
            .unwrap()
            .to_string_lossy()
            .starts_with("..")
    );
    assert_eq!(
        fs::read_link(vol.join("conf")).unwrap(),
        Path::new("..data/conf")
    );
    // config.json holds the Secret's value as env: mode 0600
    let bundle = c["bundle"].as_str().unwrap();
    let m = fs::metadata(Path::new(bundle).join("config.json")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    e.ok(&["pod", "rm", "-f", "app"]);
}

#[test]
fn a_changed_configmap_reaches_a_running_pod_whole() {
    let e = PodEnv::new("cfg-update");
    let cm = |v: &str, extra: &str| {
        // values of 64 KiB: a torn write would show
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: live}}\n{extra}data:\n  k: {}\n",
            v.repeat(16384)
        )
    };
    e.apply(&cm("one-", ""));
    let reader = r#"last=""; while :; do
  v=$(cat /cfg/k 2>/dev/null) || { echo MISSING; continue; }
  case "${#v}:$v" in 65536:one-*|65536:two-*) ;; *) echo "TORN ${#v}";; esac
  if [ "${v%%-*}" != "$last" ]; then last="${v%%-*}"; echo "saw $last"; fi
done"#;
    e.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: r}}\nspec:\n  hostNetwork: true\n  volumes: [{{name: c, configMap: {{name: live}}}}]\n  containers: [{{name: c, image: {}, command: [sh, -c, {reader:?}], volumeMounts: [{{name: c, mountPath: /cfg}}]}}]\n",
        e.image("base")
    ));
    e.log_until("r", "saw one");
    std::thread::sleep(Duration::from_millis(300));
    let out = e.apply(&cm("two-", ""));
    assert_eq!(out.trim(), "configmap/live configured");
    // apply returns once the files are rewritten
    let vol = e.pod_dir(&e.pod_id("r")).join("volumes/c");
    assert!(
        fs::read_to_string(vol.join("k"))
            .unwrap()
            .starts_with("two-")
    );
    let l = e.log_until("r", "saw two");
    std::thread::sleep(Duration::from_millis(300));
    let l2 = e.ok(&["pod", "logs", "r"]);
    assert!(!l2.contains("MISSING") && !l2.contains("TORN"), "{l}\n{l2}");
    // only one version directory is left
    let versions = fs::read_dir(&vol)
        .unwrap()
        .flatten()
        .filter(|d| {
            let n = d.file_name().to_string_lossy().into_owned();
            n.starts_with("..") && n != "..data"
        })
        .count();
    assert_eq!(versions, 1);
    // immutable: refused once set
    e.apply(&cm("two-", "immutable: true\n"));
    let err = e.apply_fails(&cm("three-", "immutable: true\n"));
    assert!(err.contains("configmap default/live is immutable"), "{err}");
    e.ok(&["pod", "rm", "-f", "r"]);
}

#[test]
fn a_missing_reference_waits_and_the_pod_starts_once_it_is_applied() {
    let e = PodEnv::new("cfg-wait");
    let pod = |name: &str, cm: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  hostNetwork: true\n  containers: [{{name: c, image: {}, command: [sh, -c, 'echo got=$V; sleep 1000'], env: [{{name: V, valueFrom: {{configMapKeyRef: {{name: {cm}, key: v}}}}}}]}}]\n",
            e.image("base")
        )
    };
    // apply waits, then says why and exits non-zero; the pod stays, waiting
    let f = e.file(&pod("w", "late"));
    let out = e.berth(&[
        "kube",
        "apply",
        "--timeout",
        "1s",
        "-f",
        f.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "pod default/w: CreateContainerConfigError: configmap \"late\" not found (waited 1s)"
        ),
        "{err}"
    );
    let row = e.ok(&["kube", "get", "pods"]);
    assert!(
        row.lines().any(|l| l.starts_with("w ")
            && l.contains("0/1")
            && l.contains("CreateContainerConfigError")),
        "{row}"
    );
    let v = e.inspect("w");
    assert_eq!(
        v["waiting"]["message"], "configmap \"late\" not found",
        "{v}"
    );
    assert!(v["containers"].as_array().unwrap().is_empty(), "{v}");
    // --detach: made at once, waiting too
    let f2 = e.file(&pod("d", "late"));
    let t = std::time::Instant::now();
    e.ok(&["kube", "apply", "--detach", "-f", f2.to_str().unwrap()]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        e.inspect("d")["waiting"]["reason"],
        "CreateContainerConfigError"
    );
    // and a `pod run` that waits meanwhile
    let f3 = e.file(&pod("r", "late"));
    let mut waiting = e
        .cmd(&["pod", "run", "--timeout", "30s", f3.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "pod run did not wait"
    );
    // the ConfigMap comes: every pod waiting for it starts, no berth command running but
    // the one that applied it
    e.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {v: here}\n");
    let done = waiting.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for p in ["w", "d", "r"] {
        e.log_until(p, "got=here");
        assert!(e.inspect(p).get("waiting").is_none());
        e.ok(&["pod", "rm", "-f", p]);
    }
    // `kube create configmap` starts its waiters too
    let f4 = e.file(&pod("k", "made"));
    e.ok(&["kube", "apply", "--detach", "-f", f4.to_str().unwrap()]);
    e.ok(&[
        "kube",
        "create",
        "configmap",
        "made",
        "--from-literal",
        "v=there",
    ]);
    e.log_until("k", "got=there");
    e.ok(&["pod", "rm", "-f", "k"]);
}

#[test]
fn bad_configmaps_and_secrets_are_refused_by_path_and_nothing_is_stored() {
    let e = PodEnv::new("cfg-bad");
    for (doc, want) in [
        (
            "kind: ConfigMap\nmetadata: {name: a}\ndata: {'..': x}\n",
            "\"..\" is not a valid key",
        ),
        (
            "kind: ConfigMap\nmetadata: {name: a}\ndata: {k: x}\nbinaryData: {k: eA==}\n",
            "binaryData.k: key \"k\" is given twice",
        ),
        ("kind: ConfigMap\nmetadata: {name: A}\n", "metadata.name"),
        (
            "kind: ConfigMap\nmetadata: {name: a}\nspec: {}\n",
            "spec: not supported",
        ),
        (
            "kind: Secret\nmetadata: {name: a}\ndata: {k: '%%%'}\n",
            "data.k: not base64",
        ),
        (
            "kind: Secret\nmetadata: {name: a}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n",
            "data.tls.key: required",
        ),
    ] {
        let err = e.apply_fails(&format!("apiVersion: v1\n{doc}"));
        assert!(err.contains(want), "{doc}: {err}");
    }
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{k: {}}}\n",
        "x".repeat(1 << 20)
    );
    assert!(e.apply_fails(&big).contains("1048576"));
    // a pod's references are checked too
    let pod = |vol: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  volumes: [{{name: v, {vol}}}]\n  containers: [{{name: c, image: {}}}]\n",
            e.image("base")
        )
    };
    for (vol, want) in [
        (
            "configMap: {name: x, items: [{key: k, path: ../up}]}",
            "spec.volumes[0].configMap.items[0].path",
        ),
        (
            "secret: {secretName: x, defaultMode: 1000}",
            "spec.volumes[0].secret.defaultMode",
        ),
        (
            "downwardAPI: {items: [{path: p, fieldRef: {fieldPath: status.podIP}}]}",
            "fieldPath",
        ),
    ] {
        let err = e.apply_fails(&pod(vol));
        assert!(err.contains(want), "{vol}: {err}");
    }
    let sa = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  serviceAccountName: x\n  containers: [{{name: c, image: {}}}]\n",
        e.image("base")
    );
    assert!(
        e.apply_fails(&sa)
            .contains("spec.serviceAccountName: not supported")
    );
    for kind in ["configmaps", "secrets", "pods"] {
        assert!(
            e.get_json(&[kind])["items"].as_array().unwrap().is_empty(),
            "{kind}"
        );
    }
}

#[test]
fn image_pull_secrets_pull_from_a_registry_that_wants_a_password() {
    let e = PodEnv::new("cfg-pull");
    let reg = super::harness::Registry::fixtures("basic");
    let image = format!("{}/berth/base", reg.host());
    let pod = |secrets: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: true\n{secrets}  containers: [{{name: c, image: {image}, command: [sleep, '1000']}}]\n"
        )
    };
    // without credentials the registry refuses
    let err = e.apply_fails(&pod(""));
    assert!(err.contains("authentication required"), "{err}");
    e.ok(&[
        "kube",
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server",
        &reg.host(),
        "--docker-username",
        "alice",
        "--docker-password",
        "s3cret",
    ]);
    let t = e.ok(&["kube", "get", "secrets"]);
    assert!(
        t.contains("kubernetes.io/dockerconfigjson") && !t.contains("s3cret"),
        "{t}"
    );
    e.apply(&pod("  imagePullSecrets: [{name: reg}]\n"));
    e.wait("p", "c", "Running");
    e.ok(&["pod", "rm", "-f", "p"]);
}

/// Every file under `dir` whose content has `needle` (skipping `skip`).
fn files_with(dir: &Path, needle: &[u8], skip: &dyn Fn(&Path) -> bool, out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for ent in rd.flatten() {
        let p = ent.path();
        let Ok(ft) = ent.file_type() else { continue };
        if skip(&p) || ft.is_symlink() {
            continue;
        }
        if ft.is_dir() {
            files_with(&p, needle, skip, out);
        } else if ft.is_file()
            && let Ok(b) = fs::read(&p)
            && b.windows(needle.len()).any(|w| w == needle)
        {
            out.push(p.display().to_string());
        }
    }
}

#[test]
fn a_secret_value_is_nowhere_but_where_it_must_be() {
    let e = PodEnv::new("cfg-leak");
    let secret = format!("leak-{}-qq", std::process::id());
    // the same pod, but its container does not print the secret itself
    let quiet = everything(&e, &secret)
        .replace("MODE|PASS|", "MODE|")
        .replace(" /sec/password", "")
        .replace(" /all/password", "");
    e.apply(&quiet);
    e.log_until("app", "done");
    let id = e.pod_id("app");
    // every command's output
    let mut said = String::new();
    for args in [
        vec!["kube", "get", "secrets"],
        vec!["kube", "get", "secret", "creds", "-o", "yaml"],
        vec!["kube", "get", "secrets", "-o", "json"],
        vec!["kube", "get", "pods", "-o", "yaml"],
        vec!["pod", "inspect", "app"],
        vec!["pod", "ls"],
        vec!["pod", "ls", "--format", "json"],
    ] {
        let o = e.berth(&args);
        said.push_str(&String::from_utf8_lossy(&o.stdout));
        said.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    assert!(
        !said.contains(&secret),
        "a command printed the secret:\n{said}"
    );
    // shown only when asked, in base64 as Kubernetes stores it
    let shown = e.ok(&[
        "kube",
        "get",
        "secret",
        "creds",
        "-o",
        "json",
        "--show-secrets",
    ]);
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&secret)
    };
    assert!(shown.contains(&b64), "{shown}");
    // files: the Secret's own record, its tmpfs volumes and the container's config.json
    let pod_dir = e.pod_dir(&id);
    let allowed = |p: &Path| {
        p.starts_with(pod_dir.join("volumes/sec"))
            || p.starts_with(pod_dir.join("volumes/all"))
            || p.ends_with("config.json")
    };
    let mut found = Vec::new();
    for needle in [secret.as_bytes(), b64.as_bytes()] {
        files_with(
            &e.dir,
            needle,
            &|p| p.starts_with(e.dir.join("data/config/secrets")),
            &mut found,
        );
    }
    // (and the test's own manifests)
    found.retain(|p| !allowed(Path::new(p)) && !p.ends_with(".yaml"));
    assert_eq!(found, Vec::<String>::new(), "the secret is in these files");
    // the Secret's record: 0600 in a 0700 directory
    let rec = e.dir.join("data/config/secrets/default/creds.json");
    assert_eq!(
        fs::metadata(&rec).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let d = e.dir.join("data/config/secrets");
    assert_eq!(
        fs::metadata(&d).unwrap().permissions().mode() & 0o777,
        0o700
    );
    e.ok(&["pod", "rm", "-f", "app"]);
}
