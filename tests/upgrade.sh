#!/bin/bash
# Build the berth of an earlier commit (from this checkout's history) and run the upgrade test
# against it: a pod made by that berth, then inspected, stopped and removed by this one.
# Usage: tests/upgrade.sh COMMIT
set -euo pipefail
commit=$1
top=$(cd "$(dirname "$0")/.." && pwd)
src=$top/target/upgrade/src-$commit
out=$top/target/upgrade/$commit
if [ ! -x "$out/berth" ]; then
    git -C "$top" cat-file -e "$commit^{commit}" 2>/dev/null ||
        { echo "upgrade: commit $commit is not in this checkout's history (a shallow clone?)" >&2; exit 1; }
    rm -rf "$src" && mkdir -p "$src" "$out"
    git -C "$top" archive "$commit" | tar -x -C "$src"
    echo "upgrade: building berth $commit (debug)"
    cargo build -q --manifest-path "$src/Cargo.toml" --target-dir "$top/target/upgrade/target" --bin berth
    cp "$top/target/upgrade/target/debug/berth" "$out/berth"
    rm -rf "$src"
fi
cd "$top"
BERTH_OLD_BINARY=$out/berth cargo test -q --test pods upgrade -- --include-ignored
