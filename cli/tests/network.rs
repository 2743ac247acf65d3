//! `layer-cake network` and `layer-cake ping` against a real tree: a
//! host-cake on an ephemeral port (never the standard one, never the LAN), a
//! group-cake under it and a worker process under the group. Every child is
//! killed when its test ends, however it ends.
//!
//! host-cake, group-cake and the worker (`test_worker_9` of the demos)
//! belong to other packages, so cargo does not build them for this test: it
//! runs `cargo build` for them itself, once per test binary, into the same
//! target directory — a no-op when they are up to date — so that `cargo test
//! -p layer-cake-cli` works from a clean tree.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(20);

/// `target/<profile>`: the directory above this test's `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// A binary of another workspace package; the ones this test needs are
/// built on first use.
fn workspace_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = bin_dir();
    let built = BUILT.get_or_init(|| {
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "host-cake", "-p", "group-cake"])
            .args(["-p", "layer-cake-demos"])
            // Target flags apply to every package named: each bin by name.
            .args(["--bin", "host-cake", "--bin", "group-cake"])
            .args(["--bin", "test_worker_9"])
            .arg("--target-dir")
            .arg(dir.parent().expect("a target directory"))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile {
            "debug" => {}
            "release" => {
                cargo.arg("--release");
            }
            other => {
                cargo.args(["--profile", other]);
            }
        }
        match cargo.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("cargo build of the daemons failed: {s}")),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    dir.join(name)
}

/// A running child whose stderr lines are read as they come; killed on drop.
struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(name: &str, args: &[String]) -> Proc {
        let mut child = Command::new(workspace_binary(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// The first line from now on containing `wanted`.
    fn line_with(&self, wanted: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(wanted) => return line,
                Ok(_) => {}
                Err(_) => panic!("{}: no line with {wanted:?} in time", self.name),
            }
        }
    }

    /// Where it listens, from its `listening on HOST:PORT` line.
    fn listening(&self) -> String {
        let line = self.line_with("listening on ");
        line.rsplit_once("listening on ")
            .unwrap()
            .1
            .trim()
            .to_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the CLI to completion (killed past the deadline).
fn layer_cake(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_layer-cake"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI starts");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("layer-cake {args:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// host-cake ← group-cake ← test_worker_9; answers the processes and where
/// host-cake listens.
fn tree() -> (Vec<Proc>, String) {
    let host = Proc::start(
        "host-cake",
        &[
            "--directory-at-host=127.0.0.1:0".into(),
            "--no-lan-autoconnect".into(),
        ],
    );
    let host_at = host.listening();
    let group = Proc::start(
        "group-cake",
        &[
            "--accept-directories-at=127.0.0.1:0".into(),
            format!("--directory-at-host={host_at}"),
        ],
    );
    let group_at = group.listening();
    let worker = Proc::start(
        "test_worker_9",
        &[format!("--connect-to-directory={group_at}")],
    );
    worker.line_with("published test-multihosting:worker-9");
    (vec![worker, group, host], host_at)
}

/// `network` until `done` accepts its output: the worker's listing reaches
/// the host a moment after the worker hears `Published`.
fn network_until(host_at: &str, flags: &[&str], done: impl Fn(&str) -> bool) -> String {
    let at = format!("--directory-at={host_at}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut args = vec!["network", at.as_str()];
        args.extend_from_slice(flags);
        let output = layer_cake(&args);
        let text = stdout(&output);
        assert!(
            output.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never complete:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn network_prints_the_live_tree() {
    let (_procs, host_at) = tree();
    let text = network_until(&host_at, &["--list-published"], |t| {
        t.contains("+   +   [PROCESS] test_worker_9 (")
    });
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("[HOST] host-cake ("), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("+   [GROUP] group-cake (")),
        "{text}"
    );
    // The publication is held at every level it passes: worker, group, host.
    let published: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("# \"test-multihosting:worker-9\" [HOST] ("))
        .collect();
    assert_eq!(published.len(), 3, "{text}");
    assert!(
        published
            .iter()
            .all(|l| l.ends_with(|c: char| c.is_ascii_digit())),
        "each with where it takes sessions: {text}"
    );

    // Addresses and whole ids.
    let output = layer_cake(&[
        "network",
        &format!("--directory-at={host_at}"),
        "--directory-addresses",
        "--full-identity",
    ]);
    let text = stdout(&output);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with(&format!("<C>(not set) <L>{host_at}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("<C>{host_at} <L>127.0.0.1:")),
        "the group under the host: {text}"
    );
    let id = text.split(['(', ')']).nth(1).unwrap();
    assert_eq!(id.len(), 36, "a whole uuid: {text}");
}

#[test]
fn network_fails_with_one_line_when_nothing_listens() {
    // A port that was free a moment ago.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = free.local_addr().unwrap();
    drop(free);
    let output = layer_cake(&["network", &format!("--directory-at={at}")]);
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8_lossy(&output.stderr);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.starts_with("layer-cake: cannot reach the directory at"),
        "{error}"
    );
}

#[test]
fn ping_times_round_trips_to_a_node_found_by_prefix() {
    let (_procs, host_at) = tree();
    let text = network_until(&host_at, &[], |t| t.contains("[PROCESS] test_worker_9 ("));
    let worker_line = text.lines().find(|l| l.contains("test_worker_9")).unwrap();
    let id = worker_line.split(['(', ')']).nth(1).unwrap();
    let at = format!("--directory-at={host_at}");

    let output = layer_cake(&["ping", &id[..6], "--ping-count=2", &at]);
    let pings = stdout(&output);
    assert!(
        output.status.success(),
        "{pings}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = pings.lines().collect();
    assert_eq!(lines.len(), 2, "{pings}");
    for (i, line) in lines.iter().enumerate() {
        let rest = line
            .strip_prefix(&format!("[{}] ", i + 1))
            .unwrap_or_else(|| panic!("{pings}"));
        let seconds: f64 = rest.strip_suffix('s').unwrap().parse().unwrap();
        assert!(seconds < 3.0, "{pings}");
    }

    // An id nobody has: one line, exit 1.
    let unknown = if id.starts_with('0') {
        "ffffffff"
    } else {
        "00000000"
    };
    let output = layer_cake(&["ping", unknown, &at]);
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8_lossy(&output.stderr);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.contains("no directory node has an id starting"),
        "{error}"
    );
}

#[test]
fn a_node_that_does_not_answer_is_shown_as_such() {
    let (procs, host_at) = tree();
    network_until(&host_at, &[], |t| t.contains("[PROCESS] test_worker_9 ("));
    // The worker is frozen: its connections stay open, nothing answers.
    let worker = &procs[0];
    let pid = nix::unistd::Pid::from_raw(worker.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let output = layer_cake(&[
        "network",
        &format!("--directory-at={host_at}"),
        "--answer-within=1",
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(started.elapsed() < PATIENCE);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("[HOST] host-cake ("), "{text}");
    assert!(lines[1].starts_with("+   [GROUP] group-cake ("), "{text}");
    assert_eq!(lines[2], "+   +   (no answer)", "{text}");
}
