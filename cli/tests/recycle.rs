//! Worker recycling end to end, with real processes: a home with a
//! `test_server_10` and `test_worker_10`s that retire after
//! `--max-requests=5`, under HTTP load — no request fails across dozens of
//! recycles, group-cake starts a fresh worker each time (with no `--retry`
//! at all), and `history` shows the runs ending `Retired`; and `layer-cake
//! restart` recycling the workers one at a time under load with no request
//! failing. host-cake runs on an ephemeral port (never the standard one,
//! never the LAN). Whatever a test started is killed when it ends, however
//! it ends.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use support::{HomeGuard, PATIENCE, Proc, cli, free_port, get_table, host_cake, ok, running};

/// A home in `dir` under the host-cake at `host_at`, without a retry
/// policy: a `test_server_10` on `port` and `workers` `test_worker_10`s
/// with the extra `settings`.
fn home(dir: &Path, host_at: &str, port: u16, workers: usize, settings: &[&str]) {
    ok(dir, &["create", &format!("--directory-at-host={host_at}")]);
    let server_address = format!("--server-address=127.0.0.1:{port}");
    ok(dir, &["add", "test_server_10", "server", &server_address]);
    let count = format!("--role-count={workers}");
    let mut add = vec!["add", "test_worker_10", "worker", &count];
    add.extend_from_slice(settings);
    ok(dir, &add);
}

/// Waits for the first table from the server on `port`.
fn first_table(port: u16) {
    let deadline = Instant::now() + PATIENCE;
    while get_table(port, 2, 2) != (200, true) {
        assert!(Instant::now() < deadline, "no table in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `clients` threads each asking `each` tables in turn; every answer.
fn load(port: u16, clients: usize, each: usize) -> Vec<std::thread::JoinHandle<Vec<(u16, bool)>>> {
    (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| get_table(port, 1 + (c + i) % 4, 2))
                    .collect()
            })
        })
        .collect()
}

/// Joins the load and asserts that every request got its table; how many.
fn all_answered(load: Vec<std::thread::JoinHandle<Vec<(u16, bool)>>>) -> usize {
    let mut n = 0;
    for client in load {
        for answer in client.join().unwrap() {
            assert_eq!(answer, (200, true), "a request failed");
            n += 1;
        }
    }
    n
}

#[test]
fn workers_with_max_requests_recycle_under_load_and_no_request_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    let port = free_port();
    home(d, &host_at, port, 4, &["--max-requests=5"]);
    let listed = ok(d, &["list", "--long-listing", "worker-0"]);
    assert!(listed.contains("--max-requests=5"), "{listed}");

    let _guard = HomeGuard(d.join(".layer-cake"));
    let mut run = cli(d);
    run.arg("run");
    let mut run = Proc::start(run);
    first_table(port);

    // 240 requests, 4 at a time, over 4 workers of 5 requests each.
    let started = Instant::now();
    let answered = all_answered(load(port, 4, 60));
    let took = started.elapsed();

    // Every worker role is running again (a fresh process).
    let deadline = Instant::now() + PATIENCE;
    while running(d)
        .iter()
        .filter(|(r, _)| r.starts_with("worker-"))
        .count()
        < 4
    {
        assert!(
            Instant::now() < deadline,
            "the workers did not all come back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = run.interrupt_and_wait();
    assert!(!status.success(), "an interrupted run ends Aborted");
    let lines = run.rest_of_lines();
    let recycles = lines
        .iter()
        .filter(|l| l.contains("requests (max-requests); starting a fresh one"))
        .count();
    eprintln!(
        "{answered} requests in {:.2}s, 0 failed, {recycles} recycles",
        took.as_secs_f64()
    );
    assert!(
        recycles >= 20,
        "only {recycles} recycles:\n{}",
        lines.join("\n")
    );

    // The history shows the runs that retired.
    let mut retired_runs = 0;
    for worker in 0..4 {
        let history = ok(d, &["history", &format!("worker-{worker}")]);
        retired_runs += history
            .lines()
            .filter(|l| l.ends_with("(layer_cake.process.Retired)"))
            .count();
    }
    assert!(
        retired_runs >= 20,
        "{retired_runs} retired runs in the histories"
    );
    let value = ok(d, &["returned", "worker-0", "--start=0"]);
    let value: serde_json::Value = serde_json::from_str(&value).unwrap();
    // Five requests, and any that were on their way when it withdrew.
    assert_eq!(value["value"][0], "layer_cake.process.Retired", "{value}");
    assert_eq!(value["value"][1]["reason"], "max-requests", "{value}");
    assert!(
        value["value"][1]["requests"]
            .as_u64()
            .is_some_and(|n| n >= 5),
        "{value}"
    );
}

#[test]
fn restart_recycles_one_role_at_a_time_while_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    let port = free_port();
    home(d, &host_at, port, 2, &[]);

    let _guard = HomeGuard(d.join(".layer-cake"));
    let mut run = cli(d);
    run.arg("run");
    let mut run = Proc::start(run);
    first_table(port);
    run.line_with("(2 in all)");
    let before: Vec<(String, i32)> = running(d);

    // Bad input: one clear line each.
    let out = cli(d)
        .arg("restart")
        .arg("nothing-like-it")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "layer-cake: no role matching nothing-like-it is running"
    );

    // A rolling restart of both workers under load.
    let traffic = load(port, 3, 60);
    std::thread::sleep(Duration::from_millis(100));
    let said = ok(d, &["restart", "worker-.*"]);
    let answered = all_answered(traffic);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    for (line, worker) in lines.iter().zip(["worker-0", "worker-1"]) {
        let old = before.iter().find(|(r, _)| r == worker).unwrap().1;
        assert!(
            line.starts_with(&format!("restarted {worker} (pid {old}, now pid ")),
            "{said}"
        );
    }
    // The server was not touched; each worker's last run retired.
    let after = running(d);
    let pid =
        |list: &[(String, i32)], role: &str| list.iter().find(|(r, _)| r == role).map(|x| x.1);
    assert_eq!(pid(&before, "server"), pid(&after, "server"));
    for worker in ["worker-0", "worker-1"] {
        let value = ok(d, &["returned", worker, "--start=0"]);
        assert!(value.contains("\"SIGUSR1\""), "{worker}: {value}");
    }
    eprintln!("{answered} requests through a rolling restart, 0 failed");
    run.interrupt_and_wait();
}
