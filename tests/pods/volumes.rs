//! Persistent volumes through `berth kube` and `berth volume`, with real loop devices and
//! ext4 file systems: sizes enforced (ENOSPC, df), data that outlives pods and a simulated
//! reboot, ReadWriteOncePod, read-only mounts, reclaim policies, protection while in use,
//! re-apply semantics, bad input, kill -9 while provisioning, and removal leaving nothing.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use super::env::*;

/// The volumes directory of a test world's data root.
fn vols(e: &PodEnv) -> PathBuf {
    e.dir.join("data/volumes")
}

fn claim(name: &str, size: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: {size}}}}}\n{extra}"
    )
}

/// A pod of one container running `script`, with claim `claim` at /data.
fn pod(e: &PodEnv, name: &str, claim: &str, read_only: bool, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  hostNetwork: true\n  volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim}, readOnly: {read_only}}}}}]\n  containers: [{{name: c, image: {}, command: [sh, -c, {script:?}], volumeMounts: [{{name: d, mountPath: /data}}]}}]\n",
        e.image("base")
    )
}

/// Loop devices backed by files under `dir`.
fn loops_under(dir: &Path) -> Vec<String> {
    fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|b| {
            let f = fs::read_to_string(b.path().join("loop/backing_file")).ok()?;
            f.trim()
                .starts_with(dir.to_str().unwrap())
                .then(|| b.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// Nothing of any volume is left: no record, image, loop device or mount.
fn assert_no_volumes(e: &PodEnv) {
    let v = vols(e);
    for sub in ["pvs", "data", "inflight"] {
        let left: Vec<_> = fs::read_dir(v.join(sub))
            .map(|rd| rd.flatten().map(|x| x.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{sub}: {left:?} left");
    }
    assert_eq!(loops_under(&v), Vec::<String>::new(), "loop devices left");
    assert_eq!(
        super::harness::mounts_under(&v),
        Vec::<String>::new(),
        "mounts left"
    );
}

#[test]
fn a_claims_size_is_enforced_and_its_image_allocated_in_full() {
    let e = PodEnv::new("vol-size");
    e.apply(&claim("data", "64Mi", ""));
    let c = e.get_json(&["pvc", "data"]);
    assert_eq!(c["status"]["phase"], "Bound", "{c}");
    let pv = c["spec"]["volumeName"].as_str().unwrap().to_string();
    // allocated in full: every block of the image is on disk
    let img = vols(&e).join(format!("data/{pv}.img"));
    let m = fs::metadata(&img).unwrap();
    // (st_blocks may count one more block: the host file system's extent tree)
    assert!(m.blocks() * 512 >= m.len(), "the image has holes: {m:?}");
    e.apply(&pod(
            &e,
            "fill",
            "data",
            false,
            "df -k /data | tail -1; dd if=/dev/zero of=/data/big bs=1M count=100 2>&1; echo rc=$?; sleep 1000",
        ),
    );
    let l = e.log_until("fill", "rc=");
    assert!(
        l.contains("No space left on device") && !l.contains("rc=0"),
        "{l}"
    );
    let size_k: u64 = l
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let want = 64 * 1024;
    assert!(
        size_k >= want && size_k <= want + want / 20,
        "df shows {size_k} KiB for a 64 MiB claim"
    );
    // seen from the host: mounted ext4 on a loop device
    assert_eq!(loops_under(&vols(&e)).len(), 1);
    let id = e.pod_id("fill");
    e.ok(&["pod", "rm", "-f", &id]);
    // no pod uses it: detached
    assert_eq!(loops_under(&vols(&e)), Vec::<String>::new());
    e.ok(&["kube", "delete", "pvc", "data"]);
    // the default class deletes: nothing left
    assert_no_volumes(&e);
}

#[test]
fn data_outlives_pods_and_a_reboot_and_rwop_and_readonly_hold() {
    let e = PodEnv::new("vol-keep");
    e.ok(&[
        "volume",
        "create",
        "keep",
        "--size",
        "32Mi",
        "--access-mode",
        "ReadWriteOncePod",
    ]);
    e.apply(&pod(
        &e,
        "w",
        "keep",
        false,
        "echo hello > /data/f && echo wrote; sleep 1000",
    ));
    e.log_until("w", "wrote");
    // ReadWriteOncePod: a second pod is refused, naming the claim and the holder
    let err = e.apply_fails(&pod(&e, "w2", "keep", false, "sleep 1000"));
    assert!(
        err.contains("persistentvolumeclaim default/keep") && err.contains("default/w"),
        "{err}"
    );
    e.ok(&["pod", "rm", "-f", &e.pod_id("w")]);
    // the next pod reads it
    e.apply(&pod(
        &e,
        "r",
        "keep",
        true,
        "cat /data/f; touch /data/x 2>&1; sleep 1000",
    ));
    let l = e.log_until("r", "Read-only");
    assert!(l.contains("hello"), "{l}");
    e.ok(&["pod", "rm", "-f", &e.pod_id("r")]);
    // a simulated reboot: whatever is mounted or attached goes behind berth's back
    e.apply(&pod(&e, "r2", "keep", false, "sleep 1000"));
    for m in super::harness::mounts_under(&vols(&e)).iter().rev() {
        nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    e.ok(&["pod", "rm", "-f", &e.pod_id("r2")]);
    for l in loops_under(&vols(&e)) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &format!("/dev/{l}")])
            .status();
    }
    e.apply(&pod(&e, "r3", "keep", false, "cat /data/f; sleep 1000"));
    e.log_until("r3", "hello");
    // in use: not removed
    let err = e.fails(&["volume", "rm", "keep"]);
    assert!(err.contains("in use by pod default/r3"), "{err}");
    e.ok(&["pod", "rm", "-f", &e.pod_id("r3")]);
    let ls = e.ok(&["volume", "ls"]);
    assert!(
        ls.contains("keep") && ls.contains("32Mi") && ls.contains("default/keep"),
        "{ls}"
    );
    e.ok(&["volume", "rm", "keep"]);
    assert_no_volumes(&e);
}

#[test]
fn reclaim_policies_and_protection_while_in_use() {
    let e = PodEnv::new("vol-reclaim");
    // a volume made by hand keeps its data (Retain): Released, then released by an admin
    e.apply("apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: manual, labels: {tier: gold}}\nspec:\n  capacity: {storage: 32Mi}\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  csi: {driver: berth.io/local, volumeHandle: manual, volumeAttributes: {backend: loopfile, fsType: ext4}}\n",
    );
    e.apply(&claim(
        "gold",
        "16Mi",
        "  storageClassName: \"\"\n  selector: {matchLabels: {tier: gold}}\n",
    ));
    let c = e.get_json(&["pvc", "gold"]);
    assert_eq!(c["spec"]["volumeName"], "manual", "{c}");
    // protection: deleting a claim a pod uses marks it, the pod keeps it
    e.apply(&pod(
        &e,
        "user",
        "gold",
        false,
        "echo kept > /data/f; sleep 1000",
    ));
    e.log_until("user", "");
    e.ok(&["kube", "delete", "pvc", "gold"]);
    let table = e.ok(&["kube", "get", "pvc"]);
    assert!(
        table.contains("gold") && table.contains("Terminating"),
        "{table}"
    );
    e.ok(&["pod", "rm", "-f", &e.pod_id("user")]);
    let err = e.fails(&["kube", "get", "pvc", "gold"]);
    assert!(err.contains("not found"), "{err}");
    let pv = e.get_json(&["pv", "manual"]);
    assert_eq!(pv["status"]["phase"], "Released", "{pv}");
    assert!(
        vols(&e).join("data/manual.img").exists(),
        "Retain lost the data"
    );
    // not bound again until released
    e.apply(&claim("again", "16Mi", "  storageClassName: \"\"\n"));
    assert_eq!(e.get_json(&["pvc", "again"])["status"]["phase"], "Pending");
    e.ok(&["volume", "release", "manual"]);
    let c = e.get_json(&["pvc", "again"]);
    assert_eq!(c["status"]["phase"], "Bound", "{c}");
    e.apply(&pod(&e, "back", "again", false, "cat /data/f; sleep 1000"));
    e.log_until("back", "kept");
    e.ok(&["pod", "rm", "-f", &e.pod_id("back")]);
    e.ok(&["kube", "delete", "pvc", "again"]);
    e.ok(&["kube", "delete", "pv", "manual"]);
    // Retain: deleting the volume keeps its image (applying it again finds it)
    assert!(vols(&e).join("data/manual.img").exists());
    fs::remove_file(vols(&e).join("data/manual.img")).unwrap();
    assert_no_volumes(&e);
}

#[test]
fn apply_is_idempotent_and_refuses_pod_changes_and_bad_input() {
    let e = PodEnv::new("vol-apply");
    let file = format!(
        "{}---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: later}}\nprovisioner: berth.io/local\nvolumeBindingMode: WaitForFirstConsumer\n---\n{}",
        claim("late", "16Mi", "  storageClassName: later\n"),
        pod(&e, "app", "late", false, "sleep 1000")
    );
    let out = e.apply(&file);
    // classes first, the claim (bound for its first consumer), the pod last
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "storageclass/later created",
            "persistentvolumeclaim/late created",
            "pod/app created"
        ],
        "{out}"
    );
    assert_eq!(e.get_json(&["pvc", "late"])["status"]["phase"], "Bound");
    let again = e.apply(&file);
    assert!(again.lines().all(|l| l.ends_with("unchanged")), "{again}");
    let changed = file.replace("sleep 1000", "sleep 999");
    let err = e.apply_fails(&changed);
    assert!(
        err.contains("pod default/app") && err.contains("spec.containers[0].command"),
        "{err}"
    );
    let pods = e.ok(&["kube", "get", "pods"]);
    assert!(
        pods.contains("app") && pods.contains("1/1") && pods.contains("Running"),
        "{pods}"
    );
    let f = e.dir.join("all.yaml");
    fs::write(&f, &file).unwrap();
    let del = e.ok(&["kube", "delete", "-f", f.to_str().unwrap()]);
    assert!(del.starts_with("pod/app deleted"), "{del}");
    assert_no_volumes(&e);
    // bad input: named, nothing stored
    for (yaml, want) in [
        (claim("x", "10Gb", ""), "spec.resources.requests.storage"),
        (claim("x", "-1Gi", ""), "spec.resources.requests.storage"),
        (claim("x", "0", ""), "more than 0"),
        (claim("x", "1Gi", "  volumeMode: Block\n"), "spec.volumeMode"),
        (claim("Bad_Name", "1Gi", ""), "metadata.name"),
        (claim("x", "1Gi", "").replace("ReadWriteOnce", "ReadWriteSometimes"), "spec.accessModes[0]"),
        (
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: p}\nspec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], persistentVolumeReclaimPolicy: Keep, hostPath: {path: /tmp}}\n".into(),
            "spec.persistentVolumeReclaimPolicy",
        ),
        (format!("{}---\n{}", claim("x", "1Gi", ""), claim("x", "2Gi", "")), "already document 1"),
    ] {
        let err = e.apply_fails(&yaml);
        assert!(err.contains(want), "{yaml}\n→ {err}");
    }
    // a claim naming a class that does not exist stays Pending, saying so
    e.apply(&claim("orphan", "1Gi", "  storageClassName: gold\n"));
    let c = e.get_json(&["pvc", "orphan"]);
    assert!(
        c["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("\"gold\" does not exist"),
        "{c}"
    );
    e.ok(&["kube", "delete", "pvc", "orphan"]);
    assert_no_volumes(&e);
}

