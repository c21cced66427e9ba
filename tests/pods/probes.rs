//! Probes run by the pod monitor, against real servers in real pods: readiness toggled by a
//! file behind an HTTP server (and the Service's endpoints following), liveness on a port that
//! closes (a restart, its reason), startup probes that never pass (a kill) and that hold
//! liveness back, tcpSocket and gRPC against servers in the pod, exec exit codes and timeouts,
//! HTTP and gRPC probes of a server that accepts and never answers (cut at their timeout),
//! an image without a shell, bad input, and ten probes a second in one pod.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::env::*;

/// A pod named `name` (label app=web) whose one container `c` serves /www over HTTP on its
/// port `http` (8080), with `probes` (YAML lines at the container's indentation).
fn web(e: &PodEnv, name: &str, script: &str, probes: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: web}}}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: {}\n    ports: [{{name: http, containerPort: 8080}}]\n    command: [sh, -c, '{script}']\n{probes}",
        e.image("base")
    )
}

const HTTPD: &str = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www";

/// Wait (up to `secs`) until `f` holds; how long it took.
fn until(secs: u64, what: &str, f: &mut dyn FnMut() -> bool) -> Duration {
    let t = Instant::now();
    loop {
        if f() {
            return t.elapsed();
        }
        assert!(t.elapsed() < Duration::from_secs(secs), "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(e: &PodEnv, pod: &str) -> Value {
    e.container(pod, "c")["status"].clone()
}

fn condition(e: &PodEnv, pod: &str, kind: &str) -> Value {
    e.inspect(pod)["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap()
}

fn ready_endpoints(e: &PodEnv) -> usize {
    let v: Value = serde_json::from_str(&e.ok(&["service", "inspect", "web"])).unwrap();
    v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["ready"] == true)
        .count()
}

#[test]
fn readiness_follows_a_file_both_ways_and_the_service_follows() {
    let e = PodEnv::new("probe-ready");
    e.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n");
    let probe = "    readinessProbe:\n      httpGet: {path: /ready, port: http}\n      periodSeconds: 1\n      failureThreshold: 1\n";
    let mut events = e
        .cmd(&["pod", "events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = e.run(&web(&e, "w", HTTPD, probe));
    e.wait("w", "c", "Running");
    // running, not ready: no /ready yet (404)
    std::thread::sleep(Duration::from_millis(2500));
    let st = status(&e, "w");
    assert_eq!(st["ready"], false, "{st}");
    assert!(
        st["last_probe_failure"]
            .as_str()
            .unwrap()
            .contains("readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{st}"
    );
    assert_eq!(condition(&e, "w", "Ready")["status"], "False");
    assert_eq!(ready_endpoints(&e), 0);
    let ls = e.ok(&["pod", "ls"]);
    assert!(
        ls.lines().any(|l| l.contains(" w ") && l.contains(" 0/1 ")),
        "{ls}"
    );
    let row = e.ok(&["kube", "get", "pods"]);
    assert!(row.contains("0/1"), "{row}");
    // ready within one period plus a second of the file appearing
    e.ok(&["pod", "exec", "-c", "c", &id, "--", "touch", "/www/ready"]);
    let took = until(5, "ready", &mut || status(&e, "w")["ready"] == true);
    assert!(took < Duration::from_secs(2), "ready after {took:?}");
    let since = condition(&e, "w", "Ready");
    assert_eq!(since["status"], "True", "{since}");
    assert_eq!(condition(&e, "w", "ContainersReady")["status"], "True");
    until(3, "an endpoint", &mut || ready_endpoints(&e) == 1);
    let ls = e.ok(&["pod", "ls"]);
    assert!(
        ls.lines().any(|l| l.contains(" w ") && l.contains(" 1/1 ")),
        "{ls}"
    );
    // and back
    e.ok(&["pod", "exec", "-c", "c", &id, "--", "rm", "/www/ready"]);
    let took = until(5, "unready", &mut || status(&e, "w")["ready"] == false);
    assert!(took < Duration::from_secs(2), "unready after {took:?}");
    until(3, "no endpoint", &mut || ready_endpoints(&e) == 0);
    let c = condition(&e, "w", "Ready");
    assert_eq!(c["status"], "False");
    assert_ne!(c["lastTransitionTime"], since["lastTransitionTime"]);
    // never restarted for it
    assert_eq!(status(&e, "w")["restart_count"], 0);
    // and it was all announced
    std::thread::sleep(Duration::from_millis(1500));
    let _ = events.kill();
    let out = events.wait_with_output().unwrap();
    let seen: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let kinds: Vec<&str> = seen.iter().filter_map(|v| v["kind"].as_str()).collect();
    for want in ["container_ready", "container_unready", "probe_failed"] {
        assert!(kinds.contains(&want), "no {want} in {kinds:?}");
    }
    assert!(
        seen.iter().any(|v| v["kind"] == "probe_failed"
            && v["message"].as_str().unwrap().contains("statuscode: 404")),
        "{seen:?}"
    );
}

#[test]
fn a_replaced_monitor_probes_afresh() {
    let e = PodEnv::new("probe-replaced");
    let probe = "    readinessProbe:\n      httpGet: {path: /index.html, port: http}\n      periodSeconds: 1\n      failureThreshold: 1\n";
    let id = e.run(&web(&e, "m", HTTPD, probe));
    until(10, "ready", &mut || status(&e, "m")["ready"] == true);
    let old = e.inspect(&id)["monitor_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    until(10, "a new monitor", &mut || {
        e.inspect(&id)["monitor_pid"]
            .as_i64()
            .is_some_and(|m| m as i32 != old)
    });
    // ready again from its own probes, which keep running: the file gone, unready
    until(10, "ready again", &mut || status(&e, "m")["ready"] == true);
    e.ok(&["pod", "exec", "-c", "c", &id, "--", "rm", "/www/index.html"]);
    until(5, "unready", &mut || status(&e, "m")["ready"] == false);
    assert_eq!(status(&e, "m")["restart_count"], 0);
}

#[test]
fn a_liveness_probe_on_a_port_that_closes_restarts_the_container() {
    let e = PodEnv::new("probe-live");
    // the server goes after two seconds; the container lives on
    let script = "httpd -f -p 8080 -h / & sleep 2; kill $!; exec sleep 1000";
    let probe = "    livenessProbe:\n      tcpSocket: {port: 8080}\n      periodSeconds: 1\n      failureThreshold: 2\n      terminationGracePeriodSeconds: 1\n";
    e.run(&web(&e, "l", script, probe));
    until(20, "a restart", &mut || {
        status(&e, "l")["restart_count"].as_u64().unwrap() >= 1
    });
    let st = status(&e, "l");
    assert!(
        st["last_probe_failure"]
            .as_str()
            .unwrap()
            .contains("liveness probe failed: dial tcp"),
        "{st}"
    );
    // the attempt it killed says why
    let why = if st["state"] == "Running" {
        &st["last_exit"]
    } else {
        &st
    };
    assert!(
        why["message"]
            .as_str()
            .unwrap_or("")
            .contains("Container c failed liveness probe, will be restarted"),
        "{st}"
    );
    let row = e.ok(&["kube", "get", "pods"]);
    let restarts = status(&e, "l")["restart_count"].as_u64().unwrap();
    assert!(
        row.lines()
            .any(|l| l.starts_with("l ") && l.split_whitespace().nth(3) >= Some("1")),
        "{row}"
    );
    assert!(restarts >= 1);
}

#[test]
fn a_startup_probe_that_never_passes_kills_and_holds_liveness_back() {
    let e = PodEnv::new("probe-startup");
    // never passes: killed (restartPolicy Never: it stays exited, with the reason)
    let never = "    startupProbe:\n      exec: {command: [\"false\"]}\n      periodSeconds: 1\n      failureThreshold: 2\n      terminationGracePeriodSeconds: 1\n";
    let y = web(&e, "never", "exec sleep 1000", never)
        .replace("  containers:", "  restartPolicy: Never\n  containers:");
    e.run(&y);
    let c = e.wait("never", "c", "Exited");
    // SIGTERM, or SIGKILL after the probe's grace period (a sleep as PID 1 ignores TERM)
    let code = c["status"]["exit_code"].as_i64().unwrap();
    assert!(code == 128 + 15 || code == 128 + 9, "{c}");
    assert!(
        c["status"]["message"]
            .as_str()
            .unwrap()
            .contains("failed startup probe"),
        "{c}"
    );
    assert!(
        c["status"]["last_probe_failure"]
            .as_str()
            .unwrap()
            .contains("command exited with code 1"),
        "{c}"
    );
    // a slow starter: liveness (which would fail at once) waits for startup to pass
    let slow = "    startupProbe:\n      exec: {command: [test, -f, /tmp/up]}\n      periodSeconds: 1\n      failureThreshold: 10\n    livenessProbe:\n      exec: {command: [test, -f, /tmp/up]}\n      periodSeconds: 1\n      failureThreshold: 1\n";
    e.run(&web(
        &e,
        "slow",
        "sleep 3; touch /tmp/up; exec sleep 1000",
        slow,
    ));
    until(10, "slow ready", &mut || {
        status(&e, "slow")["ready"] == true
    });
    std::thread::sleep(Duration::from_secs(2));
    let st = status(&e, "slow");
    assert_eq!(st["restart_count"], 0, "{st}");
    assert_eq!(st["state"], "Running", "{st}");
}

#[test]
fn exec_probes_read_exit_codes_and_are_cut_at_their_timeout() {
    let e = PodEnv::new("probe-exec");
    let code = "    readinessProbe:\n      exec: {command: [sh, -c, \"exit 3\"]}\n      periodSeconds: 1\n";
    e.run(&web(&e, "code", "exec sleep 1000", code));
    let slow = "    readinessProbe:\n      exec: {command: [sleep, \"30\"]}\n      periodSeconds: 1\n      timeoutSeconds: 1\n";
    let id = e.run(&web(&e, "slow", "exec sleep 1000", slow));
    until(10, "exit code", &mut || {
        status(&e, "code")["last_probe_failure"]
            .as_str()
            .is_some_and(|m| m.contains("command exited with code 3"))
    });
    until(10, "timeout", &mut || {
        status(&e, "slow")["last_probe_failure"]
            .as_str()
            .is_some_and(|m| m.contains("timed out after 1s"))
    });
    // the probe's sleep was killed: no pile of them in the container
    std::thread::sleep(Duration::from_secs(2));
    let ps = e.ok(&["pod", "exec", "-c", "c", &id, "--", "ps", "-o", "args"]);
    let sleeps = ps.lines().filter(|l| l.trim() == "sleep 30").count();
    assert!(sleeps <= 1, "probe processes left: {ps}");
    assert_eq!(status(&e, "slow")["ready"], false);
}

#[test]
fn network_probes_of_a_server_that_never_answers_are_cut_at_their_timeout() {
    let e = PodEnv::new("probe-mute");
    // servers that accept and then say nothing (each connection handed to a `sleep`)
    let mute = |port: u16| format!("[nc, -ll, -p, \"{port}\", -e, sleep, \"1000\"]");
    let y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: mute}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {img}\n    command: {http}\n    readinessProbe:\n      httpGet: {{port: 8080}}\n      periodSeconds: 1\n      timeoutSeconds: 1\n    livenessProbe:\n      tcpSocket: {{port: 8080}}\n      periodSeconds: 1\n      failureThreshold: 1\n  - name: g\n    image: {img}\n    command: {grpc}\n    readinessProbe:\n      grpc: {{port: 9090}}\n      periodSeconds: 1\n      timeoutSeconds: 1\n",
        img = e.image("base"),
        http = mute(8080),
        grpc = mute(9090)
    );
    let id = e.run(&y);
    for c in ["c", "g"] {
        until(15, "a timed-out probe", &mut || {
            e.container(&id, c)["status"]["last_probe_failure"]
                .as_str()
                .is_some_and(|m| m.contains("timed out after 1s"))
        });
    }
    // cut each time, so the next ones run on schedule: about one failure a second
    let failures = |c: &str| {
        e.container(&id, c)["status"]["probe_failures"]
            .as_u64()
            .unwrap()
    };
    let (c0, g0) = (failures("c"), failures("g"));
    std::thread::sleep(Duration::from_secs(4));
    let (c1, g1) = (failures("c"), failures("g"));
    assert!(
        c1 >= c0 + 2 && g1 >= g0 + 2,
        "probes stalled: c {c0}->{c1}, g {g0}->{g1}"
    );
    // a silent server still accepts: the tcpSocket liveness probe passes (no restart)
    let st = e.container(&id, "c")["status"].clone();
    assert_eq!(
        (st["restart_count"].as_u64(), st["ready"].as_bool()),
        (Some(0), Some(false)),
        "{st}"
    );
    assert_eq!(e.container(&id, "g")["status"]["ready"], false);
}

#[test]
fn network_probes_need_nothing_in_the_image() {
    let e = PodEnv::new("probe-bare");
    // the app sees no shell and no tools: /bin, /sbin and /usr are empty; its server is a
    // copy of busybox an init container left in a volume
    let y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: bare}}\nspec:\n  volumes: [{{name: t, emptyDir: {{}}}}, {{name: e1, emptyDir: {{}}}}, {{name: e2, emptyDir: {{}}}}, {{name: e3, emptyDir: {{}}}}]\n  initContainers:\n  - name: copy\n    image: {img}\n    command: [cp, /bin/busybox, /t/busybox]\n    volumeMounts: [{{name: t, mountPath: /t}}]\n  containers:\n  - name: c\n    image: {img}\n    command: [/t/busybox, httpd, -f, -p, \"8080\", -h, /t]\n    ports: [{{name: web, containerPort: 8080}}]\n    volumeMounts: [{{name: t, mountPath: /t}}, {{name: e1, mountPath: /bin}}, {{name: e2, mountPath: /sbin}}, {{name: e3, mountPath: /usr}}]\n    readinessProbe:\n      httpGet: {{path: /busybox, port: web}}\n      periodSeconds: 1\n    livenessProbe:\n      tcpSocket: {{port: web}}\n      periodSeconds: 1\n      failureThreshold: 10\n",
        img = e.image("base")
    );
    let id = e.run(&y);
    until(20, "ready", &mut || status(&e, "bare")["ready"] == true);
    // no shell indeed
    let out = e.berth(&["pod", "exec", "-c", "c", &id, "--", "sh", "-c", "true"]);
    assert!(!out.status.success(), "a shell in the container");
    // (a probe before the server listens fails, as in Kubernetes: a slow machine sees some)
    // once it serves, none fails
    let before = status(&e, "bare")["probe_failures"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let st = status(&e, "bare");
    assert_eq!(st["restart_count"], 0, "{st}");
    assert_eq!(st["probe_failures"], before, "{st}");
    assert_eq!(st["ready"], true, "{st}");
}

#[test]
fn bad_probes_are_refused_by_path_and_leave_nothing() {
    let e = PodEnv::new("probe-bad");
    let cases = [
        (
            "    readinessProbe:\n      periodSeconds: 1\n",
            "spec.containers[0].readinessProbe: needs a handler",
        ),
        (
            "    readinessProbe:\n      tcpSocket: {port: 80}\n      exec: {command: [true]}\n",
            "spec.containers[0].readinessProbe: has 2 handlers",
        ),
        (
            "    readinessProbe:\n      httpGet: {port: web}\n",
            "spec.containers[0].readinessProbe.httpGet.port: no container port named \"web\"",
        ),
        (
            "    livenessProbe:\n      tcpSocket: {port: 80}\n      periodSeconds: -1\n",
            "spec.containers[0].livenessProbe.periodSeconds: -1: must be greater than or equal to 0",
        ),
        (
            "    livenessProbe:\n      tcpSocket: {port: 80}\n      successThreshold: 2\n",
            "spec.containers[0].livenessProbe.successThreshold: 2: must be 1 for liveness probes",
        ),
        (
            "    startupProbe:\n      exec: {command: []}\n",
            "spec.containers[0].startupProbe.exec.command: required",
        ),
        (
            "    readinessProbe:\n      tcpSocket: {port: 80}\n      terminationGracePeriodSeconds: 5\n",
            "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: not allowed",
        ),
        (
            "    readinessProbe:\n      grpc: {}\n",
            "spec.containers[0].readinessProbe.grpc.port: required",
        ),
    ];
    for (probe, want) in cases {
        let err = e.run_fails(&web(&e, "bad", HTTPD, probe));
        assert!(err.contains(want), "want {want:?} in: {err}");
    }
    let init = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec:\n  initContainers:\n  - name: i\n    image: {img}\n    readinessProbe:\n      tcpSocket: {{port: 80}}\n  containers:\n  - name: c\n    image: {img}\n",
        img = e.image("base")
    );
    let err = e.run_fails(&init);
    assert!(
        err.contains("spec.initContainers[0].readinessProbe: init containers cannot have probes"),
        "{err}"
    );
    assert_eq!(e.ok(&["pod", "ls", "-q"]).trim(), "", "a pod was left");
}

