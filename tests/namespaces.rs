//! Namespaces: each one listed is new (or joined by path), the rest are the host's; hostname
//! and domainname are set in the new uts namespace.

mod common;

use common::*;
use serde_json::json;

const KINDS: &[(&str, &str)] = &[
    ("pid", "pid"),
    ("network", "net"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("mount", "mnt"),
    ("cgroup", "cgroup"),
];

#[test]
fn every_listed_namespace_is_new() {
    let c = Ctr::new("ns-new");
    let pid = c.start();
    wait_comm(pid, "sleep");
    let me = std::process::id() as i32;
    for (_, link) in KINDS {
        assert_ne!(
            ns(pid, link),
            ns(me, link),
            "{link} namespace is the host's"
        );
    }
    // pid 1 inside its own pid namespace
    let nspid = status_field(pid, "NSpid");
    assert!(
        nspid.ends_with("\t1") || nspid.ends_with(" 1"),
        "NSpid: {nspid}"
    );
    // the user namespace is not asked for: the host's
    assert_eq!(ns(pid, "user"), ns(me, "user"));
}

#[test]
fn unlisted_namespaces_are_the_hosts() {
    let mut c = Ctr::new("ns-host");
    c.set("/linux/namespaces", json!([{"type": "mount"}]));
    c.set("/hostname", json!(null));
    // sysfs needs a network namespace of its own or host networking; /sys/fs/cgroup without
    // cgroupns is a bind of the container's cgroup
    let pid = c.start();
    wait_comm(pid, "sleep");
    let me = std::process::id() as i32;
    for (_, link) in KINDS {
        if *link == "mnt" {
            assert_ne!(ns(pid, link), ns(me, link));
        } else {
            assert_eq!(ns(pid, link), ns(me, link), "{link} should be shared");
        }
    }
}

#[test]
fn namespaces_are_joined_by_path() {
    let a = Ctr::new("ns-join-a");
    let pa = a.start();
    wait_comm(pa, "sleep");
    let mut b = Ctr::new("ns-join-b");
    b.set(
        "/linux/namespaces",
        json!([
            {"type": "pid", "path": format!("/proc/{pa}/ns/pid")},
            {"type": "network", "path": format!("/proc/{pa}/ns/net")},
            {"type": "ipc", "path": format!("/proc/{pa}/ns/ipc")},
            {"type": "uts", "path": format!("/proc/{pa}/ns/uts")},
            {"type": "mount"},
            {"type": "cgroup"}
        ]),
    );
    b.set("/hostname", json!(null));
    let pb = b.start();
    wait_comm(pb, "sleep");
    for link in ["pid", "net", "ipc", "uts"] {
        assert_eq!(ns(pa, link), ns(pb, link), "{link} not joined");
    }
    assert_ne!(ns(pa, "mnt"), ns(pb, "mnt"));
    // b lives in a's pid namespace: it is not pid 1 there
    let nspid = status_field(pb, "NSpid");
    let inner: i32 = nspid.split_whitespace().last().unwrap().parse().unwrap();
    assert!(inner > 1, "NSpid {nspid}");
}

#[test]
fn hostname_and_domainname_are_set() {
    let mut c = Ctr::new("ns-uts");
    c.set("/hostname", json!("box1"));
    c.set("/domainname", json!("example.test"));
    c.args(&["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "box1\nexample.test\n");
    c.assert_gone();
}

#[test]
fn hostname_without_uts_namespace_is_refused() {
    let mut c = Ctr::new("ns-uts-missing");
    c.set(
        "/linux/namespaces",
        json!([{"type": "pid"}, {"type": "mount"}]),
    );
    let (code, _, err) = c.run();
    assert_eq!(code, 1);
    assert!(
        err.contains("hostname: setting a hostname needs a new uts namespace"),
        "{err}"
    );
    c.assert_gone();
}
