//! The gateway demos as real processes: a host-cake on an ephemeral port,
//! the `gateway`, an `llm_worker` and a `calc_worker` pointed at it, and
//! JSON-RPC requests to the gateway. Every child is killed when the test
//! ends, however it ends.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use layer_cake::net::http::jsonrpc;
use layer_cake::net::http::request_uuid;
use layer_cake::runtime::TraceContext;
use serde_json::{Value, json};

mod support;

use support::procs::{Proc, host_cake};

const PATIENCE: Duration = Duration::from_secs(20);

/// POSTs `body` to `/api/rpc` with extra `headers`; the `traceparent` of
/// the response and its body (`Value::Null` for a 204).
fn post(port: u16, headers: &str, body: &str) -> (TraceContext, Value) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "POST /api/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("a response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let trace = head
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .expect("a traceparent")
        .parse()
        .unwrap();
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (trace, value)
}

/// Waits until the gateway routes calls to `service`.
fn wait_for(port: u16, service: &str) {
    let probe = format!(r#"{{"jsonrpc":"2.0","method":"{service}/probe","id":0}}"#);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, answer) = post(port, "", &probe);
        let missing = answer["error"]["data"]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("no service"));
        if !missing {
            return;
        }
        assert!(Instant::now() < deadline, "{service} never came");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const AUTH: &str = "Authorization: Bearer demo1-token\r\n";

/// The seed's own call (other-seeds.md §1c, example 1).
const ONE_SHOT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"llm-worker/one_shot_msg","params":{"data":{"prompt":"why is the sky blue","mode":"System"}}}"#;

#[test]
fn the_gateway_routes_to_workers_found_through_the_directory() {
    let (_host, directory) = host_cake();
    let gateway = Proc::start(
        env!("CARGO_BIN_EXE_gateway"),
        &["--server-address=127.0.0.1:0".into(), directory.clone()],
    );
    let port = gateway.port();
    let llm = Proc::start(
        env!("CARGO_BIN_EXE_llm_worker"),
        std::slice::from_ref(&directory),
    );
    llm.line_with("published rpc:llm-worker:");
    let calc = Proc::start(env!("CARGO_BIN_EXE_calc_worker"), &[directory]);
    calc.line_with("published rpc:calc:");
    wait_for(port, "llm-worker");
    wait_for(port, "calc");

    // The seed's call: the answer's shape, and what the worker saw.
    let (trace, answer) = post(port, AUTH, ONE_SHOT);
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
    assert!(answer["result"]["data"]["response"].is_string(), "{answer}");
    assert_eq!(answer.as_object().unwrap().len(), 3, "{answer}");
    let line = llm.line_with("\"rpc_method\":\"one_shot_msg\"");
    let seen: Value = serde_json::from_str(line.split_once("call ").unwrap().1).unwrap();
    let uuid = request_uuid(&trace);
    assert_eq!(seen["rpc_method"], "one_shot_msg", "{line}");
    assert_eq!(
        seen["rpc_chain"],
        json!([format!("{uuid}@web-gateway")]),
        "{line}"
    );
    assert_eq!(seen["user_id"], "demo1", "{line}");
    // Without the token the worker refuses.
    let (_, refused) = post(port, "", ONE_SHOT);
    assert_eq!(refused["error"]["code"], -32002, "{refused}");

    // The spec's vectors through the gateway, and an unknown service.
    for (request, expected) in jsonrpc::spec_examples("calc/") {
        let (_, got) = post(port, "", &request);
        let got = (!got.is_null()).then(|| jsonrpc::without_data(got));
        assert_eq!(got, expected, "for {request}");
    }
    let (_, answer) = post(
        port,
        "",
        r#"{"jsonrpc":"2.0","method":"nosuchworker/x","id":2}"#,
    );
    assert_eq!(answer["error"]["code"], -32601, "{answer}");

    // A worker's fault carries the request's uuid.
    let (trace, answer) = post(
        port,
        AUTH,
        r#"{"jsonrpc":"2.0","method":"llm-worker/crash","id":3}"#,
    );
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    assert_eq!(answer["error"]["data"]["req_uuid"], request_uuid(&trace));

    // The calc worker dies: its calls fail cleanly, the others go on.
    calc.kill();
    let sum = r#"{"jsonrpc":"2.0","method":"calc/sum","params":[1,2],"id":4}"#;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, answer) = post(port, "", sum);
        if answer["error"]["code"] == -32000 {
            break;
        }
        assert_eq!(answer["result"], 3, "{answer}");
        assert!(Instant::now() < deadline, "calc never went");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, answer) = post(port, AUTH, ONE_SHOT);
    assert!(answer["result"]["data"]["response"].is_string(), "{answer}");
}
