#!/bin/bash
# berth vs runc vs crun on one busybox bundle, side by side in the same run: medians and the
# ratio berth/crun. Usage: bench.sh BERTH_RELEASE_BINARY
#
# crun 1.8 refuses this host's hybrid cgroup layout ("cgroups in hybrid mode not supported")
# because /sys/fs/cgroup/unified lists a controller. The whole benchmark therefore runs in a
# private mount namespace where that file reads empty (an empty file bind-mounted over it).
# The host is not changed; berth and runc ignore the file on a hybrid host.
set -euo pipefail

if [ "${BERTH_BENCH_INNER:-}" != 1 ]; then
    empty=$(mktemp)
    trap 'rm -f "$empty"' EXIT
    if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
        echo "note: hybrid cgroups: running in a private mount namespace with an empty"
        echo "      /sys/fs/cgroup/unified/cgroup.controllers so that crun accepts the host"
        exec unshare -m bash -c "mount --bind '$empty' /sys/fs/cgroup/unified/cgroup.controllers && BERTH_BENCH_INNER=1 exec '$0' '$1'"
    fi
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$(realpath "$1")
work=$(mktemp -d /run/berth-bench.XXXXXX)
runs=${BENCH_RUNS:-60}
cleanup() {
    for rt in berth runc crun; do
        for id in $(ls "$work/state-$rt" 2>/dev/null); do "$(bin $rt)" --root "$work/state-$rt" delete --force "$id" >/dev/null 2>&1 || true; done
    done
    rm -rf "$work"
}
trap cleanup EXIT
bin() { case $1 in berth) echo "$berth" ;; *) command -v "$1" ;; esac; }
rt_cmd() { echo "$(bin "$1") --root $work/state-$1"; }

mkdir -p "$work/bundle"
cp -a "$top/rootfs-fixtures/build/busybox" "$work/bundle/rootfs"
jq '.process.args = ["/bin/true"]' "$top/runtime-spec/examples/base.json" > "$work/bundle/config.json"
mkdir -p "$work/bundle-sleep"
jq --arg root "$work/bundle/rootfs" '.process.args = ["sleep", "1000"] | .root.path = $root' \
    "$top/runtime-spec/examples/base.json" > "$work/bundle-sleep/config.json"
B=$work/bundle
S=$work/bundle-sleep

echo "berth: $("$berth" --version | head -1) ($berth)"
echo "runc:  $(runc --version | head -1)"
echo "crun:  $(crun --version | head -1)"
echo "host:  $(uname -r), $(nproc) cpus; hyperfine $runs runs per figure, medians"
echo

