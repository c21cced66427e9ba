#!/bin/bash
# Run a busybox container that prints its hostname, its PID and its cgroup memory limit.
# Usage: demo.sh BERTH_BINARY
set -euo pipefail
berth=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
bundle=$here/build/demo
root=/run/berth-demo
rm -rf "$bundle"
mkdir -p "$bundle"
cp -a "$here/build/busybox" "$bundle/rootfs"
limit_file='$( [ -f /sys/fs/cgroup/memory.max ] && echo /sys/fs/cgroup/memory.max || echo /sys/fs/cgroup/memory/memory.limit_in_bytes )'
jq --arg script "echo \"hostname:     \$(hostname)\"; echo \"pid:          \$\$\"; echo \"memory limit: \$(cat $limit_file) bytes\"" \
   '.hostname = "berth-demo"
    | .process.args = ["sh", "-c", $script]
    | .linux.resources = {"memory": {"limit": 67108864}, "pids": {"limit": 32}}
    | .linux.cgroupsPath = "/berth-demo"' \
   "$here/../runtime-spec/examples/base.json" > "$bundle/config.json"
echo "+ berth --root $root run --bundle $bundle demo"
"$berth" --root "$root" run --bundle "$bundle" demo
rm -rf "$bundle"
