#!/usr/bin/env bash
# bench-dpdk.sh - round-trip latency through psp-app over DPDK memif, beside psp-app
# over kernel UDP and a bare DPDK memif echo with no scheduler, all in one run.
#
#   scripts/bench-dpdk.sh                 # writes results/dpdk/
#   OUT=/tmp/x N=50000 scripts/bench-dpdk.sh
#
# Each run: a server on SERVER_CPUS, a closed-loop ping client (one request in
# flight, 8-byte echo payload) on CLIENT_CPU; WARMUP pings, then N measured. Servers:
#   bare-memif     dpdk_bench echo: rx_burst -> reply in place -> tx, one thread
#   psp-app-memif  psp-app, 1 worker, handler echo, net.backend dpdk (memif server)
#   psp-app-udp    psp-app, 1 worker, handler echo, kernel UDP on 127.0.0.1
# Output: <run>.csv (latency quantiles), summary.csv, latency.svg, and run.md with
# the machine, the load, the commands and the configs. Needs DPDK (scripts/setup-dpdk.sh) and
# root or write access to /var/run/dpdk.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-results/dpdk}
N=${N:-200000}
WARMUP=${WARMUP:-20000}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
# How psp-app's dispatcher and worker wait when idle (spin, yield or park).
PSP_IDLE=${PSP_IDLE:-yield}
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release --features dpdk --bin psp-app --example dpdk_bench
APP=$TARGET/release/psp-app
BENCH=$TARGET/release/examples/dpdk_bench

mkdir -p "$OUT"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
TMP=$(mktemp -d /tmp/psp-bench-dpdk.XXXXXX)
SERVER=
cleanup() {
	if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
		kill -TERM "$SERVER" 2>/dev/null || true
		wait "$SERVER" 2>/dev/null || true
	fi
	rm -rf "$TMP" /var/run/dpdk/psp-bench-* 2>/dev/null || true
}
trap cleanup EXIT

EAL="--no-huge --no-pci -m 256 --no-telemetry"
memif() { # role prefix mac
	echo "$EAL --file-prefix psp-bench-$2 --vdev=net_memif0,role=$1,id=0,socket=$TMP/memif.sock,socket-abstract=no,mac=$3"
}
yaml_list() { # words -> YAML flow list
	local out="" w
	for w in "$@"; do out="$out${out:+, }\"$w\""; done
	echo "[$out]"
}

# Client config for the DPDK pings; rx_queues = the server's TX queues (1 worker + 1).
# shellcheck disable=SC2046
cat >"$TMP/client.yml" <<EOF
server: 10.0.0.1:6789
dpdk:
  eal_args: $(yaml_list $(memif client client 02:00:00:00:00:02))
  ip: 10.0.0.2
  udp_port: 4000
  rx_queues: 2
EOF

psp_config() { # backend-specific net: block
	cat <<EOF
pin: false
dispatcher: { idle: $PSP_IDLE }
workers: { number: 1, handler: echo, idle: $PSP_IDLE }
policy: { kind: cfcfs }
requests:
  - { id: 1, name: ECHO }
stats: { interval_ms: 0 }
$1
EOF
}
# shellcheck disable=SC2046
psp_config "net: { backend: dpdk, ip: 10.0.0.1, udp_port: 6789, eal_args: $(yaml_list $(memif server server 02:00:00:00:00:01)) }" >"$TMP/psp-memif.yml"
psp_config "net: { backend: udp, bind: 127.0.0.1:6789 }" >"$TMP/psp-udp.yml"