median() { jq -r ".results[$2].median * 1000" "$1"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { # label json
    local b r c
    b=$(median "$2" 0); r=$(median "$2" 1); c=$(median "$2" 2)
    printf "%-28s %9.2f %9.2f %9.2f %10s\n" "$1" "$b" "$r" "$c" "$(div "$b" "$c")"
}
# bench LABEL HYPERFINE-ARGS...: "{cmd}" in the arguments becomes each runtime's command line
bench() {
    local label=$1; shift
    local json; json=$work/$(echo "$label" | tr -c 'a-z0-9' _)
    local i=0
    for rt in berth runc crun; do
        local cmd; cmd=$(rt_cmd $rt)
        local a=()
        for x in "$@"; do x=${x//\{cmd\}/$cmd}; a+=("${x//\{rt\}/$rt}"); done
        hyperfine -N -w 3 -r "$runs" --export-json "$json.$i" "${a[@]}" >/dev/null 2>"$json.err" ||
            { cat "$json.err" >&2; exit 1; }
        i=$((i + 1))
    done
    jq -s '{results: [.[].results[0]]}' "$json.0" "$json.1" "$json.2" > "$json.all"
    row "$label" "$json.all"
}

printf "%-28s %9s %9s %9s %10s\n" "median (ms)" berth runc crun "berth/crun"
bench "run /bin/true" "{cmd} run --bundle $B {rt}-r"
bench "create" --prepare "sh -c '{cmd} delete --force {rt}-c >/dev/null 2>&1; true'" --cleanup "sh -c '{cmd} delete --force {rt}-c >/dev/null 2>&1; true'" "{cmd} create --bundle $S {rt}-c"
bench "start" --prepare "sh -c '{cmd} delete --force {rt}-c >/dev/null 2>&1; {cmd} create --bundle $S {rt}-c'" "{cmd} start {rt}-c"
for rt in berth runc crun; do $(rt_cmd $rt) run -d --bundle "$S" $rt-st >/dev/null; done
bench "state" "{cmd} state {rt}-st"
bench "kill" --prepare "sh -c '{cmd} delete --force {rt}-c >/dev/null 2>&1; {cmd} run -d --bundle $S {rt}-c'" "{cmd} kill {rt}-c KILL"
bench "delete (stopped)" --prepare "sh -c '{cmd} delete --force {rt}-c >/dev/null 2>&1; {cmd} run -d --bundle $S {rt}-c; {cmd} kill {rt}-c KILL; sleep 0.02'" "{cmd} delete {rt}-c"
bench "delete --force (running)" --prepare "sh -c '{cmd} delete --force {rt}-c >/dev/null 2>&1; {cmd} run -d --bundle $S {rt}-c'" "{cmd} delete --force {rt}-c"
runs=$(( runs / 4 > 10 ? runs / 4 : 10 )) bench "run, after 0.3 s idle" --prepare "sleep 0.3" "{cmd} run --bundle $B {rt}-r"

# seccomp: the default profile `berth spec` writes, the same for all three runtimes
mkdir -p "$work/spec" "$work/bundle-seccomp"
"$berth" spec --bundle "$work/spec"
jq --arg root "$work/bundle/rootfs" --slurpfile spec "$work/spec/config.json" \
    '.process.args = ["/bin/true"] | .root.path = $root | .linux.seccomp = $spec[0].linux.seccomp' \
    "$top/runtime-spec/examples/base.json" > "$work/bundle-seccomp/config.json"
SC=$work/bundle-seccomp
bench "run, seccomp (cached BPF)" "{cmd} run --bundle $SC {rt}-sc"
bench "run, seccomp (first: no cache)" --prepare "rm -rf $work/state-berth/.seccomp-cache" "{cmd} run --bundle $SC {rt}-sc"
for rt in berth runc crun; do $(rt_cmd $rt) delete --force $rt-st >/dev/null 2>&1 || true; done

echo
printf "%-28s %9s %9s %9s %10s\n" "50 containers (ms)" berth runc crun "berth/crun"
declare -A total
for rt in berth runc crun; do
    cmd=$(rt_cmd $rt)
    start=$(date +%s%N)
    for i in $(seq 50); do $cmd create --bundle "$S" "$rt-many$i" >/dev/null 2>&1 </dev/null; $cmd start "$rt-many$i"; done
    total[$rt]=$(( ($(date +%s%N) - start) / 1000 ))
    for i in $(seq 50); do $cmd delete --force "$rt-many$i"; done
done
printf "%-28s %9s %9s %9s %10s\n" "create+start, sequential" \
    "$(div "${total[berth]}" 1000)" "$(div "${total[runc]}" 1000)" "$(div "${total[crun]}" 1000)" \
    "$(div "${total[berth]}" "${total[crun]}")"

echo
printf "%-28s %9s %9s %9s %10s\n" "peak RSS (KiB)" berth runc crun "berth/crun"
declare -A rss
for rt in berth runc crun; do
    cmd=$(rt_cmd $rt)
    rss[$rt]=$( { /usr/bin/time -f "%M" $cmd run --bundle "$B" "$rt-rss" >/dev/null; } 2>&1 | tail -1)
done
printf "%-28s %9d %9d %9d %10s\n" "run /bin/true (runtime)" "${rss[berth]}" "${rss[runc]}" "${rss[crun]}" \
    "$(div "${rss[berth]}" "${rss[crun]}")"

echo
printf "%-28s %9s %9s %9s %10s\n" "podman (ms)" berth runc crun "berth/crun"
prun=$(( runs / 3 > 10 ? runs / 3 : 10 ))
read -r pb pr pc < <("$top/tests/bench/podman.sh" "$berth" "$prun")
printf "%-28s %9.1f %9.1f %9.1f %10s\n" "podman run --rm true" "$pb" "$pr" "$pc" "$(div "$pb" "$pc")"

echo
kfloor=$(hyperfine -N -w 3 -r "$runs" --export-json "$work/floor.json" \
    "unshare -mpinuf --fork --mount-proc chroot $B/rootfs /bin/true" >/dev/null && jq -r '.results[0].median * 1000' "$work/floor.json")
printf "kernel floor (unshare -mpinuf --fork --mount-proc chroot rootfs /bin/true): %.2f ms\n" "$kfloor"
