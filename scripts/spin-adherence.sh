#!/usr/bin/env bash
# spin-adherence.sh - psp-client's schedule adherence with its adaptive spin (the
# default) against a fixed 30 µs spin (--spin-us 30, the old default), side by side:
# the two alternate at each rate against one psp-app (configs/quickstart.yml, High
# Bimodal) on this machine.
#
#   scripts/spin-adherence.sh [RATE...]          # default: 100 300 1000 3000 7921
#   DURATION=3s OUT=results/client/adaptive-spin scripts/spin-adherence.sh
#
# Writes to $OUT: results.csv (psp-client's schema; label adaptive or fixed-30us),
# runs.txt (the tables), adherence.svg (adherence and p99.9 against the offered
# rate), summary.txt (adherence per rate and mode) and machine.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-results/client/adaptive-spin}
DURATION=${DURATION:-3s}
RATES=${*:-100 300 1000 3000 7921}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$CARGO_TARGET_DIR/release

cargo build --release -q -p persephone -p psp-client --bins
mkdir -p "$OUT"
RUNS=$(mktemp -d)
source scripts/lib.sh
{
  machine_info
  echo "command:  DURATION=$DURATION scripts/spin-adherence.sh $RATES"
} > "$OUT/machine.txt"
sed 's/127.0.0.1:6789/127.0.0.1:0/' configs/quickstart.yml > "$RUNS/server.yml"
trap 'stop_daemon; rm -rf "$RUNS"' EXIT
start_daemon "$RUNS/server.out" "$RUNS/server.err" "$BIN/psp-app" --cfg "$RUNS/server.yml"

: > "$OUT/runs.txt"
rm -f "$OUT/results.csv"
for r in $RATES; do
  for mode in adaptive fixed-30us; do
    flags=()
    [[ $mode == fixed-30us ]] && flags=(--spin-us 30)
    # A run may be INVALID (that is what is measured): its exit status is not ours.
    "$BIN/psp-client" --server "$DAEMON_ADDR" --workload high-bimodal --rate "$r" \
      --duration "$DURATION" --warmup 500ms --label "$mode" -q \
      --outdir "$RUNS/$mode-$r" "${flags[@]}" >> "$OUT/runs.txt" 2>&1 || true
    [[ -f $OUT/results.csv ]] || head -1 "$RUNS/$mode-$r/results.csv" > "$OUT/results.csv"
    tail -n +2 "$RUNS/$mode-$r/results.csv" >> "$OUT/results.csv"
  done
done
echo "load avg after:  $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

"$BIN/psp-client" plot "$OUT/results.csv" --x rate --panels adherence,latency \
  --title "psp-client schedule adherence: adaptive spin vs fixed 30 µs (same server, alternated)" \
  --out "$OUT/adherence.svg"

awk -F, '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $col["type"] == "ALL" {
    printf "%-11s rate %6.0f  adherence %6.2f %%  p99.9 %9s us\n",
      $col["label"], $col["offered_rps"], $col["adherence"] * 100, $col["latency_p999_us"]
  }' "$OUT/results.csv" | tee "$OUT/summary.txt"
