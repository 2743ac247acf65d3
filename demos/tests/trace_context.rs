//! The W3C trace-context rules, checked the way the W3C harness checks them:
//! requests with chosen `traceparent`/`tracestate` headers go to the
//! `trace_context` demo, which calls back a receiver run by this test; the
//! headers of those callbacks must continue the trace (or restart it) as the
//! spec says.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use support::Server;

const PATIENCE: Duration = Duration::from_secs(20);
const ID: &str = "12345678901234567890123456789012";
const PARENT: &str = "1234567890123456";

/// One callback as the receiver saw it: its path and its headers
/// (lowercase names, in order).
#[derive(Debug)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one `traceparent`, checked for the version-00 form:
    /// (trace id, parent id).
    fn traceparent(&self) -> (String, String) {
        let values = self.all("traceparent");
        assert_eq!(values.len(), 1, "one traceparent: {self:?}");
        let parts: Vec<&str> = values[0].split('-').collect();
        assert_eq!(parts.len(), 4, "{values:?}");
        assert_eq!(parts[0], "00");
        let hex = |t: &str, n: usize| {
            t.len() == n
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        assert!(
            hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2),
            "{values:?}"
        );
        assert_ne!(parts[1], "0".repeat(32));
        assert_ne!(parts[2], "0".repeat(16));
        (parts[1].to_string(), parts[2].to_string())
    }

    fn tracestate(&self) -> Option<String> {
        let values = self.all("tracestate");
        assert!(values.len() <= 1, "{values:?}");
        values.first().map(|v| v.to_string())
    }
}

/// The harness's side: a listener that records each callback and answers
/// it `200`.
struct Receiver {
    port: u16,
    seen: mpsc::Receiver<Seen>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (found, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let found = found.clone();
                std::thread::spawn(move || {
                    if let Some(seen) = read_request(stream) {
                        let _ = found.send(seen);
                    }
                });
            }
        });
        Receiver { port, seen }
    }

    fn next(&self) -> Seen {
        self.seen.recv_timeout(PATIENCE).expect("a callback")
    }
}

fn read_request(stream: TcpStream) -> Option<Seen> {
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split(' ').nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .ok()?;
    Some(Seen { path, headers })
}

/// POSTs the callbacks `/0` … `/count-1` of `receiver` to the demo with
/// `headers`, and returns what the receiver saw, in order of path.
fn callbacks(
    server: &Server,
    receiver: &Receiver,
    headers: &[(&str, &str)],
    count: usize,
) -> Vec<Seen> {
    let calls: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"url":"http://127.0.0.1:{}/{i}","arguments":[]}}"#,
                receiver.port
            )
        })
        .collect();
    let body = format!("[{}]", calls.join(","));
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = format!(
        "POST /test HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let mut seen: Vec<Seen> = (0..count).map(|_| receiver.next()).collect();
    seen.sort_by(|a, b| a.path.cmp(&b.path));
    seen
}

fn one(
    server: &Server,
    receiver: &Receiver,
    headers: &[(&str, &str)],
) -> (String, String, Option<String>) {
    let seen = callbacks(server, receiver, headers, 1).pop().unwrap();
    let (trace, parent) = seen.traceparent();
    (trace, parent, seen.tracestate())
}

#[test]
fn the_trace_context_of_a_request_reaches_every_call_it_makes() {
    let server = Server::start(env!("CARGO_BIN_EXE_trace_context"), &[]);
    let receiver = Receiver::start();
    let valid = format!("00-{ID}-{PARENT}-01");

    // Missing: a new trace. Valid, in any header casing or with blanks
    // around it: the same trace, a new parent id.
    let (trace, _, state) = one(&server, &receiver, &[]);
    assert_ne!(trace, ID);
    assert_eq!(state, None);
    for (name, value) in [
        ("traceparent", valid.clone()),
        ("TrAcEpArEnT", valid.clone()),
        ("traceparent", format!("\t {valid} \t")),
        (
            "traceparent",
            format!("cc-{ID}-{PARENT}-01-what-the-future-will-be-like"),
        ),
    ] {
        let (trace, parent, _) = one(&server, &receiver, &[(name, &value)]);
        assert_eq!(trace, ID, "{name}: {value}");
        assert_ne!(parent, PARENT, "{name}: {value}");
    }

    // Invalid or duplicated: a new trace, and the tracestate goes with it.
    for headers in [
        vec![
            ("traceparent", format!("00-{ID}-{PARENT}-01.")),
            ("tracestate", "foo=1".into()),
        ],
        vec![("traceparent", format!("ff-{ID}-{PARENT}-01"))],
        vec![("traceparent", format!("00-{}-{PARENT}-01", "0".repeat(32)))],
        vec![("traceparent", format!("00-{ID}-{}-01", "0".repeat(16)))],
        vec![(
            "traceparent",
            format!("00-{}-{PARENT}-01", ID.to_uppercase().replace('1', "A")),
        )],
        vec![("traceparent", format!("00-{ID}-{PARENT}-1"))],
        vec![("trace-parent", valid.clone())],
        vec![
            ("traceparent", valid.clone()),
            ("traceparent", format!("00-{ID}-{PARENT}-00")),
        ],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (trace, _, state) = one(&server, &receiver, &headers);
        assert_ne!(trace, ID, "{headers:?}");
        assert_eq!(state, None, "{headers:?}");
    }

    // A tracestate without a traceparent is discarded.
    let (_, _, state) = one(&server, &receiver, &[("tracestate", "foo=1,bar=2")]);
    assert_eq!(state, None);

    // With a valid traceparent, the list is passed on: several headers as
    // one list in order, blanks trimmed, empty members and headers dropped.
    let (trace, _, state) = one(
        &server,
        &receiver,
        &[
            ("traceparent", &valid),
            ("tracestate", "foo=1 \t , \t bar=2"),
            ("TraceState", ""),
            ("tracestate", "rojo=1,congo=2"),
        ],
    );
    assert_eq!(trace, ID);
    assert_eq!(state.as_deref(), Some("foo=1,bar=2,rojo=1,congo=2"));

    // An invalid list is discarded whole; the trace goes on.
    let members = |n: usize| {
        (1..=n)
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for list in [
        "foo=1,foo=2".to_string(),
        "foo=bar=baz".into(),
        "FOO=1".into(),
        members(33),
    ] {
        let (trace, _, state) = one(
            &server,
            &receiver,
            &[("traceparent", &valid), ("tracestate", &list)],
        );
        assert_eq!(trace, ID, "{list}");
        assert_eq!(state, None, "{list}");
    }
    let (_, _, state) = one(
        &server,
        &receiver,
        &[("traceparent", &valid), ("tracestate", &members(32))],
    );
    assert_eq!(state, Some(members(32)));

    // Every call is a span of its own in the one trace.
    let seen = callbacks(&server, &receiver, &[("traceparent", &valid)], 3);
    let spans: Vec<(String, String)> = seen.iter().map(Seen::traceparent).collect();
    assert!(spans.iter().all(|(trace, _)| trace == ID), "{spans:?}");
    let parents: std::collections::BTreeSet<&String> = spans.iter().map(|(_, p)| p).collect();
    assert_eq!(parents.len(), 3, "{spans:?}");
}
