//! A directory daemon restart interrupts nothing (issue 14, item 7; see
//! "When a directory node restarts" in `docs/directory.md`), with real
//! daemons and real processes on a private LAN of network namespaces
//! (`tests/support/netns.rs`): lan-cake on the host with the standard LAN
//! address, a worker host running host-cake and three `test_worker_10
//! --scope=LAN`, a server host running host-cake and `test_server_10
//! --scope=LAN` with an HTTP client asking it in a loop. The worker host's
//! host-cake, then lan-cake, are SIGKILLed and started again under that
//! load: every request is answered, the server never drops a worker and
//! never hears of one a second time.
//!
//! Needs root; otherwise the test prints `SKIPPED: <reason>` and returns.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::netns::{Running, keyed_lan, three_hosts};

const PATIENCE: Duration = Duration::from_secs(20);

/// How long the client asks: past the 30 s grace (`RECONFIRM_WITHIN`)
/// after the first kill, so that a session the healed tree did not
/// re-confirm would be dropped while the client still asks.
const LOAD_SECONDS: u64 = 45;

#[test]
fn directory_restarts_under_load_fail_no_request() {
    let (lan, _key) = match keyed_lan(&three_hosts()) {
        Ok(lan) => lan,
        Err(skip) => return skip.report(),
    };
    let lan_cake = support::workspace_binary("lan-cake", "lan-cake");
    let host_cake = support::workspace_binary("host-cake", "host-cake");
    let (lan_cake, host_cake) = (lan_cake.to_str().unwrap(), host_cake.to_str().unwrap());

    let mut directory = Running::start(&lan, 2, lan_cake, &[]);
    directory
        .stderr
        .wait_for("lan-cake: listening on ", PATIENCE);
    let mut worker_host = Running::start(&lan, 0, host_cake, &[]);
    worker_host
        .stderr
        .wait_for("host-cake: listening on ", PATIENCE);
    let mut server_host = Running::start(&lan, 1, host_cake, &[]);
    server_host
        .stderr
        .wait_for("host-cake: listening on ", PATIENCE);

    let scope = ["--scope=LAN".to_string()];
    let mut workers: Vec<Running> = (0..3)
        .map(|_| Running::start(&lan, 0, env!("CARGO_BIN_EXE_test_worker_10"), &scope))
        .collect();
    for worker in &mut workers {
        worker
            .stderr
            .wait_for("test_worker_10: published ", PATIENCE);
    }
    let mut server = Running::start(
        &lan,
        1,
        env!("CARGO_BIN_EXE_test_server_10"),
        &[
            "--scope=LAN".to_string(),
            "--server-address=127.0.0.1:5050".to_string(),
        ],
    );
    server
        .stderr
        .wait_for("test_server_10: listening on ", PATIENCE);
    server
        .stderr
        .wait_containing("(3 in all)", Duration::from_secs(60));
    let before = server.stderr.said_so_far().len();

    // The load: HTTP requests in a loop from the server's host.
    let mut client = lan
        .command(1, env!("CARGO_BIN_EXE_clients_as_threads"))
        .args([
            "--server-address=127.0.0.1:5050".to_string(),
            "--clients=2".to_string(),
            format!("--seconds={LOAD_SECONDS}"),
            "--child-process".to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client in the namespace");
    let client_pid = client.id();
    // However the test ends, the client goes too.
    struct Reap(Option<Child>);
    impl Drop for Reap {
        fn drop(&mut self) {
            if let Some(mut child) = self.0.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let stdout = client.stdout.take().expect("stdout is piped");
    let stderr = client.stderr.take().expect("stderr is piped");
    let mut reap = Reap(Some(client));
    let read = |mut from: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = from.read_to_string(&mut text);
            text
        })
    };
    let (report, said) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let started = Instant::now();

    // The worker host's host-cake: SIGKILL, and back 1.5 s later on the
    // same port (the workers and lan-cake reconnect to it by themselves).
    std::thread::sleep(Duration::from_secs(3));
    let first_loss = Instant::now();
    worker_host.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let mut worker_host = Running::start(&lan, 0, host_cake, &[]);
    worker_host
        .stderr
        .wait_for("host-cake: listening on ", PATIENCE);

    // Then lan-cake.
    std::thread::sleep(Duration::from_secs(8));
    directory.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let mut directory = Running::start(&lan, 2, lan_cake, &[]);
    directory
        .stderr
        .wait_for("lan-cake: listening on ", PATIENCE);

    // The client runs on past the grace after the first loss.
    let client = reap.0.as_mut().unwrap();
    let deadline = started + Duration::from_secs(LOAD_SECONDS + 60);
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the client (pid {client_pid}) never finished"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        first_loss.elapsed() > Duration::from_secs(30),
        "the load ended within the grace"
    );
    let (report, said) = (report.join().unwrap(), said.join().unwrap());
    assert!(status.success(), "the client failed: {said}");
    let report: serde_json::Value = serde_json::from_str(&report)
        .unwrap_or_else(|e| panic!("a JSON report ({e}): {report}{said}"));
    eprintln!(
        "under restarts: {} requests, {} answered, errors {}, latency {}",
        report["requests"], report["answered"], report["errors"], report["latency_ms"]
    );
    let answered = report["answered"].as_u64().expect("answered");
    assert!(answered > 0, "{report}");
    assert_eq!(report["requests"].as_u64(), Some(answered), "{report}");
    let errors = report["errors"].as_object().expect("error counts");
    assert!(errors.values().all(|n| n == 0), "{report}");

    // The server never dropped a worker, nor was offered one again.
    let lines = server.stderr.said_so_far();
    let after: Vec<&String> = lines[before..]
        .iter()
        .filter(|l| l.contains("worker dropped") || l.contains("worker available"))
        .collect();
    assert!(after.is_empty(), "{after:#?}");
    // Every process is still up.
    for worker in &mut workers {
        assert!(worker.child.try_wait().unwrap().is_none(), "a worker ended");
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server ended"
    );
    assert!(server_host.child.try_wait().unwrap().is_none());
}
