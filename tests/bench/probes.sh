#!/bin/bash
# Probes, side by side with podman in one run: 20 pods (berth) or containers (podman), each an
# HTTP server probed every 5 s, for SECONDS (default 60); the CPU of everything that probes,
# from a cpuacct cgroup of the bench's own holding it (ns, exact, children included):
#  - berth, httpGet readiness probes: the pods' monitors (and keepers), started in the cgroup;
#  - berth, exec probes (`wget` in the container, as podman's healthcheck): the same, with the
#    `berth exec` processes the monitors start;
#  - podman: `podman healthcheck run` of each container every 5 s from a loop in the cgroup
#    (podman's systemd timers cannot run here), its health command the same `wget`. A conmon
#    podman moves to a cgroup of its own is not counted: podman's figure is a floor.
# The processes the probes' commands run in the containers are in the containers' cgroups
# (not counted) on both sides; berth's network probes run none.
# Usage: probes.sh BERTH_RELEASE_BINARY
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/clients/lib.sh"
. "$top/tests/bench/podman-env.sh"
in_crun_namespace "$0" "$@"
berth=$(realpath "$1")
n=${BENCH_PROBE_PODS:-20}
secs=${BENCH_PROBE_SECONDS:-60}
P=$(mktemp -d /run/berth-bench-probes.XXXXXX)
remember_paths /run/containers /var/lib/containers /etc/containers/networks /run/libpod
podman_env "$P"
export BERTH_DATA_ROOT=$P/data BERTH_LOG_ROOT=$P/logs BERTH_CNI_CONF_DIR=$P/net.d BERTH_CGROUP_PARENT=/berth-bench-probes \
    BERTH_CNI_IPAM_DIR=$P/ipam BERTH_DEFAULT_BRIDGE=bp0 BERTH_DEFAULT_SUBNET=10.81.0.0/24
B="$berth --root $P/run"
CG=/sys/fs/cgroup/cpuacct/berth-bench-probes-$$
libpod_before=$(ls -d /sys/fs/cgroup/memory/libpod_parent 2>/dev/null || true)
cleanup() {
    for id in $(ls "$P/run/pods" 2>/dev/null); do $B pod rm -f "$id" >/dev/null 2>&1 || true; done
    [ -e "$P/storage.conf" ] && podman rm -af -t 0 >/dev/null 2>&1 || true
    podman_reset "$P"
    for c in $(pgrep -f "conmon .*$P/" || true); do
        for k in $(pgrep -P "$c" || true); do kill -9 "$k" 2>/dev/null || true; done
        kill -9 "$c" 2>/dev/null || true
    done
    if [ -z "$libpod_before" ]; then
        for d in /sys/fs/cgroup/*/libpod_parent; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        done
    fi
    ip link del bp0 2>/dev/null || true
    for t in nat filter; do
        { iptables -w -t $t -S 2>/dev/null | grep -E '^-A (POSTROUTING|FORWARD) .*"berth network bp0"' | sed 's/^-A/-D/' |
            while read -r r; do eval iptables -w -t $t "$r"; done; } || true
        for c in BERTH-NAT-bp0 BERTH-FWD-bp0; do
            { iptables -w -t $t -F $c && iptables -w -t $t -X $c; } 2>/dev/null || true
        done
    done
    # whatever is left in the measuring cgroup is ours
    for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    rmdir "$CG" 2>/dev/null || true
    for d in /sys/fs/cgroup/*/berth-bench-probes /sys/fs/cgroup/berth-bench-probes; do rmdir "$d" 2>/dev/null || true; done
    unmount_below "$P"
    rm -rf "$P"
    forget_paths
}
trap cleanup EXIT
mkdir -p "$CG" "$P/net.d"
in_cg() { bash -c "echo \$\$ > $CG/cgroup.procs && exec \"\$@\"" -- "$@"; }
usage() { cat "$CG/cpuacct.usage"; }

