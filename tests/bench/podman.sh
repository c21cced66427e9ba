#!/bin/bash
# `podman run --rm true` with berth, runc and crun as the runtime, side by side (medians).
# podman and conmon are configured from files in a private directory; runc and crun cannot lower
# limits they may not raise, so nproc is set within this host's limit.
# Usage: podman.sh BERTH_BINARY RUNS   (called by bench.sh, inside its mount namespace)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/clients/lib.sh"
berth=$(realpath "$1")
runs=$2

P=$(mktemp -d /run/berth-bench-podman.XXXXXX)
remember_paths /run/containers /var/lib/containers /etc/containers/networks /run/libpod
export CONTAINERS_CONF=$P/containers.conf CONTAINERS_STORAGE_CONF=$P/storage.conf CONTAINERS_REGISTRIES_CONF=$P/registries.conf
cleanup() {
    podman system reset -f >/dev/null 2>&1 || true
    unmount_below "$P"
    rm -rf "$P"
    forget_paths
}
trap cleanup EXIT

cat > "$P/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$P/tmp"
volume_path = "$P/volumes"
runtime_supports_json = ["berth", "crun", "runc"]
[engine.runtimes]
berth = ["$berth"]
runc = ["$(command -v runc)"]
crun = ["$(command -v crun)"]
[network]
network_config_dir = "$P/networks"
CONF
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$P" "$P" > "$P/storage.conf"
echo 'unqualified-search-registries = []' > "$P/registries.conf"
tar -C "$(rootfs_fixture)" -c . | podman import -q - localhost/busybox:bench >/dev/null

hyperfine -N -w 2 -r "$runs" --export-json "$P/podman.json" \
    "podman --runtime berth run --rm localhost/busybox:bench true" \
    "podman --runtime runc run --rm localhost/busybox:bench true" \
    "podman --runtime crun run --rm localhost/busybox:bench true" >/dev/null 2>"$P/err" ||
    { cat "$P/err" >&2; exit 1; }
jq -r '[.results[].median * 1000] | @tsv' "$P/podman.json"
