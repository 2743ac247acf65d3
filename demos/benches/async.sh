#!/usr/bin/env bash
# Async requests (issue 15), in one run against one async_server (release
# build, 2 local predict workers, the store in a fresh temporary folder, so
# every accepted request is fsynced before its 201):
#
#   1. the synchronous path (POST …/predict) under `wrk -t2 -c8` for 10 s:
#      p50, p99, requests/s;
#   2. async submit → 201 the same way, right after: p50, p99,
#      submissions/s;
#   3. every async request of (2) completed: completions/s over the 10 s
#      of (2) and the time the backlog took to drain after it;
#   4. worker completion → webhook POST received, over 200 requests one
#      after another (the worker stamps the time it finished in its output;
#      a receiver on loopback notes when each POST arrives): p50, p90.
#
#   cargo build --release -p layer-cake-demos --bin async_server
#   demos/benches/async.sh [port] [fsync|process]
#
# The second argument is the store's durability (`--durability`): fsync
# (the default: SQLite synchronous=FULL, each group commit fsynced before
# its 201s) or process (synchronous=NORMAL: safe from a crash of the
# process, not from a power loss).
#
# Needs wrk, curl and python3. Only 127.0.0.1 is used; the server and the
# receiver are stopped when the script ends, however it ends.
set -euo pipefail
port=${1:-5091}
durability=${2:-fsync}
hook_port=$((port + 1))
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${ASYNC_SERVER:-$root/target/release/async_server}
[ -x "$bin" ] || { echo "async.sh: $bin is not built (cargo build --release -p layer-cake-demos --bin async_server)" >&2; exit 2; }
work=$(mktemp -d)
"$bin" --server-address="127.0.0.1:$port" --store="$work/async.sqlite" --workers=2 \
    --max-pending=10000000 --durability="$durability" >"$work/server.log" 2>&1 &
server=$!
hook=""
stop() {
    kill -INT "$server" 2>/dev/null || true
    [ -n "$hook" ] && kill "$hook" 2>/dev/null || true
    sleep 1
    kill -9 "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    curl -sf "$base/environments/production/async_queue_status" >/dev/null && break
    sleep 0.1
done
cat >"$work/async.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model_input":{"text":"hello"}}'
LUA
cat >"$work/sync.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text":"hello"}'
LUA
# Warm up both paths.
wrk -t2 -c8 -d2s -s "$work/sync.lua" "$base/environments/production/predict" >/dev/null
wrk -t2 -c8 -d10s --latency -s "$work/sync.lua" "$base/environments/production/predict" >"$work/sync.txt"
start=$(date +%s.%N)
wrk -t2 -c8 -d10s --latency -s "$work/async.lua" "$base/environments/production/async_predict" >"$work/async.txt"
# The backlog: wait until nothing is queued or in progress.
python3 - "$base" <<'PY'
import json, sys, time, urllib.request
base = sys.argv[1]
deadline = time.time() + 600
while time.time() < deadline:
    q = json.load(urllib.request.urlopen(f"{base}/environments/production/async_queue_status"))
    if q["num_queued_requests"] == 0 and q["num_in_progress_requests"] == 0:
        break
    time.sleep(0.2)
else:
    sys.exit("async.sh: the backlog did not drain in 10 minutes")
PY
drained=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
# The webhook receiver: when each POST arrives minus when the worker finished.
python3 - "$hook_port" "$work/hook.txt" <<'PY' &
import http.server, json, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        now = time.time_ns() // 1000
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(out, "a") as f:
            f.write(f"{now - body['data']['output']['finished_at_us']}\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
hook=$!
sleep 0.5
for i in $(seq 1 200); do
    curl -sf -X POST -H 'Content-Type: application/json' \
        -d "{\"model_input\":$i,\"webhook_endpoint\":\"http://127.0.0.1:$hook_port/webhook\"}" \
        "$base/environments/production/async_predict" >/dev/null
    sleep 0.02
done
for _ in $(seq 1 100); do
    [ -f "$work/hook.txt" ] && [ "$(wc -l <"$work/hook.txt")" -ge 200 ] && break
    sleep 0.1
done
python3 - "$work/async.txt" "$work/sync.txt" "$work/hook.txt" "$drained" "$durability" <<'PY'
import sys
def wrk(path):
    lines = open(path).read().splitlines()
    rate = next(float(l.split()[1]) for l in lines if l.startswith("Requests/sec"))
    pct = {}
    for l in lines:
        f = l.split()
        if len(f) == 2 and f[0] in ("50%", "99%"):
            v = f[1]
            unit = 1e-3 if v.endswith("us") else 1 if v.endswith("ms") else 1e3 if v.endswith("s") else 0
            pct[f[0]] = float(v.rstrip("mus")) * unit
    bad = sum(int(l.split()[-1]) for l in lines if l.strip().startswith("Non-2xx"))
    total = next(int(l.split()[0]) for l in lines if "requests in" in l)
    return rate, pct["50%"], pct["99%"], total, bad
a, s = wrk(sys.argv[1]), wrk(sys.argv[2])
hooks = sorted(int(x) for x in open(sys.argv[3]).read().split())
drained = float(sys.argv[4])
print(f"async submit -> 201 (--durability={sys.argv[5]}): {a[0]:.0f} submissions/s, p50 {a[1]:.2f} ms, p99 {a[2]:.2f} ms ({a[3]} requests, {a[4]} not 2xx)")
print(f"sync predict, same workers:    {s[0]:.0f} requests/s,    p50 {s[1]:.2f} ms, p99 {s[2]:.2f} ms ({s[3]} requests, {s[4]} not 2xx)")
print(f"all {a[3]} async requests run by 2 workers {drained:.1f} s after the first submission: {a[3] / drained:.0f} completions/s")
if hooks:
    p = lambda q: hooks[min(len(hooks) - 1, int(q * len(hooks)))] / 1000
    print(f"worker completion -> webhook POST received: p50 {p(0.5):.2f} ms, p90 {p(0.9):.2f} ms, max {hooks[-1] / 1000:.2f} ms ({len(hooks)} webhooks)")
PY
