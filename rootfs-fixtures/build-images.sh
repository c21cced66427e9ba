#!/bin/bash
# Build the test images from the busybox rootfs (never downloaded) with umoci and skopeo, and
# push them into a registry storage directory that tests serve with Debian's docker-registry.
#
# Usage: build-images.sh ROOTFS DEST   (DEST is built in DEST.tmp.PID and renamed when complete)
#
# DEST/oci                 OCI layout with tags:
#   base       one layer: the busybox rootfs; Cmd sh -c 'echo hello from base'
#   zstd       multi with zstd layers;  plain: multi with uncompressed layers
#   multi      base + 2 layers: file and directory whiteouts, an opaque dir, hardlinks, a
#              symlink, a fifo, setuid and owned files, an xattr; Entrypoint/Cmd/Env/
#              WorkingDir/User/ExposedPorts/Labels set
#   arm64      base labelled linux/arm64
#   multiarch  an index of base (linux/amd64) and arm64 (linux/arm64)
# DEST/multi-docker.tar    docker-archive of multi, RepoTags berth/multi:v1
# DEST/base-oci.tar        oci-archive of base
# DEST/registry/           registry storage holding, under 127.0.0.1:PORT/berth/:
#   base:latest (OCI, gzip), base-docker:latest (Docker schema 2), multi:latest,
#   multiarch:latest (index), zstd:latest (zstd layers), plain:latest (uncompressed layers)
# DEST/htpasswd            alice:s3cret (bcrypt) for the basic-auth registry
# DEST/token.{key,crt}     RSA key and certificate the token-auth registry trusts
# DEST/registry-*.yml      registry configs (open, basic auth, token auth); address and
#                          storage come from REGISTRY_HTTP_ADDR / REGISTRY_STORAGE_* at start
set -euo pipefail
rootfs=$(realpath "$1")
dest=$2
for t in umoci skopeo docker-registry htpasswd openssl jq setfattr zstd; do
    command -v $t >/dev/null || { echo "build-images: $t missing (make setup installs it)" >&2; exit 1; }
done
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
L=$tmp/oci
work=$tmp/work
mkdir -p "$work"

# --- base: the busybox rootfs as one layer
umoci init --layout "$L"
umoci new --image "$L:base"
tar --numeric-owner -C "$rootfs" -cf "$work/base.tar" .
umoci raw add-layer --image "$L:base" --history.created_by "busybox rootfs" "$work/base.tar"
umoci config --image "$L:base" --os linux --architecture amd64 \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.cmd /bin/sh --config.cmd -c --config.cmd 'echo hello from base'

# --- multi: two more layers that exercise whiteouts and every entry type
l2=$work/l2
mkdir -p "$l2/data" "$l2/olddir/deep" "$l2/opq/sub"
echo kept > "$l2/data/keep"
echo gone > "$l2/data/gone"
echo x > "$l2/olddir/deep/x"
echo a > "$l2/opq/a"
echo c > "$l2/opq/sub/c"
tar --numeric-owner -C "$l2" -cf "$work/l2.tar" .
l3=$work/l3
mkdir -p "$l3/data" "$l3/opq"
: > "$l3/data/.wh.gone"
: > "$l3/.wh.olddir"
: > "$l3/opq/.wh..wh..opq"
echo new > "$l3/opq/new"
echo linked > "$l3/data/h1"
ln "$l3/data/h1" "$l3/data/h2"
ln -s keep "$l3/data/sym"
mkfifo "$l3/data/fifo"
echo suid > "$l3/data/suid" && chmod 4755 "$l3/data/suid"
echo owned > "$l3/data/owned" && chown 1000:1000 "$l3/data/owned" && chmod 640 "$l3/data/owned"
echo attr > "$l3/data/attr" && setfattr -n user.berth -v yes "$l3/data/attr"
touch -d '2001-02-03 04:05:06 UTC' "$l3/data/h1" "$l3/opq/new"
touch -h -d '2001-02-03 04:05:06 UTC' "$l3/data/sym"
tar --numeric-owner --xattrs --xattrs-include='user.*' -C "$l3" -cf "$work/l3.tar" .
umoci tag --image "$L:base" multi
umoci raw add-layer --image "$L:multi" --history.created_by "data, olddir, opq" "$work/l2.tar"
umoci raw add-layer --image "$L:multi" --history.created_by "whiteouts and entry types" "$work/l3.tar"
umoci config --image "$L:multi" --clear=config.cmd \
    --config.entrypoint /bin/sh --config.entrypoint -c \
    --config.cmd 'id -u; id -g; pwd; echo $GREETING; cat keep' \
    --config.env GREETING=hello-multi --config.workingdir /data --config.user user \
    --config.exposedports 8080/tcp --config.label org.example.role=test

