#!/usr/bin/env bash
# memif-disconnect.sh - how often DPDK's memif PMD crashes a server whose peer
# disconnects while it polls (README, DPDK, Limits).
#
#   scripts/memif-disconnect.sh [RUNS]                 # default 60; one line per crash
#   SERVER=psp-app IDLE=park scripts/memif-disconnect.sh  # psp-app (1 echo worker) instead
#                                                        # (slow: both threads share CPU 0)
#
# Each run: a server on CPU 0 - `dpdk_bench echo` (spinning in rx_burst), or psp-app
# with the dispatcher's and worker's idle strategy IDLE (default spin) - a short
# `dpdk_bench ping` client on CPU 1 that exits when done (the disconnect), then
# SIGTERM to the server. A server that died before the SIGTERM (exit status 139,
# SIGSEGV) is counted. Core dumps, if enabled (ulimit -c), land in $TMP.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-60}
SERVER=${SERVER:-echo}
IDLE=${IDLE:-spin}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q --features dpdk --example dpdk_bench --bin psp-app
BENCH=$(realpath "$CARGO_TARGET_DIR/release/examples/dpdk_bench")
APP=$(realpath "$CARGO_TARGET_DIR/release/psp-app")
TMP=$(mktemp -d)
server=
# Whatever happens, no server is left spinning.
trap '[[ -n $server ]] && kill -KILL "$server" 2>/dev/null; rm -rf "$TMP" /var/run/dpdk/psp-disc-* 2>/dev/null || true' EXIT
source scripts/lib.sh

eal() { # role prefix mac
    echo "--no-huge --no-pci -m 256 --no-telemetry --file-prefix psp-disc-$2 --vdev=net_memif0,role=$1,id=0,socket=$TMP/memif.sock,socket-abstract=no,mac=$3"
}
cat > "$TMP/client.yml" <<YML
server: 10.0.0.1:6789
dpdk:
  eal_args: [$(eal client cli 02:00:00:00:00:02 | sed 's/[^ ]*/"&"/g; s/ /, /g')]
  ip: 10.0.0.2
  rx_queues: 2
YML

cat > "$TMP/psp-app.yml" <<YML
pin: false
dispatcher: { idle: $IDLE }
workers: { number: 1, handler: echo, idle: $IDLE }
policy: { kind: cfcfs }
net:
  backend: dpdk
  eal_args: [$(eal server srv 02:00:00:00:00:01 | sed 's/[^ ]*/"&"/g; s/ /, /g')]
  port: 0
  ip: 10.0.0.1
  udp_port: 6789
requests: [{ id: 1, name: ECHO }]
stats: { interval_ms: 0 }
YML

crashes=0
for ((r = 1; r <= RUNS; r++)); do
    if [[ $SERVER == psp-app ]]; then
        (cd "$TMP" && exec taskset -c 0 "$APP" --cfg "$TMP/psp-app.yml") \
            > "$TMP/server.out" 2> "$TMP/server.err" &
    else
        (cd "$TMP" && exec taskset -c 0 "$BENCH" echo --ip 10.0.0.1 \
            --eal="$(eal server srv 02:00:00:00:00:01)") > "$TMP/server.out" 2> "$TMP/server.err" &
    fi
    server=$!
    wait_listening "$server" "$TMP/server.out" "$TMP/server.err"
    taskset -c 1 "$BENCH" ping --cfg "$TMP/client.yml" --out "$TMP/ping.csv" -n 2000 --warmup 100 \
        > "$TMP/ping.out" 2>&1 || { cat "$TMP/ping.out" >&2; exit 1; }
    kill -TERM "$server" 2>/dev/null || true
    status=0
    wait "$server" || status=$?
    server=
    rm -rf /var/run/dpdk/psp-disc-* "$TMP/memif.sock"
    if ((status != 0)); then
        crashes=$((crashes + 1))
        echo "run $r: server exit status $status"
    fi
done
echo "DPDK $(pkg-config --modversion libdpdk), server $SERVER$([[ $SERVER == psp-app ]] && echo " (idle $IDLE)"): $crashes of $RUNS died when their memif peer disconnected"
