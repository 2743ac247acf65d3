"""A foreign JSON-RPC worker for the gateway tests: PyPI jsonrpcserver
behind the standard library's http.server, answering POST /api/rpc.

Methods: ping -> "pong"; whoami -> what the gateway sent along (the
X-WORKER-POSTAUTH context and the traceparent header).
Prints "pyworker: listening on 127.0.0.1:PORT" once it listens.
"""
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jsonrpcserver import Success, dispatch, method


@method
def ping(context):
    return Success("pong")


@method
def whoami(context):
    return Success(context)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/api/rpc":
            self.send_response(404)
            self.end_headers()
            return
        context = {
            "postauth": json.loads(self.headers.get("X-WORKER-POSTAUTH", "null")),
            "traceparent": self.headers.get("traceparent"),
        }
        answer = dispatch(body.decode(), context=context).encode()
        self.send_response(200 if answer else 204)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"pyworker: listening on 127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
