#!/usr/bin/env bash
# callgrind.sh - instructions per request on the dispatcher, counted by valgrind.
#
# Runs the single-threaded dispatcher driver (benches/callgrind.rs) under
# `valgrind --tool=callgrind`, collecting only inside the dispatcher's turn (completions,
# receive, dispatch; the simulated workers are not counted). Each configuration runs
# twice, with R1 and R2 measured requests after the same warm-up; instructions per
# request = (Ir(R2) - Ir(R1)) / (R2 - R1), so start-up and warm-up cancel out. The count
# does not depend on the machine's load: same binary, same number.
#
# Each count is split three ways: the dispatcher's own code; the in-memory transport's
# receive less its generator (buffers handed out of the pool); the generator writing
# each request's bytes (with a NIC that DMAs, the client's and the NIC's work; with
# kernel UDP or memif, a copy that does run on the dispatcher core). The CSV's columns:
# instructions_per_request (the whole turn), transport_rx_per_request (the receive with
# the generator), request_bytes_per_request (the generator), without_generator_per_request
# (the whole turn less the generator: the dispatcher core's count with a DMA NIC). The
# budget applies to the whole turn.
#
#   scripts/callgrind.sh                 # every configuration, table on stdout
#   scripts/callgrind.sh --out FILE.csv  # also write the CSV
#   scripts/callgrind.sh --annotate      # also keep the R2 profiles (with per-instruction
#                                        # costs, for kcachegrind or
#                                        # callgrind_annotate) and their listings
#                                        # (NAME.txt: every instruction of the turn that
#                                        # ran, per request, with its disassembly and
#                                        # source line), and print the top functions of
#                                        # the DARC/4-type run
#   scripts/callgrind.sh --budget NAME=MAX
#                                        # count configuration NAME only, and fail if it
#                                        # takes more than MAX instructions per request
#                                        # (CI's regression check)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

out=""
annotate=0
budget_name=""
budget_max=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --annotate) annotate=1; shift ;;
    --budget)
      budget_name=${2%%=*}; budget_max=${2#*=}
      [[ "$2" == *=* && "$budget_max" =~ ^[0-9]+(\.[0-9]+)?$ ]] \
        || { echo "--budget: expected NAME=MAX (e.g. darc-4types-14w-b32=215), got '$2'" >&2; exit 2; }
      shift 2 ;;
    *) echo "usage: $0 [--out FILE.csv] [--annotate] [--budget NAME=MAX]" >&2; exit 2 ;;
  esac
done

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }
command -v addr2line >/dev/null || { echo "addr2line not found (apt-get install binutils)" >&2; exit 1; }

bin=$(cargo bench --bench callgrind --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*callgrind-[0-9a-f]*\)).*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not find the callgrind bench binary" >&2; exit 1; }

# The code measured: the commit, and whether the code differs from it (results/ may).
code_rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- src benches scripts Cargo.toml Cargo.lock 2>/dev/null \
  || code_rev+=" (with uncommitted changes to the code)"

R1=20000
R2=120000
WARMUP=20000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Total instructions collected in a callgrind output file.
total_ir() { sed -n 's/^summary: \([0-9]*\).*/\1/p' "$1"; }

