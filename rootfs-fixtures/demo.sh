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
rmdir "$root" 2>/dev/null || true # the state root, empty once the container is gone

# A pod: two containers from an image in berth's store, sharing one network namespace on
# berth's default CNI bridge (berth0, 10.77.0.0/16). The client fetches the server's page over
# 127.0.0.1; everything is removed afterwards (the network's bridge and rules go with its last
# pod).
work=$(mktemp -d /run/berth-demo-pod.XXXXXX)
export BERTH_DATA_ROOT=$work/data BERTH_LOG_ROOT=$work/logs BERTH_CNI_CONF_DIR=$work/net.d BERTH_CNI_IPAM_DIR=$work/ipam
pod_cleanup() {
    "$berth" --root "$work/run" pod rm -f demo >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap pod_cleanup EXIT
"$berth" image import --name localhost/busybox "$here/build/images/oci" >/dev/null
cat > "$work/pod.yaml" <<POD
apiVersion: v1
kind: Pod
metadata: {name: demo}
spec:
  restartPolicy: Never
  containers:
  - name: server
    image: localhost/busybox:base
    imagePullPolicy: Never
    command: [sh, -c, "echo hello from the server in pod \$(hostname) > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
  - name: client
    image: localhost/busybox:base
    imagePullPolicy: Never
    command: [sh, -c, "until wget -qO- http://127.0.0.1:8080/index.html; do sleep 0.1; done; ip -4 -o addr show eth0"]
POD
echo
echo "+ berth pod run pod.yaml"
"$berth" --root "$work/run" pod run "$work/pod.yaml"
for _ in $(seq 100); do
    "$berth" --root "$work/run" ps | grep -q ' client .*Exited' && break
    sleep 0.1
done
echo "+ berth ps"
"$berth" --root "$work/run" ps
echo "+ berth pod logs demo -c client"
"$berth" --root "$work/run" pod logs demo -c client
echo "+ berth pod rm -f demo"
"$berth" --root "$work/run" pod rm -f demo
