#!/usr/bin/env bash
# kv-store-bench.sh - what the KV store's operations cost without the network
# (examples/kv_store_bench: GET, SCAN of 256 pairs, SET through the real handler, on 1
# and 2 threads sharing the store), on a quiet machine. Writes $OUT/store.txt.
#
#   scripts/kv-store-bench.sh
#   OUT=/tmp/kv MAX_LOAD=1.0 scripts/kv-store-bench.sh 100000 32 256 2
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-results/kv}
MAX_LOAD=${MAX_LOAD:-1.5}
WAIT_TRIES=${WAIT_TRIES:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --release -q --example kv_store_bench
mkdir -p "$OUT"
source scripts/lib.sh
load=$(wait_quiet)
{
    echo "# $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cpus"
    echo "# load average at start: $load; command: $CARGO_TARGET_DIR/release/examples/kv_store_bench $*"
    "$CARGO_TARGET_DIR/release/examples/kv_store_bench" "$@"
    echo "# load average at end: $(cut -d' ' -f1 /proc/loadavg)"
} | tee "$OUT/store.txt"
