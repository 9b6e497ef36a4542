#!/usr/bin/env bash
# bench.sh - reproduces every number in results/README.md, "Dispatcher hot path".
#
#   scripts/bench.sh                  # build, then measure now
#   scripts/bench.sh --wait-idle 1.5  # build, then wait until the 1-minute load
#                                     # average is below 1.5 before each benchmark
#                                     # (gives up after 15 minutes of waiting)
#
# Writes results/bench/: machine.txt (CPU, kernel, toolchain, commit, load at each
# step), criterion.csv (every criterion estimate), callgrind.csv (instructions per
# request), summary.md (the README's tables) and the SVG figures. Criterion's own
# reports stay in $CARGO_TARGET_DIR/criterion.
#
# The ring and dispatcher benchmarks pin threads to cores 0 and 1 and spin: run them on
# an otherwise idle machine with at least 2 cores, or the numbers mean nothing. The
# instruction counts (scripts/callgrind.sh) do not depend on the load.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
out=results/bench
wait_load=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wait-idle) wait_load="$2"; shift 2 ;;
    *) echo "usage: $0 [--wait-idle LOAD]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

source scripts/lib.sh
# --wait-idle LOAD: wait_quiet with MAX_LOAD=LOAD (and its 15-minute limit) before each
# benchmark; without it, measure at once.
wait_idle() {
  [ -n "$wait_load" ] || return 0
  MAX_LOAD=$wait_load wait_quiet >/dev/null
}
note() { echo "$*" | tee -a "$out/machine.txt" >&2; }

{
  echo "# machine"
  lscpu | grep -E '^(Architecture|Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor|L1d|L1i|L2|L3|NUMA node0)' || true
  echo "kernel: $(uname -sr)"
  echo "rustc: $(rustc -V)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches || echo ' (+ local changes)')"
  echo "date: $(date -u +%FT%TZ)"
  echo
  echo "# load average (1, 5, 15 min) when each step started"
} >"$out/machine.txt"

echo "building the benchmarks..." >&2
cargo bench --no-run --bench ring --bench policy --bench dispatcher --bench callgrind >/dev/null 2>&1 \
  || cargo bench --no-run --bench ring --bench policy --bench dispatcher --bench callgrind

for b in ring policy dispatcher; do
  wait_idle
  note "$b: $(cut -d' ' -f1-3 /proc/loadavg)"
  cargo bench --bench "$b" -- --noplot 2>&1 | tee "$out/$b.txt" | grep -E 'time:|thrpt:|^[a-z]' >&2 || true
done
note "after: $(cut -d' ' -f1-3 /proc/loadavg)"

scripts/callgrind.sh --out "$out/callgrind.csv"
python3 scripts/bench-plot.py "$CARGO_TARGET_DIR/criterion" "$out"
echo "wrote $out/summary.md and figures" >&2
