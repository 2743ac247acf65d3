//! `layer-cake run` of a server and 8 workers, timed on the real path:
//! release binaries, real processes, a host-cake on an ephemeral port.
//!
//! Each round makes a fresh home (`create --retry='{"regular_steps": 1.0}'`,
//! `add test_server_10 server`, `add test_worker_10 worker --role-count=8`),
//! then measures:
//!
//! - **first table**: from starting `layer-cake run` to the first HTTP
//!   request answered with a table (polled every 5 ms);
//! - **all 8 in the pool**: to the server's `(8 in all)` line;
//! - **restarted**: from SIGKILL of `worker-3` to `layer-cake status`
//!   showing a new pid for it (the retry delay is 1 s);
//! - **back in the pool**: from the SIGKILL to the server's `(8 in all)`
//!   line again — the new worker published and joined the spool.
//!
//! ```console
//! $ cargo bench -p layer-cake-cli --bench run            # 5 rounds
//! $ cargo bench -p layer-cake-cli --bench run -- --quick # 2 rounds
//! ```

use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[path = "../tests/support/mod.rs"]
mod support;

use support::{PATIENCE, Proc, cli, free_port, host_cake, pid_of, seed_home};

fn table(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PATIENCE));
    let _ = write!(
        s,
        "GET /Xy?x=2&y=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.starts_with("HTTP/1.1 200") && raw.contains("vector<vector<float8>>")
}

struct Round {
    first_table: f64,
    all_eight: f64,
    restarted: f64,
    back: f64,
}

fn round(host_at: &str) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    seed_home(d, host_at, port);
    let mut command = cli(d);
    command.arg("run");
    let started = Instant::now();
    let run = Proc::start(command);
    while !table(port) {
        assert!(started.elapsed() < PATIENCE, "no table");
        std::thread::sleep(Duration::from_millis(5));
    }
    let first_table = started.elapsed().as_secs_f64();
    run.line_with("(8 in all)");
    let all_eight = started.elapsed().as_secs_f64();
    let victim = pid_of(d, "worker-3").expect("worker-3 runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    run.line_with("(7 left)");
    loop {
        if pid_of(d, "worker-3").is_some_and(|p| p != victim) {
            break;
        }
        assert!(killed.elapsed() < PATIENCE, "not restarted");
        std::thread::sleep(Duration::from_millis(5));
    }
    let restarted = killed.elapsed().as_secs_f64();
    run.line_with("(8 in all)");
    let back = killed.elapsed().as_secs_f64();
    drop(run);
    Round {
        first_table,
        all_eight,
        restarted,
        back,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = if std::env::args().any(|a| a == "--quick") {
        2
    } else {
        5
    };
    let (_host, host_at) = host_cake();
    println!(
        "round  first table  all 8 in pool  worker restarted  back in pool   (seconds; retry delay 1 s)"
    );
    let mut all = Vec::new();
    for i in 0..rounds {
        let r = round(&host_at);
        println!(
            "{i:>5}  {:>11.3}  {:>13.3}  {:>16.3}  {:>12.3}",
            r.first_table, r.all_eight, r.restarted, r.back
        );
        all.push(r);
    }
    let worst = |f: fn(&Round) -> f64| all.iter().map(f).fold(0.0_f64, f64::max);
    println!(
        "worst  {:>11.3}  {:>13.3}  {:>16.3}  {:>12.3}",
        worst(|r| r.first_table),
        worst(|r| r.all_eight),
        worst(|r| r.restarted),
        worst(|r| r.back)
    );
}
