# Shared by the benchmark scripts (sourced, not run): background processes
# whose output goes to log files in a scratch folder, all stopped (SIGINT,
# then SIGKILL) and the folder removed when the script ends, however it ends.
#
#   start LOG PROGRAM ARGS...   runs PROGRAM in the background, output to LOG
#   wait_line LOG TEXT          waits (20 s at most) for a line with TEXT in LOG
#   stop_all                    stops every process started so far
#
# The sourcing script sets `me` (its name, for messages) first.
work=$(mktemp -d)
pids=()
stop_all() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

start() {
    local log=$1; shift
    "$@" >"$work/$log" 2>&1 &
    pids+=($!)
}

wait_line() {
    for _ in $(seq 1 200); do
        grep -q -- "$2" "$work/$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$me: no \"$2\" in $1:" >&2; cat "$work/$1" >&2; exit 1
}
