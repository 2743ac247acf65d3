//! The directory daemons as real processes: each starts on an ephemeral
//! port, says where it listens, exits 0 on SIGINT and SIGTERM, and refuses a
//! bad flag with one line and exit 2.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::workspace_binary;

const PATIENCE: Duration = Duration::from_secs(20);

/// A daemon, killed on drop if a test fails before it exits.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(package: &str, args: &[&str]) -> (Daemon, String) {
    // Owned by the guard from the start, so a failing test reaps it.
    let mut daemon = Daemon(
        Command::new(workspace_binary(package, package))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon"),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let prefix = format!("{package}: listening on ");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{package} never said where it listens"));
        if let Some(at) = line.strip_prefix(&prefix) {
            return (daemon, at.to_string());
        }
    }
}

/// Sends `signal` and waits for the exit code.
fn stop(daemon: &mut Daemon, signal: Signal) -> i32 {
    kill(Pid::from_raw(daemon.0.id() as i32), signal).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            return status.code().expect("exited, not killed");
        }
        assert!(Instant::now() < deadline, "did not exit after {signal:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_daemon_starts_and_stops_cleanly() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "host-cake",
            &["--directory-at-host=127.0.0.1:0", "--no-lan-autoconnect"],
        ),
        ("lan-cake", &["--directory-at-lan=127.0.0.1:0"]),
        ("group-cake", &["--accept-directories-at=127.0.0.1:0"]),
    ];
    for (i, (package, args)) in cases.into_iter().enumerate() {
        let (mut daemon, at) = start(package, args);
        assert!(
            at.starts_with("127.0.0.1:") && !at.ends_with(":0"),
            "{package}: {at}"
        );
        let signal = if i % 2 == 0 {
            Signal::SIGINT
        } else {
            Signal::SIGTERM
        };
        assert_eq!(stop(&mut daemon, signal), 0, "{package} after {signal:?}");
    }
}

#[test]
fn a_bad_flag_is_one_line_and_exit_2() {
    for package in ["host-cake", "lan-cake", "group-cake"] {
        let output = Command::new(workspace_binary(package, package))
            .arg("--directory-at-host=not-an-address")
            .arg("--no-such-flag")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{package}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{package}: {stderr}");
    }
}
