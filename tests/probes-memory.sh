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
    local id; id=$($R pod inspect "$1" | jq -r .id)
    sleep 6
    local st; st=$($R pod inspect "$1")
    local ready; ready=$(echo "$st" | jq '[.containers[] | select(.status.ready)] | length')
    local failures; failures=$(echo "$st" | jq '[.containers[].status.probe_failures // 0] | add')
    local mon; mon=$(echo "$st" | jq -r .monitor_pid)
    local rss; rss=$(awk '/^VmRSS/{print $2}' /proc/"$mon"/status)
    local pss; pss=$(awk '/^Pss:/{print $2}' /proc/"$mon"/smaps_rollup)
    echo "$1: monitor RSS $rss KiB, PSS $pss KiB, 10 probes/s, $ready/5 ready, $failures probe failures"
    $R pod rm -f "$id" >/dev/null
    [ "$ready" = 5 ] || { echo "FAIL: $1: $ready/5 ready"; exit 1; }
    if [ "$3" -gt 0 ] && [ "$rss" -gt "$3" ]; then
        echo "FAIL: $1: monitor RSS $rss KiB > $3 KiB"
        exit 1
    fi
}
measure http-tcp http_tcp 2048
echo "probes-memory: ok"
