#!/bin/bash
# Writes tools/hot-symbols.txt: the functions that berth's OCI verbs run, for
# tools/link-ordered.sh to place together (`make hot-symbols`; run it again when the OCI
# path changes much; a stale list only costs memory, never correctness).
#
# How: a profiling build aligns every function to its own 4 KiB page
# (-C llvm-args=-align-all-functions=12, given to the final crate only, so that symbol names
# stay those of `make build`), so a page of the binary is read from disk exactly when a
# function on it runs. The binary is copied to a filesystem on a loop device of this
# script's own with readahead off, then the verbs run as podman and containerd call them, and
# mincore(2) tells which pages the page cache now holds. Needs root and the busybox fixture.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
work=$(mktemp -d /tmp/berth-hot.XXXXXX)
loop=
cleanup() {
    [ -x "$work/mnt/berth" ] && for id in $(ls "$work/state" 2>/dev/null); do
        "$work/mnt/berth" --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
    done
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    [ -n "$loop" ] && losetup -d "$loop"
    rm -rf "$work"
}
trap cleanup EXIT

musl=x86_64-unknown-linux-musl
mkdir -p target/libseccomp-static && cp -u "/usr/lib/$(gcc -dumpmachine)/libseccomp.a" target/libseccomp-static/
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$top/target/libseccomp-static" CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER="$top/tools/link-ordered.sh" BERTH_LINK_UNSTRIPPED=1 \
    CARGO_TARGET_DIR=target/hot-profile cargo rustc --bin berth --release --target $musl -- \
    -C llvm-args=-align-all-functions=12
bin=target/hot-profile/$musl/release/berth

truncate -s 256M "$work/fs.img"
mkfs.ext4 -q -F "$work/fs.img"
loop=$(losetup -f --show "$work/fs.img")
echo 0 > "/sys/block/$(basename "$loop")/queue/read_ahead_kb"
mkdir "$work/mnt"
mount "$loop" "$work/mnt"
cp "$bin" "$work/mnt/berth"
umount "$work/mnt" && mount "$loop" "$work/mnt" # nothing of it cached now

# bundles: /bin/true, sleep, /bin/true with the default seccomp profile
rootfs=$top/rootfs-fixtures/build/busybox
base=$top/runtime-spec/examples/base.json
mkdir -p "$work/true" "$work/sleep" "$work/seccomp"
jq --arg r "$rootfs" '.root.path = $r | .process.args = ["/bin/true"]' "$base" > "$work/true/config.json"
jq --arg r "$rootfs" '.root.path = $r | .process.args = ["sleep", "100"]' "$base" > "$work/sleep/config.json"
(cd "$work/seccomp" && "$work/mnt/berth" spec)
jq -s --arg r "$rootfs" '.[0] * {linux: {seccomp: .[1].linux.seccomp}} | .root.path = $r' \
    "$work/true/config.json" "$work/seccomp/config.json" > "$work/seccomp/c" && mv "$work/seccomp/c" "$work/seccomp/config.json"

b() { "$work/mnt/berth" --root "$work/state" "$@"; }
b run --bundle "$work/true" t1
b --log "$work/log" --log-format json create --bundle "$work/sleep" --pid-file "$work/pid" s1
b state s1 >/dev/null
b start s1
b list >/dev/null
b list --format json >/dev/null
b ps s1 >/dev/null
b exec s1 /bin/true
b pause s1 && b resume s1
b kill s1 9
sleep 0.2
b delete s1
b create --bundle "$work/sleep" s2 && b start s2 && b delete --force s2
b run -d --bundle "$work/sleep" s3 && b kill s3 15 && b delete --force s3
b run --bundle "$work/seccomp" c1
b run --bundle "$work/seccomp" c2
"$work/mnt/berth" --version >/dev/null

python3 - "$work/mnt/berth" > "$work/hot" <<'PY'
import ctypes, os, subprocess, sys
path = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
addr = libc.mmap(None, size, 1, 2, fd, 0)  # PROT_READ, MAP_PRIVATE
vec = (ctypes.c_ubyte * ((size + 4095) // 4096))()
if libc.mincore(addr, size, vec) != 0:
    sys.exit("mincore failed")
run = lambda *a: subprocess.run(a, capture_output=True, text=True, check=True).stdout
# LOAD segments: virtual address -> file offset
segs = [(int(f[2], 16), int(f[5], 16), int(f[1], 16))
        for f in map(str.split, run("readelf", "-lW", path).splitlines()) if f and f[0] == "LOAD"]
def offset(v):
    return next((v - va + off for va, size, off in segs if va <= v < va + size), None)
hot = []
for f in map(str.split, run("nm", "-S", "--defined-only", path).splitlines()):
    if len(f) != 4 or f[2] not in "tTwW":
        continue
    start, length, off = int(f[0], 16), int(f[1], 16), offset(int(f[0], 16))
    if length and off is not None and any(vec[p] & 1 for p in range(off // 4096, (off + length - 1) // 4096 + 1)):
        hot.append((start, length, f[3]))
hot.sort()
print("\n".join(name for _, _, name in hot))
print(f"{len(hot)} hot functions, {sum(l for _, l, _ in hot) // 1024} KiB", file=sys.stderr)
PY
mv "$work/hot" tools/hot-symbols.txt
