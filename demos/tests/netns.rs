//! Real processes on a private LAN of network namespaces (see
//! `tests/support/netns.rs` and `docs/lan.md`): native_server processes
//! reach each other across "hosts", and the standard LAN directory rule,
//! evaluated inside a host, points at `10.0.0.195:54195` — which here is a
//! host of the test's own LAN, never the machine's real network.
//!
//! Needs root; otherwise each test prints `SKIPPED: <reason>` and returns.

mod support;

use std::net::IpAddr;
use std::process::Child;
use std::time::Duration;

use layer_cake::directory::lan;
use support::netns::{Lan, StderrLines};

const PATIENCE: Duration = Duration::from_secs(20);

/// The environment variable that makes `lan_rule_probe` do its work.
const PROBE_VAR: &str = "LAYER_CAKE_NETNS_PROBE";

/// Three hosts; the third owns the standard LAN directory address.
fn three_hosts() -> [IpAddr; 3] {
    ["10.0.0.1", "10.0.0.2", "10.0.0.195"].map(|ip| ip.parse().unwrap())
}

/// A spawned program, killed (and reaped) when the test ends, however it
/// ends; the `Lan` would kill it too, but this reaps it.
struct Running {
    child: Child,
    stderr: StderrLines,
}

impl Running {
    fn start(lan: &Lan, host: usize, program: &str, args: &[String]) -> Running {
        let mut child = lan.spawn(host, program, args);
        let stderr = StderrLines::of(&mut child);
        Running { child, stderr }
    }

