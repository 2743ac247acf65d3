//! The multihosting demos as real processes: a host-cake on an ephemeral
//! port (never the standard one, never the LAN), a server and its workers
//! pointed at it with `--connect-to-directory`, and HTTP requests to the
//! server. Workers are killed with SIGKILL to show that the server notices
//! (its `worker dropped` line) and carries on with the others. Every child
//! is killed when its test ends, however it ends.
//!
//! host-cake belongs to another package of the workspace, so cargo does not
//! build it for this test: the test runs `cargo build -p host-cake` itself
//! (once per test binary, into the same target directory as this test),
//! which is a no-op when it is up to date. That keeps `cargo test -p
//! layer-cake-demos` working from a clean tree, without relying on an
//! earlier `cargo build --workspace`.

use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::http_get as get;
use support::procs::{PATIENCE, Proc, host_cake};
use support::workspace_binary;

/// Asks for an x×y table and checks its shape.
fn check_table(port: u16, x: usize, y: usize) {
    let (status, body) = get(port, &format!("/Xy?x={x}&y={y}"));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let table = v["value"][1].as_array().expect("a table");
    assert_eq!(table.len(), y, "{text}");
    assert!(
        table.iter().all(|row| row.as_array().unwrap().len() == x),
        "{text}"
    );
}

fn check_unavailable(port: u16) {
    let (status, body) = get(port, "/Xy?x=2&y=2");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("TemporarilyUnavailable"), "{text}");
}

fn server(program: &str, directory: &str) -> (Proc, u16) {
    let server = Proc::start(
        program,
        &["--server-address=127.0.0.1:0".into(), directory.into()],
    );
    let port = server.port();
    (server, port)
}

fn worker(program: &str, directory: &str) -> Proc {
    let worker = Proc::start(program, &[directory.into()]);
    worker.line_with("published test-multihosting:");
    worker
}

#[test]
fn server_9_forwards_to_its_worker_and_says_503_without_one() {
    let (_host, directory) = host_cake();
    let (server, port) = server(env!("CARGO_BIN_EXE_test_server_9"), &directory);
    check_unavailable(port);

    let worker = worker(env!("CARGO_BIN_EXE_test_worker_9"), &directory);
    server.line_with("worker available");
    for (x, y) in [(2, 2), (3, 1), (1, 4)] {
        check_table(port, x, y);
    }

    worker.kill();
    server.line_with("worker dropped");
    check_unavailable(port);

    // A new worker is picked up again.
    let _worker = self::worker(env!("CARGO_BIN_EXE_test_worker_9"), &directory);
    server.line_with("worker available");
    check_table(port, 2, 3);
}

#[test]
fn server_10_spools_over_its_workers_and_survives_losing_workers() {
    let (_host, directory) = host_cake();
    let (server, port) = server(env!("CARGO_BIN_EXE_test_server_10"), &directory);
    check_unavailable(port);

    let w1 = worker(env!("CARGO_BIN_EXE_test_worker_10"), &directory);
    let w2 = worker(env!("CARGO_BIN_EXE_test_worker_10"), &directory);
    server.line_with("(2 in all)");
    for i in 0..10 {
        check_table(port, 1 + i % 3, 2);
    }

    // One worker dies without a word: once the server has dropped it, every
    // request goes to the other.
    w1.kill();
    server.line_with("(1 left)");
    for i in 0..10 {
        check_table(port, 2, 1 + i % 3);
    }

    w2.kill();
    server.line_with("(0 left)");
    check_unavailable(port);
}

