//! Async requests (issue 15) end to end: the `async_server` demo as a real
//! process on port 0 with a store of its own, asked over HTTP, and a real
//! webhook receiver (a hyper server in this test on a loopback port). Every
//! scenario of the reference's outside checks (other-seeds §3c) is here,
//! and a SIGKILL of the process holding the store. Each test kills what it
//! started, also when it fails (the processes are killed on drop).

mod support;

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::procs::Proc;

const PATIENCE: Duration = Duration::from_secs(30);

/// One POST the webhook receiver got.
#[derive(Debug)]
struct Hit {
    at: Instant,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON webhook body")
    }
}

/// A webhook receiver on 127.0.0.1:0 answering the statuses of `script` in
/// turn, then 200.
struct Hook {
    port: u16,
    hits: mpsc::Receiver<Hit>,
}

impl Hook {
    fn start(script: &[u16]) -> Hook {
        use http_body_util::{BodyExt, Full};
        use hyper::service::service_fn;
        let script = Arc::new(Mutex::new(
            script.iter().copied().collect::<VecDeque<u16>>(),
        ));
        let (tx, hits) = mpsc::channel();
        let (port_tx, port_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (tx, script) = (tx.clone(), script.clone());
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                                let (tx, script) = (tx.clone(), script.clone());
                                async move {
                                    let at = Instant::now();
                                    let headers = request
                                        .headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.as_str().to_ascii_lowercase(),
                                                v.to_str().unwrap_or("").to_string(),
                                            )
                                        })
                                        .collect();
                                    let body = request
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes().to_vec())
                                        .unwrap_or_default();
                                    let _ = tx.send(Hit { at, headers, body });
                                    let status = script.lock().unwrap().pop_front().unwrap_or(200);
                                    Ok::<_, std::convert::Infallible>(
                                        hyper::Response::builder()
                                            .status(status)
                                            .body(Full::new(bytes::Bytes::from_static(b"ok")))
                                            .unwrap(),
                                    )
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        let port = port_rx
            .recv_timeout(PATIENCE)
            .expect("the receiver listens");
        Hook { port, hits }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhook", self.port)
    }

    fn next(&self) -> Hit {
        self.hits
            .recv_timeout(PATIENCE)
            .expect("a webhook POST in time")
    }

    fn nothing_for(&self, d: Duration) {
        if let Ok(hit) = self.hits.recv_timeout(d) {
            panic!(
                "an unexpected webhook POST: {}",
                String::from_utf8_lossy(&hit.body)
            );
        }
    }
}

/// `async_server` on port 0 with its store in `dir`.
fn server(dir: &std::path::Path, flags: &[&str]) -> (Proc, u16) {
    let mut args = vec![
        "--server-address=127.0.0.1:0".to_string(),
        format!("--store={}", dir.join("async.sqlite").display()),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    let p = Proc::start(env!("CARGO_BIN_EXE_async_server"), &args);
    let port = p.port();
    (p, port)
}

fn exchange(port: u16, method: &str, target: &str, body: &[u8]) -> (u16, Value) {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    // A server may answer (413) before reading all of a large body.
    let _ = stream.write_all(&request);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = &raw[split + 4..];
    (
        status,
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into())),
    )
}

