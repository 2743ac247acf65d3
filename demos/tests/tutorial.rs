//! The tutorial's steps (`docs/tutorial.md`, `demos/examples/tutorial_*`)
//! run as the tutorial says, and print what it shows.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

use serde_json::Value;

mod support;

use support::procs::{Proc, host_cake};
use support::{bin_dir, http_get};

/// An example program of this package, built on first use: `cargo test`
/// builds the examples only when no target is named, and a build that is
/// up to date costs nothing.
fn example(name: &str) -> PathBuf {
    static BUILT: Once = Once::new();
    let dir = bin_dir();
    BUILT.call_once(|| {
        let target_dir = dir.parent().expect("a target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "layer-cake-demos", "--examples"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(other) => {
                cargo.args(["--profile", other]);
            }
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "cargo build --examples failed: {status}");
    });
    dir.join("examples").join(name)
}

/// The JSON body of `GET /Greet?name=Ann`.
fn greet(port: u16) -> Value {
    let (status, body) = http_get(port, "/Greet?name=Ann");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("a JSON body")
}

/// The greeting inside a `{"value":["unicode","hello …",[]]}` body.
fn greeting(body: &Value) -> String {
    assert_eq!(body["value"][0], "unicode", "{body}");
    body["value"][1].as_str().expect("a string").to_owned()
}

#[test]
fn step_1_an_actor_adds_and_the_process_prints_the_total() {
    let out = Command::new(example("tutorial_1_actor"))
        .arg("--count=4")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10\n");
    let out = Command::new(example("tutorial_1_actor"))
        .arg("--count=x")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tutorial_1_actor: --count: invalid value \"x\": invalid digit found in string\n"
    );
}

#[test]
fn step_2_an_http_request_is_a_message_and_the_reply_its_response() {
    let server = Proc::start(
        example("tutorial_2_http"),
        &["--server-address=127.0.0.1:0".into()],
    );
    let port = server.port();
    let body = greet(port);
    assert_eq!(body.to_string(), r#"{"value":["unicode","hello Ann",[]]}"#);
    let (status, _) = http_get(port, "/Greet");
    assert_eq!(status, 400, "no name: a bad request");
    server.kill();
}

#[test]
fn step_3_worker_processes_behind_a_spool_share_the_requests() {
    let server = Proc::start(
        example("tutorial_3_server"),
        &["--server-address=127.0.0.1:0".into(), "--workers=3".into()],
    );
    let port = server.port();
    // Every worker answers in turn (the idle ones share the work), once
    // all three have started.
    let mut workers = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + support::procs::PATIENCE;
    while workers.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "not every worker answered: {workers:?}"
        );
        let text = greeting(&greet(port));
        let pid = text
            .strip_prefix("hello Ann from worker ")
            .unwrap_or_else(|| panic!("{text}"));
        workers.insert(pid.to_owned());
    }
    server.kill();
}

#[test]
fn step_4_workers_found_through_the_directory_feed_the_spool() {
    let (_host, at) = host_cake();
    let server = Proc::start(
        example("tutorial_4_server"),
        &["--server-address=127.0.0.1:0".into(), at.clone()],
    );
    let port = server.port();
    let first = Proc::start(example("tutorial_4_worker"), std::slice::from_ref(&at));
    let second = Proc::start(example("tutorial_4_worker"), std::slice::from_ref(&at));
    first.line_with("published tutorial-greeter:");
    second.line_with("published tutorial-greeter:");
    server.line_with("(1 in all)");
    server.line_with("(2 in all)");
    let text = greeting(&greet(port));
    assert!(text.starts_with("hello Ann from worker "), "{text}");
    // A worker killed: dropped from the spool; the other answers.
    let gone = first.child.id();
    first.kill();
    server.line_with(&format!("tutorial-greeter:{gone} dropped (1 left)"));
    let text = greeting(&greet(port));
    assert_eq!(text, format!("hello Ann from worker {}", second.child.id()));
    server.kill();
    second.kill();
}

/// The code `docs/tutorial.md` shows is the examples' code: each example,
/// without its leading `//!` comment, is one of the page's Rust blocks
/// (hidden `# ` lines left out, `hello_cake` for this package's
/// `layer_cake_demos::tutorial`).
#[test]
fn the_tutorial_shows_the_examples_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("../docs/tutorial.md")).expect("the page");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match &mut current {
            None if line.starts_with("```rust") => current = Some(String::new()),
            Some(block) if line == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) if line == "#" || line.starts_with("# ") => {}
            Some(block) => {
                block.push_str(&line.replace("hello_cake::", "layer_cake_demos::tutorial::"));
                block.push('\n');
            }
            None => {}
        }
    }
    let sorted_uses = |code: &str| {
        // The page's `use hello_cake::…` sits where rustfmt would not put
        // it: compare the `use` lines as a set.
        let (mut uses, rest): (Vec<&str>, Vec<&str>) =
            code.lines().partition(|l| l.starts_with("use "));
        uses.sort_unstable();
        (uses.join("\n"), rest.join("\n").trim().to_owned())
    };
    let shown: Vec<_> = blocks.iter().map(|b| sorted_uses(b)).collect();
    for name in [
        "tutorial_1_actor",
        "tutorial_2_http",
        "tutorial_3_worker",
        "tutorial_3_server",
        "tutorial_4_worker",
        "tutorial_4_server",
    ] {
        let source =
            std::fs::read_to_string(root.join(format!("examples/{name}.rs"))).expect("the example");
        let code: String = source
            .lines()
            .skip_while(|l| l.starts_with("//!"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            shown.contains(&sorted_uses(&code)),
            "docs/tutorial.md does not show examples/{name}.rs as it is"
        );
    }
    let lib = std::fs::read_to_string(root.join("src/tutorial.rs")).expect("the module");
    let lib: String = lib
        .lines()
        .skip_while(|l| l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        shown.contains(&sorted_uses(&lib)),
        "docs/tutorial.md does not show src/tutorial.rs as it is"
    );
}
