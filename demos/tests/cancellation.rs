//! Request cancellation across processes, and workers that overrun, with
//! real processes and real HTTP: an HTTP front in this test process forwards
//! [`Steps`] to a spool of `test_worker_steps` child processes.
//!
//! - a client that goes away, and a request the front answers 504, cancel
//!   the request: the cancellation crosses the link to the worker process,
//!   which stops between two steps (its `cancelled` line in the log file);
//! - a worker process stuck on a request (it never checks) past the
//!   request's deadline plus the spool's `overrun_grace` is stopped and
//!   replaced; the request was answered 504 and no other worker saw it.
//!
//! The workers write what they do to a log file (`STEPS_LOG`). The worker
//! processes are stopped by their proxies when the spool stops, and see
//! their lifeline close if this process dies.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::process::ProcessOptions;
use layer_cake::runtime::{self, ActorHandle};
use layer_cake::spool::{InspectSpool, SpoolOptions, SpoolStatus, Workers};
use layer_cake::{Address, Context, HostPort, Stop, on};
use layer_cake_demos::steps::Steps;
use support::block_on;

layer_cake::register!(u32);

/// Generous: the machine is a loaded 2-core box.
const PATIENCE: Duration = Duration::from_secs(30);

/// A spool of worker processes behind an HTTP front, in this process;
/// stopped (with its workers) on drop.
struct Front {
    port: u16,
    spool: Address,
    server: Option<ActorHandle<()>>,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Front {
    /// Starts `workers` worker processes behind a front answering within
    /// `answer_within`.
    fn start(workers: usize, answer_within: Duration, options: SpoolOptions) -> Front {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("steps.log");
        let process = ProcessOptions::new(env!("CARGO_BIN_EXE_test_worker_steps"))
            .role_name("steps")
            .env("STEPS_LOG", log.to_string_lossy())
            .stop_grace(Duration::from_secs(1));
        let (ready, listening) = std::sync::mpsc::channel();
        let server = block_on(async move {
            runtime::spawn(move |mut cx: Context| async move {
                let spool = cx
                    .spawn_spool(Workers::processes(workers, process), options)
                    .expect("a spool");
                let front = HttpServer::new()
                    .accept::<Steps>()
                    .answer_within(answer_within);
                cx.listen(HostPort::new("127.0.0.1", 0), ListenOptions::http(front));
                loop {
                    on!(cx.input().await, {
                        Listening as l => { let _ = ready.send((l.listening.port, spool.clone())); },
                        NotListening as n => panic!("cannot listen: {}", n.reason),
                        Steps as s => { let _ = cx.forward(s, &spool); },
                        Stop as _ => {
                            let _ = cx.stop(&spool, PATIENCE).await;
                            return;
                        },
                        _other => {},
                    })
                }
            })
        });
        let (port, spool) = listening.recv_timeout(PATIENCE).expect("listening");
        let front = Front {
            port,
            spool,
            server: Some(server),
            _dir: dir,
            log,
        };
        // Both workers up and connected: each answers one quick request.
        for _ in 0..workers {
            front.expect(200, "/Steps?steps=1&step_ms=1&tag=0");
        }
        front
    }

    /// `GET target`: the status and the body.
    fn get(&self, target: &str) -> (u16, String) {
        let mut stream = self.send(target);
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("a response");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    fn expect(&self, status: u16, target: &str) -> String {
        let (got, body) = self.get(target);
        assert_eq!(got, status, "{target}: {body}");
        body
    }

    /// A connection with `GET target` sent on it.
    fn send(&self, target: &str) -> std::net::TcpStream {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(PATIENCE * 2)).unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        stream
    }

    fn status(&self) -> SpoolStatus {
        let spool = self.spool.clone();
        block_on(async move { runtime::ask(InspectSpool, &spool, PATIENCE).await.unwrap() })
    }

    /// The workers' log lines so far.
    fn lines(&self) -> Vec<String> {
        read_lines(&self.log)
    }

    /// Waits for a log line starting with `prefix`; returns it.
    fn wait_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no line {prefix:?} in {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_status(&self, what: &str, check: impl Fn(&SpoolStatus) -> bool) -> SpoolStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.status();
            if check(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "never {what}: {status:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.address().send(Stop);
            let _ = block_on(async { tokio::time::timeout(PATIENCE, server.join()).await });
        }
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn is_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// 2 000 steps of 20 ms: 40 s, far past every deadline here, unless stopped.
const LONG: &str = "steps=2000&step_ms=20";

#[test]
fn a_client_that_goes_away_stops_the_work_in_the_worker_process() {
    let front = Front::start(2, PATIENCE * 2, SpoolOptions::new());
    let stream = front.send(&format!("/Steps?{LONG}&tag=1"));
    front.wait_line("started 1 ");
    drop(stream);
    let line = front.wait_line("cancelled 1 ");
    let steps: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(steps < 2000, "{line}");
    // The worker answered (a fault nobody reads) and is free again.
    let status = front.wait_status("the worker is free", |s| s.idle == 2);
    assert_eq!(status.timed_out, 0, "{status:?}");
    front.expect(200, "/Steps?steps=1&step_ms=1&tag=9");
    assert!(!front.lines().iter().any(|l| l.starts_with("finished 1")));
}

#[test]
fn a_504_from_the_front_stops_the_work_in_the_worker_process() {
    let front = Front::start(1, Duration::from_secs(3), SpoolOptions::new());
    let body = front.expect(504, &format!("/Steps?{LONG}&tag=2"));
    assert!(body.contains("no answer within"), "{body}");
    front.wait_line("started 2 ");
    front.wait_line("cancelled 2 ");
    front.wait_status("the worker is free", |s| s.idle == 1);
    front.expect(200, "/Steps?steps=1&step_ms=1&tag=9");
    assert!(!front.lines().iter().any(|l| l.starts_with("finished 2")));
}

#[test]
fn a_worker_process_stuck_past_its_deadline_is_replaced_and_the_request_not_retried() {
    let options = SpoolOptions::new()
        .request_timeout(Duration::from_secs(2))
        .overrun_grace(Some(Duration::from_secs(1)))
        .stand_down(Some(Duration::from_millis(200)));
    let front = Front::start(2, PATIENCE, options);
    // Never checks the signal: 3 000 steps of 10 ms.
    let body = front.expect(504, "/Steps?steps=3000&step_ms=10&heed=false&tag=3");
    assert!(body.contains("no answer within 2.000s"), "{body}");
    let started = front.wait_line("started 3 ");
    let pid: u32 = started.rsplit(' ').next().unwrap().parse().unwrap();
    front.wait_status("stopped the stuck worker", |s| s.stopped_overrunning == 1);
    let deadline = Instant::now() + PATIENCE;
    while !is_gone(pid) {
        assert!(Instant::now() < deadline, "worker process {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = front.wait_status("replaced it", |s| s.restarted == 1 && s.workers == 2);
    assert_eq!((status.retried, status.timed_out), (0, 1), "{status:?}");
    // The pool serves on.
    for tag in 10..16 {
        front.expect(200, &format!("/Steps?steps=1&step_ms=1&tag={tag}"));
    }
    let lines = front.lines();
    let saw = lines.iter().filter(|l| l.starts_with("started 3 ")).count();
    assert_eq!(saw, 1, "one worker saw the stuck request: {lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("finished 3")));
}
