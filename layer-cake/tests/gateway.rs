//! JSON-RPC 2.0 on the HTTP front and the gateway, over real sockets on
//! 127.0.0.1: the spec's section 7 vectors answered by a local handler and
//! through the gateway (`calc/…`), the call chain and caller context, the
//! error mapping (unknown service, fault, deadline), the limits, the
//! request log line, and the outside checks with Python: PyPI
//! `jsonrpcclient` as the client and a `jsonrpcserver` foreign worker.
//!
//! The Python tests need `pip install jsonrpcserver jsonrpcclient`; without
//! them they print SKIPPED, except under CI (`CI` set), where they fail.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use layer_cake::directory::{NodeOptions, Scope, spawn_node};
use layer_cake::gateway::{self, GatewayOptions};
use layer_cake::log::{DebugLevel, LogCapture, LogLayer};
use layer_cake::net::http::jsonrpc::{self, RpcCall, RpcError, RpcResult};
use layer_cake::net::http::{REQUEST_LOG_TARGET, request_uuid};
use layer_cake::net::{HttpServer, ListenOptions, Listening};
use layer_cake::runtime::{self, TraceContext};
use layer_cake::spool::SpoolOptions;
use layer_cake::{Address, Context, Faulted, HostPort, Stop, on};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(20);

/// The spec's section 7 methods plus what the tests need: `whoami` (the
/// chain, caller and method seen), `secret` (refused without a caller),
/// `crash` (a fault) and `hang` (never answered).
fn calc(cx: &Context, call: &RpcCall) -> Option<Result<Value, RpcError>> {
    let p = &call.params;
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    Some(match call.method.as_str() {
        "subtract" if p.is_array() => Ok(json!(n(&p[0]) - n(&p[1]))),
        "subtract" => Ok(json!(n(&p["minuend"]) - n(&p["subtrahend"]))),
        "sum" => Ok(json!(
            p.as_array().map_or(0, |a| a.iter().map(n).sum::<i64>())
        )),
        "get_data" => Ok(json!(["hello", 5])),
        "update" | "notify_hello" | "notify_sum" => Ok(Value::Null),
        "whoami" => Ok(json!({
            "chain": call.chain,
            "caller": gateway::caller(cx),
            "method": call.method,
        })),
        "secret" => match gateway::caller(cx) {
            Some(user) => Ok(json!(format!("for {user} only"))),
            None => Err(RpcError::unauthorized()),
        },
        "crash" => return None,
        "hang" => return Some(Err(RpcError::new(0, "hang"))),
        _ => Err(RpcError::method_not_found()),
    })
}

/// How many `await_cancel` calls saw their cancellation.
static CANCELLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// An actor answering [`RpcCall`]s with [`calc`]; publishes `publish` (if
/// any) at PROCESS scope through `node`.
async fn calc_actor(mut cx: Context, publish: Option<(Address, String)>) {
    if let Some((node, name)) = publish {
        cx.publish_at(&node, name, Scope::Process);
    }
    loop {
        on!(cx.input().await, {
            RpcCall as call => {
                if call.method == "await_cancel" {
                    // Never answered: counts the cancellation when it comes.
                    let signal = cx.cancellation();
                    tokio::spawn(async move {
                        if tokio::time::timeout(PATIENCE, signal.cancelled()).await.is_ok() {
                            CANCELLED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    });
                    continue;
                }
                let _ = match calc(&cx, &call) {
                    Some(Ok(result)) => cx.reply(RpcResult::new(result)).map_err(drop),
                    Some(Err(e)) if e.message == "hang" => Ok(()),
                    Some(Err(e)) => cx.reply(e).map_err(drop),
                    None => cx.reply(Faulted::new("the worker crashed")).map_err(drop),
                };
            },
            Stop as _ => return,
            _other => {},
        })
    }
}

/// The caller check of the tests' fronts: header `x-user`, when it is
/// `demo1`.
fn front() -> HttpServer {
    HttpServer::new()
        .json_rpc("/api/rpc")
        .max_batch(10)
        .max_body(4096)
        .caller(|headers| {
            headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .filter(|u| *u == "demo1")
                .map(str::to_owned)
        })
}

/// A response: status, headers (lower-case names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request's uuid, from the `traceparent` of the response.
    fn uuid(&self) -> String {
        let trace: TraceContext = self.header("traceparent").unwrap().parse().unwrap();
        request_uuid(&trace)
    }
}

