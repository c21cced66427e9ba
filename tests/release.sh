#!/bin/bash
# The release binary (static musl, functions ordered by tools/link-ordered.sh) runs a container
# as the tests' debug build does, and its peak RSS for `run` stays within issue 2's 3 MiB.
# Usage: tests/release.sh RELEASE_BINARY
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
berth=$(realpath "$1")
work=$(mktemp -d /run/berth-release-test.XXXXXX)
cleanup() {
    for id in $(ls "$work/state" 2>/dev/null); do "$berth" --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/bundle"
jq --arg r "$top/rootfs-fixtures/build/busybox" \
    '.root.path = $r | .process.args = ["/bin/sh", "-c", "echo pid $$; exit 7"]' \
    "$top/runtime-spec/examples/base.json" > "$work/bundle/config.json"

rc=0
out=$("$berth" --root "$work/state" run --bundle "$work/bundle" rel-1) || rc=$?
[ "$out" = "pid 1" ] || { echo "FAIL: container printed '$out', want 'pid 1'"; exit 1; }
[ "$rc" = 7 ] || { echo "FAIL: exit code $rc, want 7"; exit 1; }

limit=3072
jq '.process.args = ["/bin/true"]' "$work/bundle/config.json" > "$work/c" && mv "$work/c" "$work/bundle/config.json"
rss=$( { /usr/bin/time -f "%M" "$berth" --root "$work/state" run --bundle "$work/bundle" rel-2 >/dev/null; } 2>&1 | tail -1)
echo "peak RSS of release 'berth run': $rss KiB (limit $limit KiB)"
[ "$rss" -le "$limit" ] || { echo "FAIL: peak RSS $rss KiB > $limit KiB (is tools/hot-symbols.txt stale? make hot-symbols)"; exit 1; }
[ -z "$(ls "$work/state")" ] || { echo "FAIL: state left: $(ls "$work/state")"; exit 1; }
echo "release: ok"
