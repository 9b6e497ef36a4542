#!/usr/bin/env bash
# readme-runs.sh - the runs behind the numbers README.md quotes from its own commands:
#
#   1. quickstart: psp-app with configs/quickstart.yml (DARC, 2 parked workers) and
#      psp-client, High Bimodal at loads 0.2 (the demo's) and 0.3, --realtime when
#      allowed: how LONG's latency grows from 0.2 to 0.3 on a small machine;
#   2. tpcc: psp-app with configs/tpcc-small.yml and psp-client with
#      configs/tpcc-client.yml (loads 0.2, 0.4, 0.6): where the mix saturates;
#   3. custom-handler: examples/custom_handler (HASH and PRIMES for types 1 and 2)
#      with configs/quickstart.yml, High Bimodal at 200 requests/s (no queueing to
#      speak of): PRIMES' latency against its nominal 100 µs.
#
#   scripts/readme-runs.sh
#   DURATION=5s OUT=results/client/readme-runs scripts/readme-runs.sh
#
# Writes to $OUT: quickstart.csv, tpcc.csv, custom-handler.csv (psp-client's
# results.csv schema), runs.txt (the client's tables, in order), quickstart.svg
# (latency against load) and machine.txt. Each server runs on a free port.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-results/client/readme-runs}
DURATION=${DURATION:-5s}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$CARGO_TARGET_DIR/release

cargo build --release -q -p persephone -p psp-client --bins
cargo build --release -q --example custom_handler
mkdir -p "$OUT"
RUNS=$(mktemp -d)
source scripts/lib.sh
trap 'stop_daemon; rm -rf "$RUNS"' EXIT
realtime=()
# --realtime needs root or CAP_SYS_NICE; a run without it on a small machine is often
# INVALID (the client could not keep its schedule), which the tables then say.
[[ $(id -u) == 0 ]] && realtime=(--realtime)
{
  machine_info
  echo "command:  DURATION=$DURATION scripts/readme-runs.sh (client flags: ${realtime[*]:-no --realtime})"
} > "$OUT/machine.txt"


# start NAME COMMAND...: starts the server of run NAME (lib.sh's start_daemon).
start() {
  local name=$1
  shift
  start_daemon "$RUNS/$name.out" "$RUNS/$name.err" "$@"
}

# client NAME ARGS...: one psp-client run into $RUNS/NAME, its table appended to
# runs.txt and its results.csv copied to $OUT/NAME.csv. A run may be INVALID or lose
# requests (that can be what is measured): its exit status is not ours.
client() {
  local name=$1
  shift
  echo "== $name: psp-client $*" >> "$OUT/runs.txt"
  "$BIN/psp-client" --server "$DAEMON_ADDR" "$@" -q --outdir "$RUNS/$name" >> "$OUT/runs.txt" 2>&1 || true
  cp "$RUNS/$name/results.csv" "$OUT/$name.csv"
}

: > "$OUT/runs.txt"
for c in quickstart tpcc-small; do
  grep -q '127.0.0.1:6789' "configs/$c.yml" \
    || { echo "configs/$c.yml no longer binds 127.0.0.1:6789: update this script" >&2; exit 1; }
  sed 's/127.0.0.1:6789/127.0.0.1:0/' "configs/$c.yml" > "$RUNS/$c.yml"
done

start quickstart "$BIN/psp-app" --cfg "$RUNS/quickstart.yml"
client quickstart --workload high-bimodal --workers 2 --loads 0.2,0.3 \
  --duration "$DURATION" --label quickstart ${realtime[@]+"${realtime[@]}"}
stop_daemon

start tpcc "$BIN/psp-app" --cfg "$RUNS/tpcc-small.yml"
client tpcc --config-path configs/tpcc-client.yml ${realtime[@]+"${realtime[@]}"}
stop_daemon

start custom-handler "$BIN/examples/custom_handler" --cfg "$RUNS/quickstart.yml"
client custom-handler --workload high-bimodal --rate 200 --duration "$DURATION" \
  --label custom-handler ${realtime[@]+"${realtime[@]}"}
stop_daemon

echo "load avg after:  $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
"$BIN/psp-client" plot "$OUT/quickstart.csv" --x load --panels latency,adherence \
  --title "quickstart (DARC, 2 parked workers), High Bimodal: latency against load" \
  --out "$OUT/quickstart.svg"
echo "wrote $OUT"
