#!/bin/bash
# Image benchmarks, side by side in one run, each measurement on a freshly mounted tmpfs:
#  - unpack of one large gzip layer: berth (into a snapshot, then the overlay rootfs) vs
#    tar -xzf vs umoci unpack, with gzip -dc alone as the floor;
#  - pull of a multi-layer image from a local docker-registry: berth image pull (download,
#    verify, unpack) vs skopeo copy + umoci unpack;
#  - peak RSS of each.
# The layer holds the files of Debian packages that `make setup` installs (qemu, containerd,
# podman, skopeo, docker-registry, umoci, runc, crun, perl, gcc, binutils), so it is the same on
# every machine with the same package versions. Usage: images.sh BERTH_RELEASE_BINARY
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$(realpath "$1")
runs=${BENCH_IMAGE_RUNS:-5}
cache=$top/rootfs-fixtures/build/bench-images
work=$(mktemp -d /run/berth-ibench.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null || true; fi
    umount -l "$mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    local p
    for p in $(seq $((30000 + $$ % 20000)) $((30200 + $$ % 20000))); do
        ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
    return 1
}
start_registry() { # STORAGE PORT
    REGISTRY_HTTP_ADDR=127.0.0.1:$2 REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$1 \
        docker-registry serve "$top/rootfs-fixtures/build/images/registry-open.yml" >/dev/null 2>&1 &
    registry_pid=$!
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return; sleep 0.05; done
    echo "registry did not start" >&2; return 1
}

# --- the layer and images, built once
if [ ! -f "$cache/done" ]; then
    echo "building the benchmark images in $cache (once)"
    rm -rf "$cache"; mkdir -p "$cache/tmp"
    for p in qemu-system-x86 qemu-system-data containerd podman skopeo docker-registry umoci runc crun \
             perl-modules-5.36 libperl5.36 gcc-12 cpp-12 binutils-x86-64-linux-gnu; do
        dpkg -L "$p" 2>/dev/null || true
    done | sort -u | while read -r f; do if [ -f "$f" ] && [ ! -L "$f" ]; then echo "${f#/}"; fi; done > "$cache/tmp/files"
    tar --numeric-owner -C / -cf "$cache/tmp/one.tar" -T "$cache/tmp/files"
    split -n l/4 -d "$cache/tmp/files" "$cache/tmp/part"
    umoci init --layout "$cache/one"
    umoci new --image "$cache/one:one"
    umoci raw add-layer --image "$cache/one:one" "$cache/tmp/one.tar"
    umoci config --image "$cache/one:one" --config.cmd /bin/sh
    umoci init --layout "$cache/multi"
    umoci new --image "$cache/multi:multi"
    for part in "$cache"/tmp/part*; do
        tar --numeric-owner -C / -cf "$part.tar" -T "$part"
        umoci raw add-layer --image "$cache/multi:multi" "$part.tar"
    done
    umoci config --image "$cache/multi:multi" --config.cmd /bin/sh
    port=$(free_port)
    start_registry "$cache/registry" "$port"
    skopeo copy -q --dest-tls-verify=false "oci:$cache/multi:multi" "docker://127.0.0.1:$port/bench/multi:latest"
    kill "$registry_pid"; wait "$registry_pid" 2>/dev/null || true; registry_pid=
    rm -rf "$cache/tmp"
    touch "$cache/done"
fi
manifest=$(jq -r '.manifests[0].digest' "$cache/one/index.json")
layer=$cache/one/blobs/sha256/$(jq -r '.layers[0].digest[7:]' "$cache/one/blobs/sha256/${manifest#sha256:}")
size=$(stat -c %s "$layer")
files=$(tar -tzf "$layer" | wc -l)
raw=$(gzip -dc "$layer" | wc -c)
multi_size=$(du -sb "$cache/multi/blobs" | cut -f1)

fresh="umount -l $mnt 2>/dev/null; mount -t tmpfs -o size=8g berth-bench $mnt && mkdir $mnt/x"
fresh_import="$fresh && $berth --data-root $mnt/d image import --name bench/one $cache/one >/dev/null"
mb() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "layer: $(awk -v s="$size" 'BEGIN { printf "%.0f", s / 1e6 }') MB gzip, $(awk -v s="$raw" 'BEGIN { printf "%.0f", s / 1e6 }') MB as tar, $files files; $runs runs per figure, medians, fresh tmpfs each run"
echo "tools: $(tar --version | head -1), $(umoci --version), $(skopeo --version), $("$berth" --version | head -1)"
echo