/// One HTTP/1.1 request on a connection of its own.
async fn http(port: u16, method: &str, headers: &str, body: &str) -> Reply {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "{method} /api/rpc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: {}\r\n{headers}\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("an answer in time")
}

async fn rpc(port: u16, body: &str) -> Reply {
    http(port, "POST", "Content-Type: application/json\r\n", body).await
}

/// The answer, or nothing (204).
async fn rpc_value(port: u16, body: &str) -> Option<Value> {
    let reply = rpc(port, body).await;
    match reply.status {
        204 => None,
        200 => Some(reply.json()),
        other => panic!("status {other}: {}", reply.body),
    }
}

/// Every section 7 vector, with `prefix` before each method name.
async fn check_section_7(port: u16, prefix: &str) {
    for (request, expected) in jsonrpc::spec_examples(prefix) {
        let got = rpc_value(port, &request).await.map(jsonrpc::without_data);
        assert_eq!(got, expected, "for {request}");
    }
}

/// A front whose listening actor is [`calc_actor`] itself: the port.
async fn local_front() -> (runtime::ActorHandle<()>, u16) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = runtime::spawn(move |mut cx: Context| async move {
        cx.listen(HostPort::new("127.0.0.1", 0), ListenOptions::http(front()));
        let Ok(l) = cx.input().await.downcast::<Listening>() else {
            panic!("cannot listen")
        };
        let _ = tx.send(l.listening.port);
        calc_actor(cx, None).await;
    });
    (handle, rx.await.unwrap())
}

/// A gateway named `gw` over a directory node of its own, with a `calc`
/// worker published there (and `extra` options): the port and the node.
async fn gateway_front(
    extra: impl FnOnce(GatewayOptions) -> GatewayOptions,
) -> (Context, u16, Address) {
    let node = spawn_node(NodeOptions::new(Scope::Process), Address::NULL);
    let mut cx = Context::detached("test");
    let options = GatewayOptions::new("gw")
        .scope(Scope::Process)
        .directory(node.clone())
        .listen(HostPort::new("127.0.0.1", 0), front())
        .spool(SpoolOptions::new().request_timeout(Duration::from_secs(2)));
    cx.spawn_gateway(extra(options)).unwrap();
    let port = loop {
        if let Ok(l) = cx.input().await.downcast::<Listening>() {
            break l.listening.port;
        }
    };
    let publish = Some((node.clone(), gateway::publication("calc")));
    runtime::spawn(move |cx| calc_actor(cx, publish));
    wait_for_service(port, "calc").await;
    (cx, port, node)
}

