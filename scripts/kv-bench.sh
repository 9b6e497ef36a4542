#!/usr/bin/env bash
# kv-bench.sh - the KV store under load: throughput and per-type p99.9 under DARC and
# c-FCFS, for the kv (50 % GET / 50 % SCAN) and kv-99.5 workloads at two rates, over
# kernel UDP on loopback. Writes $OUT (results/kv by default):
#   results.csv   psp-client's rows for every point (label = workload)
#   checks.csv    answers verified and wrong, per point and type
#   summary.md    one line per point: achieved rate, GET and SCAN p50/p99.9, wrong, load
#   points.txt    per point: the load average it started at, the server's counters file
#   server/       psp-app's final counters (.txt) and log (.log, DARC's reservations with
#                 the per-type service times it measured) per point
#   raw/          the client's files per point
#   machine.txt   the machine and the commit
#
#   scripts/kv-bench.sh
#   RATES="3000 8000" IDLE=park DURATION=5s OUT=/tmp/kv scripts/kv-bench.sh
#
# The machine may be shared: before each point the script waits (up to WAIT_TRIES x 10 s)
# until the 1-minute load average is below MAX_LOAD, and records the load it started at.
# Every point gets a fresh server (configs/kv.yml with its policy, idle strategy, port
# and stats interval replaced), so DARC profiles from scratch. The client checks every
# answer; a wrong one stops the script.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-results/kv}
RATES=${RATES:-"6000 12000"}
WORKLOADS=${WORKLOADS:-"kv kv-99.5"}
POLICIES=${POLICIES:-"darc cfcfs"}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
REPEATS=${REPEATS:-2}
IDLE=${IDLE:-yield}
MAX_LOAD=${MAX_LOAD:-1.5}
WAIT_TRIES=${WAIT_TRIES:-90}
PORT=${PORT:-6791}
CLIENT_FLAGS=${CLIENT_FLAGS:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$CARGO_TARGET_DIR/release

cargo build --release -q --bin psp-app -p persephone
cargo build --release -q -p psp-client

rm -rf "$OUT/server" "$OUT/raw"
mkdir -p "$OUT/server" "$OUT/raw"
rm -f "$OUT/results.csv" "$OUT/checks.csv" "$OUT/points.txt"
tmp=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -INT "$server_pid" && wait "$server_pid" || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

{
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src client configs || echo ' (+ uncommitted changes)')"
    echo "kernel: $(uname -sr)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) online"
    echo "memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "settings: rates $RATES; workloads $WORKLOADS; policies $POLICIES; $DURATION after $WARMUP warm-up; idle $IDLE; max load $MAX_LOAD; client flags '$CLIENT_FLAGS'"
} > "$OUT/machine.txt"

source scripts/lib.sh

for policy in $POLICIES; do
    cfg=$tmp/kv-$policy.yml
    sed -e "s/^policy: .*/policy: { kind: $policy, delta: 0.2, window: 2000 }/" \
        -e "s/idle: park/idle: $IDLE/g" \
        -e "s/127\.0\.0\.1:6789/127.0.0.1:$PORT/" \
        -e "s/interval_ms: 1000/interval_ms: 0/" configs/kv.yml > "$cfg"
    for workload in $WORKLOADS; do
        for rate in $RATES; do
          for ((rep = 1; rep <= REPEATS; rep++)); do
            point=$policy-$workload-$rate-r$rep
            echo "== $point" >&2
            load=$(wait_quiet)
            "$BIN/psp-app" --cfg "$cfg" --log info > "$tmp/server.out" 2> "$tmp/server.err" &
            server_pid=$!
            wait_listening "$server_pid" "$tmp/server.out" "$tmp/server.err"
            rm -rf "$OUT/raw/$point"
            mkdir -p "$OUT/raw/$point"
            status=0
            # shellcheck disable=SC2086
            "$BIN/psp-client" --port "$PORT" --workers 2 --workload "$workload" \
                --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" \
                --label "$workload" --policy "$policy" --outdir "$OUT/raw/$point" --seed "$rep" \
                --quiet $CLIENT_FLAGS > "$OUT/raw/$point/table.txt" 2>&1 || status=$?
            kill -INT "$server_pid"
            wait "$server_pid" || true
            server_pid=
            cp "$tmp/server.out" "$OUT/server/$point.txt"
            sed 's/\x1b\[[0-9;]*m//g' "$tmp/server.err" > "$OUT/server/$point.log"
            cat "$OUT/raw/$point/table.txt" >&2
            [[ $status -eq 0 ]] || { echo "psp-client failed on $point" >&2; exit 1; }
            if [[ -f $OUT/results.csv ]]; then
                tail -n +2 "$OUT/raw/$point/results.csv" >> "$OUT/results.csv"
                tail -n +2 "$OUT/raw/$point/checks.csv" >> "$OUT/checks.csv"
            else
                cp "$OUT/raw/$point/results.csv" "$OUT/results.csv"
                cp "$OUT/raw/$point/checks.csv" "$OUT/checks.csv"
            fi
            wrong=$(awk -F, 'NR > 1 { w += $NF } END { print w + 0 }' "$OUT/raw/$point/checks.csv")
            echo "$point load_at_start=$load load_at_end=$(load1) wrong=$wrong server=server/$point.txt" >> "$OUT/points.txt"
          done
        done
    done
done

# One line per point.
python3 - "$OUT" <<'EOF'
import csv, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/results.csv")))
checks = list(csv.DictReader(open(f"{out}/checks.csv")))
points = []
for line in open(f"{out}/points.txt"):
    name, *kv = line.split()
    points.append((name, dict(x.split("=", 1) for x in kv)))
def cell(r, k):
    v = r.get(k, "")
    return f"{float(v):.0f}" if v else "-"
lines = [
    "| workload | policy | run | offered rps | achieved rps | GET p50 µs | GET p99.9 µs | SCAN p50 µs | SCAN p99.9 µs | lost | rejected | wrong | adherence | load avg |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
pending, k = {}, 0
for r in rows:
    # A point's rows are its types, then its ALL row; points come in points.txt's order.
    if r["type"] != "ALL":
        pending[r["type"]] = r
        continue
    g, s = pending.get("GET", {}), pending.get("SCAN", {})
    pending = {}
    name, info = points[k]
    k += 1
    offered = float(r["offered_rps"])
    rejected = sum(int(r[c]) for c in r if c.startswith("rejected_"))
    run = name.rsplit("-", 1)[1]
    lines.append(
        f"| {r['label']} | {r['policy']} | {run} | {offered:.0f} | {float(r['achieved_rps']):.0f} | "
        f"{cell(g, 'latency_p50_us')} | {cell(g, 'latency_p999_us')} | {cell(s, 'latency_p50_us')} | "
        f"{cell(s, 'latency_p999_us')} | {r['lost']} | {rejected} | {info['wrong']} | "
        f"{float(r['adherence']) * 100:.1f} % | {info['load_at_start']} |"
    )
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF

# p99.9 latency and slowdown per (policy, workload, type) against the offered rate.
"$BIN/psp-client" plot "$OUT/results.csv" --x rate --out "$OUT/p999.svg" \
  --title "KV store, 2 workers: p99.9 by offered rate (two runs per point)"