/// A grpc.health.v1 server on `port`, in the network namespace at `netns` (a thread that
/// joins it): "" serves, "down" does not, any other service is unknown. Stopped on drop.
struct GrpcHealth {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GrpcHealth {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

fn grpc_health(netns: &str, port: u16) -> GrpcHealth {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (up_tx, up_rx) = std::sync::mpsc::channel();
    let ns = std::fs::File::open(netns).unwrap();
    let thread = std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind(("0.0.0.0", port))
                .await
                .unwrap();
            up_tx.send(()).unwrap();
            let serve = super::grpc_health::serve(l);
            tokio::select! {
                _ = serve => {}
                _ = rx => {}
            }
        });
    });
    up_rx.recv().unwrap();
    GrpcHealth {
        stop: Some(tx),
        thread: Some(thread),
    }
}

#[test]
fn tcp_and_grpc_probes_against_servers_in_the_pod() {
    let e = PodEnv::new("probe-grpc");
    let pod = |name: &str, probe: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: {}\n    command: [sleep, \"1000\"]\n    readinessProbe:\n{probe}      periodSeconds: 1\n",
            e.image("base")
        )
    };
    let ok = e.run(&pod("ok", "      grpc: {port: 9000}\n"));
    let down = e.run(&pod("down", "      grpc: {port: 9000, service: down}\n"));
    let unknown = e.run(&pod(
        "unknown",
        "      grpc: {port: 9000, service: nosuch}\n",
    ));
    let tcp = e.run(&pod("tcp", "      tcpSocket: {port: 9000}\n"));
    let mut servers = Vec::new();
    for id in [&ok, &down, &unknown, &tcp] {
        let v = e.inspect(id);
        servers.push(grpc_health(
            v["namespace_paths"]["net"].as_str().unwrap(),
            9000,
        ));
    }
    until(10, "grpc ready", &mut || status(&e, "ok")["ready"] == true);
    until(10, "tcp ready", &mut || status(&e, "tcp")["ready"] == true);
    until(10, "NOT_SERVING seen", &mut || {
        status(&e, "down")["last_probe_failure"]
            .as_str()
            .is_some_and(|m| m.contains("service unhealthy (responded with \"NOT_SERVING\")"))
    });
    until(10, "unknown service seen", &mut || {
        status(&e, "unknown")["last_probe_failure"]
            .as_str()
            .is_some_and(|m| m.contains("rpc error: code = 5 desc = unknown service"))
    });
    assert_eq!(status(&e, "down")["ready"], false);
    drop(servers);
    // the server gone: not ready again
    until(10, "unready", &mut || status(&e, "ok")["ready"] == false);
}