fn submit(port: u16, body: Value) -> String {
    let (status, answer) = exchange(
        port,
        "POST",
        "/environments/production/async_predict",
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{answer}");
    let id = answer["request_id"]
        .as_str()
        .expect("a request id")
        .to_string();
    assert_eq!(answer, json!({"request_id": id}));
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
    id
}

fn record(port: u16, id: &str) -> Value {
    let (status, r) = exchange(port, "GET", &format!("/async_request/{id}"), b"");
    assert_eq!(status, 200, "{r}");
    r
}

/// Polls the record until its status is `status`.
fn wait_status(port: u16, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = record(port, id);
        if r["status"] == status {
            return r;
        }
        assert!(Instant::now() < deadline, "{id} never became {status}: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn submit_then_a_signed_webhook_and_the_record() {
    let dir = tempdir();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "test-webhook-secret\n").unwrap();
    let hook = Hook::start(&[]);
    let (_p, port) = server(
        dir.path(),
        &[&format!("--webhook-secret-file={}", secret.display())],
    );
    let id = submit(
        port,
        json!({"model_input": "THIS IS SOME TEXT IN UPPER CASE SO I SEE IT IN LOGS EASILY",
               "webhook_endpoint": hook.url(), "max_time_in_queue_seconds": 100,
               "inference_retry_config": {"max_attempts": 3, "initial_delay_ms": 1000, "max_delay_ms": 5000}}),
    );
    let hit = hook.next();
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(hit.headers["x-baseten-request-id"], id);
    // The receiver checks the signature as Baseten's published verifier does.
    let expected = layer_cake::async_requests::signature(b"test-webhook-secret", &hit.body);
    let got = hit.headers["x-baseten-signature"]
        .split(',')
        .next()
        .unwrap();
    assert_eq!(got, expected);
    assert!(
        hit.headers["traceparent"].starts_with(&format!("00-{id}-")),
        "{:?}",
        hit.headers
    );
    let body = hit.json();
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(body["model_id"], "predict");
    assert_eq!(body["deployment_id"], "production");
    assert_eq!(body["type"], "async_request_completed");
    assert_eq!(
        body["data"]["output"]["echo"],
        "THIS IS SOME TEXT IN UPPER CASE SO I SEE IT IN LOGS EASILY"
    );
    assert_eq!(body["errors"], json!([]));
    let r = wait_status(port, &id, "SUCCEEDED");
    assert_eq!(r["webhook_status"], "SUCCEEDED");
    assert_eq!(r["errors"], json!([]));
    assert_eq!(r["attempts"], 1);
    for key in [
        "request_id",
        "model_id",
        "deployment_id",
        "status",
        "webhook_status",
        "created_at",
        "status_at",
        "errors",
    ] {
        assert!(r.get(key).is_some(), "{key} missing from {r}");
    }
    assert!(r["created_at"].as_str().unwrap().ends_with('Z'));
    // Without a webhook the record says so.
    let id = submit(port, json!({"model_input": 7}));
    let r = wait_status(port, &id, "SUCCEEDED");
    assert_eq!(r["webhook_status"], "NO_WEBHOOK_PROVIDED");
}

#[test]
fn a_503_twice_then_success_is_retried_with_backoff() {
    let dir = tempdir();
    let hook = Hook::start(&[]);
    let (p, port) = server(dir.path(), &[]);
    let id = submit(
        port,
        json!({"model_input": {"fail_code": 503, "fail_until_attempt": 3}, "webhook_endpoint": hook.url()}),
    );
    p.line_with(&format!("{id} attempt 1 fails with 503"));
    let t1 = Instant::now();
    let line = p.line_with(&format!("{id} attempt 2 started"));
    let gap1 = t1.elapsed();
    // The worker hop carries the request id as its trace id.
    assert!(line.contains(&format!("(trace 00-{id}-")), "{line}");
    p.line_with(&format!("{id} attempt 2 fails with 503"));
    let t2 = Instant::now();
    p.line_with(&format!("{id} attempt 3 started"));
    let gap2 = t2.elapsed();
    assert!(
        gap1 >= Duration::from_millis(900) && gap1 < Duration::from_millis(1800),
        "first gap {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(1900) && gap2 < Duration::from_millis(2900),
        "second gap {gap2:?}"
    );
    let body = hook.next().json();
    assert_eq!(body["data"]["output"]["attempt"], 3);
    let r = wait_status(port, &id, "SUCCEEDED");
    assert_eq!(r["attempts"], 3);
}

#[test]
fn a_422_fails_at_once_and_so_does_a_404() {
    let dir = tempdir();
    let hook = Hook::start(&[]);
    let (_p, port) = server(dir.path(), &[]);
    let id = submit(
        port,
        json!({"model_input": {"fail_code": 422}, "webhook_endpoint": hook.url()}),
    );
    let body = hook.next().json();
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["code"], "MODEL_INVALID_INPUT");
    let r = wait_status(port, &id, "FAILED");
    assert_eq!(r["errors"][0]["code"], "MODEL_INVALID_INPUT");
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["webhook_status"], "SUCCEEDED");
    let id = submit(port, json!({"model_input": {"fail_code": 404}}));
    let r = wait_status(port, &id, "FAILED");
    assert_eq!(r["errors"][0]["code"], "MODEL_DOES_NOT_EXIST");
    assert_eq!(r["attempts"], 1);
    // 500 three times: FAILED after the three attempts.
    let id = submit(
        port,
        json!({"model_input": {"fail_code": 500}, "inference_retry_config": {"initial_delay_ms": 0}}),
    );
    let r = wait_status(port, &id, "FAILED");
    assert_eq!(r["errors"][0]["code"], "MODEL_PREDICT_ERROR");
    assert_eq!(r["attempts"], 3);
    // A worker answering the wrong type: a fault (500), not a request left waiting.
    let id = submit(
        port,
        json!({"model_input": {"wrong_type": true}, "inference_retry_config": {"max_attempts": 1}}),
    );
    let r = wait_status(port, &id, "FAILED");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not Prediction"),
        "{r}"
    );
    let (status, answer) = exchange(
        port,
        "POST",
        "/environments/production/predict",
        br#"{"wrong_type":true}"#,
    );
    assert_eq!(status, 500, "{answer}");
    assert_eq!(answer["error"]["code"], "MODEL_PREDICT_ERROR");
}

