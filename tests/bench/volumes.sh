#!/bin/bash
# Volumes, side by side in one run (release build):
#  - provisioning a 1 GiB volume: `berth volume create` vs a floor script running berth's
#    commands by hand (fallocate of the same image size, the same mkfs.ext4 line on the file;
#    berth attaches and mounts at a pod's start, not at provisioning) vs `podman volume create`
#    (which enforces no size);
#  - provisioning a 1 GiB volume and starting a one-container pod (host network) that uses
#    it: berth vs the floor's commands with the attach (fallocate, mkfs.ext4, losetup, mount)
#    vs `podman volume create` + `podman run -d -v` (a private podman, crun);
#  - starting a one-container pod (host network) whose claim's volume is already attached by
#    another pod, vs the same pod without a volume: the difference is the volume's cost; and a
#    pod whose volume is attached (losetup + mount) at its start, and detached at its removal.
# Usage: volumes.sh BERTH_RELEASE_BINARY
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/clients/lib.sh"
. "$top/tests/bench/podman-env.sh"
in_crun_namespace "$0" "$@"
berth=$(realpath "$1")
runs=${BENCH_VOLUME_RUNS:-10}
rounds=${BENCH_VOLUME_ROUNDS:-5}
P=$(mktemp -d /var/tmp/berth-bench-volumes.XXXXXX)
remember_paths /run/containers /var/lib/containers /etc/containers/networks /run/libpod
podman_env "$P/podman"
export BERTH_DATA_ROOT=$P/data BERTH_LOG_ROOT=$P/logs BERTH_CGROUP_PARENT=/berth-bench-volumes
B="$berth --root /run/berth-bench-volumes-$$"
MKFS="-q -F -t ext4 -m 0 -E nodiscard -b 4096"
cleanup() {
    for id in $(ls /run/berth-bench-volumes-$$/pods 2>/dev/null); do $B pod rm -f "$id" >/dev/null 2>&1 || true; done
    for v in v keep fresh sizing e2e; do $B volume rm "$v" >/dev/null 2>&1 || true; done
    podman_reset "$P/podman"
    unfloor_attached 2>/dev/null || true
    unmount_below "$P"
    rm -rf "$P" /run/berth-bench-volumes-$$
    rmdir /sys/fs/cgroup/*/berth-bench-volumes 2>/dev/null || true
    forget_paths
}
trap cleanup EXIT
$B image import --name localhost/fx "$top/rootfs-fixtures/build/images/oci" >/dev/null
mkdir -p "$P/podman"
podman_private "$P/podman"

# the image size berth gives a 1 GiB volume, so the floor allocates and formats the same
$B volume create sizing --size 1Gi >/dev/null
SIZE=$(stat -c %s "$(find "$P/data" -name '*.img' | head -1)")
$B volume rm sizing >/dev/null
floor() {
    fallocate -l "$SIZE" "$P/floor.img"
    mkfs.ext4 $MKFS "$P/floor.img"
}
unfloor() {
    rm -f "$P/floor.img"
}
# the floor of provisioning and a pod's attach: berth's commands, then losetup and mount
floor_attached() {
    floor
    mkdir -p "$P/floor.mnt"
    mount "$(losetup -f --show "$P/floor.img")" "$P/floor.mnt"
}
unfloor_attached() {
    if mountpoint -q "$P/floor.mnt"; then
        local dev
        dev=$(findmnt -n -o SOURCE "$P/floor.mnt")
        umount "$P/floor.mnt"
        losetup -d "$dev" 2>/dev/null || true
    fi
    unfloor
}
export -f floor unfloor floor_attached unfloor_attached
export P MKFS SIZE
echo "berth: $($berth --version | head -1); $(mkfs.ext4 -V 2>&1 | head -1); podman $(podman --version | awk '{print $3}')"
echo "$runs runs per figure (provisioning: $rounds rounds of them), medians; data root on $(df --output=fstype "$P" | tail -1)"
echo
# the three alternated over ROUNDS rounds of RUNS runs each (the disk's state drifts: run
# one after the other, the ratio moved by 0.3 from run to run): medians of every run
for r in $(seq "$rounds"); do
    hyperfine -S bash -r "$runs" -w 1 --export-json "$P/prov-$r.json" \
        -n "berth volume create (1 GiB, size enforced)" --prepare "$B volume rm v >/dev/null 2>&1 || true" \
            "$B volume create v --size 1Gi >/dev/null" \
        -n "floor: fallocate + mkfs.ext4 by hand" --prepare "unfloor" "floor" \
        -n "podman volume create (no size)" --prepare "podman volume rm -f berth-bench-v >/dev/null 2>&1 || true" \
            "podman volume create berth-bench-v >/dev/null" >/dev/null 2>&1
done
unfloor
# every run's time of result I over the rounds, in ms; their median
prov_med() { jq -s "[.[].results[$1].times[]] | sort | .[length/2|floor] * 1000" "$P"/prov-*.json; }
med() { jq -r ".results[$2].median * 1000" "$1"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf "%-48s %9s %12s\n" "provision 1 GiB ($rounds x $runs runs)" "ms" "vs floor"
for i in 0 1 2; do
    n=$(jq -r ".results[$i].command" "$P/prov-1.json")
    printf "%-48s %9.1f %12s\n" "$n" "$(prov_med $i)" "$(div "$(prov_med $i)" "$(prov_med 1)")"
done
echo

# --- provisioning and a pod that uses it, from nothing to its container running
$B volume rm v >/dev/null 2>&1 || true
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: e2e}\nspec:\n  hostNetwork: true\n  volumes: [{name: d, persistentVolumeClaim: {claimName: e2e}}]\n  containers:\n  - {name: c, image: "localhost/fx:base", imagePullPolicy: Never, command: [sleep, "100000"], volumeMounts: [{name: d, mountPath: /data}]}\n' > "$P/e2e.yaml"
hyperfine -S bash -r "$runs" -w 1 --export-json "$P/e2e.json" \
    -n "berth volume create + pod run" \
        --prepare "$B pod rm -f e2e >/dev/null 2>&1; $B volume rm e2e >/dev/null 2>&1 || true" \
        "$B volume create e2e --size 1Gi >/dev/null && $B pod run $P/e2e.yaml >/dev/null" \
    -n "floor: fallocate + mkfs.ext4 + losetup + mount" --prepare "unfloor_attached" "floor_attached" \
    -n "podman volume create + podman run -d -v (no size)" \
        --prepare "podman rm -f -t 0 e2e >/dev/null 2>&1; podman volume rm -f e2e >/dev/null 2>&1 || true" \
        "podman volume create e2e >/dev/null && podman run -d --name e2e --network host -v e2e:/data localhost/busybox:bench sleep 100000 >/dev/null" \
    >/dev/null 2>&1
$B pod rm -f e2e >/dev/null 2>&1 || true
$B volume rm e2e >/dev/null 2>&1 || true
unfloor_attached
podman rm -f -t 0 e2e >/dev/null 2>&1 || true
printf "%-48s %9s %12s\n" "provision 1 GiB + start a pod using it" "ms" "vs floor"
for i in 0 1 2; do
    n=$(jq -r ".results[$i].command" "$P/e2e.json")
    printf "%-48s %9.1f %12s\n" "$n" "$(med "$P/e2e.json" $i)" "$(div "$(med "$P/e2e.json" $i)" "$(med "$P/e2e.json" 1)")"
done
echo

# --- a pod's start with an attached volume, and without
$B volume create keep --size 64Mi >/dev/null
$B volume create fresh --size 64Mi >/dev/null
pod() { # NAME WITH_VOLUME
    local vols="" mounts=""
    if [ "$2" = yes ]; then
        vols='  volumes: [{name: d, persistentVolumeClaim: {claimName: keep}}]'
        mounts=', volumeMounts: [{name: d, mountPath: /data}]'
    fi
    printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  hostNetwork: true\n%s\n  containers:\n  - {name: c, image: "localhost/fx:base", imagePullPolicy: Never, command: [sleep, "100000"]%s}\n' "$1" "$vols" "$mounts"
}
pod holder yes > "$P/holder.yaml"
pod bench yes > "$P/with.yaml"
pod bench no > "$P/without.yaml"
pod bench yes | sed 's/claimName: keep/claimName: fresh/' > "$P/attach.yaml"
$B pod run "$P/holder.yaml" >/dev/null
hyperfine -S bash -r "$runs" -w 2 --export-json "$P/start.json" \
    -n "pod with an attached volume" --prepare "$B pod rm -f bench >/dev/null 2>&1 || true" "$B pod run $P/with.yaml >/dev/null" \
    -n "the same pod without it" --prepare "$B pod rm -f bench >/dev/null 2>&1 || true" "$B pod run $P/without.yaml >/dev/null" \
    -n "pod attaching its volume" --prepare "$B pod rm -f bench >/dev/null 2>&1 || true" "$B pod run $P/attach.yaml >/dev/null" >/dev/null
$B pod rm -f bench >/dev/null 2>&1 || true
printf "%-48s %9s\n" "pod start (until its container runs)" "ms"
printf "%-48s %9.1f\n" "with an attached volume" "$(med "$P/start.json" 0)"
printf "%-48s %9.1f\n" "without" "$(med "$P/start.json" 1)"
printf "%-48s %9.1f\n" "difference (target: <= 5 ms)" "$(awk -v a="$(med "$P/start.json" 0)" -v b="$(med "$P/start.json" 1)" 'BEGIN { print a - b }')"
printf "%-48s %9.1f\n" "attaching it (losetup + mount) at the start" "$(med "$P/start.json" 2)"