/// `openssl s_server -www` (a self-signed certificate) on `port` in the network namespace at
/// `netns`; killed on drop.
struct TlsServer(std::process::Child);

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_server(e: &PodEnv, netns: &str, port: u16) -> TlsServer {
    let (key, cert) = (e.dir.join("tls.key"), e.dir.join("tls.crt"));
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=probe",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["openssl", "s_server", "-www", "-accept"])
        .arg(port.to_string())
        .arg("-key")
        .arg(&key)
        .arg("-cert")
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    TlsServer(child)
}

#[test]
fn https_probes_skip_verification_and_read_the_status() {
    let e = PodEnv::new("probe-https");
    let y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: s}}\nspec:\n  containers:\n  - name: c\n    image: {}\n    command: [sleep, \"1000\"]\n    readinessProbe:\n      httpGet: {{scheme: HTTPS, path: /, port: 8443, httpHeaders: [{{name: X-Probe, value: berth}}]}}\n      periodSeconds: 1\n      failureThreshold: 1\n",
        e.image("base")
    );
    let id = e.run(&y);
    // nothing listens yet
    until(10, "a refusal", &mut || {
        status(&e, "s")["last_probe_failure"]
            .as_str()
            .is_some_and(|m| m.contains("Connection refused"))
    });
    let v = e.inspect(&id);
    let server = tls_server(&e, v["namespace_paths"]["net"].as_str().unwrap(), 8443);
    // a self-signed certificate: accepted, as kubelet does
    until(15, "ready over HTTPS", &mut || {
        status(&e, "s")["ready"] == true
    });
    drop(server);
    until(10, "unready", &mut || status(&e, "s")["ready"] == false);
}