#[test]
fn a_provisioning_killed_anywhere_leaves_no_half_volume() {
    let e = PodEnv::new("vol-crash");
    for point in [
        "volume-provision:marked",
        "volume-provision:made",
        "volume-provision:recorded",
    ] {
        let f = e.dir.join("c.yaml");
        fs::write(&f, claim("cut", "32Mi", "")).unwrap();
        let out = e
            .cmd(&["kube", "apply", "-f", f.to_str().unwrap()])
            .env("BERTH_FAULT", point)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "{point}: not killed");
        // the next command repairs; a claim left Pending binds to what was recorded, or
        // provisions again
        let c = e.get_json(&["pvc", "cut"]);
        let pvs = fs::read_dir(vols(&e).join("pvs"))
            .map(|r| r.count())
            .unwrap_or(0);
        let images = fs::read_dir(vols(&e).join("data"))
            .map(|r| r.count())
            .unwrap_or(0);
        assert_eq!(
            pvs, images,
            "{point}: storage without a record (or the reverse): {c}"
        );
        e.ok(&["kube", "delete", "pvc", "cut"]);
        assert_no_volumes(&e);
    }
}

#[test]
fn a_volume_create_killed_anywhere_is_undone_or_removable() {
    let e = PodEnv::new("vol-crash-create");
    let create = ["volume", "create", "cut", "--size", "32Mi"];
    for point in [
        "volume-provision:marked",
        "volume-provision:made",
        "volume-create:volume",
    ] {
        let out = e.cmd(&create).env("BERTH_FAULT", point).output().unwrap();
        assert_eq!(out.status.signal(), Some(9), "{point}: not killed");
        // the next command removes half-made storage; a volume recorded without its claim
        // is listed, and `volume rm` removes it
        let ls = e.ok(&["volume", "ls"]);
        if ls.contains("cut") {
            e.ok(&["volume", "rm", "cut"]);
        }
        assert_no_volumes(&e);
        assert!(
            fs::read_dir(vols(&e).join("pvcs/default"))
                .map(|r| r.count())
                .unwrap_or(0)
                == 0,
            "{point}: a claim left"
        );
    }
    // made in one go: the volume and its claim each written once, already bound
    e.ok(&create);
    let c = e.get_json(&["pvc", "cut"]);
    assert_eq!(c["status"]["phase"], "Bound", "{c}");
    assert_eq!(c["spec"]["volumeName"], "cut", "{c}");
    let err = e.fails(&create);
    assert!(err.contains("volume cut already exists"), "{err}");
    e.ok(&["volume", "rm", "cut"]);
    assert_no_volumes(&e);
}

