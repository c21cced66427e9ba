//! Table tests of the CRI conversions: requests to berth's types (and the field path of each
//! refusal), berth's errors to gRPC codes.

use k8s_cri::v1 as cri;
use tonic::Code;

use super::*;
use crate::pod;

fn sandbox() -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "web".into(),
            uid: "u1".into(),
            namespace: "ns".into(),
            attempt: 2,
        }),
        ..Default::default()
    }
}

fn ns_options(f: impl FnOnce(&mut cri::NamespaceOption)) -> Option<cri::LinuxPodSandboxConfig> {
    let mut o = cri::NamespaceOption::default();
    f(&mut o);
    Some(cri::LinuxPodSandboxConfig {
        security_context: Some(cri::LinuxSandboxSecurityContext {
            namespace_options: Some(o),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[test]
fn sandbox_configs() {
    type Change = fn(&mut cri::PodSandboxConfig);
    type Check = fn(&pod::PodConfig);
    let ok: Vec<(Change, Check)> = vec![
        (
            |_| {},
            |p| {
                assert_eq!(
                    (
                        p.name.as_str(),
                        p.namespace.as_str(),
                        p.uid.as_str(),
                        p.attempt
                    ),
                    ("web", "ns", "u1", 2)
                );
                assert!(!p.host_network && !p.share_pid && !p.host_pid);
            },
        ),
        (
            |c| c.linux = ns_options(|o| o.network = cri::NamespaceMode::Node as i32),
            |p| assert!(p.host_network),
        ),
        (
            |c| c.linux = ns_options(|o| o.pid = cri::NamespaceMode::Pod as i32),
            |p| assert!(p.share_pid),
        ),
        (
            |c| {
                c.linux = ns_options(|o| {
                    o.pid = cri::NamespaceMode::Node as i32;
                    o.ipc = cri::NamespaceMode::Node as i32;
                })
            },
            |p| assert!(p.host_pid && p.host_ipc),
        ),
        (
            |c| {
                c.port_mappings = vec![
                    cri::PortMapping {
                        protocol: cri::Protocol::Udp as i32,
                        container_port: 53,
                        host_port: 5353,
                        host_ip: "127.0.0.1".into(),
                    },
                    // kubelet lists every containerPort; without a hostPort nothing is mapped
                    cri::PortMapping {
                        protocol: cri::Protocol::Tcp as i32,
                        container_port: 80,
                        host_port: 0,
                        host_ip: String::new(),
                    },
                ]
            },
            |p| {
                assert_eq!(
                    p.port_mappings,
                    vec![pod::PortMapping {
                        container_port: 53,
                        host_port: 5353,
                        protocol: "udp".into(),
                        host_ip: Some("127.0.0.1".into())
                    }]
                );
            },
        ),
    ];
    for (change, check) in ok {
        let mut c = sandbox();
        change(&mut c);
        check(&pod_config(&c).unwrap());
    }
    let bad: Vec<(Change, &str)> = vec![
        (|c| c.metadata = None, "config.metadata: missing"),
        (
            |c| c.metadata.as_mut().unwrap().name.clear(),
            "config.metadata.name: empty",
        ),
        (
            |c| {
                c.port_mappings = vec![cri::PortMapping {
                    container_port: 70000,
                    host_port: 1,
                    ..Default::default()
                }]
            },
            "config.port_mappings[0].container_port",
        ),
        (
            |c| {
                c.linux = ns_options(|o| {
                    o.userns_options = Some(cri::UserNamespace {
                        mode: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    })
                })
            },
            "userns_options",
        ),
    ];
    for (change, want) in bad {
        let mut c = sandbox();
        change(&mut c);
        let e = pod_config(&c).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{want}");
        assert!(e.message().contains(want), "{}", e.message());
    }
}

fn ctr(
    f: impl FnOnce(&mut cri::ContainerConfig, &mut cri::LinuxContainerSecurityContext),
) -> cri::ContainerConfig {
    let mut c = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "c".into(),
            attempt: 1,
        }),
        image: Some(cri::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        log_path: "c/1.log".into(),
        ..Default::default()
    };
    let mut sc = cri::LinuxContainerSecurityContext::default();
    f(&mut c, &mut sc);
    c.linux = Some(cri::LinuxContainerConfig {
        resources: None,
        security_context: Some(sc),
    });
    c
}

fn profile(t: cri::security_profile::ProfileType, r: &str) -> Option<cri::SecurityProfile> {
    Some(cri::SecurityProfile {
        profile_type: t as i32,
        localhost_ref: r.into(),
    })
}

#[test]
#[allow(deprecated)]
fn container_configs() {
    use cri::security_profile::ProfileType as P;
    let unset = pod::Seccomp::Unconfined;
    let dir = std::path::Path::new("/var/log/pods/x");
    type Check = fn(&pod::ContainerConfig);
    let ok: Vec<(cri::ContainerConfig, Check)> = vec![
        (ctr(|_, _| {}), |c| {
            assert_eq!(
                (c.name.as_str(), c.attempt, c.image.as_str()),
                ("c", 1, "busybox")
            );
            assert_eq!(
                c.log_path.as_deref(),
                Some(std::path::Path::new("/var/log/pods/x/c/1.log"))
            );
            assert_eq!(
                c.security.seccomp,
                pod::Seccomp::Unconfined,
                "nothing asked: the config's unset profile"
            );
        }),
        (
            ctr(|_, s| s.seccomp = profile(P::RuntimeDefault, "")),
            |c| assert_eq!(c.security.seccomp, pod::Seccomp::RuntimeDefault),
        ),
        (
            ctr(|_, s| s.seccomp_profile_path = "docker/default".into()),
            |c| assert_eq!(c.security.seccomp, pod::Seccomp::RuntimeDefault),
        ),
        (
            ctr(|_, s| s.seccomp_profile_path = "localhost//p.json".into()),
            |c| {
                assert_eq!(
                    c.security.seccomp,
                    pod::Seccomp::Localhost("/p.json".into())
                )
            },
        ),
        (
            ctr(|_, s| s.seccomp = profile(P::Localhost, "/q.json")),
            |c| {
                assert_eq!(
                    c.security.seccomp,
                    pod::Seccomp::Localhost("/q.json".into())
                )
            },
        ),
        (
            ctr(|_, s| {
                s.run_as_username = "user".into();
                s.run_as_group = Some(cri::Int64Value { value: 7 });
                s.supplemental_groups = vec![9];
            }),
            |c| {
                assert_eq!(c.security.run_as_username.as_deref(), Some("user"));
                assert_eq!(
                    (
                        c.security.run_as_group,
                        c.security.supplemental_groups.clone()
                    ),
                    (Some(7), vec![9])
                );
            },
        ),
        (
            ctr(|c, _| {
                c.mounts = vec![cri::Mount {
                    container_path: "/d".into(),
                    host_path: "/h".into(),
                    propagation: cri::MountPropagation::PropagationBidirectional as i32,
                    ..Default::default()
                }]
            }),
            |c| assert_eq!(c.mounts[0].propagation, "rshared"),
        ),
    ];
    for (req, check) in ok {
        check(&container_config(&req, dir, &unset).unwrap());
    }
    let bad: Vec<(cri::ContainerConfig, &str)> = vec![
        (ctr(|c, _| c.image = None), "config.image.image: empty"),
        (
            ctr(|_, s| s.run_as_group = Some(cri::Int64Value { value: 7 })),
            "config.linux.security_context.run_as_group: set without run_as_user",
        ),
        (
            ctr(|_, s| s.seccomp = profile(P::Localhost, "rel.json")),
            "seccomp.localhost_ref",
        ),
        (
            ctr(|_, s| s.seccomp_profile_path = "strict".into()),
            "seccomp_profile_path",
        ),
        (
            ctr(|_, s| s.run_as_user = Some(cri::Int64Value { value: -1 })),
            "run_as_user: -1",
        ),
        (
            ctr(|c, _| {
                c.mounts = vec![cri::Mount {
                    container_path: "rel".into(),
                    host_path: "/h".into(),
                    ..Default::default()
                }]
            }),
            "config.mounts[0]",
        ),
        (
            ctr(|_, s| {
                s.capabilities = Some(cri::Capability {
                    add_ambient_capabilities: vec!["NET_RAW".into()],
                    ..Default::default()
                })
            }),
            "add_ambient_capabilities",
        ),
    ];
    for (req, want) in bad {
        let e = container_config(&req, dir, &unset).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{want}");
        assert!(e.message().contains(want), "{}", e.message());
    }
}

#[test]
fn errors_become_the_codes_kubelet_expects() {
    use pod::Error as E;
    let table = [
        (E::NotFound("pod \"x\"".into()), Code::NotFound),
        (E::AlreadyExists("pod x".into()), Code::AlreadyExists),
        (
            E::Precondition("not ready".into()),
            Code::FailedPrecondition,
        ),
        (E::Invalid("bad".into()), Code::InvalidArgument),
        (E::Manifest("spec: x".into()), Code::InvalidArgument),
        (E::Timeout("slow".into()), Code::DeadlineExceeded),
        (
            E::Internal("the pod monitor did not start".into()),
            Code::Internal,
        ),
        (E::Cni("plugin failed".into()), Code::Internal),
        (
            E::Invalid("bad".into()).with_rollback(vec!["x: busy".into()]),
            Code::InvalidArgument,
        ),
    ];
    for (e, code) in table {
        let text = e.to_string();
        let s = status(e);
        assert_eq!(s.code(), code, "{text}");
        assert_eq!(s.message(), text);
    }
}
