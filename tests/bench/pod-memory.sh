#!/bin/bash
# Memory and fds of one pod's berth processes (its keeper and its monitor): one host-network
# pod of the busybox fixture, measured WAIT seconds (default 3) after it started, when the
# monitor has dropped its code pages. Usage: pod-memory.sh BERTH_RELEASE_BINARY
B=$1; W=$(mktemp -d /run/rss.XXXX)
export BERTH_DATA_ROOT=$W/data BERTH_LOG_ROOT=$W/logs BERTH_CNI_CONF_DIR=$W/net.d BERTH_CGROUP_PARENT=/berth-rss
$B image import --name localhost/fx $(cd "$(dirname "$0")/../.." && pwd)/rootfs-fixtures/build/images/oci >/dev/null
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: r}\nspec:\n  hostNetwork: true\n  containers:\n  - {name: c, image: "localhost/fx:base", imagePullPolicy: Never, command: [sleep, "100000"]}\n' > $W/p.yaml
$B --root $W/run pod run $W/p.yaml >/dev/null 2>&1 || $B --root $W/run pod run --detach $W/p.yaml >/dev/null
sleep ${WAIT:-3}
for p in $(pgrep -f "$W/run"); do
  [ "$(cat /proc/$p/comm)" = sleep ] && continue
  echo "pid $p ppid $(awk '{print $4}' /proc/$p/stat) $(tr '\0' ' ' < /proc/$p/cmdline | cut -c1-60) RSS $(awk '/^VmRSS/{print $2}' /proc/$p/status) PSS $(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup) fds $(ls /proc/$p/fd | wc -l)"
done
$B --root $W/run pod rm -f r >/dev/null
rm -rf $W; rmdir /sys/fs/cgroup/*/berth-rss 2>/dev/null
true
