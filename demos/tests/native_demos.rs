//! The native transport between real processes: a request crosses two
//! `native_server` processes (one forwarding to the other) and its answer
//! finds the way back; when the far process is killed, requests get faults
//! and nothing hangs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use layer_cake::net::{ConnectOptions, Connected, HostPort};
use layer_cake::runtime::AskError;
use layer_cake::{Context, FaultKind};
use layer_cake_demos::Xy;

const PATIENCE: Duration = Duration::from_secs(20);

/// A child process that is killed when the test ends, however it ends.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_native_server"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start native_server");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Server { child, lines }
    }

    /// Waits for a stderr line starting with `prefix`; returns the rest.
    fn said(&self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("native_server never said {prefix:?}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_crosses_two_processes_and_comes_back() {
    let far = Server::start(&["--listen-at=127.0.0.1:0"]);
    let far_at = far.said("listening on");
    let near = Server::start(&["--listen-at=127.0.0.1:0", &format!("--forward-to={far_at}")]);
    let near_at: HostPort = near.said("listening on").parse().unwrap();
    near.said("connected to");

    let mut cx = Context::detached("test");
    cx.connect(near_at, ConnectOptions::native());
    let proxy = loop {
        if let Ok(c) = tokio::time::timeout(PATIENCE, cx.input())
            .await
            .unwrap()
            .downcast::<Connected>()
        {
            break c.proxy;
        }
    };
    for n in 1..=20 {
        let table: Vec<Vec<f64>> = cx.ask(Xy { x: n, y: 2 }, &proxy, PATIENCE).await.unwrap();
        assert_eq!(table.len(), 2);
        assert!(table.iter().all(|row| row.len() == n as usize));
    }

    // Kill the far process: the near one notices, and requests get a fault
    // rather than silence.
    drop(far);
    near.said("lost");
    match cx
        .ask::<Vec<Vec<f64>>, _>(Xy { x: 1, y: 1 }, &proxy, PATIENCE)
        .await
    {
        Err(AskError::Faulted(f)) => assert_eq!(f.kind, FaultKind::TemporarilyUnavailable),
        other => panic!("expected a fault, got {other:?}"),
    }
}
