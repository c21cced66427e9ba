# Shared helpers of the end-to-end client tests (sourced).

pass=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { pass=$((pass + 1)); echo "ok: $*"; }
# expect NAME WANT GOT
expect() { [ "$2" = "$3" ] && ok "$1" || fail "$1: want [$2], got [$3]"; }
# expect_match NAME REGEX GOT
expect_match() { [[ "$3" =~ $2 ]] && ok "$1" || fail "$1: [$3] does not match /$2/"; }

# Paths a client may create outside the test's directory; those absent at the start are
# removed at the end, so the machine looks as before.
remember_paths() {
    created_paths=()
    for p in "$@"; do [ -e "$p" ] || created_paths+=("$p"); done
}
forget_paths() {
    for p in "${created_paths[@]}"; do rm -rf "$p"; done
}

# Unmount everything still mounted below DIR (deepest first). DIR must be a test directory
# under /run, /tmp or /var/tmp: never the root of anything else.
unmount_below() {
    case "$1" in
        /run/berth-*/* | /run/berth-* | /tmp/berth-* | /var/tmp/berth-*) ;;
        *) echo "unmount_below: refusing '$1'" >&2; return 1 ;;
    esac
    awk -v d="$1/" '$5 ~ "^"d {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}

# A busybox image archive from the rootfs fixture, as `podman save` (docker-archive) writes it.
# Usage: busybox_archive DIR -> prints the archive path
rootfs_fixture() { echo "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/rootfs-fixtures/build/busybox"; }
