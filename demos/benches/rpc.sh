#!/usr/bin/env bash
# The JSON-RPC benchmark (issue 13): `wrk -t2 -c8 -d10s --latency` POSTing
# one call, {"jsonrpc":"2.0","method":"...","params":[42,23],"id":1}, per
# request, in one run, against
#
#   bare      rpc_hyper: a bare hyper server doing the same JSON work (parse,
#             subtract, answer) in one process — method "subtract"
#   routed    the gateway demo with one calc_worker process found through a
#             host-cake (ephemeral port) — method "calc/subtract": front →
#             gateway → the service's spool → the worker process and back
#
# each twice, alternating (bare, routed, bare, routed), and prints
# requests/s, p50/p99 latency, non-2xx answers, the ratio to the better bare
# run and the load average before each case.
#
#   cargo build --release -p layer-cake-demos -p host-cake
#   demos/benches/rpc.sh [PORT]        # the gateway on PORT (8080), bare on PORT+1
#
# Only 127.0.0.1 is used; every process it starts is stopped when it ends,
# however it ends.
set -euo pipefail
port=${1:-8080}
bare_port=$((port + 1))
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release"
for b in gateway calc_worker rpc_hyper host-cake; do
    [ -x "$bin/$b" ] || { echo "rpc.sh: $bin/$b is not built (cargo build --release -p layer-cake-demos -p host-cake)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "rpc.sh: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }
me=rpc.sh
# shellcheck source=demos/benches/procs.sh
source "$root/demos/benches/procs.sh"

call() { # METHOD: the request body
    printf '{"jsonrpc":"2.0","method":"%s","params":[42,23],"id":1}' "$1"
}

wait_answer() { # PORT METHOD: waits until the call is answered 19
    for _ in $(seq 1 300); do
        curl -s -d "$(call "$2")" "http://127.0.0.1:$1/api/rpc" | grep -q '"result":19' && return 0
        sleep 0.1
    done
    echo "rpc.sh: no answer on port $1" >&2; exit 1
}

results=()
load() { # NAME PORT METHOD: warms up, then the measured wrk run
    local name=$1 p=$2 avg out
    cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$(call "$3")'
wrk.headers["Content-Type"] = "application/json"
LUA
    avg=$(cut -d' ' -f1 /proc/loadavg)
    wrk -t2 -c8 -d2s -s "$work/post.lua" "http://127.0.0.1:$p/api/rpc" >/dev/null 2>&1 || true
    out=$(wrk -t2 -c8 -d10s --latency -s "$work/post.lua" "http://127.0.0.1:$p/api/rpc" 2>&1)
    local rps p50 p99 non2xx
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    results+=("$name ${rps:-0} ${p50:-?} ${p99:-?} ${non2xx:-0} $avg")
    echo "rpc.sh: $name: ${rps:-?} req/s, p50 $p50, p99 $p99 (load average $avg)" >&2
}

bare() { # NAME
    start bare.log "$bin/rpc_hyper" --server-address="127.0.0.1:$bare_port"
    wait_answer "$bare_port" subtract
    load "$1" "$bare_port" subtract
    stop_all
}

routed() { # NAME
    start host.log "$bin/host-cake" --directory-at-host=127.0.0.1:0 --no-lan-autoconnect
    wait_line host.log "listening on"
    local directory
    directory="--connect-to-directory=127.0.0.1:$(grep -m1 'listening on' "$work/host.log" | sed 's/.*://')"
    start gateway.log "$bin/gateway" "$directory" --server-address="127.0.0.1:$port"
    start calc.log "$bin/calc_worker" "$directory"
    wait_line calc.log "published"
    wait_answer "$port" calc/subtract
    load "$1" "$port" calc/subtract
    stop_all
}

bare bare
routed routed
bare bare-again
routed routed-again

best=$(printf '%s\n' "${results[@]}" | awk '$1 ~ /^bare/ && $2 > b {b = $2} END {print b}')
printf '\n%-13s %10s %9s %9s %8s %7s %9s\n' case "req/s" p50 p99 non-2xx "÷bare" "load avg"
for r in "${results[@]}"; do
    read -r name rps p50 p99 non2xx avg <<<"$r"
    awk -v n="$name" -v r="$rps" -v a="$p50" -v b99="$p99" -v x="$non2xx" -v b="$best" -v l="$avg" 'BEGIN {
        printf "%-13s %10.0f %9s %9s %8s %7.2f %9s\n", n, r, a, b99, x, r / b, l }'
done
echo "wrk -t2 -c8 -d10s --latency, one call per POST; $(nproc) cores; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
