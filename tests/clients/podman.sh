#!/bin/bash
# podman (Debian's 4.3, with conmon) using berth as its OCI runtime, configured only through
# files in this test's own directory. Usage: podman.sh BERTH_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
berth=$(realpath "${1:?berth binary}")

T=$(mktemp -d /run/berth-e2e-podman.XXXXXX)
# podman calls berth without --root: berth's default state root /run/berth is this run's too
remember_paths /run/containers /var/lib/containers /etc/containers/networks /run/libpod /run/berth
export CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf CONTAINERS_REGISTRIES_CONF=$T/registries.conf
cleanup() {
    podman rm -af -t 0 >/dev/null 2>&1 || true
    podman pod rm -af -t 0 >/dev/null 2>&1 || true
    podman system reset -f >/dev/null 2>&1 || true
    unmount_below "$T"
    rm -rf "$T"
    forget_paths
}
trap cleanup EXIT

cat > "$T/containers.conf" <<EOF
[containers]
# this host's hard nofile limit is 20000 and berth may not raise it
default_ulimits = ["nofile=1024:1024"]
netns = "none"
log_driver = "k8s-file"
[engine]
runtime = "berth"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$T/tmp"
volume_path = "$T/volumes"
runtime_supports_json = ["berth", "crun", "runc"]
[engine.runtimes]
berth = ["$berth"]
[network]
network_config_dir = "$T/networks"
EOF
cat > "$T/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$T/storage"
runroot = "$T/run"
EOF
echo 'unqualified-search-registries = []' > "$T/registries.conf"

tar -C "$(rootfs_fixture)" -c . | podman import -q - localhost/busybox:e2e >/dev/null
I=localhost/busybox:e2e

expect "podman uses berth" "berth" "$(podman info --format '{{.Host.OCIRuntime.Name}}')"

# run --rm: output and exit code
out=$(podman run --rm $I sh -c 'echo hello; exit 3' 2>/dev/null) && rc=0 || rc=$?
expect "run --rm output" "hello" "$out"
expect "run --rm exit code" "3" "$rc"

# run -d, exec (plain, -i, -t)
podman run -d --name d1 $I sleep 1000 >/dev/null 2>&1
expect "run -d runs" "running" "$(podman inspect -f '{{.State.Status}}' d1)"
pid=$(podman inspect -f '{{.State.Pid}}' d1)
expect "runtime is berth" "berth" "$(podman inspect -f '{{.OCIRuntime}}' d1)"
expect "exec" "in-exec 0" "$(podman exec d1 sh -c 'echo in-exec $(id -u)' 2>/dev/null)"
expect "exec -i" "from-stdin" "$(echo 'echo from-stdin' | podman exec -i d1 sh 2>/dev/null)"
tty=$(script -qc "podman exec -t d1 sh -c tty" /dev/null 2>/dev/null | tr -d '\r' | grep pts)
expect_match "exec -t gets a pty" '^/dev/pts/[0-9]+$' "$tty"
expect "exec shares the pid namespace" "$(readlink /proc/$pid/ns/pid)" \
    "$(podman exec d1 sh -c 'readlink /proc/self/ns/pid' 2>/dev/null)"

# pause / unpause: podman's view and the kernel's (freezer)
podman pause d1 >/dev/null
expect "pause" "paused" "$(podman inspect -f '{{.State.Status}}' d1)"
expect_match "frozen in the kernel" '^(FROZEN|1)$' \
    "$(cat /sys/fs/cgroup/freezer/libpod_parent/libpod-*/freezer.state /sys/fs/cgroup/libpod_parent/libpod-*/cgroup.freeze 2>/dev/null | head -1)"
podman unpause d1 >/dev/null
expect "unpause" "running" "$(podman inspect -f '{{.State.Status}}' d1)"

# stop escalates to SIGKILL (sleep as pid 1 ignores SIGTERM)
start=$(date +%s)
podman stop -t 1 d1 >/dev/null 2>&1
expect "stop escalates to SIGKILL" "137" "$(podman inspect -f '{{.State.ExitCode}}' d1)"
[ $(( $(date +%s) - start )) -lt 10 ] && ok "stop within its timeout" || fail "stop took too long"
[ ! -e /proc/$pid ] || [ "$(awk '{print $3}' /proc/$pid/stat)" = Z ] && ok "container process gone" || fail "process $pid lives"
podman rm d1 >/dev/null
expect "rm" "" "$(podman ps -aq)"

# --user, --read-only, -v, --memory
expect "--user" "1000:1000" "$(podman run --rm --user 1000:1000 $I sh -c 'echo $(id -u):$(id -g)' 2>/dev/null)"
expect "--read-only" "ro tmp-ok" "$(podman run --rm --read-only $I sh -c 'touch /x 2>/dev/null || echo -n "ro "; touch /tmp/y && echo tmp-ok' 2>/dev/null)"
mkdir -p "$T/vol" && echo from-host > "$T/vol/in"
expect "-v bind mount" "from-host" "$(podman run --rm -v "$T/vol:/data" $I sh -c 'cat /data/in; echo from-ctr > /data/out' 2>/dev/null)"
expect "-v writes reach the host" "from-ctr" "$(cat "$T/vol/out")"
limit=$(podman run --rm --memory 64m $I sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max' 2>/dev/null)
expect "--memory" "67108864" "$limit"

# a pod: two containers share the pod's network (and hostname)
podman pod create --name pod1 >/dev/null
podman run -d --pod pod1 --name srv $I sh -c 'echo shared-network | nc -l -p 8080' >/dev/null 2>&1
spid=$(podman inspect -f '{{.State.Pid}}' srv)
ipid=$(podman inspect -f '{{.State.Pid}}' "$(podman pod inspect -f '{{.InfraContainerID}}' pod1)")
expect "same network namespace as the infra container" "$(readlink /proc/$ipid/ns/net)" "$(readlink /proc/$spid/ns/net)"
got=""
for _ in $(seq 50); do
    got=$(podman run --rm --pod pod1 $I sh -c 'nc 127.0.0.1 8080 2>/dev/null; hostname' 2>/dev/null | tr '\n' ' ') || true
    case "$got" in shared-network*) break ;; esac
    sleep 0.1
done
expect "pod containers share the network" "shared-network pod1 " "$got"
podman pod rm -f -t 0 pod1 >/dev/null

echo "podman with berth: $pass checks passed"
