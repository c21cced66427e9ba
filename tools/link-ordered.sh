#!/bin/sh
# Linker for berth's release build (set by `make build`): the functions that the OCI verbs run
# are placed next to each other, so that a short-lived `berth run` maps a few contiguous pages of
# its 10 MB binary instead of pages spread all through it (the kernel maps the cached file pages
# around each faulting one, 64 KiB at a time). README, Performance: peak RSS of `run`.
#
# tools/hot-symbols.txt lists those functions, written by tools/profile-hot-symbols.sh
# (`make hot-symbols`). A name missing from this link (the code or the toolchain changed since)
# is matched without its hash, so a stale list still groups most of the hot code; it never
# affects correctness. Links with the toolchain's rust-lld and `--symbol-ordering-file`.
# BERTH_LINK_UNSTRIPPED=1 keeps the symbol table (for the profiling build).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
lld_dir="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
[ -x "$lld_dir/ld.lld" ] || { echo "link-ordered.sh: no ld.lld in $lld_dir" >&2; exit 1; }
order=$(mktemp)
trap 'rm -f "$order"' EXIT

# the objects and archives of this link, -l libraries found through the -L directories
objects= dirs= libs= prev=
for arg in "$@"; do
    case $prev in -L) dirs="$dirs $arg" ;; esac
    case $arg in
        *.o | *.a | *.rlib) [ -f "$arg" ] && objects="$objects $arg" ;;
        -L?*) dirs="$dirs ${arg#-L}" ;;
        -l?*) libs="$libs ${arg#-l}" ;;
    esac
    prev=$arg
done
for l in $libs; do
    for d in $dirs; do
        [ -f "$d/lib$l.a" ] && { objects="$objects $d/lib$l.a"; break; }
    done
done
# shellcheck disable=SC2086 # paths without spaces (cargo's target directory, the toolchain)
nm --defined-only --format=just-symbols $objects 2>/dev/null |
    awk -v list="$here/hot-symbols.txt" '
        function key(s) { sub(/17h[0-9a-f]+E$/, "", s); sub(/(\.llvm)?\.[0-9]+$/, "", s); return s }
        { present[$0] = 1; k = key($0); same[k] = same[k] $0 "\n" }
        END {
            while ((getline name < list) > 0) {
                if (name in present) { if (!(name in done)) { done[name] = 1; print name } }
                else if (!(key(name) in spent)) { spent[key(name)] = 1; printf "%s", same[key(name)] }
            }
        }' >"$order"

if [ -n "${BERTH_LINK_UNSTRIPPED:-}" ]; then
    args=
    for a in "$@"; do [ "$a" = -Wl,--strip-all ] || args="$args $a"; done
    # shellcheck disable=SC2086 # rustc's arguments hold no spaces here
    set -- $args
fi
cc "$@" -fuse-ld=lld -B "$lld_dir" -Wl,--symbol-ordering-file="$order" -Wl,--no-warn-symbol-ordering
