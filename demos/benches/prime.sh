#!/usr/bin/env bash
# The prime benchmark (issue 13): `ab -k -n 1000 -c 8` asking
# /is_prime?possible_prime=32416190071 (prime: about 180 000 trial divisions
# per request), in one run, against
#
#   bare         prime_hyper: a bare hyper server doing the same parse and
#                division in one process (measured first and again last;
#                ratios are against the better of the two)
#   inproc-N     prime_server --workers=N: the front, both stages and N
#                workers per stage as actors of one process
#   procs-N      prime_server, N prime_parse and N prime_compute processes
#                (each --worker-threads=1) found through a host-cake
#                (ephemeral port)
#
# for N = 1 and 2, and prints requests/s, failed requests, keep-alive
# requests, non-2xx answers, the ratio to bare and to the original C++
# prime_server's published-here figures (1 385 req/s with 1 worker per stage,
# 2 359 with 2), with the load average before each case.
#
#   apt-get install -y apache2-utils         # ab
#   cargo build --release -p layer-cake-demos -p host-cake
#   demos/benches/prime.sh [PORT]            # the demo on PORT (8002), bare on PORT+1
#
# Only 127.0.0.1 is used; every process it starts is stopped when it ends,
# however it ends.
set -euo pipefail
port=${1:-8002}
bare_port=$((port + 1))
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release"
for b in prime_server prime_parse prime_compute prime_hyper host-cake; do
    [ -x "$bin/$b" ] || { echo "prime.sh: $bin/$b is not built (cargo build --release -p layer-cake-demos -p host-cake)" >&2; exit 2; }
done
command -v ab >/dev/null || { echo "prime.sh: ab is missing (apt-get install -y apache2-utils)" >&2; exit 2; }
path="/is_prime?possible_prime=32416190071"
me=prime.sh
# shellcheck source=demos/benches/procs.sh
source "$root/demos/benches/procs.sh"

wait_answer() { # PORT: waits until the number goes through
    for _ in $(seq 1 300); do
        [ "$(curl -s "http://127.0.0.1:$1$path" || true)" = 32416190071 ] && return 0
        sleep 0.1
    done
    echo "prime.sh: no answer on port $1" >&2; exit 1
}

results=()
load() { # NAME PORT: warms up, then the measured ab run
    local name=$1 p=$2 out avg
    avg=$(cut -d' ' -f1 /proc/loadavg)
    ab -k -n 200 -c 8 "http://127.0.0.1:$p$path" >/dev/null 2>&1 || true
    out=$(ab -k -n 1000 -c 8 "http://127.0.0.1:$p$path" 2>&1) || echo "prime.sh: $name: ab failed: $(tail -1 <<<"$out")" >&2
    local rps failed keep non2xx complete
    rps=$(awk '/^Requests per second/ {print $4}' <<<"$out")
    failed=$(awk '/^Failed requests/ {print $3}' <<<"$out")
    keep=$(awk '/^Keep-Alive requests/ {print $3}' <<<"$out")
    complete=$(awk '/^Complete requests/ {print $3}' <<<"$out")
    non2xx=$(awk '/^Non-2xx responses/ {print $3}' <<<"$out")
    results+=("$name ${rps:-0} ${complete:-0} ${failed:-?} ${keep:-0} ${non2xx:-0} $avg")
    echo "prime.sh: $name: ${rps:-?} req/s, $complete complete, $failed failed, $keep keep-alive (load average $avg)" >&2
}

bare() { # NAME
    start bare.log "$bin/prime_hyper" --server-address="127.0.0.1:$bare_port"
    wait_answer "$bare_port"
    load "$1" "$bare_port"
    stop_all
}

bare bare
for n in 1 2; do
    start "inproc-$n.log" "$bin/prime_server" --workers="$n" --server-address="127.0.0.1:$port"
    wait_answer "$port"
    load "inproc-$n" "$port"
    stop_all
done
for n in 1 2; do
    start host.log "$bin/host-cake" --directory-at-host=127.0.0.1:0 --no-lan-autoconnect
    wait_line host.log "listening on"
    directory="--connect-to-directory=127.0.0.1:$(grep -m1 'listening on' "$work/host.log" | sed 's/.*://')"
    start "procs-$n.log" "$bin/prime_server" "$directory" --server-address="127.0.0.1:$port"
    for i in $(seq 1 "$n"); do
        # One thread per worker process (the cheapest setting for a
        # process that shares two cores with five others; docs/processes.md).
        start "compute-$n-$i.log" "$bin/prime_compute" "$directory" --worker-threads=1
        start "parse-$n-$i.log" "$bin/prime_parse" "$directory" --worker-threads=1
        wait_line "compute-$n-$i.log" "published"
        wait_line "parse-$n-$i.log" "next stage"
    done
    wait_answer "$port"
    load "procs-$n" "$port"
    stop_all
done
bare bare-again

best=$(printf '%s\n' "${results[@]}" | awk '$1 ~ /^bare/ && $2 > b {b = $2} END {print b}')
printf '\n%-11s %10s %9s %7s %11s %8s %9s %9s %9s\n' case "req/s" complete failed keep-alive non-2xx "÷bare" "÷C++" "load avg"
for r in "${results[@]}"; do
    read -r name rps complete failed keep non2xx avg <<<"$r"
    case $name in *-1) cpp=1385 ;; *-2) cpp=2359 ;; *) cpp= ;; esac
    awk -v n="$name" -v r="$rps" -v c="$complete" -v f="$failed" -v k="$keep" -v x="$non2xx" -v b="$best" -v cpp="$cpp" -v a="$avg" 'BEGIN {
        printf "%-11s %10.0f %9s %7s %11s %8s %9.2f %9s %9s\n", n, r, c, f, k, x, r / b, (cpp == "" ? "-" : sprintf("%.2f", r / cpp)), a }'
done
echo "ab -k -n 1000 -c 8 'http://127.0.0.1:PORT$path'; $(nproc) cores; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
