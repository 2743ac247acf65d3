#!/usr/bin/env bash
# Worker recycling under load (issue 15): a home with a test_server_10 and
# WORKERS test_worker_10s that retire after --max-requests=MAX, run by
# `layer-cake run` under a host-cake on an ephemeral port, loaded with
# `wrk -t2 -c8` in 2-second rounds until RECYCLES workers have retired
# (group-cake's "role worker-N retired after ... (max-requests); starting a
# fresh one" lines; at most 180 s). Prints the requests, the failed ones
# (non-2xx answers and socket errors, as wrk counts them) and the recycles,
# then checks `layer-cake history` agrees that runs ended Retired.
#
#   cargo build --release -p layer-cake-demos -p group-cake -p host-cake -p layer-cake-cli
#   demos/benches/recycle.sh [RECYCLES] [WORKERS] [MAX] [PORT]   # 100 4 100 5093
#
# PROFILE=debug uses target/debug instead. Needs wrk and curl. Only
# 127.0.0.1 is used; every process it starts is stopped when it ends,
# however it ends.
set -euo pipefail
target=${1:-100}
workers=${2:-4}
max=${3:-100}
port=${4:-5093}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/${PROFILE:-release}"
for b in layer-cake group-cake host-cake test_server_10 test_worker_10; do
    [ -x "$bin/$b" ] || { echo "recycle.sh: $bin/$b is not built (cargo build --release -p layer-cake-demos -p group-cake -p host-cake -p layer-cake-cli)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "recycle.sh: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }
me=recycle.sh
# shellcheck source=demos/benches/procs.sh
source "$root/demos/benches/procs.sh"
export PATH="$bin:$PATH"
url="http://127.0.0.1:$port/Xy?x=2&y=2"

start host.log host-cake --directory-at-host=127.0.0.1:0 --no-lan-autoconnect
wait_line host.log "listening on "
host_at=$(grep -o 'listening on [0-9.:]*' "$work/host.log" | head -1 | cut -d' ' -f3)
home="$work/home"
lc() { layer-cake --home-path="$home" "$@"; }
lc create --directory-at-host="$host_at" >/dev/null
lc add test_server_10 server --server-address="127.0.0.1:$port" >/dev/null
lc add test_worker_10 worker --role-count="$workers" --max-requests="$max" >/dev/null
start run.log layer-cake --home-path="$home" run
wait_line run.log "($workers in all)"
for _ in $(seq 1 100); do
    curl -sf "$url" >/dev/null && break
    sleep 0.1
done

recycles() { grep -c '(max-requests); starting a fresh one' "$work/run.log" || true; }
requests=0 failed=0 rounds=0
began=$(date +%s.%N)
while [ "$(recycles)" -lt "$target" ]; do
    out=$(wrk -t2 -c8 -d2s "$url" 2>&1)
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
    errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    requests=$((requests + ${n:-0}))
    failed=$((failed + ${non2xx:-0} + ${errors:-0}))
    rounds=$((rounds + 1))
    if [ "$rounds" -ge 90 ]; then
        echo "recycle.sh: only $(recycles) recycles after $rounds rounds" >&2
        break
    fi
done
took=$(echo "$(date +%s.%N) - $began" | bc)
count=$(recycles)
retired=0
for i in $(seq 0 $((workers - 1))); do
    r=$(lc history "worker-$i" | grep -c '(layer_cake.process.Retired)' || true)
    retired=$((retired + r))
done
printf 'recycle.sh: %d requests in %.1f s (wrk -t2 -c8, %d rounds of 2 s), %d failed, %d recycles (%d workers, --max-requests=%d); load average %s\n' \
    "$requests" "$took" "$rounds" "$failed" "$count" "$workers" "$max" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "recycle.sh: runs ended Retired in the kept histories (the last 16 of each worker): $retired"
[ "$failed" -eq 0 ] && [ "$count" -ge "$target" ]