json=$work/unpack.json
hyperfine -S bash -r "$runs" --export-json "$json" \
    -n "berth image unpack" --prepare "$fresh_import" "$berth --data-root $mnt/d image unpack bench/one $mnt/x/b" \
    -n "tar -xzf" --prepare "$fresh" "tar -xzf $layer -C $mnt/x" \
    -n "umoci unpack" --prepare "$fresh" "umoci unpack --image $cache/one:one $mnt/x/b >/dev/null" \
    -n "gzip -dc (floor)" --prepare "$fresh" "gzip -dc $layer >/dev/null" >/dev/null
med() { jq -r ".results[$2].median" "$1"; }
tb=$(med "$json" 0); tt=$(med "$json" 1); tu=$(med "$json" 2); tg=$(med "$json" 3)
printf "%-26s %9s %9s %12s\n" "unpack one layer" "median s" "MB/s" "vs tar -xzf"
printf "%-26s %9.3f %9s %12s\n" "berth image unpack" "$tb" "$(mb "$size" "$tb")" "$(div "$tt" "$tb")x"
printf "%-26s %9.3f %9s %12s\n" "tar -xzf" "$tt" "$(mb "$size" "$tt")" "1.00x"
printf "%-26s %9.3f %9s %12s\n" "umoci unpack" "$tu" "$(mb "$size" "$tu")" "$(div "$tt" "$tu")x"
printf "%-26s %9.3f %9s %12s\n" "gzip -dc (floor)" "$tg" "$(mb "$size" "$tg")" "$(div "$tt" "$tg")x"
echo

port=$(free_port)
start_registry "$cache/registry" "$port"
ref=127.0.0.1:$port/bench/multi
json=$work/pull.json
hyperfine -S bash -r "$runs" --export-json "$json" \
    -n "berth image pull" --prepare "$fresh" "$berth --data-root $mnt/d image pull -q $ref >/dev/null 2>&1" \
    -n "skopeo copy + umoci unpack" --prepare "$fresh" \
    "skopeo copy -q --src-tls-verify=false docker://$ref oci:$mnt/l:x && umoci unpack --image $mnt/l:x $mnt/x/b >/dev/null" >/dev/null
pb=$(med "$json" 0); ps=$(med "$json" 1)
printf "%-26s %9s %9s %12s\n" "pull 4 layers (download+unpack)" "median s" "MB/s" "vs skopeo+umoci"
printf "%-26s %9.3f %9s %12s\n" "berth image pull" "$pb" "$(mb "$multi_size" "$pb")" "$(div "$ps" "$pb")x"
printf "%-26s %9.3f %9s %12s\n" "skopeo copy + umoci unpack" "$ps" "$(mb "$multi_size" "$ps")" "1.00x"
echo

rss() { eval "$1" >/dev/null 2>&1; /usr/bin/time -f "%M" -o "$work/rss" bash -c "$2" >/dev/null 2>&1; tail -1 "$work/rss"; }
printf "%-26s %9s\n" "peak RSS (KiB)" ""
printf "%-26s %9s\n" "berth image unpack" "$(rss "$fresh_import" "exec $berth --data-root $mnt/d image unpack bench/one $mnt/x/b")"
printf "%-26s %9s\n" "tar -xzf (tar or gzip)" "$(rss "$fresh" "exec tar -xzf $layer -C $mnt/x")"
printf "%-26s %9s\n" "umoci unpack" "$(rss "$fresh" "exec umoci unpack --image $cache/one:one $mnt/x/b")"
printf "%-26s %9s\n" "berth image pull" "$(rss "$fresh" "exec $berth --data-root $mnt/d image pull -q $ref")"
printf "%-26s %9s\n" "skopeo copy" "$(rss "$fresh" "exec skopeo copy -q --src-tls-verify=false docker://$ref oci:$mnt/l:x")"
