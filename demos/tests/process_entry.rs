//! The process entry point, exercised through real demo processes.
//!
//! Every wait has a generous deadline (the machine may be a loaded 2-core
//! box), readiness is read from the child's output rather than guessed with
//! a sleep, and a child still running when a test fails is killed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long any child may take to answer or to exit.
const PATIENCE: Duration = Duration::from_secs(20);

const TEXTURE: &str = env!("CARGO_BIN_EXE_texture");
const TIMERS: &str = env!("CARGO_BIN_EXE_timers");

/// Runs `program` to completion (killing it after [`PATIENCE`]) and returns
/// its output.
fn run(program: &str, args: &[&str]) -> Output {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let pid = Pid::from_raw(child.id() as i32);
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("the demo's output"),
        Err(_) => {
            // The waiting thread still owns the child and reaps it.
            let _ = signal::kill(pid, Signal::SIGKILL);
            panic!("{program} {args:?} did not finish within {PATIENCE:?}");
        }
    }
}

/// Kills the child if the test ends while it is still running.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_table(value: &Value, rows: usize, columns: usize) {
    let table = value.as_array().expect("a table");
    assert_eq!(table.len(), rows, "{value}");
    for row in table {
        let row = row.as_array().expect("a row");
        assert_eq!(row.len(), columns, "{value}");
        assert!(
            row.iter()
                .all(|v| v.as_f64().is_some_and(|f| (0.0..1.0).contains(&f)))
        );
    }
}

#[test]
fn texture_prints_the_table() {
    let out = run(TEXTURE, &["--x=2", "--y=2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let value: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_table(&value, 2, 2);
    // Pretty unless --child-process.
    assert!(text(&out.stdout).contains("\n  "));

    let out = run(TEXTURE, &["--x=3", "--y=1", "--child-process"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.matches('\n').count(),
        1,
        "one compact line: {stdout}"
    );
    assert_table(&serde_json::from_str(&stdout).unwrap(), 1, 3);
}

#[test]
fn full_output_is_the_typed_envelope() {
    let out = run(TEXTURE, &["--x=2", "--y=2", "--full-output"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let value: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let envelope = value["value"].as_array().expect("{\"value\":[...]}");
    assert_eq!(envelope.len(), 3);
    assert_eq!(envelope[0], "vector<vector<float8>>");
    assert_table(&envelope[1], 2, 2);
    assert_eq!(envelope[2], Value::Array(vec![]));

    let out = run(TEXTURE, &["--x=1", "--full-output", "--child-process"]);
    assert!(text(&out.stdout).starts_with(r#"{"value":["vector<vector<float8>>",[["#));
}

#[test]
fn a_fault_exits_71_with_the_fault_on_stderr() {
    let out = run(TEXTURE, &["--x=-1"]);
    assert_eq!(out.status.code(), Some(71));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "texture: bad dimensions (x=-1, y=1: both must be 0 or more)\n"
    );

    // With --full-output the fault is the output.
    let out = run(TEXTURE, &["--x=-1", "--full-output"]);
    assert_eq!(out.status.code(), Some(71));
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["value"][0], "Faulted");
    assert_eq!(value["value"][1]["condition"], "bad dimensions");
}

/// A bad command line: exit 2, nothing on stdout, one line on stderr
/// containing `needle`.
fn assert_usage_error(args: &[&str], needle: &str) {
    let out = run(TEXTURE, args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(text(&out.stdout), "", "{args:?}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("texture: "), "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn bad_command_lines_exit_2_naming_the_flag() {
    assert_usage_error(&["--z=1"], "unknown flag --z (expected one of --x, --y)");
    assert_usage_error(&["--x=abc"], "--x: invalid value \"abc\"");
    assert_usage_error(
        &["--debug-level=NOPE"],
        "--debug-level: invalid value \"NOPE\"",
    );
    assert_usage_error(&["--x=1", "--x=2"], "--x given twice");
    assert_usage_error(&["2"], "unexpected argument \"2\"");
    // Not standard flags (docs/processes.md): refused, not ignored.
    assert_usage_error(
        &["--directory-scope=GROUP"],
        "unknown flag --directory-scope",
    );
    assert_usage_error(
        &["--accept-directories-at=127.0.0.1:0"],
        "unknown flag --accept-directories-at",
    );
}

#[test]
fn dump_types_lists_what_the_program_can_decode() {
    let out = run(TEXTURE, &["--dump-types", "--x=1"]);
    assert_eq!(out.status.code(), Some(0));
    let types = text(&out.stdout);
    let lines: Vec<&str> = types.lines().collect();
    for wanted in ["Faulted", "Stop", "Xy", "float8"] {
        assert!(lines.contains(&wanted), "{wanted} in {types}");
    }
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted, "one per line, sorted");
}

#[test]
fn help_lists_the_flags() {
    let out = run(TEXTURE, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in [
        "--x",
        "--y",
        "--debug-level=LEVEL",
        "--full-output",
        "--output-file=PATH",
    ] {
        assert!(help.contains(needle), "{needle} in {help}");
    }
}

#[test]
fn short_forms_and_output_file() {
    let path = std::env::temp_dir().join(format!("texture-{}.json", std::process::id()));
    let file = format!("--output-file={}", path.display());
    let out = run(TEXTURE, &["-x=2", "-y=3", "-cp", &file]);
    let written = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_table(&serde_json::from_str(&written.unwrap()).unwrap(), 3, 2);
}

#[test]
fn timers_end_by_themselves() {
    let out = run(TIMERS, &["--ticks=3", "--every=20ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["ticks"], 3);
}

/// Waits for the child to exit, up to [`PATIENCE`].
fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the child did not exit within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to a running `timers` once it has ticked, and expects the
/// main actor to be stopped: `Aborted`, exit 71.
fn stopped_by(sig: Signal) {
    let child = Command::new(TIMERS)
        .args(["--ticks=0", "--every=50ms", "--debug-level=CONSOLE"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("timers starts");
    let mut guard = Guard(Some(child));
    let child = guard.0.as_mut().unwrap();

    // Read stderr on a thread, line by line, until the pipe closes.
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no tick within {PATIENCE:?}; stderr: {seen:?}"));
        let ready = line.contains("tick 1");
        seen.push(line);
        if ready {
            break;
        }
    }

    signal::kill(Pid::from_raw(child.id() as i32), sig).expect("signal sent");
    let status = wait(child);
    reader.join().expect("the reader ends with the pipe");
    seen.extend(received.try_iter());
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();

    assert_eq!(
        status.code(),
        Some(71),
        "{sig}: {status:?}, stderr: {seen:?}"
    );
    assert_eq!(stdout, "");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("timers: aborted (user or software interrupt)"),
        "{sig}: {seen:?}"
    );
}

#[test]
fn sigint_stops_the_main_actor() {
    stopped_by(Signal::SIGINT);
}

#[test]
fn sigterm_stops_the_main_actor() {
    stopped_by(Signal::SIGTERM);
}
