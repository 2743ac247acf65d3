//! The HTTP front and the HTTP client mode, over real sockets on 127.0.0.1.
//!
//! Requests are written by hand on a `TcpStream` (so that malformed,
//! partial and HTTP/1.0 requests can be sent too); the client mode is tested
//! against the front itself and against raw servers that misbehave. Every
//! wait has a generous deadline.

use std::time::Duration;

use layer_cake::net::{
    Close, Closed, ConnectOptions, Connected, EndOfTransport, HttpClient, HttpResponse, HttpServer,
    ListenOptions, Listening, NotListening,
};
use layer_cake::runtime::{self, AskError};
use layer_cake::{Context, FaultKind, Faulted, HostPort, Message, Stop, on};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const PATIENCE: Duration = Duration::from_secs(20);

/// The table request; no defaults, so a bare `GET /Xy` is missing `x`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Message)]
struct Xy {
    x: i64,
    y: i64,
}

/// A request the server never answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
struct Ignored;

/// Answered with a `Busy` fault.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
struct Crowded;

/// Answered with a fault carrying this error code.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
#[serde(default)]
struct Coded {
    code: i32,
}

/// Answered with a custom `HttpResponse`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
struct Custom;

/// Answered with the trace id and span id the actor saw, and whether the
/// ingress was set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
struct Traced;

/// Answered later, from another task, through a `ReturnPath`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
#[serde(default)]
struct Later {
    ms: u64,
    tag: String,
}

/// Answered by a plain send to the request's ingress.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
struct Early;

/// Answered through the ingress at once, and replied to as well, `ms` later
/// (a reply that comes after the response has gone).
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
#[serde(default)]
struct EarlyThenLate {
    ms: u64,
}

// What the client mode receives must be decodable by signature.
layer_cake::register!(Vec<Vec<f64>>, Vec<String>);

fn table(xy: Xy) -> Vec<Vec<f64>> {
    vec![vec![0.5; xy.x.max(0) as usize]; xy.y.max(0) as usize]
}

/// The test server: listens with `front`, reports where, answers by type.
async fn server(mut cx: Context, front: HttpServer, ready: oneshot::Sender<HostPort>) {
    cx.listen(HostPort::new("127.0.0.1", 0), ListenOptions::http(front));
    let mut ready = Some(ready);
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => { if let Some(r) = ready.take() { let _ = r.send(l.listening); } },
            NotListening as n => panic!("cannot listen: {}", n.reason),
            Xy as xy => { let _ = cx.reply(table(xy)); },
            Vec<i64> as v => { let _ = cx.reply(v); },
            Ignored as _ => {},
            Crowded as _ => { let _ = cx.reply(Faulted::busy("too many tables today")); },
            Coded as c => { let _ = cx.reply(Faulted::new("coded").with_error_code(c.code)); },
            Custom as _ => {
                let mut r = HttpResponse::text(201, "made it");
                r.headers.push(("X-Made".into(), "yes".into()));
                let _ = cx.reply(r);
            },
            Traced as _ => {
                let meta = cx.meta().cloned().unwrap_or_default();
                let trace = meta.trace.map(|t| t.to_string()).unwrap_or_default();
                let state = meta.trace_state.map(|s| s.to_string()).unwrap_or_default();
                let _ = cx.reply(vec![trace, meta.ingress.is_some().to_string(), state]);
            },
            Later as later => {
                let answer = cx.return_path();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(later.ms)).await;
                    let _ = answer.reply(later.tag);
                });
            },
            Early as _ => {
                let ingress = cx.meta().and_then(|m| m.ingress.clone()).expect("an ingress");
                let _ = ingress.send("early".to_string());
            },
            EarlyThenLate as e => {
                let ingress = cx.meta().and_then(|m| m.ingress.clone()).expect("an ingress");
                let _ = ingress.send("early".to_string());
                let answer = cx.return_path();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(e.ms)).await;
                    let _ = answer.reply("late".to_string());
                });
            },
            Stop as _ => return,
            _other => {},
        })
    }
}

fn accepting() -> HttpServer {
    HttpServer::new()
        .accept::<Xy>()
        .accept::<Ignored>()
        .accept::<Crowded>()
        .accept::<Coded>()
        .accept::<Custom>()
        .accept::<Traced>()
        .accept::<Later>()
        .accept::<Early>()
        .accept::<EarlyThenLate>()
        .accept::<Vec<i64>>()
}

