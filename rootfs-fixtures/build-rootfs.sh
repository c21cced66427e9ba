#!/bin/sh
# Build a minimal busybox rootfs from Debian's busybox-static (never downloaded from elsewhere).
# Usage: build-rootfs.sh DEST   (DEST must not exist; it is built in DEST.tmp and renamed)
set -eu
dest=$1
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "build-rootfs: $busybox missing: apt-get install busybox-static" >&2; exit 1; }
# a static busybox runs in any rootfs without its libraries
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/sbin" "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/etc" "$tmp/proc" "$tmp/sys" \
         "$tmp/dev" "$tmp/tmp" "$tmp/root" "$tmp/home/user" "$tmp/var/run" "$tmp/mnt"
chmod 1777 "$tmp/tmp"
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$tmp/bin/$applet"
done
cat > "$tmp/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$tmp/etc/group" <<GROUP
root:x:0:
tty:x:5:
user:x:1000:
extra:x:1234:user
nogroup:x:65534:
GROUP
chown 1000:1000 "$tmp/home/user"
echo berth > "$tmp/etc/hostname"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "built $dest"
