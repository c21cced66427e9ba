#!/bin/bash
# containerd (Debian's 1.6) running containers through its runc v2 shim with berth as the
# runc-compatible binary; containerd's root, state and socket live in this test's directory.
# Usage: containerd.sh BERTH_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
berth=$(realpath "${1:?berth binary}")

C=$(mktemp -d /run/berth-e2e-containerd.XXXXXX)
# the shim keeps its sockets and ctr its fifos under /run/containerd whatever the config says
remember_paths /run/containerd
ns=berth-e2e-$$
cleanup() {
    if [ -n "${ctrd_pid:-}" ]; then
        for t in $(ctr --address "$C/containerd.sock" -n $ns task ls -q 2>/dev/null); do
            ctr --address "$C/containerd.sock" -n $ns task kill -s SIGKILL "$t" >/dev/null 2>&1 || true
            sleep 0.2
            ctr --address "$C/containerd.sock" -n $ns task delete "$t" >/dev/null 2>&1 || true
        done
        for c in $(ctr --address "$C/containerd.sock" -n $ns containers ls -q 2>/dev/null); do
            ctr --address "$C/containerd.sock" -n $ns containers delete "$c" >/dev/null 2>&1 || true
        done
        kill "$ctrd_pid" 2>/dev/null || true
        wait "$ctrd_pid" 2>/dev/null || true
    fi
    unmount_below "$C"
    rm -rf "$C"
    forget_paths
}
trap cleanup EXIT

cat > "$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[debug]
  address = "$C/debug.sock"
EOF
containerd --config "$C/config.toml" > "$C/containerd.log" 2>&1 &
ctrd_pid=$!
ctr() { command ctr --address "$C/containerd.sock" -n $ns "$@"; }
for _ in $(seq 100); do [ -S "$C/containerd.sock" ] && break; sleep 0.1; done
ctr version >/dev/null || fail "containerd did not start: $(cat "$C/containerd.log")"

# an image: the busybox rootfs fixture as a docker-archive (docker save's format), built here
img=$C/img
mkdir -p "$img/layer"
tar -C "$(rootfs_fixture)" -cf "$img/layer/layer.tar" .
layer_digest=$(sha256sum "$img/layer/layer.tar" | cut -d' ' -f1)
cat > "$img/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},
 "rootfs":{"type":"layers","diff_ids":["sha256:$layer_digest"]}}
EOF
cfg_digest=$(sha256sum "$img/config.json" | cut -d' ' -f1)
mv "$img/config.json" "$img/$cfg_digest.json"
echo "[{\"Config\":\"$cfg_digest.json\",\"RepoTags\":[\"localhost/busybox:e2e\"],\"Layers\":[\"layer/layer.tar\"]}]" > "$img/manifest.json"
tar -C "$img" -cf "$C/busybox.tar" .
ctr images import "$C/busybox.tar" >/dev/null
I=localhost/busybox:e2e
R=(--runc-binary "$berth" --runc-root "$C/runc")

# run --rm: output and exit code
out=$(ctr run "${R[@]}" --rm $I c1 sh -c 'echo from-containerd; exit 4') && rc=0 || rc=$?
expect "run output" "from-containerd" "$out"
expect "run exit code" "4" "$rc"
[ -z "$(ls "$C/runc/$ns" 2>/dev/null)" ] && ok "run --rm left no berth state" || fail "state left in $C/runc/$ns"

# run -d, exec, ps, kill, delete
ctr run "${R[@]}" -d $I c2 sh -c 'trap "exit 5" TERM; while true; do sleep 0.1; done' >/dev/null
sleep 0.3
expect "task running" "RUNNING" "$(ctr task ls | awk '$1=="c2"{print $3}')"
pid=$(ctr task ls | awk '$1=="c2"{print $2}')
expect "berth holds the container" "running" "$("$berth" --root "$C/runc/$ns" state c2 | sed -n 's/.*"status": "\(.*\)".*/\1/p')"
expect "exec" "in-exec $(readlink /proc/$pid/ns/pid)" "$(ctr task exec --exec-id e1 c2 sh -c 'echo in-exec $(readlink /proc/self/ns/pid)')"
tty=$(script -qc "ctr --address $C/containerd.sock -n $ns task exec -t --exec-id e2 c2 tty" /dev/null | tr -d '\r' | grep pts || true)
expect_match "exec -t gets a pty" '^/dev/pts/[0-9]+$' "$tty"
npids=$(ctr task ps c2 | tail -n +2 | wc -l)
[ "$npids" -ge 2 ] && ok "task ps lists the processes" || fail "task ps: $npids"
ctr task pause c2
expect "pause" "PAUSED" "$(ctr task ls | awk '$1=="c2"{print $3}')"
ctr task resume c2
expect "resume" "RUNNING" "$(ctr task ls | awk '$1=="c2"{print $3}')"
ctr task kill c2
for _ in $(seq 50); do [ "$(ctr task ls | awk '$1=="c2"{print $3}')" = STOPPED ] && break; sleep 0.1; done
expect "kill (SIGTERM, trapped)" "STOPPED" "$(ctr task ls | awk '$1=="c2"{print $3}')"
# ctr reports a non-zero exit status as a warning on delete
expect "exit status" "5" "$(ctr task delete c2 2>&1 | grep -o 'exit code [0-9]*' | grep -o '[0-9]*$')"
ctr containers delete c2
[ ! -e /proc/$pid ] || [ "$(awk '{print $3}' /proc/$pid/stat)" = Z ] && ok "container process gone" || fail "process $pid lives"
[ -z "$(ls "$C/runc/$ns" 2>/dev/null)" ] && ok "delete left no berth state" || fail "state left in $C/runc/$ns"

echo "containerd with berth: $pass checks passed"