    fn native_server(lan: &Lan, host: usize, args: &[String]) -> Running {
        Running::start(lan, host, env!("CARGO_BIN_EXE_native_server"), args)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn native_servers_talk_across_the_lan() {
    let lan = match Lan::new(&three_hosts()) {
        Ok(lan) => lan,
        Err(skip) => return skip.report(),
    };
    let far = format!("{}:5051", lan.ip(0));
    let mut server = Running::native_server(&lan, 0, &[format!("--listen-at={far}")]);
    assert_eq!(server.stderr.wait_for("listening on ", PATIENCE), far);

    let near = format!("{}:5051", lan.ip(1));
    let mut forwarder = Running::native_server(
        &lan,
        1,
        &[format!("--listen-at={near}"), format!("--forward-to={far}")],
    );
    assert_eq!(forwarder.stderr.wait_for("listening on ", PATIENCE), near);
    assert_eq!(forwarder.stderr.wait_for("connected to ", PATIENCE), far);
}

#[test]
fn the_standard_lan_address_is_a_host_of_the_test_lan() {
    let lan = match Lan::new(&three_hosts()) {
        Ok(lan) => lan,
        Err(skip) => return skip.report(),
    };

    // Inside host 1 the rule finds the namespace's own address and maps it.
    let probe = |autoconnect: &str| {
        let mut command = lan.command(1, std::env::current_exe().unwrap());
        command
            .args(["--exact", "lan_rule_probe", "--ignored", "--nocapture"])
            .env(PROBE_VAR, "1")
            .env(lan::LAN_AUTOCONNECT_VAR, autoconnect)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("start the probe");
        let mut said = StderrLines::of(&mut child);
        let primary = said.wait_for("primary_ip=", PATIENCE);
        let auto = said.wait_for("auto_lan_directory=", PATIENCE);
        assert!(child.wait().unwrap().success(), "the probe failed");
        (primary, auto)
    };
    assert_eq!(
        probe("on"),
        (
            "Some(10.0.0.2)".to_owned(),
            "Some(10.0.0.195:54195)".to_owned()
        )
    );
    assert_eq!(
        probe("off"),
        ("Some(10.0.0.2)".to_owned(), "None".to_owned())
    );

    // And that address is reachable on the test LAN: a listener at the
    // lan-cake default in host 2 (10.0.0.195) accepts host 1's connection.
    let listen = lan::lan_listen_default().to_string();
    let mut directory = Running::native_server(&lan, 2, &[format!("--listen-at={listen}")]);
    assert_eq!(directory.stderr.wait_for("listening on ", PATIENCE), listen);
    let standard = lan::standard_lan_directory(lan.ip(1)).unwrap().to_string();
    assert_eq!(standard, "10.0.0.195:54195");
    let mut client = Running::native_server(
        &lan,
        1,
        &[
            format!("--listen-at={}:0", lan.ip(1)),
            format!("--forward-to={standard}"),
        ],
    );
    assert_eq!(client.stderr.wait_for("connected to ", PATIENCE), standard);
}

/// Not a test on its own: run by the test above inside a namespace (with
/// `LAYER_CAKE_NETNS_PROBE=1`) to evaluate the LAN rule there.
#[test]
#[ignore = "run inside a test namespace by the_standard_lan_address_is_a_host_of_the_test_lan"]
fn lan_rule_probe() {
    if std::env::var(PROBE_VAR).is_ok_and(|v| v == "1") {
        eprintln!("primary_ip={:?}", lan::primary_ip());
        eprintln!(
            "auto_lan_directory={}",
            lan::auto_lan_directory().map_or("None".to_owned(), |h| format!("Some({h})"))
        );
    }
}

/// The whole tree across three hosts of a test LAN: lan-cake on the host
/// with the standard LAN address, a host-cake on each application host
/// finding it by the standard rule (inside the test's namespaces only), a
/// worker on one host publishing at LAN scope, and a server on the other
/// reaching it — with an HTTP client on the server's host getting tables
/// computed on the worker's host. Then the worker's host-cake is killed and
/// the server hears the worker is gone.
#[test]
fn a_lan_publication_is_reached_from_another_host() {
    let lan = match Lan::new(&three_hosts()) {
        Ok(lan) => lan,
        Err(skip) => return skip.report(),
    };
    let lan_cake = support::workspace_binary("lan-cake", "lan-cake");
    let host_cake = support::workspace_binary("host-cake", "host-cake");
    let lan_cake = lan_cake.to_str().unwrap();
    let host_cake = host_cake.to_str().unwrap();

    // lan-cake at its default listen (0.0.0.0:54195) on 10.0.0.195.
    let mut directory = Running::start(&lan, 2, lan_cake, &[]);
    directory
        .stderr
        .wait_for("lan-cake: listening on ", PATIENCE);
    // A host-cake on each application host, with no --directory-at-lan: it
    // finds the LAN directory by the standard rule.
    let mut host_a = Running::start(&lan, 0, host_cake, &[]);
    host_a.stderr.wait_for("host-cake: listening on ", PATIENCE);
    let mut host_b = Running::start(&lan, 1, host_cake, &[]);
    host_b.stderr.wait_for("host-cake: listening on ", PATIENCE);

    let mut worker = Running::start(
        &lan,
        0,
        env!("CARGO_BIN_EXE_test_worker_10"),
        &["--scope=LAN".to_string()],
    );
    worker
        .stderr
        .wait_for("test_worker_10: published ", PATIENCE);
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
        .wait_for("test_server_10: worker available ", PATIENCE);

    // An HTTP client on the server's host: every request is answered by the
    // worker on the other host.
    let output = lan
        .command(1, env!("CARGO_BIN_EXE_clients_as_threads"))
        .args([
            "--server-address=127.0.0.1:5050",
            "--clients=2",
            "--requests=10",
            "--child-process",
        ])
        .output()
        .expect("run the client inside the namespace");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report["answered"], 20, "{report}");
    let errors = report["errors"].as_object().expect("error counts");
    assert!(errors.values().all(|n| n == 0), "{report}");

    // The worker's host directory freezes (SIGSTOP): its connection to
    // lan-cake stays open but falls silent, so only the heartbeats can tell.
    // lan-cake declares the link stale within its bound (10 s), withdraws
    // what it learned through it, and the server drops the worker.
    let frozen = nix::unistd::Pid::from_raw(host_a.child.id() as i32);
    nix::sys::signal::kill(frozen, nix::sys::signal::Signal::SIGSTOP).expect("freeze host-cake");
    let cut = std::time::Instant::now();
    server
        .stderr
        .wait_for("test_server_10: worker dropped ", Duration::from_secs(60));
    // The figure, for docs/performance.md; the bound itself is not asserted
    // tightly (a loaded machine), only that it was the heartbeat that acted.
    let took = cut.elapsed();
    eprintln!(
        "silent link -> Dropped in {:.2} s (stale bound 10 s)",
        took.as_secs_f64()
    );
    assert!(
        took >= Duration::from_secs(5),
        "dropped before any heartbeat bound: {took:?}"
    );
    // Dropping `host_a` kills it (SIGKILL works on a stopped process).
}