#[test]
fn a_request_not_started_in_time_expires() {
    let dir = tempdir();
    let (p, port) = server(dir.path(), &["--workers=1"]);
    // The only worker is busy for longer than the queue time allows.
    let busy = submit(port, json!({"model_input": {"sleep_ms": 13000}}));
    p.line_with(&format!("{busy} attempt 1 started"));
    let start = Instant::now();
    let id = submit(
        port,
        json!({"model_input": 1, "max_time_in_queue_seconds": 10}),
    );
    let r = wait_status(port, &id, "EXPIRED");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(9900) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
    assert_eq!(r["errors"][0]["code"], "REQUEST_EXPIRED");
    assert_eq!(r["attempts"], 0);
}

#[test]
fn cancel_only_a_queued_request() {
    let dir = tempdir();
    let (p, port) = server(dir.path(), &["--workers=1"]);
    // Back to back: the second must wait for the only worker, in the queue.
    let running = submit(port, json!({"model_input": {"sleep_ms": 3000}}));
    let queued = submit(port, json!({"model_input": 2}));
    p.line_with(&format!("{running} attempt 1 started"));
    std::thread::sleep(Duration::from_millis(300));
    let (status, q) = exchange(
        port,
        "GET",
        "/environments/production/async_queue_status",
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(
        q,
        json!({"model_id": "predict", "deployment_id": "production", "num_queued_requests": 1, "num_in_progress_requests": 1})
    );
    let (status, c) = exchange(port, "DELETE", &format!("/async_request/{queued}"), b"");
    assert_eq!(status, 200);
    assert_eq!(c["canceled"], true, "{c}");
    assert_eq!(c["request_id"], queued.as_str());
    let (_, c) = exchange(port, "DELETE", &format!("/async_request/{running}"), b"");
    assert_eq!(c["canceled"], false, "{c}");
    assert!(
        c["message"].as_str().unwrap().contains("IN_PROGRESS"),
        "{c}"
    );
    assert_eq!(record(port, &queued)["status"], "CANCELED");
    wait_status(port, &running, "SUCCEEDED");
    let (_, c) = exchange(port, "DELETE", &format!("/async_request/{queued}"), b"");
    assert_eq!(c["canceled"], false, "{c}");
    let (status, _) = exchange(
        port,
        "DELETE",
        &format!("/async_request/{}", "0".repeat(32)),
        b"",
    );
    assert_eq!(status, 404);
}

#[test]
fn a_webhook_failing_twice_gives_webhook_failed() {
    let dir = tempdir();
    let hook = Hook::start(&[500, 500]);
    let (_p, port) = server(dir.path(), &[]);
    let id = submit(
        port,
        json!({"model_input": 1, "webhook_endpoint": hook.url()}),
    );
    let first = hook.next();
    let second = hook.next();
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_millis(3000),
        "{gap:?}"
    );
    let r = wait_status(port, &id, "WEBHOOK_FAILED");
    assert_eq!(r["webhook_status"], "FAILED");
    hook.nothing_for(Duration::from_secs(3));
}