/// Starts a server actor; returns where it listens and its handle.
async fn start(front: HttpServer) -> (HostPort, runtime::ActorHandle<()>) {
    let (ready, listening) = oneshot::channel();
    let handle = runtime::spawn(move |cx| server(cx, front, ready));
    let at = tokio::time::timeout(PATIENCE, listening)
        .await
        .expect("listening in time")
        .expect("the server reports where it listens");
    (at, handle)
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Reply {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The explanation of a fault body.
    fn explanation(&self) -> String {
        let v = self.json();
        assert_eq!(v["value"][0], "Faulted", "{v}");
        v["value"][1]["explanation"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// A hand-written HTTP/1 client on one connection.
struct Raw {
    stream: BufReader<TcpStream>,
}

impl Raw {
    async fn connect(at: &HostPort) -> Raw {
        let stream = TcpStream::connect((at.host.as_str(), at.port))
            .await
            .expect("connects");
        Raw {
            stream: BufReader::new(stream),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream
            .get_mut()
            .write_all(bytes)
            .await
            .expect("writes");
    }

    /// The next response, or `None` when the server closed the connection.
    async fn read(&mut self) -> Option<Reply> {
        tokio::time::timeout(PATIENCE, self.read_now())
            .await
            .expect("a response in time")
    }

    async fn read_now(&mut self) -> Option<Reply> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return None;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let version = parts.next()?.to_string();
        let status = parts.next()?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.ok()?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':')?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Reply {
            version,
            status,
            headers,
            body,
        })
    }

    async fn request(&mut self, text: &str) -> Reply {
        self.write(text.as_bytes()).await;
        self.read().await.expect("a response")
    }

    async fn get(&mut self, target: &str) -> Reply {
        self.request(&format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"))
            .await
    }

    async fn post(&mut self, target: &str, content_type: &str, body: &str) -> Reply {
        self.request(&format!(
            "POST {target} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await
    }
}

async fn get(at: &HostPort, target: &str) -> Reply {
    Raw::connect(at).await.get(target).await
}

#[tokio::test]
async fn a_query_becomes_the_message_and_the_reply_its_envelope() {
    let (at, _server) = start(accepting()).await;
    let r = get(&at, "/Xy?x=3&y=2").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"value": ["vector<vector<float8>>", [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], []]})
    );
    // Any path before the last segment; percent-encoded names.
    let r = get(&at, "/api/v1/Xy?x=1&y=1").await;
    assert_eq!(r.json()["value"][1], json!([[0.5]]));
    let r = Raw::connect(&at)
        .await
        .post("/vector%3Cinteger8%3E", "application/json", "[1,2]")
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"value": ["vector<integer8>", [1, 2], []]}));
}

