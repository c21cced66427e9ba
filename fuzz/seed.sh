#!/bin/bash
# Seed the extractor's corpus with the small blobs of the image fixtures: layers (tar, gzip,
# zstd) and, as near misses, configs and manifests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
blobs=$here/../rootfs-fixtures/build/images/oci/blobs/sha256
mkdir -p "$here/corpus/extract"
find "$blobs" -type f -size -64k -exec cp {} "$here/corpus/extract/" \;
echo "seeded $(ls "$here/corpus/extract" | wc -l) inputs"