#[test]
fn priority_zero_goes_first_then_fifo() {
    let dir = tempdir();
    let hook = Hook::start(&[]);
    let (p, port) = server(dir.path(), &["--workers=1"]);
    let busy = submit(port, json!({"model_input": {"sleep_ms": 1500}}));
    p.line_with(&format!("{busy} attempt 1 started"));
    let a = submit(
        port,
        json!({"model_input": "a", "priority": 1, "webhook_endpoint": hook.url()}),
    );
    let b = submit(
        port,
        json!({"model_input": "b", "priority": 1, "webhook_endpoint": hook.url()}),
    );
    let c = submit(
        port,
        json!({"model_input": "c", "priority": 0, "webhook_endpoint": hook.url()}),
    );
    let order: Vec<String> = (0..3)
        .map(|_| {
            hook.next().json()["request_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(order, [c, a, b]);
}

#[test]
fn sync_requests_go_before_queued_async_ones() {
    let dir = tempdir();
    let (p, port) = server(dir.path(), &["--workers=1"]);
    let busy = submit(port, json!({"model_input": {"sleep_ms": 1500}}));
    p.line_with(&format!("{busy} attempt 1 started"));
    let queued = submit(port, json!({"model_input": "async"}));
    let sync = std::thread::spawn(move || {
        exchange(
            port,
            "POST",
            "/environments/production/predict",
            br#"{"sync":true}"#,
        )
    });
    // Let the sync request reach the spool's queue behind the busy worker.
    std::thread::sleep(Duration::from_millis(300));
    p.line_with(&format!("{busy} attempt 1 finished"));
    let next = p.line_with("attempt 1 started");
    assert!(
        !next.contains(&queued),
        "the async request went before the sync one: {next}"
    );
    let (status, answer) = sync.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["echo"], json!({"sync": true}));
    wait_status(port, &queued, "SUCCEEDED");
}

#[test]
fn limits_and_bad_input() {
    let dir = tempdir();
    let (p, port) = server(dir.path(), &["--workers=1", "--max-pending=2"]);
    // 257 KiB: 413.
    let big = format!(r#"{{"model_input":"{}"}}"#, "x".repeat(257 << 10));
    let (status, _) = exchange(
        port,
        "POST",
        "/environments/production/async_predict",
        big.as_bytes(),
    );
    assert_eq!(status, 413);
    let bad = |target: &str, body: &str, want: u16, code: &str, text: &str| {
        let (status, answer) = exchange(port, "POST", target, body.as_bytes());
        assert_eq!(status, want, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(text),
            "{answer}"
        );
    };
    let at = "/environments/production/async_predict";
    bad(at, "{nope", 400, "INVALID_JSON", "the body is not JSON");
    bad(
        "/environments/staging/async_predict",
        r#"{"model_input":1}"#,
        404,
        "ENVIRONMENT_DOES_NOT_EXIST",
        "staging",
    );
    bad(
        "/services/nosuch/async_predict",
        r#"{"model_input":1}"#,
        404,
        "MODEL_DOES_NOT_EXIST",
        "nosuch",
    );
    bad(
        at,
        r#"{"model_input":1,"priority":3}"#,
        422,
        "INVALID_INPUT",
        "priority must be between 0 and 2",
    );
    bad(
        at,
        r#"{"priority":1}"#,
        422,
        "INVALID_INPUT",
        "model_input is required",
    );
    bad(
        at,
        r#"{"model_input":1,"webhook_endpoint":"file:///etc/passwd"}"#,
        422,
        "INVALID_INPUT",
        "http://",
    );
    bad(
        at,
        r#"{"model_input":1,"webhook_endpoint":"https://example.org/"}"#,
        422,
        "INVALID_INPUT",
        "https is not supported",
    );
    let long = format!(
        r#"{{"model_input":1,"webhook_endpoint":"http://h/{}"}}"#,
        "a".repeat(3000)
    );
    bad(at, &long, 422, "INVALID_INPUT", "at most 2048");
    let (status, answer) = exchange(
        port,
        "GET",
        &format!("/async_request/{}", "z".repeat(5000)),
        b"",
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "INVALID_REQUEST_ID");
    assert!(answer["error"]["message"].as_str().unwrap().len() < 200);
    let (status, _) = exchange(
        port,
        "GET",
        &format!("/async_request/{}", "a".repeat(32)),
        b"",
    );
    assert_eq!(status, 404);
    // The generic form reaches the same service.
    let (status, answer) = exchange(
        port,
        "POST",
        "/services/predict/async_predict",
        br#"{"model_input":{"sleep_ms":2000}}"#,
    );
    assert_eq!(status, 201, "{answer}");
    p.line_with("attempt 1 started");
    submit(port, json!({"model_input": 1}));
    // Two accepted and not complete: the third is refused.
    let (status, answer) = exchange(port, "POST", at, br#"{"model_input":1}"#);
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"]["code"], "TOO_MANY_REQUESTS");
}

#[test]
fn records_are_dropped_after_the_retention() {
    let dir = tempdir();
    let (_p, port) = server(dir.path(), &["--retention-seconds=1"]);
    let id = submit(port, json!({"model_input": 1}));
    wait_status(port, &id, "SUCCEEDED");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, _) = exchange(port, "GET", &format!("/async_request/{id}"), b"");
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the record was kept");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn nothing_accepted_is_lost_across_a_sigkill() {
    sigkill_and_restart("--durability=fsync");
}

#[test]
fn nothing_accepted_is_lost_across_a_sigkill_without_fsync() {
    sigkill_and_restart("--durability=process");
}

fn sigkill_and_restart(durability: &str) {
    let dir = tempdir();
    let hook = Hook::start(&[]);
    let (p, port) = server(dir.path(), &["--workers=2", durability]);
    let retried = submit(
        port,
        json!({"model_input": {"sleep_ms": 60000, "sleep_until_attempt": 2}, "webhook_endpoint": hook.url()}),
    );
    let last = submit(
        port,
        json!({"model_input": {"sleep_ms": 60000}, "webhook_endpoint": hook.url(), "inference_retry_config": {"max_attempts": 1}}),
    );
    p.line_with(&format!("{retried} attempt 1 started"));
    p.line_with(&format!("{last} attempt 1 started"));
    let queued: Vec<String> = (0..2)
        .map(|i| {
            submit(
                port,
                json!({"model_input": i, "webhook_endpoint": hook.url()}),
            )
        })
        .collect();
    assert_eq!(record(port, &queued[0])["status"], "QUEUED");
    assert_eq!(record(port, &retried)["status"], "IN_PROGRESS");
    p.kill(); // SIGKILL
    let (_p, port) = server(dir.path(), &["--workers=2", durability]);
    let mut seen = HashMap::new();
    for _ in 0..4 {
        let hit = hook.next();
        let body = hit.json();
        seen.insert(body["request_id"].as_str().unwrap().to_string(), body);
    }
    // The in-progress request with attempts left ran again (attempt 2).
    assert_eq!(
        seen[&retried]["data"]["output"]["attempt"], 2,
        "{:?}",
        seen[&retried]
    );
    // The one on its last attempt failed, saying why.
    assert_eq!(seen[&last]["errors"][0]["code"], "INTERNAL_SERVER_ERROR");
    for id in &queued {
        assert_eq!(seen[id]["data"]["output"]["attempt"], 1);
    }
    let r = wait_status(port, &retried, "SUCCEEDED");
    assert_eq!(r["attempts"], 2);
    let r = wait_status(port, &last, "FAILED");
    assert_eq!(r["attempts"], 1);
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted by a restart"),
        "{r}"
    );
}