/// Workers killed with SIGKILL in the middle of a load: the requests they
/// held are retried on the others, so every request is answered, once, with
/// its table.
#[test]
fn server_10_answers_every_request_while_workers_are_killed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (_host, directory) = host_cake();
    let (server, port) = server(env!("CARGO_BIN_EXE_test_server_10"), &directory);
    let mut workers: Vec<Proc> = (0..4)
        .map(|_| worker(env!("CARGO_BIN_EXE_test_worker_10"), &directory))
        .collect();
    server.line_with("(4 in all)");

    const CLIENTS: usize = 6;
    const EACH: usize = 60;
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for i in 0..EACH {
                    let (x, y) = (1 + (c + i) % 5, 1 + i % 3);
                    let (status, body) = get(port, &format!("/Xy?x={x}&y={y}"));
                    answers.push((x, y, status, body));
                    done.fetch_add(1, Ordering::SeqCst);
                }
                answers
            })
        })
        .collect();
    // Two of the four die mid-load, one after the other.
    for at in [CLIENTS * EACH / 4, CLIENTS * EACH / 2] {
        let deadline = Instant::now() + PATIENCE;
        while done.load(Ordering::SeqCst) < at {
            assert!(Instant::now() < deadline, "the load stalled at {at}");
            std::thread::sleep(Duration::from_millis(5));
        }
        workers.remove(0).kill();
        server.line_with("left)");
    }
    let mut answered = 0;
    for client in clients {
        for (x, y, status, body) in client.join().unwrap() {
            let text = String::from_utf8_lossy(&body);
            assert_eq!(status, 200, "{text}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            let table = v["value"][1].as_array().expect("a table");
            assert_eq!(table.len(), y, "{text}");
            assert!(
                table.iter().all(|row| row.as_array().unwrap().len() == x),
                "{text}"
            );
            answered += 1;
        }
    }
    assert_eq!(answered, CLIENTS * EACH);
}

/// test_server_11 serves through its spool like 10, and when it cannot
/// listen it stops its spool and withdraws its subscription before ending
/// with the NotListening fault.
#[test]
fn server_11_shuts_its_spool_and_subscription_down_when_not_listening() {
    let (_host, directory) = host_cake();
    let (server, port) = server(env!("CARGO_BIN_EXE_test_server_11"), &directory);
    let _worker = worker(env!("CARGO_BIN_EXE_test_worker_10"), &directory);
    server.line_with("(1 in all)");
    check_table(port, 3, 2);

    // A second one on the same port cannot listen.
    let mut second = Proc::start(
        env!("CARGO_BIN_EXE_test_server_11"),
        &[
            format!("--server-address=127.0.0.1:{port}"),
            directory.clone(),
        ],
    );
    second.line_with("not listening");
    second.line_with("spool stopped");
    second.line_with("subscription cleared");
    let fault = second.line_with("cannot listen at");
    assert!(fault.starts_with("test_server_11: "), "{fault}");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ends after shutting down");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(71));
    // The first is unaffected.
    check_table(port, 1, 1);
}

/// host-cake killed under live sessions and started again on the same port:
/// the session between server and worker runs over their direct
/// connection, so every request is still answered; both processes
/// reconnect by themselves and re-send their listings, and the directory
/// re-confirms the session — the server never drops the worker nor hears
/// of it twice (`docs/directory.md`, "When a directory node restarts").
/// A worker that really goes is still dropped at once.
#[test]
fn a_restarted_host_cake_interrupts_no_session() {
    let (host, directory) = host_cake();
    let host_port = directory.rsplit(':').next().unwrap().to_string();
    let (server, port) = server(env!("CARGO_BIN_EXE_test_server_10"), &directory);
    let worker = worker(env!("CARGO_BIN_EXE_test_worker_10"), &directory);
    server.line_with("(1 in all)");
    check_table(port, 2, 2);

    host.kill();
    for _ in 0..10 {
        check_table(port, 2, 2);
    }

    let again = Proc::start(
        workspace_binary("host-cake", "host-cake"),
        &[
            format!("--directory-at-host=127.0.0.1:{host_port}"),
            "--no-lan-autoconnect".into(),
        ],
    );
    again.line_with("listening on");
    for _ in 0..20 {
        check_table(port, 3, 2);
        std::thread::sleep(Duration::from_millis(50));
    }
    let said: Vec<String> = server.lines.try_iter().collect();
    assert!(
        said.iter()
            .all(|l| !l.contains("worker dropped") && !l.contains("worker available")),
        "{said:#?}"
    );

    worker.kill();
    server.line_with("worker dropped");
    check_unavailable(port);
}
