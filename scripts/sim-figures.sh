#!/usr/bin/env bash
# sim-figures.sh - reproduces the Perséphone evaluation (14 workers) in the simulator,
# into results/sim/: CSV/JSON per experiment, SVG figures, and the SLO table.
#
#   scripts/sim-figures.sh            all experiments (~10^9 simulated requests:
#                                     a few minutes on 2 free cores)
#   PSP_SIM_SCALE=0.1 scripts/...     a tenth of the requests (quick look; noisier tails)
#
# Every point uses seed 1, so c-FCFS, d-FCFS and DARC see the very same requests.
# d-FCFS assigns requests at random (RSS over many flows) to per-worker queues deep
# enough never to fill (the paper's d-FCFS has no dispatcher to block).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --bin psp-sim -p persephone
cargo build --release --bin psp-client -p psp-client
SIM=$CARGO_TARGET_DIR/release/psp-sim
CLIENT=$CARGO_TARGET_DIR/release/psp-client
OUT=results/sim
SCALE=${PSP_SIM_SCALE:-1}
n() { awk -v n="$1" -v s="$SCALE" 'BEGIN { printf "%d", n * s }'; }
COMMON=(--workers 14 --seed 1 --assign random --depth 1000000)

# 1. High Bimodal (50 % 1 µs, 50 % 100 µs): p99.9 latency and slowdown vs load.
$SIM --workload high-bimodal --loads 0.05:0.95:0.05 --policies cfcfs,dfcfs,darc \
  --requests "$(n 2000000)" "${COMMON[@]}" --outdir $OUT/high-bimodal
$CLIENT plot $OUT/high-bimodal/sim.csv -o $OUT/high-bimodal/p999.svg --overall \
  --title "High Bimodal, 14 workers (simulated): p99.9"

# 2. Extreme Bimodal (99.5 % 0.5 µs, 0.5 % 500 µs): 10^7 requests per point so the
#    0.5 % long requests still give 50 000 samples.
$SIM --workload extreme-bimodal --loads 0.05:0.95:0.05 --policies cfcfs,dfcfs,darc \
  --requests "$(n 10000000)" "${COMMON[@]}" --outdir $OUT/extreme-bimodal
$CLIENT plot $OUT/extreme-bimodal/sim.csv -o $OUT/extreme-bimodal/p999.svg --overall \
  --title "Extreme Bimodal, 14 workers (simulated): p99.9"

# 3. TPC-C at 85 % load: per-type p99.9 latency and slowdown.
$SIM --workload tpcc --loads 0.85 --policies cfcfs,dfcfs,darc \
  --requests "$(n 5000000)" "${COMMON[@]}" --outdir $OUT/tpcc
$SIM plot types $OUT/tpcc -o $OUT/tpcc/p999-latency.svg --metric latency_p999_us \
  --title "TPC-C, 14 workers, 85 % load (simulated): p99.9 latency (µs)"
$SIM plot types $OUT/tpcc -o $OUT/tpcc/p999-slowdown.svg --metric slowdown_p999 \
  --title "TPC-C, 14 workers, 85 % load (simulated): p99.9 slowdown"

# 3b. Sensitivity: TPC-C between 85 % and 92 % nominal load (where the paper's gains
#     for Payment and OrderStatus are reached), and TPC-C with lognormal service times.
$SIM --workload tpcc --loads 0.85,0.88,0.9,0.92 --policies cfcfs,darc \
  --requests "$(n 5000000)" "${COMMON[@]}" --outdir $OUT/tpcc-loads
$SIM --workload $OUT/tpcc-lognormal.yml --loads 0.85 --policies cfcfs,dfcfs,darc \
  --requests "$(n 5000000)" "${COMMON[@]}" --outdir $OUT/tpcc-lognormal
$CLIENT plot $OUT/tpcc-loads/sim.csv -o $OUT/tpcc-loads/p999-slowdown.svg \
  --panels slowdown --title "TPC-C, 14 workers, 85-92 % load (simulated): p99.9 slowdown"
$SIM plot types $OUT/tpcc-lognormal -o $OUT/tpcc-lognormal/p999-slowdown.svg \
  --metric slowdown_p999 \
  --title "TPC-C, lognormal service times, 85 % load (simulated): p99.9 slowdown"

# 4. DARC's reservation sweep: 0..13 workers reserved to SHORT, High Bimodal at 90 %.
$SIM --workload high-bimodal --loads 0.9 --policies darc --n-resas 0:13 \
  --requests "$(n 2000000)" "${COMMON[@]}" --outdir $OUT/reservation-sweep
$SIM plot resa $OUT/reservation-sweep -o $OUT/reservation-sweep/p999-slowdown.svg \
  --metric slowdown_p999 --title "High Bimodal, 90 % load: DARC with n_resas = [k] (simulated)"

# 5. Phased workload with DARC's profiler live (results/sim/phases.yml), c-FCFS beside.
$SIM --phases $OUT/phases.yml --policies cfcfs,darc --timeline-us 20000 \
  "${COMMON[@]}" --outdir $OUT/phased
$SIM plot timeline $OUT/phased -o $OUT/phased/timeline.svg --phase-ms 1000,2000,3000 \
  --title "Phased workload, 14 workers, 80 % load (simulated): p99.9 per 20 ms window"

# 6. Throughput at a 20 µs p99.9 SLO on SHORT requests (High Bimodal): the highest
#    load at which each policy still meets it.
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  $c["type"] == "SHORT" && !($c["policy"] in broke) {
    p = $c["policy"]; if (!(p in best)) best[p] = 0
    if ($c["latency_p999_us"] != "" && $c["latency_p999_us"] + 0 <= 20) best[p] = $c["load"]
    else broke[p] = 1
  }
  END { for (p in best) printf "%-6s highest load meeting the SLO: %s\n", p, best[p] }' \
  $OUT/high-bimodal/sim.csv | sort > $OUT/high-bimodal/slo-20us.txt
cat $OUT/high-bimodal/slo-20us.txt

# 7. Ordering by type against reserving cores: SJF and EDF (slo 10) rank SHORT
#    first as DARC does, but keep no core free of LONG. High Bimodal and TPC-C.
$SIM --workload high-bimodal --loads 0.05:0.95:0.05 --policies cfcfs,sjf,edf,darc \
  --requests "$(n 2000000)" "${COMMON[@]}" --outdir $OUT/ordering/high-bimodal
$CLIENT plot $OUT/ordering/high-bimodal/sim.csv -o $OUT/ordering/high-bimodal/p999.svg \
  --title "High Bimodal, 14 workers (simulated): ordering by type vs reserving cores"
$SIM --workload tpcc --loads 0.85 --policies cfcfs,sjf,edf,darc \
  --requests "$(n 5000000)" "${COMMON[@]}" --outdir $OUT/ordering/tpcc
$SIM plot types $OUT/ordering/tpcc -o $OUT/ordering/tpcc/p999-slowdown.svg \
  --metric slowdown_p999 \
  --title "TPC-C, 14 workers, 85 % load (simulated): p99.9 slowdown"