#[test]
fn ten_probes_a_second_over_five_containers_all_pass() {
    // (the monitor's size with them, release build: tests/probes-memory.sh)
    let e = PodEnv::new("probe-rss");
    let mut y =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: many}\nspec:\n  containers:\n".to_string();
    for i in 0..5 {
        let port = 8080 + i;
        y.push_str(&format!(
            "  - name: c{i}\n    image: {}\n    command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p {port} -h /www']\n    readinessProbe:\n      httpGet: {{path: /, port: {port}}}\n      periodSeconds: 1\n    livenessProbe:\n      tcpSocket: {{port: {port}}}\n      periodSeconds: 1\n",
            e.image("base")
        ));
    }
    let id = e.run(&y);
    for i in 0..5 {
        let name = format!("c{i}");
        until(10, "ready", &mut || {
            e.container(&id, &name)["status"]["ready"] == true
        });
    }
    // (a probe before its server listens fails: Kubernetes' way) then none fails
    let failures = |e: &PodEnv| -> Vec<Value> {
        (0..5)
            .map(|i| e.container(&id, &format!("c{i}"))["status"]["probe_failures"].clone())
            .collect()
    };
    let before = failures(&e);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(failures(&e), before, "probes failed while the servers ran");
    for i in 0..5 {
        let st = &e.container(&id, &format!("c{i}"))["status"];
        assert_eq!(st["restart_count"], 0, "{st}");
        assert_eq!(st["ready"], true, "{st}");
    }
}
