#!/usr/bin/env bash
# The Redis-bridge benchmark (issue 15): requests/s through one stream and
# a spool of 8 workers, next to redis-benchmark's XADD rate, in one run.
#
# One redis-server of its own (a Unix socket in a scratch folder, TCP off).
# Each round:
#
#   xadd      redis-benchmark -c 8 -n N XADDs N entries to the request
#             stream (ref __rand_int__, type demo-worker, data {}): its
#             requests/s is the XADD rate
#   bridge    redis_worker --workers=8 with requestLimit N drains them: each
#             entry read (XREADGROUP, up to 64 in flight), asked of the
#             spool, answered (MULTI: LPUSH res:<ref>, EXPIRE, XADD to the
#             response stream, XACK); N / the time from its start to its
#             exit is the bridge's requests/s
#
# two rounds, and prints both rates, their ratio and the load average.
#
#   cargo build --release -p layer-cake-demos
#   demos/benches/redis.sh [N]        # N entries per round (100000)
#
# Every process it starts is stopped when it ends, however it ends.
set -euo pipefail
n=${1:-100000}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release"
[ -x "$bin/redis_worker" ] || { echo "redis.sh: $bin/redis_worker is not built (cargo build --release -p layer-cake-demos)" >&2; exit 2; }
for t in redis-server redis-cli redis-benchmark; do
    command -v $t >/dev/null || { echo "redis.sh: $t is missing (apt-get install -y redis-server)" >&2; exit 2; }
done
me=redis.sh
# shellcheck source=demos/benches/procs.sh
source "$root/demos/benches/procs.sh"

sock="$work/redis.sock"
start redis.log redis-server --port 0 --unixsocket "$sock" --dir "$work" --save '' --appendonly no
for _ in $(seq 1 200); do
    [ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
r() { redis-cli -s "$sock" "$@"; }

printf '%-8s %12s %8s %8s\n' round what 'req/s' load
for round in 1 2; do
    r del demo-worker:req:x demo-worker:res:x demo-worker:1:h >/dev/null
    r xgroup create demo-worker:req:x worker '$' mkstream >/dev/null
    r hset demo-worker:1:h requestStream demo-worker:req:x consumerId 1 requestLimit "$n" >/dev/null
    avg=$(cut -d' ' -f1 /proc/loadavg)
    xadd=$(redis-benchmark -s "$sock" -c 8 -n "$n" -r 1000000 --csv \
        XADD demo-worker:req:x '*' ref __rand_int__ type demo-worker data '{}' \
        | awk -F'"' 'NR == 2 {print $4}')
    printf '%-8s %12s %8.0f %8s\n' "$round" xadd "$xadd" "$avg"
    [ "$(r xlen demo-worker:req:x)" = "$n" ] || { echo "$me: the stream does not hold $n entries" >&2; exit 1; }
    avg=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(date +%s.%N)
    "$bin/redis_worker" --redis="unix://$sock" --workers=8 >"$work/worker.log" 2>&1
    t1=$(date +%s.%N)
    grep -q "ended (request limit reached): $n taken, $n answered" "$work/worker.log" \
        || { echo "$me: the worker did not answer $n:" >&2; cat "$work/worker.log" >&2; exit 1; }
    [ "$(r xpending demo-worker:req:x worker | head -1)" = 0 ] || { echo "$me: entries left pending" >&2; exit 1; }
    bridge=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {print n / (b - a)}')
    printf '%-8s %12s %8.0f %8s   (%.0f%% of the XADD rate)\n' "$round" bridge "$bridge" "$avg" \
        "$(awk -v x="$bridge" -v y="$xadd" 'BEGIN {print 100 * x / y}')"
done
