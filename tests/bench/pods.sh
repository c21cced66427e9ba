#!/bin/bash
# Pods, side by side with podman (crun, conmon, netavark) in one run:
#  - one busybox `sleep` pod, from nothing to its container running: `berth pod run` vs
#    `podman pod create` + `podman run -d --pod`, each on its default bridge network (berth:
#    CNI bridge + host-local, network rules once per network; podman: netavark), on the host's
#    network, and (berth only) on a CNI conflist with per-pod rules (bridge ipMasq + firewall);
#  - 100 pods started at once: total time, and memory per pod beyond the workload (berth: its
#    pod monitor and its keeper; podman: the infra container's pause and the conmons).
# Each side uses its own private directories; everything is removed at the end.
# Usage: pods.sh BERTH_RELEASE_BINARY
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/clients/lib.sh"
. "$top/tests/bench/podman-env.sh"
in_crun_namespace "$0" "$@"
berth=$(realpath "$1")
runs=${BENCH_POD_RUNS:-20}
many=${BENCH_PODS:-100}

P=$(mktemp -d /run/berth-bench-pods.XXXXXX)
remember_paths /run/containers /var/lib/containers /etc/containers/networks /run/libpod
podman_env "$P"
# berth's default network (no CNI configuration), on a bridge and subnet of the bench's own
export BERTH_DATA_ROOT=$P/data BERTH_LOG_ROOT=$P/logs BERTH_CNI_CONF_DIR=$P/net.d BERTH_CGROUP_PARENT=/berth-bench-pods \
    BERTH_CNI_IPAM_DIR=$P/ipam BERTH_DEFAULT_BRIDGE=bb0 BERTH_DEFAULT_SUBNET=10.80.0.0/22
B="$berth --root $P/run"
netns_before=$(ls /run/netns 2>/dev/null || true)
podman0_before=$(ip link show podman0 >/dev/null 2>&1 && echo yes || true)
libpod_before=$(ls -d /sys/fs/cgroup/memory/libpod_parent 2>/dev/null || true)
cleanup() {
    for id in $(ls "$P/run/pods" 2>/dev/null); do $B pod rm -f "$id" >/dev/null 2>&1 || true; done
    [ -e "$P/storage.conf" ] && podman pod rm -af -t 0 >/dev/null 2>&1 || true
    podman_reset "$P"
    # what podman could not remove: its conmons (their command lines name $P) and their children
    for c in $(pgrep -f "conmon .*$P/" || true); do
        for k in $(pgrep -P "$c" || true); do kill -9 "$k" 2>/dev/null || true; done
        kill -9 "$c" 2>/dev/null || true
    done
    # podman's network namespace files of this run (mounted in this private mount namespace)
    for f in $(ls /run/netns 2>/dev/null || true); do
        grep -qx "$f" <<< "$netns_before" && continue
        umount -l "/run/netns/$f" 2>/dev/null || true
        rm -f "/run/netns/$f"
    done
    [ -n "$podman0_before" ] || ip link del podman0 2>/dev/null || true
    if [ -z "$libpod_before" ]; then
        for d in /sys/fs/cgroup/*/libpod_parent; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        done
    fi
    ip link del bb0 2>/dev/null || true
    ip link del bb1 2>/dev/null || true
    # berth removes its network rules with the last pod; these only matter after a crash
    for t in nat filter; do
        { iptables -w -t $t -S 2>/dev/null | grep -E '^-A (POSTROUTING|FORWARD) .*"berth network bb0"' | sed 's/^-A/-D/' |
            while read -r r; do eval iptables -w -t $t "$r"; done; } || true
        for c in BERTH-NAT-bb0 BERTH-FWD-bb0; do
            { iptables -w -t $t -F $c && iptables -w -t $t -X $c; } 2>/dev/null || true
        done
    done
    for d in /sys/fs/cgroup/*/berth-bench-pods /sys/fs/cgroup/berth-bench-pods; do rmdir "$d" 2>/dev/null || true; done
    unmount_below "$P"
    rm -rf "$P"
    forget_paths
}
trap cleanup EXIT

# --- berth: image, networks, manifests
# a CNI configuration as third-party ones are written (per-pod iptables rules by the bridge
# plugin's ipMasq and by the firewall plugin), for one informative row
mkdir -p "$P/net.d" "$P/conflist.d"
cat > "$P/conflist.d/10-bench.conflist" <<NET
{"cniVersion": "1.0.0", "name": "bench", "plugins": [
  {"type": "bridge", "bridge": "bb1", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.80.4.0/22"}]], "dataDir": "$P/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "firewall"}]}
NET
$berth image import --name localhost/fx "$top/rootfs-fixtures/build/images/oci" >/dev/null
manifest() { # NAME HOSTNET
    printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  hostNetwork: %s\n  containers:\n  - {name: c, image: "localhost/fx:base", imagePullPolicy: Never, command: [sleep, "100000"]}\n' "$1" "$2"
}
manifest bench false > "$P/cni.yaml"
manifest bench true > "$P/host.yaml"
for i in $(seq "$many"); do manifest "p$i" false > "$P/many-$i.yaml"; done

