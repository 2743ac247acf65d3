//! Draining on SIGTERM, with real server processes: the request in flight
//! is answered while new connections are refused, the process then exits
//! with its main actor's status; an actor stuck in a long computation
//! does not keep the process past `--drain-time`, and a second signal
//! ends it at once. Every wait has a generous deadline; a child still
//! running when a test fails is killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

const PATIENCE: Duration = Duration::from_secs(30);

const DRAIN_SERVER: &str = env!("CARGO_BIN_EXE_drain_server");
const TEST_SERVER_1: &str = env!("CARGO_BIN_EXE_test_server_1");

/// A server process on port 0, its stderr lines passed on; killed on drop
/// if still running.
struct Proc {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    fn start(program: &str, flags: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .arg("--server-address=127.0.0.1:0")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                eprintln!("{line}");
                let _ = send.send(line);
            }
        });
        let mut proc = Proc {
            child,
            port: 0,
            lines,
        };
        let line = proc.wait_line("listening on ");
        proc.port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        proc
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?} in time"),
            }
        }
    }

    fn signal(&self, sig: Signal) {
        signal::kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the exit; its status and how long it took from `since`.
    fn exit(&mut self, since: Instant) -> (ExitStatus, Duration) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, since.elapsed());
            }
            assert!(Instant::now() < deadline, "the server exits");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a new connection is refused: the listen has closed.
    fn wait_refused(&self) {
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the listen closes");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends `GET target` (and closes after) on a thread; its whole response,
/// or what failed.
fn request(port: u16, target: &str) -> std::thread::JoinHandle<std::io::Result<String>> {
    request_with(port, target, "Connection: close\r\n")
}

/// Sends `GET target` with `headers` on a thread; all that comes back until
/// the server closes the connection, or what failed.
fn request_with(
    port: u16,
    target: &str,
    headers: &str,
) -> std::thread::JoinHandle<std::io::Result<String>> {
    let target = target.to_string();
    let headers = headers.to_string();
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(PATIENCE))?;
        write!(stream, "GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })
}

#[test]
fn sigterm_answers_the_request_in_flight_and_refuses_new_ones() {
    let mut server = Proc::start(DRAIN_SERVER, &["--drain-time=25"]);
    // An idle keep-alive connection: closed by the drain.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    idle.set_read_timeout(Some(PATIENCE)).unwrap();
    idle.write_all(b"GET /Slow?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0; 4096];
    let n = idle.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));

    // Kept alive by the client: the server closes it after the answer.
    let slow = request_with(server.port, "/Slow?ms=3000", "");
    server.wait_line("drain_server: Slow 3000 ms");
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    server.wait_refused();
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest)
        .expect("the idle connection is closed");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));

    let answer = slow.join().unwrap().expect("the slow request is answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with(r#"{"value":["integer8",3000,[]]}"#),
        "{answer}"
    );
    let (status, took) = server.exit(signalled);
    assert_eq!(status.code(), Some(0), "the main actor returned on Stop");
    assert!(took < Duration::from_secs(25), "{took:?}");
}

#[test]
fn a_process_stuck_in_a_computation_exits_when_the_drain_time_is_up() {
    // One thread: the actor blocks the whole runtime.
    let mut server = Proc::start(DRAIN_SERVER, &["--drain-time=1", "--worker-threads=1"]);
    let _stuck = request(server.port, "/Spin?ms=120000");
    server.wait_line("drain_server: Spin 120000 ms");
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    let (status, took) = server.exit(signalled);
    assert_eq!(status.code(), Some(128 + 15), "ended by SIGTERM");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(1 + 10), "{took:?}");
    let line = server.wait_line("exiting now");
    assert!(line.contains("still running 1s after SIGTERM"), "{line}");
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = Proc::start(DRAIN_SERVER, &["--drain-time=300"]);
    let _slow = request(server.port, "/Slow?ms=120000");
    server.wait_line("drain_server: Slow 120000 ms");
    server.signal(Signal::SIGTERM);
    // The first one is being handled: the listen has closed.
    server.wait_refused();
    let signalled = Instant::now();
    server.signal(Signal::SIGINT);
    let (status, took) = server.exit(signalled);
    assert_eq!(status.code(), Some(128 + 2), "ended by SIGINT");
    assert!(took < Duration::from_secs(10), "{took:?}");
    server.wait_line("a second signal: exiting now");
}

/// The smoke test of the prime server, on the simplest demo: served, then
/// SIGTERM, exits within 3 s with a drain time of 1 s.
#[test]
fn a_served_server_exits_promptly_on_sigterm() {
    let mut server = Proc::start(TEST_SERVER_1, &["--drain-time=1"]);
    let answer = request(server.port, "/Xy?x=2&y=2").join().unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    let (status, took) = server.exit(signalled);
    assert_eq!(
        status.code(),
        Some(71),
        "test_server_1 ends Aborted on Stop"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}
