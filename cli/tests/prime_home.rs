//! The prime demo (issue 13) as the roles of a home: `prime_server`, and
//! the parse and compute stages with a role count of 2 each, run with
//! `layer-cake run` under a host-cake on an ephemeral port; answered over
//! real HTTP, then stopped with Ctrl-C. Whatever the test started is killed
//! when it ends, however it ends.

use std::time::{Duration, Instant};

mod support;

use support::{HomeGuard, PATIENCE, Proc, cli, exchange, free_port, host_cake, ok, running};

fn get(port: u16, target: &str) -> (u16, String) {
    exchange(
        port,
        &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn the_prime_pipeline_runs_as_roles_with_a_count_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    let port = free_port();
    ok(d, &["create", &format!("--directory-at-host={host_at}")]);
    let server_address = format!("--server-address=127.0.0.1:{port}");
    ok(d, &["add", "prime_server", "server", &server_address]);
    ok(d, &["add", "prime_parse", "parse", "--role-count=2"]);
    ok(d, &["add", "prime_compute", "compute", "--role-count=2"]);

    let _guard = HomeGuard(d.join(".layer-cake"));
    let mut run = cli(d);
    run.arg("run");
    let mut run = Proc::start(run);

    let prime = "/is_prime?possible_prime=32416190071";
    let deadline = Instant::now() + PATIENCE;
    while get(port, prime) != (200, "32416190071".into()) {
        assert!(Instant::now() < deadline, "no answer in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        running(d).len(),
        6,
        "the group, the server and 2 + 2 workers"
    );
    let post = "POST /is_prime HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\
                Connection: close\r\n\r\n32416190073";
    assert_eq!(exchange(port, post), (200, "18446744073709551615".into()));
    assert_eq!(
        get(port, "/is_prime?possible_prime=x"),
        (
            400,
            "GET requests should look like: 'is_prime?possible_prime=SOME_NUMBER'".into()
        )
    );
    assert_eq!(get(port, "/health_check"), (200, "OK".into()));

    let status = run.interrupt_and_wait();
    assert!(!status.success(), "an interrupted run ends with Aborted");
    let out = cli(d).arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is running"));
}
