#!/bin/bash
# Pod starts through the CRI: berth serve vs containerd 1.6 (Debian's, its CRI plugin, runc as
# its runtime), side by side in one run, driven by the same client (examples/cri_bench.rs),
# with the same CNI configuration and the same image from the same local registry.
# Reports p50/p99 of RunPodSandbox + CreateContainer + StartContainer (busybox `sleep`),
# PARALLEL pods started at once, and each daemon's RSS idle and with those pods running.
# Everything lives in this run's own directories and is removed at the end.
# Usage: cri.sh BERTH_RELEASE_BINARY   (env: BENCH_CRI_RUNS, default 50; BENCH_CRI_PARALLEL, 100)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/clients/lib.sh"
berth=$(realpath "$1")
runs=${BENCH_CRI_RUNS:-50}
parallel=${BENCH_CRI_PARALLEL:-100}
(cd "$top" && cargo build -q --example cri_bench)
client=$top/target/debug/examples/cri_bench

W=$(mktemp -d /run/berth-bench-cri.XXXXXX)
remember_paths /run/containerd /var/lib/cni/results
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    # containerd's shims outlive it: end those of this run (their -address names our socket)
    for p in $(pgrep -f "containerd-shim.*-address $W/" || true); do kill -9 "$p" 2>/dev/null || true; done
    for p in $(pgrep -f "__pod-monitor $W/" || true); do kill -9 "$p" 2>/dev/null || true; done
    ip link del bc0 2>/dev/null || true
    for d in /sys/fs/cgroup/*/berth-bench-cri /sys/fs/cgroup/*/k8s.io; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    unmount_below "$W"
    rm -rf "$W"
    forget_paths
}
trap cleanup EXIT

# the registry with the fixture images
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REGISTRY_HTTP_ADDR=127.0.0.1:$port REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$top/rootfs-fixtures/build/images/registry \
    docker-registry serve "$top/rootfs-fixtures/build/images/registry-open.yml" > "$W/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
image=127.0.0.1:$port/berth/base

# one CNI network for both
mkdir -p "$W/net.d"
cat > "$W/net.d/10-bench.conflist" <<NET
{"cniVersion": "1.0.0", "name": "benchcri", "plugins": [
  {"type": "bridge", "bridge": "bc0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.81.0.0/22"}]], "dataDir": "$W/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
NET

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# run the client; the daemon's RSS is read while the parallel pods run
drive() { # SOCKET DAEMON_PID LABEL
    local hold=$W/hold.$3
    touch "$hold"
    CRI_BENCH_HOLD=$hold CRI_BENCH_LOGS=$W/logs-$3 "$client" "$1" "$image" "$runs" "$parallel" > "$W/$3.json" &
    local c=$!
    while ! [ -s "$W/$3.json" ]; do kill -0 $c 2>/dev/null || { cat "$W/$3.json"; fail "$3: the client failed"; }; sleep 0.1; done
    echo "$(rss "$2")" > "$W/$3.rss_busy"
    # the per-pod processes: berth's pod monitors, containerd's shims
    local per=0 p
    for p in $(pgrep -f "__pod-monitor $W/|containerd-shim.*-address $W/" || true); do
        per=$((per + $(rss "$p" || echo 0)))
    done
    echo "$per" > "$W/$3.rss_pods"
    rm -f "$hold"
    wait $c
}

# --- berth
cat > "$W/berth.toml" <<EOF
listen = "unix://$W/berth.sock"
state_root = "$W/berth-run"
data_root = "$W/berth-data"
log_root = "$W/berth-logs"
cgroup_parent = "/berth-bench-cri"
[cni]
conf_dir = "$W/net.d"
ipam_dir = "$W/ipam-default"
EOF
"$berth" serve --config "$W/berth.toml" > "$W/berth.log" 2>&1 &
bpid=$!; pids+=($bpid)
for _ in $(seq 100); do [ -S "$W/berth.sock" ] && break; sleep 0.05; done
sleep 0.5
rss "$bpid" > "$W/berth.rss_idle"
drive "$W/berth.sock" "$bpid" berth
kill "$bpid"; wait "$bpid" 2>/dev/null || true

# --- containerd 1.6 with its CRI plugin, runc, the same CNI and registry
mkdir -p "$W/ctrd"
tar -C "$(rootfs_fixture)" -cf "$W/layer.tar" .
ld=$(sha256sum "$W/layer.tar" | cut -d' ' -f1)
mkdir -p "$W/pause/layer" && mv "$W/layer.tar" "$W/pause/layer/layer.tar"
echo "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sleep\",\"1000000000\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$ld\"]}}" > "$W/pause/c.json"
cd_=$(sha256sum "$W/pause/c.json" | cut -d' ' -f1); mv "$W/pause/c.json" "$W/pause/$cd_.json"
echo "[{\"Config\":\"$cd_.json\",\"RepoTags\":[\"localhost/pause:bench\"],\"Layers\":[\"layer/layer.tar\"]}]" > "$W/pause/manifest.json"
tar -C "$W/pause" -cf "$W/pause.tar" .
cat > "$W/containerd.toml" <<EOF
version = 2
root = "$W/ctrd/root"
state = "$W/ctrd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$W/containerd.sock"
[ttrpc]
  address = "$W/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:bench"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:$port"]
    endpoint = ["http://127.0.0.1:$port"]
EOF
containerd --config "$W/containerd.toml" > "$W/containerd.log" 2>&1 &
cpid=$!; pids+=($cpid)
for _ in $(seq 200); do [ -S "$W/containerd.sock" ] && break; sleep 0.05; done
ctr --address "$W/containerd.sock" -n k8s.io images import "$W/pause.tar" >/dev/null
sleep 0.5
rss "$cpid" > "$W/containerd.rss_idle"
drive "$W/containerd.sock" "$cpid" containerd

j() { jq -r ".$2" "$W/$1.json"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "berth: $("$berth" --version | head -1); containerd: $(containerd --version | awk '{print $3}') (runc $(runc --version | head -1 | awk '{print $3}'))"
echo "pod start = RunPodSandbox + CreateContainer + StartContainer (busybox sleep), $runs runs; then $parallel at once"
echo
printf "%-34s %10s %12s %16s\n" "" "berth" "containerd" "berth/containerd"
for k in p50_ms p99_ms run_p50_ms create_p50_ms start_p50_ms parallel_total_ms; do
    printf "%-34s %10.1f %12.1f %16s\n" "$k" "$(j berth $k)" "$(j containerd $k)" "$(div "$(j berth $k)" "$(j containerd $k)")"
done
printf "%-34s %10d %12d %16s\n" "daemon RSS idle (KiB)" "$(cat "$W/berth.rss_idle")" "$(cat "$W/containerd.rss_idle")" "$(div "$(cat "$W/berth.rss_idle")" "$(cat "$W/containerd.rss_idle")")"
printf "%-34s %10d %12d %16s\n" "daemon RSS, $parallel pods (KiB)" "$(cat "$W/berth.rss_busy")" "$(cat "$W/containerd.rss_busy")" "$(div "$(cat "$W/berth.rss_busy")" "$(cat "$W/containerd.rss_busy")")"
printf "%-34s %10d %12d %16s\n" "per-pod processes' RSS, $parallel pods (KiB)" "$(cat "$W/berth.rss_pods")" "$(cat "$W/containerd.rss_pods")" "$(div "$(cat "$W/berth.rss_pods")" "$(cat "$W/containerd.rss_pods")")"
echo "(per-pod processes: berth's pod monitors and their keepers; containerd's runc v2 shims)"