# --- podman: private configuration, the same busybox rootfs as an image
podman_private "$P"

echo "berth: $($berth --version | head -1); podman: $(podman --version) (crun $(crun --version | head -1 | awk '{print $3}'), netavark)"
echo "$runs runs per figure, medians; then $many pods at once"
echo
json=$P/one.json
hyperfine -S bash -r "$runs" -w 2 --export-json "$json" \
    -n "berth, default network (CNI bridge)" --prepare "$B pod rm -f bench >/dev/null 2>&1 || true" "$B pod run $P/cni.yaml >/dev/null" \
    -n "podman, netavark bridge" --prepare "podman pod rm -f -t 0 bench >/dev/null 2>&1 || true" \
        "podman pod create --name bench >/dev/null && podman run -d --pod bench localhost/busybox:bench sleep 100000 >/dev/null" \
    -n "berth, host network" --prepare "$B pod rm -f bench >/dev/null 2>&1 || true" "$B pod run $P/host.yaml >/dev/null" \
    -n "podman, host network" --prepare "podman pod rm -f -t 0 bench >/dev/null 2>&1 || true" \
        "podman pod create --name bench --network host >/dev/null && podman run -d --pod bench localhost/busybox:bench sleep 100000 >/dev/null" \
    -n "berth, CNI conflist with per-pod rules" --prepare "$B pod rm -f bench >/dev/null 2>&1 || true" \
        "BERTH_CNI_CONF_DIR=$P/conflist.d $B pod run $P/cni.yaml >/dev/null" \
    >/dev/null
$B pod rm -f bench >/dev/null 2>&1 || true
podman pod rm -f -t 0 bench >/dev/null 2>&1 || true
med() { jq -r ".results[$1].median * 1000" "$json"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf "%-36s %9s %9s %12s\n" "one pod until its container runs" "berth ms" "podman ms" "berth/podman"
printf "%-36s %9.1f %9.1f %12s\n" "default bridge network" "$(med 0)" "$(med 1)" "$(div "$(med 0)" "$(med 1)")"
printf "%-36s %9.1f %9.1f %12s\n" "host network" "$(med 2)" "$(med 3)" "$(div "$(med 2)" "$(med 3)")"
printf "%-36s %9.1f %9.1f %12s\n" "bridge, conflist ipMasq+firewall" "$(med 4)" "$(med 1)" "$(div "$(med 4)" "$(med 1)")"
echo

# --- many pods at once
t0=$(date +%s%N)
seq "$many" | xargs -P "$many" -I{} sh -c "$B pod run $P/many-{}.yaml >/dev/null"
tb=$(( ($(date +%s%N) - t0) / 1000000 ))
running=$($B ps | grep -c Running || true)
# memory of the pod monitors (RSS, and PSS: shared pages divided among their sharers)
mon=$(pgrep -f "__pod-monitor $P/run" || true)
sum() { for p in $mon; do awk -v k="$1:" '$1 == k {print $2}' "/proc/$p/smaps_rollup"; done | awk '{s += $1} END {print s + 0}'; }
b_rss=$(sum Rss); b_pss=$(sum Pss); nmon=$(echo "$mon" | wc -w)
t0=$(date +%s%N)
seq "$many" | xargs -P "$many" -I{} sh -c "podman pod create --name q{} >/dev/null && podman run -d --pod q{} localhost/busybox:bench sleep 100000 >/dev/null"
tp=$(( ($(date +%s%N) - t0) / 1000000 ))
prunning=$(podman ps -q --filter status=running | wc -l)
# podman's per-pod processes: the infra container's pause (catatonit) and a conmon per container
pids=$( (pgrep -x conmon; pgrep -f 'catatonit -P') 2>/dev/null || true)
psum() { for p in $pids; do awk -v k="$1:" '$1 == k {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
p_rss=$(psum Rss); p_pss=$(psum Pss)
printf "%-36s %9s %9s %12s\n" "$many pods at once" "berth" "podman" "berth/podman"
printf "%-36s %9d %9d %12s\n" "total start time (ms)" "$tb" "$tp" "$(div "$tb" "$tp")"
printf "%-36s %9d %9d\n" "containers running" "$running" "$prunning"
printf "%-36s %9.0f %9.0f %12s\n" "RSS per pod, runtime's processes (KiB)" "$(div "$b_rss" "$many")" "$(div "$p_rss" "$many")" "$(div "$b_rss" "$p_rss")"
printf "%-36s %9.0f %9.0f %12s\n" "PSS per pod (KiB)" "$(div "$b_pss" "$many")" "$(div "$p_pss" "$many")" "$(div "$b_pss" "$p_pss")"
echo "($nmon berth processes, a monitor and its keeper per pod; podman: $(echo "$pids" | wc -w) conmon and pause processes)"
