//! `layer-cake network` and `layer-cake ping` against a real tree: a
//! host-cake on an ephemeral port (never the standard one, never the LAN), a
//! group-cake under it and a worker process under the group; and a whole
//! LAN on loopback: a lan-cake and two host-cakes under it on ephemeral
//! ports, a group-cake with a publishing worker under one and a subscribing
//! server under the other. Every child is killed when its test ends, however
//! it ends.
//!
//! The daemons and the roles (`test_worker_9`, `test_worker_10` and
//! `test_server_10` of the demos) belong to other packages, so cargo does not build them for this test: it
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
            .args(["-p", "lan-cake", "-p", "layer-cake-demos"])
            // Target flags apply to every package named: each bin by name.
            .args([
                "--bin",
                "host-cake",
                "--bin",
                "group-cake",
                "--bin",
                "lan-cake",
            ])
            .args(["--bin", "test_worker_9", "--bin", "test_worker_10"])
            .args(["--bin", "test_server_10"])
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
    // The CLI itself, under the node it connected to: last, as the
    // narrower level.
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("+   [PROCESS] layer-cake ("),
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

/// The id a node line shows: what is between its first parentheses.
fn id_of(line: &str) -> &str {
    line.split(['(', ')']).nth(1).unwrap()
}

/// The LAN on loopback: lan-cake ← host-cake A ← group-cake ←
/// test_worker_10 (publishing at LAN), and lan-cake ← host-cake B ←
/// test_server_10 (subscribing at LAN). Answers the processes and where
/// host A, host B and the group listen, once the server has the worker.
fn lan_tree() -> (Vec<Proc>, String, String, String) {
    let lan = Proc::start("lan-cake", &["--directory-at-lan=127.0.0.1:0".into()]);
    let lan_at = lan.listening();
    let host = |lan_at: &str| {
        let host = Proc::start(
            "host-cake",
            &[
                "--directory-at-host=127.0.0.1:0".into(),
                format!("--directory-at-lan={lan_at}"),
            ],
        );
        let at = host.listening();
        (host, at)
    };
    let (host_a, a_at) = host(&lan_at);
    let (host_b, b_at) = host(&lan_at);
    let group = Proc::start(
        "group-cake",
        &[
            "--accept-directories-at=127.0.0.1:0".into(),
            format!("--directory-at-host={a_at}"),
        ],
    );
    let group_at = group.listening();
    let worker = Proc::start(
        "test_worker_10",
        &[
            format!("--connect-to-directory={group_at}"),
            "--scope=LAN".into(),
        ],
    );
    let server = Proc::start(
        "test_server_10",
        &[
            format!("--connect-to-directory={b_at}"),
            "--scope=LAN".into(),
            "--server-address=127.0.0.1:0".into(),
        ],
    );
    server.line_with("test_server_10: worker available test-multihosting:worker-10:");
    (
        vec![server, worker, group, host_b, host_a, lan],
        a_at,
        b_at,
        group_at,
    )
}

