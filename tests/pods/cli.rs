//! The pod CLI's manners: output into a closed pipe or a full disk, `pod run` waiting for the
//! pod to start (and saying which container failed), hostPort conflicts, and which network a
//! CLI pod gets.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use super::env::*;

/// Run a berth command whose stdout is a pipe nobody reads any more; returns its output
/// (stderr) and status. It must end within 10 s.
fn into_closed_pipe(e: &PodEnv, args: &[&str]) -> Output {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let mut child = e
        .cmd(args)
        .stdout(Stdio::from(w))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("berth {args:?} did not end when its reader went away");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn output_into_a_closed_pipe_or_a_full_disk_never_panics() {
    let e = PodEnv::new("cli-pipe");
    let pod = e.run(&e.sleeper("piped", true));
    for args in [
        vec!["pod", "inspect", pod.as_str()],
        vec!["pod", "ls", "--format", "json"],
        vec!["pod", "ls"],
        vec!["pod", "logs", "-f", pod.as_str()],
        vec!["pod", "events", "--interval", "20ms"],
        vec!["image", "ls"],
        vec!["list"],
    ] {
        let out = into_closed_pipe(&e, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        // the follow and events commands may have printed nothing before a write failed
        assert!(
            out.status.signal() == Some(libc::SIGPIPE)
                || (out.status.success() && args.contains(&"-f")),
            "berth {args:?}: {:?} {err}",
            out.status
        );
        assert!(!err.contains("panicked"), "berth {args:?}: {err}");
        assert!(err.is_empty(), "berth {args:?} said something: {err}");
    }
    // a full disk: one line, status 1
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = e
        .cmd(&["pod", "inspect", &pod])
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        "berth: error: write to stdout: No space left on device (os error 28)"
    );
    e.ok(&["pod", "rm", "-f", &pod]);
}

/// `berth pod run` of a manifest with extra flags: (status, stdout, stderr, how long).
fn run_with(e: &PodEnv, yaml: &str, flags: &[&str]) -> (i32, String, String, Duration) {
    let f = e.file(yaml);
    let mut args = vec!["pod", "run"];
    args.extend(flags);
    args.push(f.to_str().unwrap());
    let t = Instant::now();
    let out = e.berth(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

#[test]
fn pod_run_waits_for_the_start_and_names_what_failed() {
    let e = PodEnv::new("cli-wait");
    let img = e.image("base");
    // a program that is not there: exit 1, the reason, the pod left in place
    let missing = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: missing}}\nspec:\n  restartPolicy: Never\n  containers: [{{name: c, image: {img}, command: [/no/such/program]}}]\n"
    );
    let (code, id, err, _) = run_with(&e, &missing, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("container c could not start") && err.contains("/no/such/program"),
        "{err}"
    );
    assert_eq!(e.inspect(&id)["config"]["name"], "missing");
    e.ok(&["pod", "rm", "-f", &id]);
    // --detach does not wait
    let (code, id, err, _) = run_with(&e, &missing, &["--detach"]);
    assert_eq!(code, 0, "{err}");
    e.ok(&["pod", "rm", "-f", &id]);
    // an init container that fails
    let init = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: init}}\nspec:\n  restartPolicy: Never\n  initContainers: [{{name: setup, image: {img}, command: [sh, -c, \"exit 3\"]}}]\n  containers: [{{name: c, image: {img}, command: [sleep, \"1000\"]}}]\n"
    );
    let (code, id, err, _) = run_with(&e, &init, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("init container setup exited with code 3"),
        "{err}"
    );
    e.ok(&["pod", "rm", "-f", &id]);
    // a start slower than --timeout
    let slow = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: slow}}\nspec:\n  initContainers: [{{name: setup, image: {img}, command: [sleep, \"30\"]}}]\n  containers: [{{name: c, image: {img}, command: [sleep, \"1000\"]}}]\n"
    );
    let (code, id, err, took) = run_with(&e, &slow, &["--timeout", "1s"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("had not started after 1s"), "{err}");
    // it gave up at its timeout, not after the init's 30 s (the slow cgroup v2 VM takes
    // seconds to make a pod)
    assert!(took < Duration::from_secs(15), "{took:?}");
    e.ok(&["pod", "rm", "-f", &id]);
    // success: when pod run returns, the container's program runs
    let (code, id, err, _) = run_with(&e, &e.sleeper("fine", true), &[]);
    assert_eq!(code, 0, "{err}");
    let pid = e.container(&id, "c")["status"]["pid"].as_i64().unwrap();
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("busybox"), "{}", exe.display());
    e.ok(&["pod", "rm", "-f", &id]);
}

#[test]
fn a_host_port_held_by_another_pod_is_refused() {
    let e = PodEnv::new("cli-ports");
    let img = e.image("base");
    let port = 22000 + std::process::id() % 9000;
    let pod = |name: &str, spec: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: {img}, command: [sleep, \"1000\"], ports: [{spec}]}}\n"
        )
    };
    let a = e.run(&pod(
        "a",
        &format!("{{containerPort: 80, hostPort: {port}}}"),
    ));
    // the same port and protocol on any IP: refused, naming the port and the holder
    let err = e.run_fails(&pod(
        "b",
        &format!("{{containerPort: 81, hostPort: {port}, hostIP: 127.0.0.1}}"),
    ));
    assert!(
        err.contains(&format!("hostPort {port}/TCP")) && err.contains("pod default/a"),
        "{err}"
    );
    // another protocol is another port
    let c = e.run(&pod(
        "c",
        &format!("{{containerPort: 80, hostPort: {port}, protocol: UDP}}"),
    ));
    // the refused pod left nothing: once a is gone, b runs
    e.ok(&["pod", "rm", "-f", &a]);
    let b = e.run(&pod(
        "b",
        &format!("{{containerPort: 81, hostPort: {port}, hostIP: 127.0.0.1}}"),
    ));
    // a specific IP conflicts with the same IP, not with another
    let err = e.run_fails(&pod(
        "d",
        &format!("{{containerPort: 82, hostPort: {port}, hostIP: 127.0.0.1}}"),
    ));
    assert!(err.contains("pod default/b"), "{err}");
    let d = e.run(&pod(
        "d",
        &format!("{{containerPort: 82, hostPort: {port}, hostIP: 127.0.0.2}}"),
    ));
    for p in [b, c, d] {
        e.ok(&["pod", "rm", "-f", &p]);
    }
}

/// A CNI configuration in kubelet's directory, for as long as the test runs (if none is
/// there already, as podman's is after `make setup`).
struct ForeignConf(Option<PathBuf>);

impl Drop for ForeignConf {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

#[test]
fn cli_pods_use_berths_default_network_unless_a_cni_dir_is_given() {
    let e = PodEnv::default_network("cli-net");
    let dir = PathBuf::from("/etc/cni/net.d");
    let present = fs::read_dir(&dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|f| f.file_name().to_string_lossy().ends_with(".conflist"))
    });
    let _foreign = ForeignConf((!present).then(|| {
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("zz-berth-test-{}.conflist", std::process::id()));
        fs::write(
            &p,
            r#"{"cniVersion": "1.0.0", "name": "foreign", "plugins": [{"type": "bridge", "bridge": "bfx0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.79.251.0/24"}]]}}]}"#,
        )
        .unwrap();
        p
    }));
    let f = e.dir.join("p.yaml");
    fs::write(&f, e.sleeper("net", false)).unwrap();
    let out = e
        .cmd(&["pod", "run", f.to_str().unwrap()])
        .env_remove("BERTH_CNI_CONF_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let v = e.inspect(&id);
    let ip = v["ips"][0].as_str().unwrap();
    assert!(
        ip.starts_with(&format!("{}.", e.net)),
        "{ip}: not the default network"
    );
    let source = v["network"]["source"].as_str().unwrap();
    assert!(
        source.contains("berth's default network")
            && source.contains("no CNI configuration directory given"),
        "{source}"
    );
    e.ok(&["pod", "rm", "-f", &id]);
    // given a directory, its first configuration is used and named
    let conf = e.dir.join("given");
    fs::create_dir_all(&conf).unwrap();
    fs::write(
        conf.join("10-given.conflist"),
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "given", "plugins": [{{"type": "bridge", "bridge": "{}", "isGateway": true, "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{}.0/24"}}]], "dataDir": "{}"}}}}]}}"#,
            e.bridge,
            e.net,
            e.dir.join("ipam").display()
        ),
    )
    .unwrap();
    let out = e
        .cmd(&[
            "pod",
            "run",
            "--cni-conf-dir",
            conf.to_str().unwrap(),
            f.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let v = e.inspect(&id);
    assert_eq!(v["network"]["name"], "given", "{v}");
    assert!(
        v["network"]["source"]
            .as_str()
            .unwrap()
            .ends_with("10-given.conflist"),
        "{v}"
    );
    e.ok(&["pod", "rm", "-f", &id]);
}