/// Calls `<service>/ping`-like probes until the service is routed (any
/// answer but "no service").
async fn wait_for_service(port: u16, service: &str) {
    let probe = format!(r#"{{"jsonrpc":"2.0","method":"{service}/sum","params":[],"id":0}}"#);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let answer = rpc(port, &probe).await.json();
        let missing = answer["error"]["data"]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("no service"));
        if !missing {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service} never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specs_vectors_against_a_local_handler() {
    let (_front, port) = local_front().await;
    check_section_7(port, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specs_vectors_through_the_gateway() {
    let (_cx, port, _node) = gateway_front(|o| o).await;
    check_section_7(port, "calc/").await;
    // No such service, and no local handler for a method without "/".
    let answer = rpc(
        port,
        r#"{"jsonrpc":"2.0","method":"nosuchworker/x","id":7}"#,
    )
    .await
    .json();
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    assert_eq!(answer["id"], 7);
    assert_eq!(
        answer["error"]["data"]["detail"],
        "no service named \"nosuchworker\""
    );
    let answer = rpc(
        port,
        r#"{"jsonrpc":"2.0","method":"subtract","params":[1,1],"id":8}"#,
    )
    .await
    .json();
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sees_the_stripped_method_the_chain_and_the_caller() {
    let (_cx, port, _node) = gateway_front(|o| o).await;
    let call = r#"{"jsonrpc":"2.0","method":"calc/whoami","id":1}"#;
    let reply = http(
        port,
        "POST",
        "Content-Type: application/json\r\nx-user: demo1\r\n",
        call,
    )
    .await;
    let answer = reply.json();
    let uuid = reply.uuid();
    assert_eq!(
        answer["result"],
        json!({"chain": [format!("{uuid}@gw")], "caller": "demo1", "method": "whoami"}),
        "{answer}"
    );
    // An unknown user is no caller: the worker refuses what needs one.
    let secret = r#"{"jsonrpc":"2.0","method":"calc/secret","id":2}"#;
    let answer = http(
        port,
        "POST",
        "Content-Type: application/json\r\nx-user: mallory\r\n",
        secret,
    )
    .await
    .json();
    assert_eq!(answer["error"]["code"], -32002, "{answer}");
    let answer = http(
        port,
        "POST",
        "Content-Type: application/json\r\nx-user: demo1\r\n",
        secret,
    )
    .await
    .json();
    assert_eq!(answer["result"], "for demo1 only", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_deadlines_become_errors_with_the_request_uuid() {
    let (_cx, port, _node) = gateway_front(|o| o).await;
    let reply = rpc(port, r#"{"jsonrpc":"2.0","method":"calc/crash","id":1}"#).await;
    let answer = reply.json();
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    assert_eq!(answer["error"]["data"]["req_uuid"], reply.uuid());
    assert!(
        answer["error"]["data"]["detail"]
            .as_str()
            .unwrap()
            .contains("the worker crashed")
    );

    // The spool's deadline (2 s here) answers a call the worker sits on.
    let started = std::time::Instant::now();
    let reply = rpc(port, r#"{"jsonrpc":"2.0","method":"calc/hang","id":2}"#).await;
    let answer = reply.json();
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    assert_eq!(answer["error"]["data"]["req_uuid"], reply.uuid());
    assert!(started.elapsed() < PATIENCE);
}

/// A client that goes away before its JSON-RPC answer cancels the call:
/// the actor holding it sees its `Cancellation`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_its_calls() {
    use tokio::io::AsyncWriteExt;
    let (_front, port) = local_front().await;
    let body = r#"{"jsonrpc":"2.0","method":"await_cancel","id":1}"#;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST /api/rpc HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The call reaches the actor (give it time), then the client leaves.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while CANCELLED.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_bounded() {
    let (_front, port) = local_front().await;
    // More calls than max_batch (10): refused whole.
    let call = r#"{"jsonrpc":"2.0","method":"sum","params":[1],"id":1}"#;
    let batch = format!("[{}]", [call; 11].join(","));
    let answer = rpc_value(port, &batch).await.unwrap();
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    // Ten are fine.
    let batch = format!("[{}]", [call; 10].join(","));
    assert_eq!(
        rpc_value(port, &batch)
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        10
    );
    // A body over max_body (4 KiB here): 413.
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"sum","params":[{}1],"id":1}}"#,
        "1,".repeat(3000)
    );
    assert_eq!(rpc(port, &big).await.status, 413);
    // Deep nesting is a parse error, not a crash.
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    assert_eq!(
        rpc_value(port, &deep).await.unwrap()["error"]["code"],
        -32700
    );
    // Not POST: 405. The body is JSON whatever the Content-Type says.
    let reply = http(port, "GET", "", "").await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    assert_eq!(http(port, "POST", form, call).await.json()["result"], 1);
}

/// The request log, captured once for this test binary.
fn request_log() -> &'static LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let capture = LogCapture::new();
        let layer = LogLayer::new(Some(DebugLevel::CONSOLE), capture.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        capture
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_writes_one_json_log_line() {
    let capture = request_log();
    let (_cx, port, _node) = gateway_front(|o| o).await;
    let call = r#"{"jsonrpc":"2.0","method":"calc/subtract","params":[42,23],"id":"l-1"}"#;
    let reply = http(
        port,
        "POST",
        "Content-Type: application/json\r\nx-user: demo1\r\n",
        call,
    )
    .await;
    let logged = log_line(capture, &reply.uuid()).await;
    assert_eq!(REQUEST_LOG_TARGET, "layer_cake::request");
    assert_eq!(logged["uuid"], reply.uuid());
    assert_eq!(logged["rpc_id"], "l-1");
    assert_eq!(logged["rpc_method"], "calc/subtract");
    assert_eq!(logged["rpc_chain"], json!([]));
    assert_eq!(logged["user_id"], "demo1");
    assert_eq!(logged["http_method"], "POST");
    assert_eq!(logged["http_path"], "/api/rpc");
    assert!(logged["duration_ms"].as_f64().unwrap() >= 0.0);
    for stamp in ["time_in", "timestamp"] {
        let text = logged[stamp].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{text}");
    }
}

/// The request log line of the request `uuid`, parsed.
async fn log_line(capture: &LogCapture, uuid: &str) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let contents = capture.contents();
        if let Some(line) = contents.lines().find(|l| l.contains(uuid)) {
            let json_text = &line[line.find(" - {").expect(line) + 3..];
            return serde_json::from_str(json_text).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line for {uuid}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_of_the_front_are_logged_too() {
    let capture = request_log();
    let (_front, port) = local_front().await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /Nope?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
    let trace = raw
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .unwrap()
        .parse()
        .unwrap();
    let logged = log_line(capture, &request_uuid(&trace)).await;
    assert_eq!(logged["http_method"], "GET");
    assert_eq!(logged["http_path"], "/Nope");
    assert_eq!(
        (&logged["rpc_method"], &logged["rpc_id"]),
        (&Value::Null, &Value::Null)
    );
}

/// Whether the Python modules are there; under CI their absence fails.
fn python_has(modules: &[&str]) -> bool {
    let check = format!("import {}", modules.join(", "));
    let ok = Command::new("python3")
        .args(["-c", &check])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 cannot {check}: run `pip install jsonrpcserver jsonrpcclient`"
        );
        println!("SKIPPED: python3 cannot {check} (pip install jsonrpcserver jsonrpcclient)");
    }
    ok
}

fn data(file: &str) -> String {
    format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the jsonrpcclient script against `port` with `prefix`.
async fn outside_client(port: u16, prefix: &str) {
    let url = format!("http://127.0.0.1:{port}/api/rpc");
    let script = data("rpc_client.py");
    let prefix = prefix.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script.as_str(), url.as_str(), prefix.as_str()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("ALL OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonrpcclient_talks_to_the_front_and_the_gateway() {
    if !python_has(&["jsonrpcclient"]) {
        return;
    }
    let (_front, port) = local_front().await;
    outside_client(port, "").await;
    let (_cx, port, _node) = gateway_front(|o| o).await;
    outside_client(port, "calc/").await;
}

/// A child process killed when dropped.
struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the jsonrpcserver worker: it and its port.
fn pyworker() -> (Python, u16) {
    let mut child = Command::new("python3")
        .arg(data("pyworker.py"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Python(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("pyworker said {line:?}"));
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_python_worker_behind_the_gateway() {
    if !python_has(&["jsonrpcserver"]) {
        return;
    }
    let (py, py_port) = pyworker();
    let url = format!("http://127.0.0.1:{py_port}/api/rpc");
    let (_cx, port, _node) = gateway_front(|o| {
        o.foreign("pyworker", &url)
            .unwrap()
            .foreign_timeout(PATIENCE)
    })
    .await;
    let answer = rpc(port, r#"{"jsonrpc":"2.0","method":"pyworker/ping","id":1}"#)
        .await
        .json();
    assert_eq!(answer, json!({"jsonrpc":"2.0","result":"pong","id":1}));

    // The worker gets the caller context and a traceparent of the request's
    // trace with a span of its own.
    let reply = http(
        port,
        "POST",
        "Content-Type: application/json\r\nx-user: demo1\r\n",
        r#"{"jsonrpc":"2.0","method":"pyworker/whoami","id":"w"}"#,
    )
    .await;
    let answer = reply.json();
    let uuid = reply.uuid();
    let seen = &answer["result"];
    assert_eq!(
        seen["postauth"],
        json!({"user_id": "demo1", "rpc_chain": [format!("{uuid}@gw")]}),
        "{answer}"
    );
    let theirs: TraceContext = seen["traceparent"].as_str().unwrap().parse().unwrap();
    let ours: TraceContext = reply.header("traceparent").unwrap().parse().unwrap();
    assert_eq!(theirs.trace_id, ours.trace_id);
    assert_ne!(theirs.span_id, ours.span_id);
    let missing = rpc(port, r#"{"jsonrpc":"2.0","method":"pyworker/nope","id":2}"#)
        .await
        .json();
    assert_eq!(missing["error"]["code"], -32601, "{missing}");

    // Killed: its calls fail cleanly and the gateway serves the others.
    drop(py);
    let answer = rpc(port, r#"{"jsonrpc":"2.0","method":"pyworker/ping","id":3}"#)
        .await
        .json();
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert_eq!(answer["id"], 3);
    let answer = rpc(
        port,
        r#"{"jsonrpc":"2.0","method":"calc/sum","params":[1,2],"id":4}"#,
    )
    .await
    .json();
    assert_eq!(answer["result"], 3, "{answer}");
}
