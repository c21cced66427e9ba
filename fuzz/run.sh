#!/bin/bash
# Run the layer extractor's fuzz target for SECONDS (default 300) and print a summary: runs,
# coverage, corpus, and what it found. libFuzzer's own output (thousands of lines) goes to a
# log, printed only when the run fails. cargo-fuzz is installed by `make setup`. The fuzz crate
# is its own workspace (berth's release profile, LTO and panic=abort, does not build with the
# sanitizers) with its committed Cargo.lock; a run changes no tracked file.
set -uo pipefail
secs=${1:-300}
here=$(cd "$(dirname "$0")" && pwd)
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz is missing: run make setup" >&2; exit 1; }
"$here/seed.sh" >/dev/null
log=$(mktemp /tmp/berth-fuzz.XXXXXX)
work=/run/berth-fuzz-$$
cd "$here"
RUSTC_BOOTSTRAP=1 BERTH_FUZZ_DIR=$work cargo fuzz run extract corpus/extract -- \
    -max_total_time="$secs" -rss_limit_mb=4096 >"$log" 2>&1
rc=$?
rm -rf "$work"
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
done_line=$(grep -E 'Done [0-9]+ runs' "$log" | tail -1)
echo "fuzz extract, ${secs} s: ${done_line:-no summary line}"
echo "fuzz extract: last status: ${last:-none}"
if [ $rc -ne 0 ]; then
    echo "fuzz extract FAILED (status $rc); libFuzzer's output:" >&2
    tail -n 80 "$log" >&2
    ls "$here/artifacts/extract" 2>/dev/null | sed 's/^/fuzz: artifact /' >&2
else
    echo "fuzz extract: no crash, leak or timeout"
fi
rm -f "$log"
exit $rc