#[test]
fn network_climbs_to_the_lan_root_and_lists_the_routes() {
    let (_procs, a_at, b_at, group_at) = lan_tree();
    // Pointed at host B: the tree from lan-cake, host A included.
    let text = network_until(&b_at, &["--list-routed", "--list-published"], |t| {
        t.contains("+   +   +   [PROCESS] test_worker_10 (")
            && t.contains("+   +   [PROCESS] test_server_10 (")
    });
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("[LAN] lan-cake ("), "{text}");
    let hosts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("+   [HOST] host-cake ("))
        .collect();
    assert_eq!(hosts.len(), 2, "{text}");
    // Each host's block runs to the next host line (or the end).
    let block = |i: usize| {
        let end = hosts
            .iter()
            .copied()
            .find(|&h| h > i)
            .unwrap_or(lines.len());
        &lines[i + 1..end]
    };
    let has = |i: usize, start: &str| block(i).iter().any(|l| l.starts_with(start));
    let a = *hosts
        .iter()
        .find(|&&h| has(h, "+   +   [GROUP] group-cake ("))
        .unwrap_or_else(|| panic!("no host with the group: {text}"));
    let b = *hosts.iter().find(|&&h| h != a).unwrap();
    assert!(has(a, "+   +   +   [PROCESS] test_worker_10 ("), "{text}");
    assert!(has(b, "+   +   [PROCESS] test_server_10 ("), "{text}");
    // The CLI, under host B, which it connected to; nowhere else.
    assert!(has(b, "+   +   [PROCESS] layer-cake ("), "{text}");
    assert_eq!(text.matches("[PROCESS] layer-cake (").count(), 1, "{text}");
    // One route, at lan-cake: the only node holding both the subscription
    // and the publication. Its publication is shown by the same tag as the
    // publication's line at lan-cake.
    let routes: Vec<&&str> = lines.iter().filter(|l| l.contains("<> ")).collect();
    assert_eq!(routes.len(), 1, "{text}");
    let route = routes[0];
    assert!(
        route.starts_with("+   <> \"test-multihosting:worker-10:"),
        "{text}"
    );
    let (sub, publ) = id_of(route).split_once(" -> ").unwrap();
    assert_eq!((sub.len(), publ.len()), (8, 8), "{text}");
    let published_at_lan = lines[1..hosts[0]]
        .iter()
        .find(|l| l.starts_with("+   # \"test-multihosting:worker-10:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        published_at_lan.contains(&format!("[LAN] ({publ}) 127.0.0.1:")),
        "{text}"
    );
    // So do the worker's own process node, the group and host A: the
    // publication's tag is the same at every node that holds it.
    assert!(
        text.contains("+   +   +   +   # \"test-multihosting:worker-10:"),
        "{text}"
    );
    assert_eq!(text.matches(&format!("({publ})")).count(), 4, "{text}");

    // --open-scope=HOST, pointed at host A: the tree from host A.
    let host_a_id = id_of(lines[a]);
    let text = network_until(&a_at, &["--open-scope=HOST"], |t| {
        t.contains("[PROCESS] test_worker_10 (")
    });
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("[HOST] host-cake ({host_a_id})"),
        "{text}"
    );
    assert!(!text.contains("[LAN]"), "{text}");
    assert!(lines[1].starts_with("+   [GROUP] group-cake ("), "{text}");
    assert!(
        lines[2].starts_with("+   +   [PROCESS] test_worker_10 ("),
        "{text}"
    );
    assert!(lines[3].starts_with("+   [PROCESS] layer-cake ("), "{text}");
    assert_eq!(lines.len(), 4, "{text}");

    // --open-scope=GROUP, pointed at the group: the group is the top.
    let text = network_until(&group_at, &["--open-scope=group"], |t| {
        t.contains("[PROCESS] test_worker_10 (")
    });
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("[GROUP] group-cake ("), "{text}");
    assert_eq!(lines.len(), 3, "{text}");

    // ping climbs the same way: host A, found in the tree from the root.
    let output = layer_cake(&[
        "ping",
        &host_a_id[..6],
        "--ping-count=1",
        &format!("--directory-at={b_at}"),
    ]);
    let pings = stdout(&output);
    assert!(
        output.status.success(),
        "{pings}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        pings.starts_with("[1] ") && pings.trim_end().ends_with('s'),
        "{pings}"
    );
    // With --open-scope=HOST from host B, host A is not in reach.
    let output = layer_cake(&[
        "ping",
        &host_a_id[..6],
        "--open-scope=HOST",
        &format!("--directory-at={b_at}"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("no directory node has an id starting"),
        "{error}"
    );
}

#[test]
fn a_bad_open_scope_is_refused_by_name() {
    let output = layer_cake(&["network", "--open-scope=PROCESS"]);
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("\"PROCESS\" is not GROUP, HOST or LAN"),
        "{error}"
    );
}
