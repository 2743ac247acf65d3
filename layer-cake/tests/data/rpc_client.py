"""An outside JSON-RPC client for the gateway tests: requests built and
responses parsed by PyPI jsonrpcclient, sent with urllib.

Usage: rpc_client.py URL PREFIX   (PREFIX is "" for local methods, "calc/"
through a gateway). Prints one line per check and "ALL OK" at the end;
exits non-zero at the first mismatch.
"""
import json
import sys
import urllib.request

from jsonrpcclient import Error, Ok, notification, parse, request

url, prefix = sys.argv[1], sys.argv[2]


def post(payload):
    data = json.dumps(payload).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as response:
        text = response.read()
        return response.status, (json.loads(text) if text else None)


def check(what, got, expected):
    if got != expected:
        print(f"FAIL {what}: got {got!r}, expected {expected!r}", flush=True)
        sys.exit(1)
    print(f"ok {what}: {got!r}", flush=True)


m = lambda name: prefix + name
_, body = post(request(m("subtract"), params=[42, 23], id=1))
check("subtract positional", parse(body), Ok(19, 1))
_, body = post(request(m("subtract"), params={"subtrahend": 23, "minuend": 42}, id=3))
check("subtract named", parse(body), Ok(19, 3))
status, body = post(notification(m("update"), params=[1, 2, 3, 4, 5]))
check("notification", (status, body), (204, None))
_, body = post(request(m("foobar"), id="1"))
got = parse(body)
check("method not found", (type(got), got.code, got.id), (Error, -32601, "1"))
_, body = post([
    request(m("sum"), params=[1, 2, 4], id="1"),
    notification(m("notify_hello"), params=[7]),
    request(m("subtract"), params=[42, 23], id="2"),
    request(m("get_data"), id="9"),
])
check("batch", list(parse(body)), [Ok(7, "1"), Ok(19, "2"), Ok(["hello", 5], "9")])
print("ALL OK", flush=True)