#[tokio::test]
async fn json_and_form_bodies() {
    let (at, _server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    let r = c
        .post("/Xy", "application/json", r#"{"value":{"x":2,"y":1}}"#)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"][1], json!([[0.5, 0.5]]));
    let r = c
        .post("/Xy", "application/json; charset=utf-8", r#"{"x":1,"y":3}"#)
        .await;
    assert_eq!(r.json()["value"][1], json!([[0.5], [0.5], [0.5]]));
    let r = c
        .post("/Xy", "application/x-www-form-urlencoded", "x=2&y=2")
        .await;
    assert_eq!(r.json()["value"][1], json!([[0.5, 0.5], [0.5, 0.5]]));
    // An empty body is the message from no fields: its defaults.
    let r = c.post("/Coded", "application/json", "").await;
    assert_eq!(r.status, 500);
    let r = c
        .post("/Later", "application/x-www-form-urlencoded", "tag=a+b%21")
        .await;
    assert_eq!(r.json(), json!({"value": ["unicode", "a b!", []]}));
}

#[tokio::test]
async fn unknown_names_are_404_with_a_json_body() {
    let (at, _server) = start(accepting()).await;
    for target in ["/Nope", "/", "/Xy/", "/Stop"] {
        let r = get(&at, target).await;
        assert_eq!(r.status, 404, "{target}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        assert_eq!(v["value"][1]["error_code"], 404, "{v}");
        assert!(
            r.explanation().contains("expected one of Xy, Ignored"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn bad_fields_are_400_naming_the_field() {
    let (at, _server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    let cases = [
        ("/Xy?x=abc&y=2", "x: invalid value \"abc\""),
        ("/Xy?x=%ff&y=2", "x: the value is not UTF-8"),
        ("/Xy?x=1&y=2&z=3", "unknown field z (expected one of x, y)"),
        ("/Xy", "missing field x"),
        ("/Xy?x=1&x=2&y=1", "x given twice"),
    ];
    for (target, expected) in cases {
        let r = c.get(target).await;
        assert_eq!(r.status, 400, "{target}");
        let why = r.explanation();
        assert!(why.contains(expected), "{target}: {why}");
    }
    let r = c
        .post("/Xy", "application/json", r#"{"x":1,"y":2,"z":3}"#)
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.explanation().contains("unknown field z"),
        "{}",
        r.explanation()
    );
    let r = c
        .post("/Xy", "application/json", r#"{"x":"one","y":2}"#)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.explanation().contains("\"x\""), "{}", r.explanation());
    let r = c.post("/Xy", "application/json", "{not json").await;
    assert_eq!(r.status, 400);
    let r = c.post("/Xy", "text/plain", "x=1").await;
    assert_eq!(r.status, 415);
    let r = c
        .request("DELETE /Xy?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Type: application/json\r\n\r\n{ }")
        .await;
    assert_eq!(r.status, 400, "query and body");
    let r = c.request("OPTIONS /Xy HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some());
    // The connection survived all of that.
    assert_eq!(c.get("/Xy?x=1&y=1").await.status, 200);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let (at, _server) = start(accepting().max_body(64)).await;
    let big = format!(r#"{{"x":1,"y":1,"pad":"{}"}}"#, "p".repeat(100));
    let r = Raw::connect(&at)
        .await
        .post("/Xy", "application/json", &big)
        .await;
    assert_eq!(r.status, 413);
    assert!(r.explanation().contains("64 bytes"));
    // Chunked, with no declared length.
    let mut c = Raw::connect(&at).await;
    let r = c
        .request(&format!(
            "POST /Xy HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        ))
        .await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn no_answer_in_time_is_504() {
    let (at, _server) = start(accepting().answer_within(Duration::from_millis(200))).await;
    let mut c = Raw::connect(&at).await;
    let r = c.get("/Ignored").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["value"][1]["kind"], "TimedOut");
    // A late answer after the deadline does not confuse the next request.
    let r = c.get("/Later?ms=400&tag=late").await;
    assert_eq!(r.status, 504);
    let r = c.get("/Later?ms=1&tag=prompt").await;
    assert_eq!(r.json()["value"][1], "prompt");
}

#[tokio::test]
async fn faults_map_to_statuses() {
    let (at, _server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    let r = c.get("/Crowded").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    let v = r.json();
    assert_eq!(v["value"][0], "Faulted");
    assert_eq!(v["value"][1]["kind"], "Busy");
    assert_eq!(v["value"][1]["explanation"], "too many tables today");
    for (code, status) in [(404, 404), (422, 422), (503, 503), (200, 500), (42, 500)] {
        let r = c.get(&format!("/Coded?code={code}")).await;
        assert_eq!(r.status, status, "code {code}");
        // Every 503 says when to come back; nothing else does.
        let retry = (status == 503).then_some("1");
        assert_eq!(r.header("retry-after"), retry, "code {code}");
    }
}

#[tokio::test]
async fn an_http_response_passes_through() {
    let (at, _server) = start(accepting()).await;
    let r = get(&at, "/Custom").await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-made"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, b"made it");
}

#[tokio::test]
async fn answers_later_and_early_through_the_ingress() {
    let (at, _server) = start(accepting()).await;
    let r = get(&at, "/Later?ms=50&tag=x").await;
    assert_eq!(r.json(), json!({"value": ["unicode", "x", []]}));
    let r = get(&at, "/Early").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"value": ["unicode", "early", []]}));
}

#[tokio::test]
async fn a_reply_after_the_ingress_answered_does_not_answer_the_next_request() {
    let (at, _server) = start(accepting()).await;
    // One connection: its requests are asked from the same place, where
    // the late replies land.
    let mut c = Raw::connect(&at).await;
    for n in 0..3 {
        let r = c.get("/EarlyThenLate?ms=20").await;
        assert_eq!(r.json(), json!({"value": ["unicode", "early", []]}));
        // Whether or not the late reply has landed by now, the next
        // request gets its own answer.
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = c.get(&format!("/Later?ms=1&tag=next{n}")).await;
        assert_eq!(
            r.json(),
            json!({"value": ["unicode", format!("next{n}"), []]})
        );
    }
}

#[tokio::test]
async fn keep_alive_carries_many_requests() {
    let (at, _server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    for n in 1..=3 {
        let r = c.get(&format!("/Xy?x={n}&y=1")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["value"][1][0].as_array().unwrap().len(), n);
    }
    // Two requests written at once (pipelined) are answered in order.
    c.write(
        b"GET /Xy?x=1&y=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /Xy?x=2&y=1 HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    let first = c.read().await.unwrap();
    let second = c.read().await.unwrap();
    assert_eq!(first.json()["value"][1], json!([[0.5]]));
    assert_eq!(second.json()["value"][1], json!([[0.5, 0.5]]));
}

#[tokio::test]
async fn http_1_0_keep_alive_like_ab_k() {
    let (at, _server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    for _ in 0..3 {
        let r = c
            .request("GET /Xy?x=2&y=2 HTTP/1.0\r\nConnection: keep-alive\r\nHost: t\r\n\r\n")
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.version, "HTTP/1.0");
        assert_eq!(
            r.header("connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("keep-alive")
        );
        assert!(r.header("content-length").is_some());
    }
    // Without keep-alive, HTTP/1.0 closes after the response.
    let r = c.request("GET /Xy?x=1&y=1 HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert!(
        c.read().await.is_none(),
        "closed after an HTTP/1.0 response"
    );
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_others_are_served() {
    let front = accepting().header_read_timeout(Duration::from_millis(500));
    let (at, _server) = start(front).await;
    let mut slow = Raw::connect(&at).await;
    slow.write(b"GET /Xy?x=1&y=1 HTTP/1.1\r\nHost: t\r\n").await;
    let started = tokio::time::Instant::now();
    // Meanwhile another client is served at once.
    assert_eq!(get(&at, "/Xy?x=1&y=1").await.status, 200);
    // The slow one is closed (possibly after a 408) once its time is up.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PATIENCE, slow.stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the slow connection was closed");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // An idle keep-alive connection is not mistaken for a slow one before
    // it starts a request... but a fresh one still works.
    assert_eq!(get(&at, "/Xy?x=1&y=1").await.status, 200);
}

#[tokio::test]
async fn many_concurrent_requests_each_answered_once() {
    let (at, _server) = start(accepting()).await;
    let mut tasks = Vec::new();
    for client in 0..16 {
        let at = at.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Raw::connect(&at).await;
            for n in 0..25 {
                let x = (client + n) % 7 + 1;
                let target = if n % 5 == 0 {
                    format!("/Later?ms=5&tag={client}-{n}")
                } else {
                    format!("/Xy?x={x}&y=1")
                };
                let r = c.get(&target).await;
                assert_eq!(r.status, 200);
                if n % 5 == 0 {
                    assert_eq!(r.json()["value"][1], format!("{client}-{n}"));
                } else {
                    assert_eq!(r.json()["value"][1][0].as_array().unwrap().len(), x);
                }
            }
            // Nothing more arrives: exactly one response per request.
            let extra = tokio::time::timeout(Duration::from_millis(50), c.read_now()).await;
            assert!(extra.is_err(), "an extra response: {extra:?}");
        }));
    }
    for t in tasks {
        t.await.expect("a client task");
    }
}

#[tokio::test]
async fn traceparent_is_continued_into_the_actor_and_returned() {
    let (at, _server) = start(accepting()).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = Raw::connect(&at)
        .await
        .request(&format!(
            "GET /Traced HTTP/1.1\r\nHost: t\r\ntraceparent: {parent}\r\n\r\n"
        ))
        .await;
    let seen = r.json()["value"][1].clone();
    let in_actor = seen[0].as_str().unwrap();
    assert!(
        in_actor.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{in_actor}"
    );
    assert_ne!(in_actor, parent, "a child span");
    assert_eq!(seen[1], "true", "the ingress is set");
    assert_eq!(r.header("traceparent"), Some(in_actor));
    // Without one (or with a malformed one), a new root.
    let r = get(&at, "/Traced").await;
    let root = r.header("traceparent").unwrap().to_string();
    assert_eq!(r.json()["value"][1][0], root.as_str());
    assert!(root.parse::<layer_cake::runtime::TraceContext>().is_ok());
}

#[tokio::test]
async fn an_ended_owner_gives_503() {
    let (at, server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    assert_eq!(c.get("/Xy?x=1&y=1").await.status, 200);
    server.address().send(Stop).unwrap();
    server.join().await.unwrap();
    let r = c.get("/Xy?x=1&y=1").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["value"][1]["kind"], "OutOfService");
}

/// Asserts that `r` is a fault the front wrote: JSON, with `status` as
/// its error code and `needle` in its explanation.
fn assert_fault(r: &Reply, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert_eq!(r.json()["value"][1]["error_code"], status, "{r:?}");
    let explanation = r.explanation();
    assert!(
        explanation.contains(needle),
        "{explanation:?} lacks {needle:?}"
    );
}

/// Sends `request` on a new connection; the answer, and whether the
/// server then closed the connection.
async fn answer_to(at: &HostPort, request: &[u8]) -> (Reply, bool) {
    let mut c = Raw::connect(at).await;
    c.write(request).await;
    let r = c.read().await.expect("an answer");
    let closed = c.read().await.is_none();
    (r, closed)
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_json_faults() {
    let (at, _server) = start(accepting()).await;
    let filler = "a".repeat(100 * 1024);
    let cases: [(Vec<u8>, u16, &str); 8] = [
        (b"GARBAGE\r\n\r\n".to_vec(), 400, "malformed request"),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            400,
            "malformed request",
        ),
        (
            b"POST /Xy HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
            400,
            "malformed request",
        ),
        (
            format!("GET /Xy HTTP/1.1\r\nHost: t\r\nX-Filler: {filler}\r\n\r\n").into_bytes(),
            431,
            "larger than 16384 bytes",
        ),
        (
            b"GET /Xy?x=1&y=1 HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(),
            505,
            "HTTP/1.1 and HTTP/1.0",
        ),
        (
            b"GET /Xy?x=1&y=1 HTTP/3.0\r\nHost: t\r\n\r\n".to_vec(),
            505,
            "HTTP version",
        ),
        (b"GET /Xy?x=1&y=1\r\n\r\n".to_vec(), 505, "HTTP version"),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            505,
            "HTTP version",
        ),
    ];
    for (request, status, needle) in cases {
        let (r, closed) = answer_to(&at, &request).await;
        assert_fault(&r, status, needle);
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(r.header("server"), Some("layer-cake"));
        assert!(closed, "closed after answering {status}");
    }
    // A bad request after good ones on a keep-alive connection too.
    let mut c = Raw::connect(&at).await;
    assert_eq!(c.get("/Xy?x=1&y=1").await.status, 200);
    let r = c.request("GET /Xy HTTP/2.0\r\n\r\n").await;
    assert_fault(&r, 505, "HTTP version");
    assert!(c.read().await.is_none());
    // The front still serves.
    assert_eq!(get(&at, "/Xy?x=1&y=1").await.status, 200);
}

#[tokio::test]
async fn unknown_methods_are_501_and_untaken_known_ones_405() {
    let (at, _server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    for method in ["BREW", "FOO", "PROPFIND"] {
        let r = c
            .request(&format!("{method} /Xy HTTP/1.1\r\nHost: t\r\n\r\n"))
            .await;
        assert_fault(&r, 501, "is not known to this server");
        assert!(r.header("allow").is_none());
    }
    for request in [
        "OPTIONS /Xy HTTP/1.1\r\nHost: t\r\n\r\n",
        "TRACE /Xy HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let r = c.request(request).await;
        assert_fault(&r, 405, "is not taken here");
        assert_eq!(
            r.header("allow"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE")
        );
    }
    // The connection survived all of that.
    assert_eq!(c.get("/Xy?x=1&y=1").await.status, 200);
    let mut c = Raw::connect(&at).await;
    let r = c
        .request("CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n")
        .await;
    assert_fault(&r, 405, "is not taken here");
}

#[tokio::test]
async fn each_version_is_answered_in_kind() {
    let (at, _server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    let r = c.get("/Xy?x=1&y=1").await;
    assert_eq!((r.version.as_str(), r.status), ("HTTP/1.1", 200));
    // HTTP/1.0 on the same connection: answered in 1.0, errors too, and
    // closed after the answer without `Connection: keep-alive`.
    let r = c
        .request("GET /Nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    assert_eq!((r.version.as_str(), r.status), ("HTTP/1.0", 404));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = c.request("GET /Xy?x=1&y=1 HTTP/1.0\r\n\r\n").await;
    assert_eq!((r.version.as_str(), r.status), ("HTTP/1.0", 200));
    assert!(c.read().await.is_none(), "closed after an HTTP/1.0 answer");
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_with_503() {
    let (at, _server) = start(accepting().max_connections(2)).await;
    let mut first = Raw::connect(&at).await;
    let mut second = Raw::connect(&at).await;
    assert_eq!(first.get("/Xy?x=1&y=1").await.status, 200);
    assert_eq!(second.get("/Xy?x=1&y=1").await.status, 200);
    // The third is answered at once, before it sends anything, and closed.
    let mut third = Raw::connect(&at).await;
    let r = third.read().await.expect("a refusal");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.json()["value"][1]["kind"], "Overloaded");
    assert!(
        r.explanation()
            .contains("2 connections open, its limit (max_connections)")
    );
    assert!(third.read().await.is_none(), "closed after the refusal");
    // One that sends its request first gets the same answer.
    let (r, closed) = answer_to(&at, b"GET /Xy?x=1&y=1 HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(r.status, 503);
    assert!(closed);
    // Those under the cap are unaffected.
    assert_eq!(first.get("/Xy?x=2&y=1").await.status, 200);
    assert_eq!(second.get("/Xy?x=2&y=1").await.status, 200);
    // Once one closes, a new connection is served again.
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (r, _) = answer_to(&at, b"GET /Xy?x=1&y=1 HTTP/1.1\r\nHost: t\r\n\r\n").await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(tokio::time::Instant::now() < deadline, "a place frees up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_default_cap_follows_the_file_limit() {
    let allowed = HttpServer::new().connections_allowed();
    assert!((1..=layer_cake::net::DEFAULT_MAX_CONNECTIONS).contains(&allowed));
    assert_eq!(
        HttpServer::new().max_connections(0).connections_allowed(),
        1
    );
}

// ---------------------------------------------------------------- client

/// Connects an HTTP client from `cx`; returns the session (the proxy).
async fn connect(cx: &mut Context, at: &HostPort, client: HttpClient) -> layer_cake::Address {
    cx.connect(at.clone(), ConnectOptions::http(client));
    let m = tokio::time::timeout(PATIENCE, cx.input()).await.unwrap();
    m.downcast::<Connected>().expect("Connected").proxy
}

#[tokio::test]
async fn the_client_mode_asks_through_a_front() {
    let (at, _server) = start(accepting()).await;
    let mut cx = Context::detached("client-test");
    let proxy = connect(&mut cx, &at, HttpClient::new()).await;
    let t: Vec<Vec<f64>> = cx
        .ask(Xy { x: 2, y: 3 }, &proxy, PATIENCE)
        .await
        .map_err(|e| match e {
            AskError::Unexpected(p) => format!("unexpected {p:?}"),
            other => other.to_string(),
        })
        .unwrap();
    assert_eq!(t, table(Xy { x: 2, y: 3 }));
    match cx.ask::<Vec<Vec<f64>>, _>(Crowded, &proxy, PATIENCE).await {
        Err(AskError::Faulted(f)) => assert_eq!(f.kind, FaultKind::Busy),
        other => panic!(
            "expected Busy, got {:?}",
            other.err().map(|e| e.to_string())
        ),
    }
    // A custom response comes back as an HttpResponse.
    let r: HttpResponse = cx.ask(Custom, &proxy, PATIENCE).await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (201, &b"made it"[..]));
    // A front's own error is a fault with the status as its code.
    match cx
        .ask::<String, _>(Coded { code: 418 }, &proxy, PATIENCE)
        .await
    {
        Err(AskError::Faulted(f)) => assert_eq!(f.error_code, Some(418)),
        other => panic!(
            "expected a fault, got {:?}",
            other.err().map(|e| e.to_string())
        ),
    }
    // The trace of the asker, with its trace state, continues over HTTP.
    let trace = layer_cake::runtime::TraceContext::new_root();
    cx.set_meta(layer_cake::runtime::Meta {
        trace: Some(trace),
        trace_state: Some("vendor=opaque,other@x=1".parse().unwrap()),
        ..Default::default()
    });
    let seen: Vec<String> = cx.ask(Traced, &proxy, PATIENCE).await.unwrap();
    assert!(
        seen[0].contains(&format!("{:032x}", trace.trace_id)),
        "{seen:?}"
    );
    assert_eq!(seen[2], "vendor=opaque,other@x=1", "{seen:?}");
    // Close: the owner hears Closed(OnRequest).
    cx.send(Close::default(), &proxy).unwrap();
    let closed = tokio::time::timeout(PATIENCE, cx.input()).await.unwrap();
    let closed = closed.downcast::<Closed>().expect("Closed");
    assert_eq!(closed.reason, EndOfTransport::OnRequest);
    assert_eq!(closed.proxy, proxy);
}

#[tokio::test]
async fn the_client_queues_requests_and_matches_each_answer() {
    let (at, _server) = start(accepting()).await;
    let mut cx = Context::detached("owner");
    let proxy = connect(&mut cx, &at, HttpClient::new()).await;
    let mut asks = Vec::new();
    for n in 1..=60_i64 {
        let proxy = proxy.clone();
        asks.push(tokio::spawn(async move {
            let mut me = Context::detached("asker");
            if n % 3 == 0 {
                let tag = format!("later-{n}");
                let s: String = me
                    .ask(
                        Later {
                            ms: 3,
                            tag: tag.clone(),
                        },
                        &proxy,
                        PATIENCE,
                    )
                    .await
                    .unwrap();
                assert_eq!(s, tag);
            } else {
                let t: Vec<Vec<f64>> = me.ask(Xy { x: n, y: 1 }, &proxy, PATIENCE).await.unwrap();
                assert_eq!(t[0].len(), n as usize);
            }
        }));
    }
    for a in asks {
        a.await.unwrap();
    }
}

/// A raw server that accepts one connection, reads whatever comes, never
/// answers, and closes when told to.
async fn silent_server() -> (HostPort, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = HostPort::new("127.0.0.1", listener.local_addr().unwrap().port());
    let (close, closing) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut sink = [0u8; 4096];
        tokio::select! {
            _ = closing => {},
            _ = async { while stream.read(&mut sink).await.unwrap_or(0) > 0 {} } => {},
        }
    });
    (at, close)
}

#[tokio::test]
async fn a_closing_server_ends_the_session_and_faults_what_waits() {
    let (at, close) = silent_server().await;
    let mut cx = Context::detached("owner");
    let proxy = connect(&mut cx, &at, HttpClient::new().max_queued(3)).await;
    let mut asks = Vec::new();
    for n in 0..5_i64 {
        let proxy = proxy.clone();
        asks.push(tokio::spawn(async move {
            let mut me = Context::detached("asker");
            me.ask::<Vec<Vec<f64>>, _>(Xy { x: n, y: 1 }, &proxy, PATIENCE)
                .await
                .err()
                .and_then(|e| match e {
                    AskError::Faulted(f) => Some(f),
                    _ => None,
                })
                .expect("a fault")
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    close.send(()).unwrap();
    let closed = tokio::time::timeout(PATIENCE, cx.input()).await.unwrap();
    let closed = closed.downcast::<Closed>().expect("Closed");
    assert_eq!(closed.reason, EndOfTransport::AbandonedByRemote);
    let mut kinds = Vec::new();
    for a in asks {
        kinds.push(a.await.unwrap().kind);
    }
    let overloaded = kinds
        .iter()
        .filter(|k| **k == FaultKind::Overloaded)
        .count();
    assert_eq!(overloaded, 2, "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == FaultKind::Faulted).count() == 3,
        "{kinds:?}"
    );
    // The session is gone.
    assert!(cx.send(Xy { x: 1, y: 1 }, &proxy).is_err());
}

#[tokio::test]
async fn a_silent_server_times_out_each_request() {
    let (at, _close) = silent_server().await;
    let mut cx = Context::detached("owner");
    let client = HttpClient::new().answer_within(Duration::from_millis(200));
    let proxy = connect(&mut cx, &at, client).await;
    match cx
        .ask::<Vec<Vec<f64>>, _>(Xy { x: 1, y: 1 }, &proxy, PATIENCE)
        .await
    {
        Err(AskError::Faulted(f)) => assert_eq!(f.kind, FaultKind::TimedOut),
        other => panic!(
            "expected TimedOut, got {:?}",
            other.err().map(|e| e.to_string())
        ),
    }
}

#[tokio::test]
async fn a_refused_connect_is_not_connected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cx = Context::detached("owner");
    cx.connect(
        HostPort::new("127.0.0.1", port),
        ConnectOptions::http(HttpClient::new()),
    );
    let m = tokio::time::timeout(PATIENCE, cx.input()).await.unwrap();
    assert!(m.is::<layer_cake::net::NotConnected>());
}

// ---------------------------------------------------------------- mapping

/// The fuzz target's property, checked on a few thousand pseudo-random
/// requests built from fragments that matter to the mapping: any input gives
/// a message of an accepted type or an error with a 4xx/5xx status, never a
/// panic.
#[test]
fn decode_request_never_panics() {
    use layer_cake::net::http::decode_request;

    layer_cake::message::registry::register::<Vec<i64>>();
    let accepted = ["Xy", "Later", "Coded", "vector<integer8>"];
    let pieces = [
        "/",
        "Xy",
        "Later",
        "Coded",
        "vector%3Cinteger8%3E",
        "?",
        "&",
        "=",
        "%",
        "%ff",
        "%2",
        "%41",
        "+",
        "x",
        "y",
        "z",
        "ms",
        "tag",
        "code",
        "1",
        "-1",
        "abc",
        "99999999999999999999",
        "{",
        "}",
        "\"value\"",
        ":",
        ",",
        "[",
        "]",
        "null",
        "true",
        "\u{e9}",
        "#",
        " ",
        "\"x\"",
        "0.5",
        "%00",
        "..",
    ];
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", ""];
    let content_types = [
        None,
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
        Some("APPLICATION/JSON; charset=utf-8"),
        Some("text/plain"),
        Some(""),
        Some(";;"),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut ok = 0;
    for _ in 0..5000 {
        let mut target = String::from(if next(8) == 0 { "" } else { "/" });
        for _ in 0..next(12) {
            target.push_str(pieces[next(pieces.len())]);
        }
        let mut body = Vec::new();
        for _ in 0..next(3) * next(8) {
            body.extend_from_slice(pieces[next(pieces.len())].as_bytes());
        }
        if next(10) == 0 {
            body.push(0xff);
        }
        let method = methods[next(methods.len())];
        let content_type = content_types[next(content_types.len())];
        match decode_request(&accepted, method, &target, content_type, &body) {
            Ok(message) => {
                assert!(accepted.contains(&message.signature().as_str()));
                ok += 1;
            }
            Err(e) => assert!(
                [400, 404, 405, 413, 415, 501].contains(&e.status) && !e.reason.is_empty(),
                "{e}"
            ),
        }
    }
    // Guided by the fragments, some inputs are valid requests.
    assert!(ok > 0);
}

#[tokio::test]
async fn head_is_answered_like_get_without_a_body() {
    let (at, _server) = start(accepting()).await;
    let mut c = Raw::connect(&at).await;
    c.write(b"HEAD /Xy?x=2&y=2 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    // The head only: status line and headers, up to the empty line.
    let mut head = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut line = String::new();
            assert!(c.stream.read_line(&mut line).await.unwrap() > 0, "closed");
            if line.trim_end().is_empty() {
                break;
            }
            head.push(line.trim_end().to_string());
        }
    })
    .await
    .expect("the head in time");
    assert!(head[0].starts_with("HTTP/1.1 200"), "{head:?}");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: application/json")),
        "{head:?}"
    );
    // No body followed: the next response on the connection is read whole
    // from its first byte.
    let r = c.get("/Xy?x=1&y=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"][1], json!([[0.5]]));
    // A method the front does not take is still 405, naming the ones it does.
    let r = c.request("OPTIONS /Xy HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(r.status, 405);
    assert!(String::from_utf8_lossy(&r.body).contains("GET, HEAD, POST"));
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_431() {
    let (at, _server) = start(accepting().max_header_bytes(16 * 1024)).await;
    // Just under the limit: served.
    let mut c = Raw::connect(&at).await;
    let filler = "a".repeat(12 * 1024);
    let r = c
        .request(&format!(
            "GET /Xy?x=1&y=1 HTTP/1.1\r\nHost: t\r\nX-Filler: {filler}\r\n\r\n"
        ))
        .await;
    assert_eq!(r.status, 200);
    // A 100 KB header: refused, and the connection closed.
    let mut c = Raw::connect(&at).await;
    let filler = "a".repeat(100 * 1024);
    c.write(
        format!("GET /Xy?x=1&y=1 HTTP/1.1\r\nHost: t\r\nX-Filler: {filler}\r\n\r\n").as_bytes(),
    )
    .await;
    let r = c.read().await.expect("an answer before the close");
    assert_eq!(r.status, 431);
    assert!(c.read().await.is_none(), "the connection is closed");
}