# --- arm64 and an index of both platforms
umoci tag --image "$L:base" arm64
umoci config --image "$L:arm64" --architecture arm64
desc() { jq -c --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | {mediaType, digest, size}' "$L/index.json"; }
jq -n --argjson a "$(desc base)" --argjson b "$(desc arm64)" '{
    schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [($a + {platform: {os: "linux", architecture: "amd64"}}),
                ($b + {platform: {os: "linux", architecture: "arm64", variant: "v8"}})]}' > "$work/index.json"
ih=$(sha256sum "$work/index.json" | cut -d' ' -f1)
cp "$work/index.json" "$L/blobs/sha256/$ih"
jq --arg d "sha256:$ih" --argjson s "$(stat -c %s "$work/index.json")" \
    '.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
                     annotations: {"org.opencontainers.image.ref.name": "multiarch"}}]' \
    "$L/index.json" > "$work/idx" && mv "$work/idx" "$L/index.json"
# --- the same image with zstd and with uncompressed layers
skopeo copy -q --dest-decompress "oci:$L:multi" "dir:$work/plain"
skopeo copy -q -f oci --dest-compress-format zstd "dir:$work/plain" "oci:$L:zstd"
skopeo copy -q -f oci --dest-oci-accept-uncompressed-layers "dir:$work/plain" "oci:$L:plain"
umoci gc --layout "$L"

# --- archives
skopeo copy -q "oci:$L:multi" "docker-archive:$tmp/multi-docker.tar:berth/multi:v1"
skopeo copy -q "oci:$L:base" "oci-archive:$tmp/base-oci.tar:base"

# --- registry configs and credentials
htpasswd -Bbn alice s3cret > "$tmp/htpasswd"
openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=berth-token \
    -keyout "$tmp/token.key" -out "$tmp/token.crt" 2>/dev/null
base_cfg='version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: /nonexistent}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5000}'
echo "$base_cfg" > "$tmp/registry-open.yml"
printf '%s\nauth: {htpasswd: {realm: berth, path: %s}}\n' "$base_cfg" "$(realpath "$dest")/htpasswd" > "$tmp/registry-basic.yml"
# realm: the tests' token server sets REGISTRY_AUTH_TOKEN_REALM when it starts
printf '%s\nauth: {token: {realm: "http://127.0.0.1:1/token", service: berth-registry, issuer: berth-test, rootcertbundle: %s}}\n' \
    "$base_cfg" "$(realpath "$dest")/token.crt" > "$tmp/registry-token.yml"

# --- push into registry storage
port=
for p in $(seq $((20000 + $$ % 20000)) $((20100 + $$ % 20000))); do
    ss -Htln "sport = :$p" | grep -q . || { port=$p; break; }
done
[ -n "$port" ] || { echo "build-images: no free port" >&2; exit 1; }
REGISTRY_HTTP_ADDR=127.0.0.1:$port REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$tmp/registry \
    docker-registry serve "$tmp/registry-open.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
R=docker://127.0.0.1:$port/berth
push() { skopeo copy -q --dest-tls-verify=false "$@"; }
push "oci:$L:base" "$R/base:latest"
push -f v2s2 "oci:$L:base" "$R/base-docker:latest"
push "oci:$L:multi" "$R/multi:latest"
push --all "oci:$L:multiarch" "$R/multiarch:latest"
kill "$registry_pid"; wait "$registry_pid" 2>/dev/null || true
registry_pid=
# a registry push recompresses (and skopeo swaps in blobs it pushed before), so the zstd and
# uncompressed images are written into the registry's storage layout directly: blobs, layer
# links, the manifest revision and the tag
store_blob() { # REPO DIGEST [manifest]
    local h=${2#sha256:} base=$tmp/registry/docker/registry/v2
    mkdir -p "$base/blobs/sha256/${h:0:2}/$h"
    cp "$L/blobs/sha256/$h" "$base/blobs/sha256/${h:0:2}/$h/data"
    local link=$base/repositories/$1/_layers/sha256/$h
    [ "${3:-}" = manifest ] && link=$base/repositories/$1/_manifests/revisions/sha256/$h
    mkdir -p "$link" && printf '%s' "$2" > "$link/link"
}
store_image() { # TAG REPO
    local m d t
    m=$(jq -r --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$L/index.json")
    for d in $(jq -r '.config.digest, .layers[].digest' "$L/blobs/sha256/${m#sha256:}"); do
        store_blob "$2" "$d"
    done
    store_blob "$2" "$m" manifest
    t=$tmp/registry/docker/registry/v2/repositories/$2/_manifests/tags/latest
    mkdir -p "$t/current" "$t/index/sha256/${m#sha256:}"
    printf '%s' "$m" > "$t/current/link"
    printf '%s' "$m" > "$t/index/sha256/${m#sha256:}/link"
}
store_image zstd berth/zstd
store_image plain berth/plain
rm -rf "$work"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "built $dest"
