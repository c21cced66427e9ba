//! User and time namespaces: maps written by the parent, ids as the host sees them, devices
//! bound from the host, joining by path, exec; time offsets.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use serde_json::json;

const HOST_ID: u32 = 100_000;

/// A container in a new user namespace mapping 0..65536 to HOST_ID.., its rootfs owned by the
/// mapped root.
fn userns_ctr(name: &str) -> Ctr {
    let mut c = Ctr::new(name);
    let mut nss = c.config["linux"]["namespaces"].as_array().unwrap().clone();
    nss.push(json!({"type": "user"}));
    c.set("/linux/namespaces", json!(nss));
    let map = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    c.set("/linux/uidMappings", map.clone());
    c.set("/linux/gidMappings", map);
    let st = Command::new("chown")
        .args([
            "-R",
            &format!("{HOST_ID}:{HOST_ID}"),
            c.bundle.join("rootfs").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    c
}

#[test]
fn user_namespace_maps_ids() {
    let mut c = userns_ctr("userns-maps");
    let shared = c.dir.join("shared");
    fs::create_dir_all(&shared).unwrap();
    Command::new("chown")
        .args([&format!("{HOST_ID}:{HOST_ID}"), shared.to_str().unwrap()])
        .status()
        .unwrap();
    let mut ms = c.config["mounts"].as_array().unwrap().clone();
    ms.push(
        json!({"destination": "/shared", "type": "bind", "source": shared, "options": ["bind"]}),
    );
    c.set("/mounts", json!(ms));
    c.args(&[
        "sh",
        "-c",
        "touch /shared/made; echo x > /dev/null && sleep 1000",
    ]);
    let pid = c.start();
    wait_comm(pid, "sleep");
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/uid_map"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/gid_map"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    // uid 0 inside is 100000 on the host
    assert_eq!(status_field(pid, "Uid"), "100000\t100000\t100000\t100000");
    assert_ne!(ns(pid, "user"), ns(std::process::id() as i32, "user"));
    use std::os::unix::fs::MetadataExt;
    let made = fs::metadata(shared.join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (HOST_ID, HOST_ID));
    // exec joins the user namespace too
    let out = c.berth(&["exec", &c.id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("0\n"), "{text}");
    assert!(text.contains("100000"), "{text}");
}

#[test]
fn user_namespace_container_runs_with_its_own_root() {
    let mut c = userns_ctr("userns-run");
    c.args(&["sh", "-c", "id -u; id -g; ls -ln / | grep ' bin$' | awk '{print $3}'; cat /proc/self/status | grep CapEff"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], &["0", "0", "0"], "{out}");
    // base.json's three capabilities, held in the user namespace
    assert_eq!(lines[3], "CapEff:\t0000000020000420");
    c.assert_gone();
}

#[test]
fn user_namespace_is_joined_by_path() {
    let a = userns_ctr("userns-a");
    let pa = a.start();
    wait_comm(pa, "sleep");
    let mut b = Ctr::new("userns-b");
    Command::new("chown")
        .args([
            "-R",
            &format!("{HOST_ID}:{HOST_ID}"),
            b.bundle.join("rootfs").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    b.set(
        "/linux/namespaces",
        json!([
            {"type": "user", "path": format!("/proc/{pa}/ns/user")},
            {"type": "network", "path": format!("/proc/{pa}/ns/net")},
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
        ]),
    );
    let pb = b.start();
    wait_comm(pb, "sleep");
    assert_eq!(ns(pa, "user"), ns(pb, "user"));
    assert_eq!(ns(pa, "net"), ns(pb, "net"));
    assert_eq!(status_field(pb, "Uid"), "100000\t100000\t100000\t100000");
}

#[test]
fn new_user_namespace_with_joined_namespaces_is_refused() {
    let mut c = userns_ctr("userns-mixed");
    let mut nss = c.config["linux"]["namespaces"].as_array().unwrap().clone();
    nss.retain(|n| n["type"] != "network");
    nss.push(json!({"type": "network", "path": "/proc/1/ns/net"}));
    c.set("/linux/namespaces", json!(nss));
    let (code, _, err) = c.run();
    assert_eq!(code, 1);
    assert!(
        err.contains("linux.namespaces: a new user namespace cannot be combined"),
        "{err}"
    );
    c.assert_gone();
}

#[test]
fn time_namespace_offsets() {
    let mut c = Ctr::new("timens");
    let mut nss = c.config["linux"]["namespaces"].as_array().unwrap().clone();
    nss.push(json!({"type": "time"}));
    c.set("/linux/namespaces", json!(nss));
    c.set(
        "/linux/timeOffsets",
        json!({"boottime": {"secs": 864000}, "monotonic": {"secs": 3600, "nanosecs": 5}}),
    );
    let pid = c.start();
    wait_comm(pid, "sleep");
    assert_ne!(ns(pid, "time"), ns(std::process::id() as i32, "time"));
    let offsets = fs::read_to_string(format!("/proc/{pid}/timens_offsets")).unwrap();
    assert!(
        offsets.contains("monotonic") && offsets.contains("3600") && offsets.contains("864000"),
        "{offsets}"
    );
    let out = c.berth(&["exec", &c.id, "cat", "/proc/uptime"]);
    let uptime: f64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        uptime >= host + 863_990.0,
        "container uptime {uptime}, host {host}"
    );
}
