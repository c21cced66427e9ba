//! Container settings of the CRI as the kernel applies them: devices, seccomp profiles
//! (default, unconfined, a Localhost file), supplemental groups, masked paths, a read-only
//! root, privileged capabilities, a PID namespace TARGET, host IPC, and hostPort.

use std::io::{Read, Write};
use std::time::Duration;

use k8s_cri::v1 as cri;

use super::daemon::{
    Daemon, add_container, block_on, container, namespaces, pid, pod_status, pod_with, pull,
    remove_pod, sandbox,
};
use super::env::ns;

fn sc(
    f: impl FnOnce(&mut cri::LinuxContainerSecurityContext),
) -> Option<cri::LinuxContainerConfig> {
    let mut s = cri::LinuxContainerSecurityContext::default();
    f(&mut s);
    Some(cri::LinuxContainerConfig {
        resources: None,
        security_context: Some(s),
    })
}

fn proc_field(pid: i32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn container_security_settings_reach_the_kernel() {
    let d = Daemon::start("cri-sec");
    let image = d.env.image("base");
    let profile = d.env.dir.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let mut cfg = sandbox("sec");
        cfg.port_mappings = vec![cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: 8080,
            host_port: 0,
            host_ip: String::new(),
        }];
        // POD is the proto's zero value for pid: kubelet sets CONTAINER explicitly
        use cri::NamespaceMode::{Container, Node, Pod};
        cfg.linux = namespaces(Pod, Container, Node);
        // a: default seccomp, a device, groups, masked paths, read-only root
        let mut a = container("a", &image_ref, &["sleep", "1000"]);
        a.devices = vec![cri::Device {
            container_path: "/dev/mynull".into(),
            host_path: "/dev/null".into(),
            permissions: "rw".into(),
        }];
        a.linux = sc(|s| {
            s.seccomp = Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            });
            s.supplemental_groups = vec![1234, 5678];
            s.masked_paths = vec!["/etc/hostname".into()];
            s.readonly_rootfs = true;
        });
        let (pod, a_id) = pod_with(&d, "sec", cfg.clone(), a).await;
        let mut rt = d.rt().await;
        let mut started = Vec::new();
        // b: unconfined, privileged; c: a Localhost profile; e: in a's PID namespace
        let mut b = container("b", &image_ref, &["sleep", "1000"]);
        b.linux = sc(|s| {
            s.privileged = true;
            s.seccomp = Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::Unconfined as i32,
                localhost_ref: String::new(),
            });
        });
        let mut c = container("c", &image_ref, &["sleep", "1000"]);
        c.linux = sc(|s| {
            s.seccomp = Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::Localhost as i32,
                localhost_ref: profile.display().to_string(),
            });
        });
        let mut e = container("e", &image_ref, &["sleep", "1001"]);
        e.linux = sc(|s| {
            s.namespace_options = Some(cri::NamespaceOption {
                pid: cri::NamespaceMode::Target as i32,
                target_id: a_id.clone(),
                ..Default::default()
            });
        });
        for cc in [b, c, e] {
            started.push(add_container(&mut rt, &pod, &cfg, cc).await);
        }
        let (pa, pb, pc, pe) = (
            pid(&d, &a_id).await,
            pid(&d, &started[0]).await,
            pid(&d, &started[1]).await,
            pid(&d, &started[2]).await,
        );
        let exec = |id: &str, cmd: &str| cri::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: vec!["sh".into(), "-c".into(), cmd.into()],
            timeout: 10,
        };
        // a
        assert_eq!(proc_field(pa, "Seccomp:"), "Seccomp:\t2");
        assert!(
            proc_field(pa, "Groups:").contains("1234 5678"),
            "{}",
            proc_field(pa, "Groups:")
        );
        let r = rt
            .exec_sync(exec(&a_id, "ls -l /dev/mynull; echo x > /dev/mynull && echo wrote; cat /etc/hostname | wc -c; touch /newfile || echo ro"))
            .await
            .unwrap()
            .into_inner();
        let out = String::from_utf8_lossy(&r.stdout);
        assert!(out.starts_with("crw"), "{out}");
        assert!(out.contains("1,   3") || out.contains("1, 3"), "{out}");
        assert!(out.contains("wrote"), "{out}");
        assert!(
            out.contains("\n0\n"),
            "a masked /etc/hostname was readable: {out}"
        );
        assert!(out.contains("ro"), "{out}");
        // b: no filter, every capability
        assert_eq!(proc_field(pb, "Seccomp:"), "Seccomp:\t0");
        assert_eq!(
            proc_field(pb, "CapEff:"),
            proc_field(std::process::id() as i32, "CapEff:")
        );
        // c: its profile's EACCES for mkdir
        assert_eq!(proc_field(pc, "Seccomp:"), "Seccomp:\t2");
        let r = rt
            .exec_sync(exec(&started[1], "mkdir /tmp/d; echo rc=$?"))
            .await
            .unwrap()
            .into_inner();
        let out = String::from_utf8_lossy(&r.stdout);
        assert!(out.contains("rc=1"), "{out}");
        assert!(String::from_utf8_lossy(&r.stderr).contains("Permission denied"));
        // e: a's PID namespace; host IPC for all
        assert_eq!(ns(pe, "pid"), ns(pa, "pid"));
        let r = rt
            .exec_sync(exec(&started[2], "ps -o args"))
            .await
            .unwrap()
            .into_inner();
        let ps = String::from_utf8_lossy(&r.stdout);
        assert!(
            ps.contains("sleep 1000") && ps.contains("sleep 1001"),
            "{ps}"
        );
        assert_eq!(ns(pa, "ipc"), ns(std::process::id() as i32, "ipc"));
        assert_ne!(
            ns(pa, "pid"),
            ns(pb, "pid"),
            "a {pa} {:?} b {pb} {:?}",
            std::fs::read_to_string(format!("/proc/{pa}/cmdline")),
            std::fs::read_to_string(format!("/proc/{pb}/cmdline"))
        );
        remove_pod(&d, &pod).await;
    });
}

#[test]
fn host_port_reaches_the_pod() {
    let d = Daemon::start("cri-hostport");
    let image = d.env.image("base");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let mut cfg = sandbox("hp");
        cfg.port_mappings = vec![cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: 8080,
            host_port: port as i32,
            host_ip: String::new(),
        }];
        let (pod, _) = pod_with(
            &d,
            "hp",
            cfg,
            container(
                "web",
                &image_ref,
                &[
                    "sh",
                    "-c",
                    "echo via-hostport > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
                ],
            ),
        )
        .await;
        let ip = pod_status(&d, &pod).await.network.unwrap().ip;
        // the host port of the node's address (portmap's DNAT; the bridge's gateway is the host)
        let gw = format!("{}.1", d.env.net);
        let mut body = String::new();
        for _ in 0..100 {
            if let Ok(mut s) = std::net::TcpStream::connect((gw.as_str(), port)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
                body.clear();
                let _ = s.read_to_string(&mut body);
                if body.contains("via-hostport") {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            body.contains("via-hostport"),
            "nothing through host port {port} (pod {ip}): {body}"
        );
        remove_pod(&d, &pod).await;
        assert!(
            super::env::iptables_mentioning(&format!("dpt:{port}")).is_empty()
                && super::env::iptables_mentioning(&format!("--dport {port}")).is_empty(),
            "portmap rules left"
        );
    });
}
