//! The prime demo (issue 13) as real processes over real HTTP: a host-cake
//! on an ephemeral port, `prime_server`, and 1 or 2 `prime_parse` and
//! `prime_compute` processes per stage found through it; and the batch
//! mode. Every process is killed when its test ends, however it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod support;

use support::procs::{PATIENCE, Proc, host_cake};
use support::{http_exchange, http_get};

/// What the compute stage answers for a number that is not prime.
const NOT_PRIME: &str = "18446744073709551615";

/// The front, its stages' worker processes and the directory they meet in.
struct Pipeline {
    port: u16,
    compute: Vec<Proc>,
    _parse: Vec<Proc>,
    _server: Proc,
    _host: Proc,
}

/// Starts a pipeline with `workers` processes per stage and waits until a
/// number goes through it. The compute workers log each number they test
/// (`--debug-level=CONSOLE`).
fn pipeline(workers: usize) -> Pipeline {
    let (host, directory) = host_cake();
    let server = Proc::start(
        env!("CARGO_BIN_EXE_prime_server"),
        &["--server-address=127.0.0.1:0".into(), directory.clone()],
    );
    let port = server.port();
    let compute: Vec<Proc> = (0..workers)
        .map(|_| {
            let p = Proc::start(
                env!("CARGO_BIN_EXE_prime_compute"),
                &[directory.clone(), "--debug-level=CONSOLE".into()],
            );
            p.line_with("published prime:compute:");
            p
        })
        .collect();
    let parse: Vec<Proc> = (0..workers)
        .map(|_| {
            let p = Proc::start(
                env!("CARGO_BIN_EXE_prime_parse"),
                std::slice::from_ref(&directory),
            );
            p.line_with("next stage prime:compute available");
            p
        })
        .collect();
    // The front's stages find the workers a moment later.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = http_get(port, "/is_prime?possible_prime=7");
        if status == 200 {
            assert_eq!(body, b"7");
            break;
        }
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        assert!(Instant::now() < deadline, "the pipeline never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    Pipeline {
        port,
        compute,
        _parse: parse,
        _server: server,
        _host: host,
    }
}

fn get(port: u16, target: &str) -> (u16, String) {
    let (status, body) = http_get(port, target);
    (status, String::from_utf8(body).unwrap())
}

fn post(port: u16, target: &str, body: &str) -> (u16, String) {
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, body) = http_exchange(port, &request);
    (status, String::from_utf8(body).unwrap())
}

/// How many numbers the compute workers have tested since the last call:
/// their `testing N` lines, read until none has come for a second.
fn tested(compute: &[Proc]) -> Vec<u64> {
    let mut numbers = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(1) {
        let mut any = false;
        for p in compute {
            while let Ok(line) = p.lines.try_recv() {
                if let Some((_, n)) = line.split_once("testing ") {
                    numbers.push(n.trim().parse().unwrap());
                    any = true;
                }
            }
        }
        if any {
            quiet_since = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    numbers.sort_unstable();
    numbers
}

/// The answers of the original, through the running pipeline.
fn answers_like_the_original(p: &Pipeline) {
    let port = p.port;
    tested(&p.compute); // the readiness probes
    assert_eq!(
        get(port, "/is_prime?possible_prime=32416190071"),
        (200, "32416190071".into())
    );
    assert_eq!(
        get(port, "/is_prime?possible_prime=32416190073"),
        (200, NOT_PRIME.into())
    );
    assert_eq!(
        post(port, "/is_prime", "2147483647"),
        (200, "2147483647".into())
    );
    assert_eq!(post(port, "/is_prime", "1000000"), (200, NOT_PRIME.into()));
    assert_eq!(
        tested(&p.compute),
        [1_000_000, 2_147_483_647, 32_416_190_071, 32_416_190_073]
    );

    // Bad requests are answered by the parse stage; the compute stage
    // never sees them.
    let get_usage = "GET requests should look like: 'is_prime?possible_prime=SOME_NUMBER'";
    let post_usage = "POST requests should have a path of 'is_prime' and a body with 'SOME_NUMBER'";
    for target in [
        "/is_prime?possible_prime=seven",
        "/is_prime?possible_prime=7&possible_prime=11",
        "/is_prime",
        "/is_prime?possible_prime=-7",
        "/is_prime?possible_prime=18446744073709551616",
        "/is_not_prime?possible_prime=7",
        "/",
    ] {
        assert_eq!(get(port, target), (400, get_usage.into()), "{target}");
    }
    assert_eq!(post(port, "/is_prime", "12abc"), (400, post_usage.into()));
    assert_eq!(post(port, "/is_prime", ""), (400, post_usage.into()));
    let delete = "DELETE /is_prime HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (status, body) = http_exchange(port, delete);
    assert_eq!(
        (status, String::from_utf8(body).unwrap()),
        (400, "Only GET and POST requests supported".into())
    );
    assert_eq!(tested(&p.compute), Vec::<u64>::new());

    assert_eq!(get(port, "/health_check"), (200, "OK".into()));
}

#[test]
fn one_worker_per_stage_answers_like_the_original() {
    let p = pipeline(1);
    answers_like_the_original(&p);
}

#[test]
fn two_workers_per_stage_answer_like_the_original_and_share_the_work() {
    let p = pipeline(2);
    answers_like_the_original(&p);
    // Eight clients at once: every answer right, and both compute workers
    // took part.
    let port = p.port;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..5 {
                    assert_eq!(
                        get(port, "/is_prime?possible_prime=32416190071"),
                        (200, "32416190071".into())
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let mut busy = 0;
    for worker in &p.compute {
        let mut tested = 0;
        while let Ok(line) = worker.lines.try_recv() {
            tested += usize::from(line.contains("testing 32416190071"));
        }
        busy += usize::from(tested > 0);
    }
    assert_eq!(busy, 2, "both compute workers should have tested numbers");
}

/// The largest prime below 2^64: about 4.3 × 10^9 divisions, many seconds.
const SLOW_PRIME: &str = "18446744073709551557";

#[test]
fn the_health_check_is_answered_while_every_worker_is_busy() {
    let p = pipeline(1);
    let port = p.port;
    // The one compute worker takes one slow number; the other waits in
    // the compute stage's queue.
    let answered = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let answered = answered.clone();
        std::thread::spawn(move || {
            let _ = http_get(port, &format!("/is_prime?possible_prime={SLOW_PRIME}"));
            answered.fetch_add(1, Ordering::SeqCst);
        });
    }
    let deadline = Instant::now() + PATIENCE;
    while !tested(&p.compute).contains(&SLOW_PRIME.parse().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "the slow number never reached compute"
        );
    }
    assert_eq!(get(port, "/health_check"), (200, "OK".into()));
    assert_eq!(
        answered.load(Ordering::SeqCst),
        0,
        "the slow numbers should still be in the pipeline"
    );
}

#[test]
fn batch_mode_finds_238_primes_through_the_same_stages() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_prime_server"))
        .args(["--workers=2", "--range=100000000000000,100000000008000"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("prime_server runs");
    assert!(output.status.success(), "{:?}", output.status);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "238 primes found\n"
    );
}
