# lib.sh - helpers shared by the measurement scripts (source it; bash only).
#
#   load1                       the 1-minute load average
#   wait_quiet                  waits (up to WAIT_TRIES x 10 s) until the 1-minute load
#                               average is below MAX_LOAD; prints it; fails if it never is
#   wait_listening PID OUT ERR  waits (up to 30 s) until the daemon PID has printed
#                               "listening on" to the file OUT; fails (showing ERR) if it
#                               exits or never does
#   machine_info                prints what a results/ run's machine.txt opens with: date,
#                               commit, kernel, CPU, memory, load average
#   start_daemon OUT ERR CMD... starts a daemon (CMD) in the background, its stdout to
#                               OUT and stderr to ERR, waits until it listens
#                               (wait_listening); sets DAEMON_PID and DAEMON_ADDR
#   stop_daemon                 SIGINT to the daemon started last, up to 30 s for its
#                               drain, then SIGKILL; reaps it (nothing if none runs)

load1() { cut -d' ' -f1 /proc/loadavg; }

machine_info() {
  echo "date:     $(date -u +%FT%TZ)"
  echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "kernel:   $(uname -srm)"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Hypervisor vendor|CPU max MHz)' || true
  echo "memory:   $(free -h | awk '/^Mem:/ {print $2}')"
  echo "load avg before: $(cut -d' ' -f1-3 /proc/loadavg)"
}

wait_quiet() {
    local l i
    for ((i = 0; i < ${WAIT_TRIES:-90}; i++)); do
        l=$(load1)
        if awk -v l="$l" -v m="${MAX_LOAD:-1.5}" 'BEGIN { exit !(l < m) }'; then
            echo "$l"
            return 0
        fi
        echo "  load average $l >= ${MAX_LOAD:-1.5}: waiting" >&2
        sleep 10
    done
    echo "the load average stayed at or above ${MAX_LOAD:-1.5} (now $(load1)); try later or raise MAX_LOAD" >&2
    return 1
}

wait_listening() {
    local pid=$1 out=$2 err=$3 i
    for ((i = 0; i < 300; i++)); do
        grep -qs '^listening on' "$out" && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the daemon exited before listening:" >&2
            cat "$err" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "the daemon did not start listening within 30 s:" >&2
    cat "$err" >&2
    return 1
}

DAEMON_PID=""
start_daemon() {
    local out=$1 err=$2
    shift 2
    "$@" > "$out" 2> "$err" &
    DAEMON_PID=$!
    wait_listening "$DAEMON_PID" "$out" "$err"
    DAEMON_ADDR=$(sed -n 's/^listening on //p' "$out")
}

stop_daemon() {
    [[ -n $DAEMON_PID ]] || return 0
    kill -INT "$DAEMON_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
}