# Starts a server (command line in "$@") on SERVER_CPUS; waits for "listening on".
start_server() {
	echo "+ taskset -c $SERVER_CPUS $*" >>"$TMP/commands"
	taskset -c "$SERVER_CPUS" "$@" >"$TMP/server.out" 2>"$TMP/server.err" &
	SERVER=$!
	for _ in $(seq 300); do
		grep -q "^listening on" "$TMP/server.out" 2>/dev/null && return 0
		kill -0 "$SERVER" 2>/dev/null || break
		sleep 0.1
	done
	echo "server did not start: $*" >&2
	cat "$TMP/server.err" >&2
	exit 1
}
# Stops the server of run $1. One that died of SIGSEGV before the SIGTERM, once its
# client had finished, is DPDK 22.11's memif PMD crashing as its peer disconnects
# (results/dpdk/memif-disconnect.md): the run's measurements are whole, and run.md
# says it happened.
stop_server() {
	local status=0
	kill -TERM "$SERVER" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$SERVER" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SERVER" 2>/dev/null || true
	wait "$SERVER" 2>/dev/null || status=$?
	if ((status == 139)); then
		echo "$1: the server died of SIGSEGV as its client disconnected, after the measurement (the memif PMD crash of results/dpdk/memif-disconnect.md)" |
			tee -a "$TMP/notes" >&2
	fi
	SERVER=
	rm -rf /var/run/dpdk/psp-bench-* "$TMP/memif.sock" 2>/dev/null || true
}
client() {
	echo "+ taskset -c $CLIENT_CPU $*" >>"$TMP/commands"
	taskset -c "$CLIENT_CPU" "$@" | tee -a "$TMP/client.out"
}

# shellcheck disable=SC2046
start_server "$BENCH" echo --ip 10.0.0.1 --eal="$(memif server server 02:00:00:00:00:01)"
client "$BENCH" ping --cfg "$TMP/client.yml" --out "$OUT/bare-memif.csv" -n "$N" --warmup "$WARMUP"
stop_server bare-memif

start_server "$APP" --cfg "$TMP/psp-memif.yml"
client "$BENCH" ping --cfg "$TMP/client.yml" --out "$OUT/psp-app-memif.csv" -n "$N" --warmup "$WARMUP"
stop_server psp-app-memif

start_server "$APP" --cfg "$TMP/psp-udp.yml"
client "$BENCH" udp-ping --server 127.0.0.1:6789 --out "$OUT/psp-app-udp.csv" -n "$N" --warmup "$WARMUP"
stop_server psp-app-udp

# What a dispatcher-to-worker hand-off costs when both share one core.
echo "+ taskset -c ${SERVER_CPUS%%,*} $BENCH switch" >>"$TMP/commands"
taskset -c "${SERVER_CPUS%%,*}" "$BENCH" switch | tee -a "$TMP/client.out"

"$BENCH" plot --dir "$OUT" >"$TMP/summary.txt"

{
	echo "# DPDK round-trip latency (scripts/bench-dpdk.sh)"
	echo
	rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	git diff --quiet HEAD -- src examples 2>/dev/null || rev="$rev (plus uncommitted changes)"
	echo "Generated $(date -u +%Y-%m-%dT%H:%MZ) from commit $rev; load average before the run: $LOAD."
	echo "N=$N measured pings after WARMUP=$WARMUP, one in flight, 8-byte payload."
	echo
	echo "## Summary (µs)"
	echo
	echo '```'
	cat "$OUT/summary.csv"
	echo '```'
	echo
	if [ -s "$TMP/notes" ]; then
		echo "## Notes"
		echo
		cat "$TMP/notes"
		echo
	fi
	echo "## Client output"
	echo
	echo '```'
	cat "$TMP/client.out"
	echo '```'
	echo
	echo "## Machine"
	echo
	echo '```'
	uname -srm
	lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor|CPU max MHz|NUMA node\(s\))' || true
	echo "DPDK $(pkg-config --modversion libdpdk 2>/dev/null || echo '?')"
	echo '```'
	echo
	echo "## Commands (server on CPUs $SERVER_CPUS, client on CPU $CLIENT_CPU)"
	echo
	echo '```'
	cat "$TMP/commands"
	echo '```'
	for f in client.yml psp-memif.yml psp-udp.yml; do
		echo
		echo "### $f"
		echo
		echo '```yaml'
		cat "$TMP/$f"
		echo '```'
	done
} >"$OUT/run.md"
cat "$TMP/summary.txt"
echo "wrote $OUT/"
