//! The HTTP demos as real processes: each server on port 0 (its real port
//! read from its `listening on` line), asked over HTTP; the load client run
//! against one of them. Every child is killed if a test ends early.

mod support;

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(20);

use support::Server;

/// Starts a server demo on port 0 (see [`Server::start`]).
fn start(program: &str) -> Server {
    Server::start(program, &[])
}

use support::http_get as get;

fn check_table(port: u16, x: usize, y: usize) {
    let (status, body) = get(port, &format!("/Xy?x={x}&y={y}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["value"][0], "vector<vector<float8>>");
    let table = v["value"][1].as_array().unwrap();
    assert_eq!(table.len(), y);
    assert!(table.iter().all(|row| row.as_array().unwrap().len() == x));
    assert_eq!(v["value"][2], serde_json::json!([]));
}

/// Stops the server with SIGINT and checks it ends `Aborted`.
fn interrupt(mut server: Server) {
    signal::kill(Pid::from_raw(server.child.id() as i32), Signal::SIGINT).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "ends after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "an interrupted server ends with a fault");
}

fn serves_tables(program: &str) {
    let server = start(program);
    check_table(server.port, 2, 2);
    check_table(server.port, 3, 1);
    check_table(server.port, 1, 4);
    let (status, _) = get(server.port, "/Nope");
    assert_eq!(status, 404);
    let (status, body) = get(server.port, "/Xy?x=abc");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("x: invalid value"));
    // A bare GET gets the defaults: a 1×1 table.
    check_table(server.port, 1, 1);
    // A table over the demos' limit is refused at once, naming the limit.
    let (status, body) = get(server.port, "/Xy?x=100000&y=100000");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("table too large"), "{text}");
    assert!(text.contains("at most 1000×1000"), "{text}");
    check_table(server.port, 2, 2);
    interrupt(server);
}

#[test]
fn test_server_1_answers_inline() {
    serves_tables(env!("CARGO_BIN_EXE_test_server_1"));
}

#[test]
fn test_server_2_answers_through_children() {
    serves_tables(env!("CARGO_BIN_EXE_test_server_2"));
}

#[test]
fn test_server_3_asks_its_worker() {
    serves_tables(env!("CARGO_BIN_EXE_test_server_3"));
}

#[test]
fn test_server_4_spools_over_eight_workers() {
    serves_tables(env!("CARGO_BIN_EXE_test_server_4"));
}

#[test]
fn test_server_4_answers_every_request_of_a_burst() {
    let server = start(env!("CARGO_BIN_EXE_test_server_4"));
    let port = server.port;
    let clients: Vec<_> = (0..8)
        .map(|c| {
            std::thread::spawn(move || (0..25).for_each(|i| check_table(port, 1 + (c + i) % 4, 2)))
        })
        .collect();
    for client in clients {
        client
            .join()
            .expect("every request answered with its table");
    }
    interrupt(server);
}

#[test]
fn a_taken_port_is_not_listening() {
    let first = start(env!("CARGO_BIN_EXE_test_server_1"));
    let out = Command::new(env!("CARGO_BIN_EXE_test_server_1"))
        .arg(format!("--server-address=127.0.0.1:{}", first.port))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen at"), "{err}");
}

#[test]
fn clients_as_threads_reports_its_load() {
    let server = start(env!("CARGO_BIN_EXE_test_server_2"));
    let out = Command::new(env!("CARGO_BIN_EXE_clients_as_threads"))
        .args([
            format!("--server-address=127.0.0.1:{}", server.port),
            "--clients=3".into(),
            "--requests=20".into(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["clients"], 3);
    assert_eq!(report["requests"], 60);
    assert_eq!(report["answered"], 60);
    assert_eq!(report["errors"]["other"], 0);
    assert!(report["requests_per_second"].as_f64().unwrap() > 0.0);
    assert!(
        report["latency_ms"]["p99"].as_f64().unwrap()
            >= report["latency_ms"]["p50"].as_f64().unwrap()
    );
}

#[test]
fn clients_as_threads_without_a_server_faults() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = Command::new(env!("CARGO_BIN_EXE_clients_as_threads"))
        .args([
            format!("--server-address=127.0.0.1:{port}"),
            "--clients=2".into(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

/// Many client processes against a spool with a one-place queue: every
/// request is accounted for — a table, or an Overloaded / Busy answer,
/// counted apart — and nothing else goes wrong.
#[test]
fn clients_as_processes_adds_up_the_load_of_its_children() {
    let server = Server::start(env!("CARGO_BIN_EXE_test_server_4"), &["--size-of-queue=1"]);
    let out = Command::new(env!("CARGO_BIN_EXE_clients_as_processes"))
        .args([
            format!("--server-address=127.0.0.1:{}", server.port),
            "--processes=3".into(),
            "--clients=6".into(),
            "--requests=15".into(),
            "--big-table=60".into(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["processes"], 3);
    assert_eq!(report["clients"], 18);
    assert_eq!(report["requests"], 3 * 6 * 15);
    let errors = &report["errors"];
    assert_eq!(errors["other"], 0, "{report}");
    let counted = report["answered"].as_u64().unwrap()
        + errors["busy"].as_u64().unwrap()
        + errors["overloaded"].as_u64().unwrap();
    assert_eq!(counted, 3 * 6 * 15, "{report}");
    assert!(
        report["latency_ms"]["p99"].as_f64().unwrap()
            >= report["latency_ms"]["p50"].as_f64().unwrap()
    );
    interrupt(server);
}