SERVE="mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
WGET="wget -q -O /dev/null http://127.0.0.1:8080/"
$berth image import --name localhost/fx "$top/rootfs-fixtures/build/images/oci" >/dev/null
manifest() { # NAME PROBE
    printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers:\n  - name: c\n    image: "localhost/fx:base"\n    imagePullPolicy: Never\n    command: [sh, -c, "%s"]\n    readinessProbe:\n%b      periodSeconds: 5\n' "$1" "$SERVE" "$2"
}
berth_run() { # KIND PROBE: n pods started in the cgroup, SECONDS measured once all are ready
    for i in $(seq "$n"); do manifest "$1$i" "$2" > "$P/$1$i.yaml"; done
    for i in $(seq "$n"); do in_cg $B pod run --detach "$P/$1$i.yaml" >/dev/null; done
    local t=0
    while [ "$($B pod ls | awk -v k="^$1" '$2 ~ k && $6 == "1/1"' | wc -l)" != "$n" ]; do
        sleep 0.5; t=$((t + 1)); [ $t -lt 120 ] || { echo "FAIL: $1 pods never ready"; exit 1; }
    done
    fails() { $B pod ls --format json | jq '[.[].containers[].status.probe_failures // 0] | add'; }
    local f0; f0=$(fails)
    local a; a=$(usage); sleep "$secs"; local b; b=$(usage)
    local failures; failures=$(( $(fails) - f0 ))
    for i in $(seq "$n"); do $B pod rm -f "$1$i" >/dev/null; done
    echo $(( b - a )) "$failures"
}
read -r http_ns http_fail < <(berth_run h "      httpGet: {path: /, port: 8080}\n")
read -r exec_ns exec_fail < <(berth_run x "      exec: {command: [sh, -c, \"$WGET\"]}\n")

# --- podman: private configuration, the same busybox rootfs as an image
podman_private "$P"
for i in $(seq "$n"); do
    podman run -d --name "pp$i" --network none --health-cmd "$WGET" --health-interval disable \
        localhost/busybox:bench sh -c "$SERVE" >/dev/null
done
sleep 1
cat > "$P/loop.sh" <<LOOP
end=\$(( \$(date +%s) + $secs ))
while [ \$(date +%s) -lt \$end ]; do
    next=\$(( \$(date +%s%N) + 5000000000 ))
    for i in \$(seq $n); do podman healthcheck run "pp\$i" >/dev/null 2>&1 || echo fail >> "$P/podman-failures"; done
    now=\$(date +%s%N)
    [ \$now -lt \$next ] && sleep "\$(awk -v d=\$(( next - now )) 'BEGIN { print d / 1e9 }')"
done
LOOP
a=$(usage)
in_cg bash "$P/loop.sh"
b=$(usage)
podman_ns=$(( b - a ))
podman_fail=0
[ -f "$P/podman-failures" ] && podman_fail=$(wc -l < "$P/podman-failures")
podman rm -af -t 0 >/dev/null 2>&1 || true

echo "berth: $($berth --version | head -1); podman $(podman --version | awk '{print $3}')"
echo "$n pods, each probed every 5 s, for $secs s; CPU of everything that probes (cpuacct)"
echo
ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1e6 }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }
printf "%-52s %10s %10s %9s\n" "" "CPU ms" "vs podman" "failures"  # (failures while measured)
printf "%-52s %10s %10s %9s\n" "berth, httpGet probes (the monitors, no process)" "$(ms "$http_ns")" "$(div "$http_ns" "$podman_ns")" "$http_fail"
printf "%-52s %10s %10s %9s\n" "berth, exec probes (wget in the container)" "$(ms "$exec_ns")" "$(div "$exec_ns" "$podman_ns")" "$exec_fail"
printf "%-52s %10s %10s %9s\n" "podman healthcheck run (wget in the container)" "$(ms "$podman_ns")" "1.0000" "$podman_fail"
echo
echo "target: berth's probes <= 0.2x podman's CPU, and no process per network probe"
