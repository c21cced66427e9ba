#!/bin/bash
# Run berth's root integration tests on a pure cgroup v2 kernel.
#
# This host is cgroup v1 (hybrid), so the tests boot Debian's cloud kernel in qemu (software
# emulation; KVM is not available here) with `cgroup_no_v1=all`. The initramfs holds busybox,
# berth, the test binaries (at the same absolute paths cargo compiled into them) and the rootfs
# fixture. The init switches to a tmpfs root first (pivot_root cannot leave the initramfs) and
# reports the outcome on the serial console with a marker line.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
work=$top/target/cgroupv2
mkdir -p "$work"
cd "$top"

# 1. The kernel: extracted from the Debian package, never installed; with the modules pods
#    need (overlay for image snapshots, bridge and veth for CNI's bridge plugin), in load order.
modules="net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko drivers/net/veth.ko fs/overlayfs/overlay.ko"
if [ ! -s "$work/vmlinuz" ] || [ ! -s "$work/modules/overlay.ko" ]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
    [ -n "$pkg" ] || { echo "cgroupv2: cannot find the cloud kernel package (apt-get update?)" >&2; exit 1; }
    rm -rf "$work/kernel" "$work"/*.deb "$work/modules"
    (cd "$work" && apt-get download "$pkg" >/dev/null)
    dpkg-deb -x "$work"/"$pkg"_*.deb "$work/kernel"
    mkdir -p "$work/modules"
    for m in $modules; do cp "$work"/kernel/lib/modules/*/kernel/"$m" "$work/modules/"; done
    cp "$work"/kernel/boot/vmlinuz-* "$work/vmlinuz"
    rm -rf "$work/kernel" "$work"/*.deb
fi

# 2. berth and the integration test binaries (debug build, as `cargo test` makes them). The
#    image and CRI tests are left out (they need skopeo, umoci, crictl and Go clients in the
#    VM); the pod tests run with a registry, the bridge and host-local CNI plugins, and no
#    iptables: the tests that look at iptables rules or need the example binary are skipped.
cargo build -q
mapfile -t tests < <(cargo test --no-run --tests --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and (.target.kind | index("test")) and .target.name != "images" and .target.name != "cri") | .executable')
# BERTH_V2_TESTS=REGEX: only the test binaries whose names match (while working on them)
if [ -n "${BERTH_V2_TESTS:-}" ]; then
    mapfile -t tests < <(printf '%s\n' "${tests[@]}" | grep -E "/(${BERTH_V2_TESTS})-[0-9a-f]+$")
fi
[ ${#tests[@]} -gt 0 ] || { echo "cgroupv2: no test binaries found" >&2; exit 1; }

# 3. The initramfs.
root=$work/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,tests,newroot,etc}
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
copy_with_libs() { # SRC DEST: a stripped copy plus the shared libraries it needs
    mkdir -p "$(dirname "$2")"
    strip -o "$2" "$1" 2>/dev/null || cp "$1" "$2"
    ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
        [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
    done
}
copy_with_libs "$top/target/debug/berth" "$root$top/target/debug/berth"
# for the pod tests: a registry serving the fixture images, setpriv (the harness starts the
# registry with it), CNI plugins, kernel modules
copy_with_libs "$(command -v docker-registry)" "$root/usr/bin/docker-registry"
copy_with_libs "$(command -v setpriv)" "$root/usr/bin/setpriv"
# runc's own default config is one of the runtime tests' inputs (`runc spec`)
copy_with_libs "$(command -v runc)" "$root/usr/bin/runc"
for p in bridge host-local; do copy_with_libs "/usr/lib/cni/$p" "$root/usr/lib/cni/$p"; done
mkdir -p "$root$top/rootfs-fixtures/build/images" "$root/modules"
cp -a "$top/rootfs-fixtures/build/images/registry" "$top"/rootfs-fixtures/build/images/registry-*.yml \
    "$top/rootfs-fixtures/build/images/htpasswd" "$root$top/rootfs-fixtures/build/images/"
for m in $modules; do cp "$work/modules/$(basename "$m")" "$root/modules/"; basename "$m"; done > "$root/modules/order"
for t in "${tests[@]}"; do copy_with_libs "$t" "$root/tests/$(basename "$t")"; done
mkdir -p "$root$top/rootfs-fixtures/build" "$root$top/runtime-spec"
cp -a "$top/rootfs-fixtures/build/busybox" "$root$top/rootfs-fixtures/build/busybox"
cp -a "$top/rootfs-fixtures/build-rootfs.sh" "$root$top/rootfs-fixtures/"
cp -a "$top/runtime-spec/examples" "$root$top/runtime-spec/examples"
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t tmpfs -o size=1800m tmpfs /newroot
for d in /*; do
    case $d in /newroot|/proc|/sys|/dev) ;; *) /bin/busybox cp -a "$d" /newroot/ ;; esac
done
/bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev
/bin/busybox umount /proc
exec /bin/busybox switch_root /newroot /init2
EOF
cat > "$root/init2" <<'EOF'
#!/bin/sh
# /usr/bin first: the harness needs util-linux's setpriv, not busybox's
export PATH=/usr/bin:/bin:/sbin RUST_BACKTRACE=1 BERTH_TEST_CNI=plain
for m in $(cat /modules/order); do insmod "/modules/$m" || echo "BERTH-CGROUPV2: insmod $m failed"; done
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# / is already a tmpfs; /run and /tmp stay plain directories of it (the checkout may live there)
mkdir -p /run /tmp
chmod 1777 /tmp
ip link set lo up
echo "BERTH-CGROUPV2: kernel $(uname -r), /sys/fs/cgroup is $(stat -f -c %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
rc=0
for t in /tests/*; do
    echo "BERTH-CGROUPV2: running $(basename "$t")"
    case $(basename "$t") in
        # no iptables here (rules), no example binary; no nft (Services), no loop devices or
        # mkfs.ext4 (persistent volumes), no openssl (an HTTPS probe's server): those run on
        # the host only
        pods-*) skip="--skip network::a_host_port --skip default_network --skip failures::removal_leaves_nothing --skip example:: --skip services:: --skip volumes:: --skip probes::readiness_follows --skip probes::https" ;;
        *) skip= ;;
    esac
    "$t" --test-threads=2 $skip || rc=1
done
if [ $rc = 0 ]; then echo "BERTH-CGROUPV2-RESULT: PASS"; else echo "BERTH-CGROUPV2-RESULT: FAIL"; fi
sync
poweroff -f
EOF
chmod +x "$root/init" "$root/init2"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initramfs.cpio"
echo "cgroupv2: initramfs $(du -h "$work/initramfs.cpio" | cut -f1), ${#tests[@]} test binaries; booting"

# 4. Boot, always under a timeout; the verdict is the marker line.
log=$work/console.log
start=$(date +%s)
timeout 1500 qemu-system-x86_64 -nographic -no-reboot -m 3072 -smp 2 \
    -kernel "$work/vmlinuz" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 cgroup_no_v1=all panic=-1 quiet" </dev/null | tee "$log" | grep --line-buffered -E "^(test |BERTH-|thread|  left|  right|failures|test result)" || true
echo "cgroupv2: VM ran $(( $(date +%s) - start )) s"
grep -q "BERTH-CGROUPV2-RESULT: PASS" "$log"
