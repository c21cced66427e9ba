//! The embedding example (`examples/two_container_pod.rs`) runs and cleans up after itself.

use std::process::Command;

use super::env::*;

#[test]
fn the_library_example_runs_a_two_container_pod() {
    let e = PodEnv::new("example");
    // cargo test builds the examples next to the test binaries
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/two_container_pod");
    assert!(bin.exists(), "{} not built", bin.display());
    let out = Command::new(&bin)
        .arg(e.image("base"))
        .env("BERTH_ROOT", &e.root)
        .env("BERTH_DATA_ROOT", e.dir.join("data"))
        .env("BERTH_LOG_ROOT", e.dir.join("logs"))
        .env("BERTH_CNI_CONF_DIR", e.dir.join("net.d"))
        .env("BERTH_CGROUP_PARENT", e.cgroup_parent())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the server\n"
    );
    assert!(
        std::fs::read_dir(e.root.join("pods"))
            .unwrap()
            .next()
            .is_none(),
        "the example left its pod"
    );
    assert_eq!(e.bridge_ports(), 0);
}
