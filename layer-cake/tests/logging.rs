//! The public logging API: `layer_cake::log`.
//!
//! `init` installs the process-wide subscriber, so it is exercised in one
//! test only (and in a child process for the stderr output); the others use
//! a thread-local subscriber over a `LogCapture`.

use std::process::Command;

use layer_cake::log::{self, DebugLevel, LogCapture, LogLayer, OBJECT_TARGET, tag};
use regex::Regex;
use tracing_subscriber::layer::SubscriberExt;

fn captured(level: Option<DebugLevel>, f: impl FnOnce()) -> Vec<String> {
    let capture = LogCapture::new();
    let layer = LogLayer::new(level, capture.clone());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    capture.lines()
}

/// What the runtime does: an actor task inside an `actor` span, object lines
/// on the object target, application output with `info!`.
fn an_actor_session() {
    let span = tracing::info_span!(
        target: "layer_cake::actor",
        "actor",
        id = 14u64,
        name = "server",
        state = tracing::field::Empty
    );
    span.in_scope(|| {
        tracing::debug!(target: OBJECT_TARGET, tag = tag::CREATED, "Created by <00000001>");
    });
    span.record("state", "READY");
    span.in_scope(|| {
        tracing::debug!(target: OBJECT_TARGET, "Received Start from <00000001>");
        tracing::info!(number = 10, ratio = 0.25, "Upper left");
        tracing::debug!(target: OBJECT_TARGET, tag = tag::SENT, "Sent Stop to <00000010>");
        tracing::debug!("internal detail");
        tracing::warn!("running low");
    });
}

#[test]
fn an_application_log_is_a_console_line_with_the_actor() {
    let lines = captured(Some(DebugLevel::CONSOLE), an_actor_session);
    let shape = Regex::new(
        r"^\[(\d{8})\] \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3} (.) <0000000e>server\[READY\] - (.*)$",
    )
    .unwrap();
    let parsed: Vec<(String, String)> = lines
        .iter()
        .map(|line| {
            let c = shape
                .captures(line)
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            assert_eq!(c[1].parse::<u32>().unwrap(), std::process::id());
            (c[2].to_owned(), c[3].to_owned())
        })
        .collect();
    assert_eq!(
        parsed,
        [
            (
                "^".to_owned(),
                "Upper left (number=10,ratio=0.25)".to_owned()
            ),
            ("?".to_owned(), "running low".to_owned()),
        ]
    );
}

#[test]
fn object_level_adds_the_runtime_lines() {
    let lines = captured(Some(DebugLevel::OBJECT), an_actor_session);
    let tails: Vec<&str> = lines.iter().map(|l| &l[35..]).collect();
    assert_eq!(
        tails,
        [
            "+ <0000000e>server - Created by <00000001>",
            "< <0000000e>server[READY] - Received Start from <00000001>",
            "^ <0000000e>server[READY] - Upper left (number=10,ratio=0.25)",
            "> <0000000e>server[READY] - Sent Stop to <00000010>",
            "? <0000000e>server[READY] - running low",
        ]
    );
    let all = captured(Some(DebugLevel::TRACE), an_actor_session);
    assert_eq!(all.len(), 6);
    assert!(
        all[4].ends_with(" ~ <0000000e>server[READY] - internal detail"),
        "{}",
        all[4]
    );
}

#[test]
fn without_a_level_nothing_is_written() {
    assert!(captured(None, an_actor_session).is_empty());
}

#[test]
fn the_flag_value_parses() {
    let level: DebugLevel = "OBJECT".parse().unwrap();
    assert_eq!(level, DebugLevel::OBJECT);
    assert_eq!(level.to_string(), "OBJECT");
    let err = "VERBOSE".parse::<DebugLevel>().unwrap_err().to_string();
    assert!(err.contains("VERBOSE") && err.contains("CONSOLE"), "{err}");
    // serde uses the same names, so a flag decoder can take them verbatim.
    assert_eq!(
        serde_json::to_string(&DebugLevel::FAULT).unwrap(),
        "\"FAULT\""
    );
    assert_eq!(
        serde_json::from_str::<DebugLevel>("\"WARNING\"").unwrap(),
        DebugLevel::WARNING
    );
}

/// Run as a child process by `init_writes_to_stderr_once`: installs the
/// global subscriber from the environment and logs.
#[test]
#[ignore = "run by init_writes_to_stderr_once in a child process"]
fn child_init_and_log() {
    let level = std::env::var("LC_TEST_LEVEL")
        .ok()
        .map(|l| l.parse::<DebugLevel>().unwrap());
    assert!(log::init(level));
    assert!(
        !log::init(Some(DebugLevel::DEBUG)),
        "a second init installs nothing"
    );
    assert_eq!(log::installed_level(), Some(level));
    println!("object_enabled={}", log::object_enabled());
    // The static check every disabled event meets first.
    println!(
        "max_level={}",
        tracing::level_filters::LevelFilter::current()
    );
    an_actor_session();
    tracing::error!(actor = 0x15u64, name = "client", "Faulted");
}

fn run_child(level: Option<&str>) -> (String, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        "--ignored",
        "--exact",
        "child_init_and_log",
        "--nocapture",
        "--test-threads=1",
    ]);
    match level {
        Some(level) => command.env("LC_TEST_LEVEL", level),
        None => command.env_remove("LC_TEST_LEVEL"),
    };
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

fn log_lines(stderr: &str) -> Vec<&str> {
    let line = Regex::new(r"^\[\d{8}\] \d{4}-\d{2}-\d{2}T").unwrap();
    stderr.lines().filter(|l| line.is_match(l)).collect()
}

#[test]
fn init_writes_to_stderr_once() {
    let (stdout, stderr) = run_child(Some("OBJECT"));
    assert!(stdout.contains("object_enabled=true"), "{stdout}");
    assert!(stdout.contains("max_level=debug"), "{stdout}");
    let lines = log_lines(&stderr);
    assert_eq!(lines.len(), 6, "{stderr}");
    assert!(
        lines[0].ends_with(" + <0000000e>server - Created by <00000001>"),
        "{stderr}"
    );
    assert!(
        lines[5].ends_with(" ! <00000015>client - Faulted"),
        "{stderr}"
    );

    let (stdout, stderr) = run_child(Some("FAULT"));
    assert!(stdout.contains("object_enabled=false"), "{stdout}");
    assert!(stdout.contains("max_level=info"), "{stdout}");
    let lines = log_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].ends_with(" ! <00000015>client - Faulted"),
        "{stderr}"
    );

    let (stdout, stderr) = run_child(None);
    assert!(stdout.contains("object_enabled=false"), "{stdout}");
    assert!(stdout.contains("max_level=off"), "{stdout}");
    assert!(log_lines(&stderr).is_empty(), "{stderr}");
}