count() { # name, args...
  local name=$1; shift
  [ -z "$budget_name" ] || [ "$name" = "$budget_name" ] || return 0
  local irs=()
  for r in $R1 $R2; do
    local f="$tmp/$name.$r.out"
    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$f" --toggle-collect='*callgrind*turn*' \
      "$bin" --requests "$r" --warmup "$WARMUP" "$@" >"$tmp/$name.$r.log" 2>&1 \
      || { cat "$tmp/$name.$r.log" >&2; exit 1; }
    irs+=("$(total_ir "$f")")
  done
  # The in-memory transport's receive (our stand-in for a NIC driver), inclusive; and
  # within it the generator writing each request's bytes (`fill`, inlined into the
  # receive, found by the binary's inlining records): the client's and the NIC's DMA
  # part, which runs on no dispatcher core in a deployment.
  local rxs=() gens=()
  for r in $R1 $R2; do
    rxs+=("$(callgrind_annotate --inclusive=yes "$tmp/$name.$r.out" 2>/dev/null \
      | awk '/MemRx.* as persephone::net::RxQueue>::rx_burst/ && !done { gsub(",", "", $1); print $1; done = 1 }')")
    # Not fatal: the budget counts the whole turn, which needs no split.
    gens+=("$(python3 scripts/callgrind-instr.py inlined "$tmp/$name.$r.out" "$bin" fill src/net/mem.rs || true)")
  done
  local per rx gen="" core="" drv="?"
  per=$(python3 -c "print(f'{(${irs[1]} - ${irs[0]}) / ($R2 - $R1):.1f}')")
  rx=$(python3 -c "print(f'{(${rxs[1]:-0} - ${rxs[0]:-0}) / ($R2 - $R1):.1f}')")
  if [[ -n ${gens[0]} && -n ${gens[1]} ]]; then
    gen=$(python3 -c "print(f'{(${gens[1]} - ${gens[0]}) / ($R2 - $R1):.1f}')")
    core=$(python3 -c "print(f'{$per - $gen:.1f}')")
    drv=$(python3 -c "print(f'{$rx - $gen:.1f}')")
  else
    echo "$name: the generator's part could not be told apart (see above); its columns are left empty" >&2
  fi
  local turns
  turns=$(sed -n 's/.* in \([0-9]*\) turns (\([0-9.]*\) per turn).*/\2/p' "$tmp/$name.$R2.log")
  local own
  own=$(python3 -c "print(f'{$per - $rx:.1f}')")
  printf '%-24s %7s instr/request: %5s without the generator (%5s the dispatcher'"'"'s own, %4s the rest of the receive), %5s the generator writing the requests  (%s requests/turn)\n' \
    "$name" "$per" "${core:-?}" "$own" "$drv" "${gen:-?}" "$turns"
  echo "$name,$*,$per,$rx,$gen,$core,$turns" >>"$tmp/table.csv"
  if [ "$annotate" = 1 ]; then
    mkdir -p results/bench/callgrind
    cp "$tmp/$name.$R2.out" "results/bench/callgrind/$name.out"
    # Per instruction, per request (the R2 run's turns saw its warm-up's requests too).
    {
      echo "# $name ($*): instructions per request, per instruction, from the run of"
      echo "# $R2 requests after a $WARMUP-request warm-up (divided by $((R2 + WARMUP)));"
      echo "# scripts/callgrind.sh --annotate at $code_rev."
      echo "# The binary's instructions only: the libc memcpy the receive calls is in the CSV's"
      echo "# transport_rx_per_request, not in the rx_burst total below."
      for sym in 'Dispatcher<R,T>::poll' 'RxQueue>::rx_burst'; do
        echo
        echo "## $sym"
        python3 scripts/callgrind-instr.py listing "$tmp/$name.$R2.out" "$bin" "$sym" $((R2 + WARMUP))
      done
    } > "results/bench/callgrind/$name.txt"
  fi
}

echo "config,args,instructions_per_request,transport_rx_per_request,request_bytes_per_request,without_generator_per_request,requests_per_turn" >"$tmp/table.csv"
count darc-4types-14w-b32   --policy darc  --types 4  --workers 14 --batch 32
count darc-1type-14w-b32    --policy darc  --types 1  --workers 14 --batch 32
count darc-16types-14w-b32  --policy darc  --types 16 --workers 14 --batch 32
count darc-4types-32w-b32   --policy darc  --types 4  --workers 32 --batch 32
count darc-dyn-4types-14w   --policy darc  --types 4  --workers 14 --batch 32 --dynamic
count cfcfs-4types-14w-b32  --policy cfcfs --types 4  --workers 14 --batch 32
count dfcfs-4types-14w-b32  --policy dfcfs --types 4  --workers 14 --batch 32
count sjf-4types-14w-b32    --policy sjf   --types 4  --workers 14 --batch 32
count edf-4types-14w-b32    --policy edf   --types 4  --workers 14 --batch 32
count darc-4types-1w-b32    --policy darc  --types 4  --workers 1  --batch 32

if [ -n "$out" ]; then
  cp "$tmp/table.csv" "$out"
fi
if [ -n "$budget_name" ]; then
  got=$(awk -F, -v n="$budget_name" '$1 == n { print $(NF - 4) }' "$tmp/table.csv")
  [ -n "$got" ] || { echo "--budget: no configuration named $budget_name" >&2; exit 2; }
  if python3 -c "import sys; sys.exit(0 if $got <= $budget_max else 1)"; then
    echo "$budget_name: $got instructions per request, within the budget of $budget_max"
  else
    echo "$budget_name: $got instructions per request, over the budget of $budget_max:" \
      "a regression on the dispatcher's hot path (scripts/callgrind.sh --annotate shows where)" >&2
    exit 1
  fi
fi
if [ "$annotate" = 1 ]; then
  echo
  echo "top functions (inclusive) of darc-4types-14w-b32, $R2 requests:"
  callgrind_annotate --inclusive=yes results/bench/callgrind/darc-4types-14w-b32.out 2>/dev/null \
    | sed -n '1,40p'
fi
