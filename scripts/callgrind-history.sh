#!/usr/bin/env bash
# callgrind-history.sh - the instruction count of DARC/4 types/14 workers/batch 32 at
# every commit that changed results/bench/callgrind.csv, read from git (no build, no
# valgrind): the history results/README.md quotes. One CSV line per commit:
#
#   scripts/callgrind-history.sh > results/bench/callgrind-history.csv
#
# Columns: commit, date, instructions_per_request (the whole turn),
# transport_rx_per_request (the in-memory receive within it, empty before it was
# counted), request_bytes_per_request (the generator within that, empty before).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-darc-4types-14w-b32}
echo "commit,date,instructions_per_request,transport_rx_per_request,request_bytes_per_request"
for c in $(git log --format=%h --reverse -- results/bench/callgrind.csv); do
  git show "$c:results/bench/callgrind.csv" | awk -F, -v c="$c" -v d="$(git show -s --format=%cs "$c")" -v n="$config" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == n {
      rx = ("transport_rx_per_request" in col) ? $col["transport_rx_per_request"] : ""
      gen = ("request_bytes_per_request" in col) ? $col["request_bytes_per_request"] : ""
      print c "," d "," $col["instructions_per_request"] "," rx "," gen
    }'
done
