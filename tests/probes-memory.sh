#!/bin/bash
# The release build's pod monitor with five containers, each with an HTTP readiness probe and
# a tcpSocket liveness probe every second (ten probes a second), stays within 2 MiB RSS; with
# MEASURE_ALL=1 it also reports HTTPS and gRPC probes (not asserted). Every probe must pass.
# Usage: tests/probes-memory.sh RELEASE_BINARY
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=$(realpath "$1")
W=$(mktemp -d /run/berth-probes-mem.XXXXXX)
export BERTH_DATA_ROOT=$W/data BERTH_LOG_ROOT=$W/logs BERTH_CNI_CONF_DIR=$W/net.d BERTH_CGROUP_PARENT=/berth-probes-mem-$$
R="$B --root $W/run"
cleanup() {
    for id in $(ls "$W/run/pods" 2>/dev/null); do $R pod rm -f "$id" >/dev/null 2>&1 || true; done
    rm -rf "$W"
    rmdir /sys/fs/cgroup/*/berth-probes-mem-$$ 2>/dev/null || true
}
trap cleanup EXIT
$B image import --name localhost/fx "$top/rootfs-fixtures/build/images/oci" >/dev/null
# host network: ports of their own, above the ephemeral range's usual start
base=$(( 20000 + ($$ % 2000) * 5 ))
pod() { # NAME PROBE-MAKER
    printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  hostNetwork: true\n  containers:\n' "$1"
    for i in 0 1 2 3 4; do
        port=$((base + i))
        printf '  - name: c%s\n    image: "localhost/fx:base"\n    imagePullPolicy: Never\n' $i
        printf "    command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p %s -h /www']\n" $port
        "$2" $port
    done
}
http_tcp() {
    printf '    readinessProbe:\n      httpGet: {path: /, port: %s}\n      periodSeconds: 1\n' "$1"
    printf '    livenessProbe:\n      tcpSocket: {port: %s}\n      periodSeconds: 1\n' "$1"
}
measure() { # NAME PROBE-MAKER LIMIT-KIB(0: report only)
    pod "$1" "$2" > "$W/$1.yaml"
    $R pod run --detach "$W/$1.yaml" >/dev/null
    local st; st=$($R pod inspect "$1")
    local id; id=$(echo "$st" | jq -r .id)
    local mon; mon=$(echo "$st" | jq -r .monitor_pid)
    sleep 4
    # 20 samples over 10 s, from /proc only (a berth command would talk to the monitor)
    local rss=0 pss=0 r p
    for _ in $(seq 20); do
        r=$(awk '/^VmRSS/{print $2}' /proc/"$mon"/status)
        p=$(awk '/^Pss:/{print $2}' /proc/"$mon"/smaps_rollup)
        [ "$r" -gt "$rss" ] && rss=$r
        [ "$p" -gt "$pss" ] && pss=$p
        sleep 0.5
    done
    st=$($R pod inspect "$1")
    local ready; ready=$(echo "$st" | jq '[.containers[] | select(.status.ready)] | length')
    local failures; failures=$(echo "$st" | jq '[.containers[].status.probe_failures // 0] | add')
    echo "$1: monitor peak RSS $rss KiB, peak PSS $pss KiB (20 samples in 10 s), 10 probes/s, $ready/5 ready, $failures probe failures"
    $R pod rm -f "$id" >/dev/null
    [ "$ready" = 5 ] || { echo "FAIL: $1: $ready/5 ready"; exit 1; }
    if [ "$3" -gt 0 ] && [ "$rss" -gt "$3" ]; then
        echo "FAIL: $1: monitor RSS $rss KiB > $3 KiB"
        exit 1
    fi
}
measure http-tcp http_tcp 2048
if [ "${MEASURE_ALL:-}" = 1 ]; then
    # HTTPS (openssl s_server, self-signed) and gRPC (examples/grpc_health) servers on the
    # host, probed from host-network pods: reported, not asserted
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=probe -keyout "$W/k" -out "$W/c" 2>/dev/null
    servers=()
    for i in 0 1 2 3 4; do
        openssl s_server -quiet -www -accept $((base + 10 + i)) -key "$W/k" -cert "$W/c" </dev/null >/dev/null 2>&1 &
        servers+=($!)
    done
    cargo build -q --example grpc_health --manifest-path "$top/Cargo.toml"
    "$top/target/debug/examples/grpc_health" $((base + 20)) $((base + 21)) $((base + 22)) $((base + 23)) $((base + 24)) &
    servers+=($!)
    trap 'kill "${servers[@]}" 2>/dev/null; cleanup' EXIT
    sleep 1
    https() {
        printf '    readinessProbe:\n      httpGet: {scheme: HTTPS, path: /, port: %s}\n      periodSeconds: 1\n' $(($1 + 10))
        printf '    livenessProbe:\n      tcpSocket: {port: %s}\n      periodSeconds: 1\n' "$1"
    }
    grpc() {
        printf '    readinessProbe:\n      grpc: {port: %s}\n      periodSeconds: 1\n' $(($1 + 20))
        printf '    livenessProbe:\n      tcpSocket: {port: %s}\n      periodSeconds: 1\n' "$1"
    }
    measure https-tcp https 0
    measure grpc-tcp grpc 0
fi
echo "probes-memory: ok"
