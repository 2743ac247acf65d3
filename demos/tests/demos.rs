//! Each demo runs to its end and prints what its doc comment says.
//!
//! Only outcomes are checked, never timings: the demos' own timers are
//! short, and each run has a generous deadline.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(20);

/// Runs a demo to completion (killed after [`PATIENCE`]).
fn run(program: &str, args: &[&str]) -> Output {
    let child = Command::new(program)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("the demo's output"),
        Err(_) => {
            // The waiting thread still owns the child and reaps it.
            let _ = signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            panic!("{program} {args:?} did not finish within {PATIENCE:?}");
        }
    }
}

fn json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn actors_collects_values_faults_answers_and_aborts() {
    let story = json(&run(env!("CARGO_BIN_EXE_actors"), &["--workers=3"]));
    let lines: Vec<&str> = story
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        lines[..6],
        [
            "worker 1 returned a 1x1 table",
            "worker 2 returned a 2x2 table",
            "worker 3 faulted: actor panicked (worker 3 gave up)",
            "doubler answered 42",
            "the ignored question timed out (timed out)",
            "3 children still working, aborted",
        ]
    );
    assert_eq!(lines[6..], ["aborted (user or software interrupt)"; 3]);
}

#[test]
fn state_machine_lets_the_visitors_through() {
    let seen = json(&run(
        env!("CARGO_BIN_EXE_state_machine"),
        &["--passes=2", "--visitors-every=20ms", "--coins-every=50ms"],
    ));
    assert_eq!(seen["passes"], 2);
    // Every pass needed a coin (a relock may have wasted some).
    assert!(seen["coins"].as_u64().unwrap() >= 2, "{seen}");
}

#[test]
fn supervised_restarts_until_it_succeeds_or_gives_up() {
    let story = json(&run(env!("CARGO_BIN_EXE_supervised"), &["--failures=2"]));
    assert_eq!(
        story,
        serde_json::json!([
            "restart 1 after 100ms: worker failed (run 1)",
            "restart 2 after 200ms: actor panicked (run 2)",
            "worker succeeded on run 3"
        ])
    );
    let out = run(env!("CARGO_BIN_EXE_supervised"), &["--failures=9"]);
    assert_eq!(out.status.code(), Some(71));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some("supervised: actor panicked (run 6)"),
        "{stderr}"
    );
}
