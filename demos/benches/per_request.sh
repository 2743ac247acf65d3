#!/usr/bin/env bash
# What one HTTP request costs a demo server and the processes below it:
# context switches, system calls and CPU microseconds per request, counted
# by `perf stat` over 5 s of `wrk -t2 -c8` (issue 12).
#
#   cargo build --release -p layer-cake-demos
#   demos/benches/per_request.sh test_server_4 [port]
#   demos/benches/per_request.sh test_server_8 [port] [flag...]
#
# Flags after the port go to the server, e.g. --worker-threads=1.
#
# Needs wrk, perf and curl. Only 127.0.0.1 is used; the server and its
# children are stopped when the script ends, however it ends.
set -euo pipefail
name=${1:?usage: per_request.sh SERVER [PORT] [FLAG...]}
port=${2:-5081}
shift $(( $# < 2 ? $# : 2 ))
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/$name"
[ -x "$bin" ] || { echo "per_request.sh: $bin is not built (cargo build --release -p layer-cake-demos)" >&2; exit 2; }
url="http://127.0.0.1:$port/Xy?x=2&y=2"
work=$(mktemp -d)
PATH="$root/target/release:$PATH" "$bin" --server-address="127.0.0.1:$port" "$@" >"$work/server.log" 2>&1 &
server=$!
stop() {
    kill -INT "$server" 2>/dev/null || true
    sleep 1
    kill -9 "$server" $(pgrep -P "$server" 2>/dev/null) 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
for _ in $(seq 1 100); do
    curl -sf "$url" >/dev/null && break
    sleep 0.1
done
curl -sf "$url" >/dev/null || { echo "per_request.sh: $name does not answer on $url" >&2; exit 1; }
# Warm up, and let a spool start all its workers.
wrk -t2 -c8 -d2s "$url" >/dev/null
pids=$(echo "$server" $(pgrep -P "$server" || true) | tr ' ' ',')
perf stat -x, -e context-switches,task-clock,raw_syscalls:sys_enter -p "$pids" \
    -o "$work/perf.csv" -- sleep 5 &
perf=$!
wrk -t2 -c8 -d5s "$url" >"$work/wrk.txt"
wait "$perf"
python3 - "$name" "$work/wrk.txt" "$work/perf.csv" "$*" <<'PY'
import sys
name, wrk, perf, flags = sys.argv[1:]
flags = f" {flags}" if flags else ""
rate = next(float(l.split()[1]) for l in open(wrk) if l.startswith("Requests/sec"))
counts = {}
for line in open(perf):
    fields = line.strip().split(",")
    if len(fields) > 2 and fields[0] not in ("", "<not counted>", "<not supported>"):
        counts[fields[2]] = float(fields[0])
n = rate * 5
print(f"{name}{flags}: {rate:.0f} req/s; per request: "
      f"{counts.get('context-switches', 0) / n:.2f} context switches, "
      f"{counts.get('raw_syscalls:sys_enter', 0) / n:.1f} system calls, "
      f"{counts.get('task-clock', 0) * 1000 / n:.1f} us of CPU "
      "(the server and every process below it)")
PY
