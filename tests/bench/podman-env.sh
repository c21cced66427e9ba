# Sourced by the benches that run podman: a private podman (its configuration, storage and
# volumes under a directory of the bench's own, never the host's), and the mount namespace
# crun needs on this host.

# crun refuses this host's hybrid cgroups: run the calling script again in a private mount
# namespace where /sys/fs/cgroup/unified/cgroup.controllers reads empty (as bench.sh does).
# Usage: in_crun_namespace "$0" "$@"   (returns only when already inside)
in_crun_namespace() {
    if [ "${BERTH_BENCH_INNER:-}" = 1 ] || [ -z "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
        return 0
    fi
    local empty script=$1
    shift
    empty=$(mktemp)
    unshare -m bash -c 'mount --bind "$0" /sys/fs/cgroup/unified/cgroup.controllers && BERTH_BENCH_INNER=1 exec "$@"' \
        "$empty" "$script" "$@"
    local rc=$?
    rm -f "$empty"
    exit $rc
}

# Point every podman that follows at configuration files in DIR. Call it as soon as DIR is
# made, before any cleanup can run podman: a `podman system reset` must never reach the
# host's own storage.
# Usage: podman_env DIR
podman_env() {
    export CONTAINERS_CONF=$1/containers.conf CONTAINERS_STORAGE_CONF=$1/storage.conf \
        CONTAINERS_REGISTRIES_CONF=$1/registries.conf
}

# Write those files (storage and volumes in DIR too) and import the busybox fixture as
# localhost/busybox:bench. EXTRA_CONTAINERS and EXTRA_ENGINE are lines added to those
# sections of containers.conf.
# Usage: podman_private DIR [EXTRA_CONTAINERS [EXTRA_ENGINE]]
podman_private() {
    local dir=$1
    podman_env "$dir"
    cat > "$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
${2:-}
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$dir/tmp"
volume_path = "$dir/volumes"
${3:-}
[network]
network_config_dir = "$dir/networks"
CONF
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/prun"\n' "$dir" "$dir" > "$dir/storage.conf"
    echo 'unqualified-search-registries = []' > "$dir/registries.conf"
    tar -C "$(rootfs_fixture)" -c . | podman import -q - localhost/busybox:bench >/dev/null
}

# `podman system reset` of the private podman in DIR, only once its files exist (with no
# storage.conf, podman would fall back to the host's storage).
# Usage: podman_reset DIR
podman_reset() {
    [ -e "$1/storage.conf" ] || return 0
    podman system reset -f >/dev/null 2>&1 || true
}