#[test]
fn a_hundred_volumes_attached_at_once() {
    let e = PodEnv::new("vol-many");
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&claim(&format!("c{i}"), "32Mi", ""));
        text.push_str("---\n");
    }
    e.apply(&text);
    // 20 pods of 5 claims each, started at once
    std::thread::scope(|s| {
        for p in 0..20 {
            let e = &e;
            s.spawn(move || {
                let vols: String = (0..5)
                    .map(|k| format!("{{name: v{k}, persistentVolumeClaim: {{claimName: c{}}}}},", p * 5 + k))
                    .collect();
                let mounts: String = (0..5)
                    .map(|k| format!("{{name: v{k}, mountPath: /v{k}}},"))
                    .collect();
                let yaml = format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{p}}}\nspec:\n  hostNetwork: true\n  volumes: [{vols}]\n  containers: [{{name: c, image: {}, command: [sleep, \"1000\"], volumeMounts: [{mounts}]}}]\n",
                    e.image("base")
                );
                e.apply(&yaml);
            });
        }
    });
    assert_eq!(loops_under(&vols(&e)).len(), 100);
    for p in 0..20 {
        e.ok(&["pod", "rm", "-f", &format!("p{p}")]);
    }
    assert_eq!(loops_under(&vols(&e)), Vec::<String>::new());
    let f = e.dir.join("many.yaml");
    fs::write(&f, &text).unwrap();
    e.ok(&["kube", "delete", "-f", f.to_str().unwrap()]);
    assert_no_volumes(&e);
}
