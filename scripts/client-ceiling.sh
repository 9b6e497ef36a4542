#!/usr/bin/env bash
# client-ceiling.sh - measures psp-client's own ceiling on this machine: the highest
# rate it sends with >= 99.9 % schedule adherence (sends within 10 us of schedule)
# against psp-app's `echo` handler over kernel UDP on loopback.
#
#   scripts/client-ceiling.sh [RATE...]      # default: 5k .. 200k requests/s
#   DURATION=10s OUT=results/client scripts/client-ceiling.sh 20000 40000
#   CLIENT_FLAGS=--realtime LABEL=realtime scripts/client-ceiling.sh   # SCHED_FIFO (root)
#
# Writes to $OUT (default results/client): ceiling.csv (psp-client's CSV schema, one
# run per rate), ceiling.txt (the tables), ceiling.svg (p99 latency, adherence and
# achieved rate against the offered rate), machine.txt, and summary.txt with the
# ceiling. The server and the client share the machine, as they do in every run here.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-results/client}
DURATION=${DURATION:-5s}
CLIENT_FLAGS=${CLIENT_FLAGS:-}
LABEL=${LABEL:-echo-ceiling}
RATES=${*:-5000 10000 20000 40000 60000 80000 100000 150000 200000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$CARGO_TARGET_DIR/release

cargo build --release -q -p persephone -p psp-client --bins
mkdir -p "$OUT"
RUNS=$(mktemp -d)

source scripts/lib.sh
{
  machine_info
  echo "command:  DURATION=$DURATION CLIENT_FLAGS='$CLIENT_FLAGS' LABEL=$LABEL scripts/client-ceiling.sh $RATES"
} > "$OUT/machine.txt"

# The daemon prints "listening on ADDR" once it serves; read that line from its stdout.
exec 3< <(exec "$BIN/psp-app" --cfg configs/client-echo-server.yml 2>"$RUNS/server.err")
SERVER_PID=$!
cleanup() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$RUNS"
}
trap cleanup EXIT
if ! read -r -t 30 line <&3; then
  echo "psp-app did not start:" >&2
  cat "$RUNS/server.err" >&2
  exit 1
fi
ADDR=${line#listening on }
# Keep draining the daemon's stdout (its final counters) in the background.
cat <&3 > "$RUNS/server.out" &

: > "$OUT/ceiling.txt"
rm -f "$OUT/ceiling.csv"
for r in $RATES; do
  "$BIN/psp-client" --config-path configs/client-echo-ceiling.yml --server "$ADDR" \
    --rate "$r" --duration "$DURATION" --label "$LABEL" -q --outdir "$RUNS/rate$r" $CLIENT_FLAGS | tee -a "$OUT/ceiling.txt"
  [ -f "$OUT/ceiling.csv" ] || head -1 "$RUNS/rate$r/results.csv" > "$OUT/ceiling.csv"
  tail -n +2 "$RUNS/rate$r/results.csv" >> "$OUT/ceiling.csv"
done
echo "load avg after:  $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

"$BIN/psp-client" plot "$OUT/ceiling.csv" --x rate --quantile p99 \
  --panels latency,adherence,achieved --title "psp-client ceiling: echo handler, kernel UDP, loopback" \
  --out "$OUT/ceiling.svg"

# The ceiling: the highest offered rate whose adherence is >= 99.9 %, from the ALL rows.
awk -F, '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $col["type"] == "ALL" {
    printf "rate %8.0f  adherence %7.3f %%  achieved %8.0f  p99 %8s us  lost %s\n",
      $col["offered_rps"], 100 * $col["adherence"], $col["achieved_rps"],
      $col["latency_p99_us"], $col["lost"]
    if ($col["adherence"] >= 0.999 && $col["offered_rps"] > best) best = $col["offered_rps"]
  }
  END { printf "ceiling (>= 99.9 %% adherence): %.0f requests/s\n", best }
' "$OUT/ceiling.csv" | tee "$OUT/summary.txt"
