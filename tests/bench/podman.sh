#!/bin/bash
# `podman run --rm true` with berth, runc and crun as the runtime, side by side (medians).
# podman and conmon are configured from files in a private directory; runc and crun cannot lower
# limits they may not raise, so nproc is set within this host's limit.
# Usage: podman.sh BERTH_BINARY RUNS   (called by bench.sh, inside its mount namespace)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/clients/lib.sh"
. "$top/tests/bench/podman-env.sh"
berth=$(realpath "$1")
runs=$2

P=$(mktemp -d /run/berth-bench-podman.XXXXXX)
remember_paths /run/containers /var/lib/containers /etc/containers/networks /run/libpod
podman_env "$P"
cleanup() {
    podman_reset "$P"
    unmount_below "$P"
    rm -rf "$P"
    forget_paths
}
trap cleanup EXIT

podman_private "$P" 'netns = "none"' "$(printf '%s\n' \
    'runtime_supports_json = ["berth", "crun", "runc"]' \
    '[engine.runtimes]' \
    "berth = [\"$berth\"]" \
    "runc = [\"$(command -v runc)\"]" \
    "crun = [\"$(command -v crun)\"]")"

hyperfine -N -w 2 -r "$runs" --export-json "$P/podman.json" \
    "podman --runtime berth run --rm localhost/busybox:bench true" \
    "podman --runtime runc run --rm localhost/busybox:bench true" \
    "podman --runtime crun run --rm localhost/busybox:bench true" >/dev/null 2>"$P/err" ||
    { cat "$P/err" >&2; exit 1; }
jq -r '[.results[].median * 1000] | @tsv' "$P/podman.json"
