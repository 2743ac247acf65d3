//! The seed scenario end to end, with real processes: a home with a
//! `test_server_10` and eight `test_worker_10`s, `layer-cake run`, HTTP
//! requests answered with tables, the group under host-cake in `layer-cake
//! network`, a hand-started worker joining the pool, a worker killed under
//! load and restarted with no request failing, and Ctrl-C stopping
//! everything. host-cake runs on an ephemeral port (never the standard
//! one, never the LAN). Whatever the test started is killed when it ends,
//! however it ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

const PATIENCE: Duration = Duration::from_secs(30);

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// Builds host-cake, group-cake and the demo roles into this target
/// directory (a no-op when up to date).
fn build_executables() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let dir = bin_dir();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "group-cake", "-p", "host-cake"])
            .args(["-p", "layer-cake-demos"])
            .args(["--bin", "group-cake", "--bin", "host-cake"])
            .args(["--bin", "test_server_10", "--bin", "test_worker_10"])
            .arg("--target-dir")
            .arg(dir.parent().expect("a target directory"))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        assert!(
            cargo.status().expect("cargo runs").success(),
            "the executables build"
        );
    });
}

/// A child process whose stderr lines are read as they come; SIGINT, then
/// SIGKILL, on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc { child, lines }
    }

    fn line_with(&self, wanted: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(wanted) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {wanted:?} in time"),
            }
        }
    }

    fn interrupt_and_wait(&mut self) -> std::process::ExitStatus {
        let _ = signal::kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "ends after SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// Kills the home's group-cake (its roles follow through their lifelines)
/// if it is still running when the test ends.
struct HomeGuard(PathBuf);

impl Drop for HomeGuard {
    fn drop(&mut self) {
        let Ok(home) = layer_cake::home::Home::open(&self.0) else {
            return;
        };
        for role in home.roles().unwrap_or_default() {
            if let Some(r) = role.running()
                && r.pid != 0
            {
                let _ = signal::kill(Pid::from_raw(r.pid as i32), Signal::SIGKILL);
            }
        }
    }
}

fn cli(dir: &Path) -> Command {
    build_executables();
    let mut command = Command::new(env!("CARGO_BIN_EXE_layer-cake"));
    command.current_dir(dir);
    command
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out: Output = cli(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "layer-cake {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A port free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET /Xy?x=..&y=..: the status and whether the body is an x×y table.
fn get_table(port: u16, x: usize, y: usize) -> (u16, bool) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, false);
    };
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = write!(
        stream,
        "GET /Xy?x={x}&y={y} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    if stream.read_to_end(&mut raw).is_err() {
        return (0, false);
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let ok = serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
        v["value"][1].as_array().is_some_and(|rows| {
            rows.len() == y
                && rows
                    .iter()
                    .all(|r| r.as_array().is_some_and(|r| r.len() == x))
        })
    });
    (status, ok)
}

/// The pid of each running role, from `status --long-listing`.
fn running(dir: &Path) -> Vec<(String, i32)> {
    let out = cli(dir).args(["status", "-l"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            Some((words.first()?.to_string(), words.get(2)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_seed_scenario_runs_a_server_and_eight_workers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    build_executables();
    let mut host = Command::new(bin_dir().join("host-cake"));
    host.args(["--directory-at-host=127.0.0.1:0", "--no-lan-autoconnect"]);
    let host = Proc::start(host);
    let host_at = host
        .line_with("listening on ")
        .rsplit_once("listening on ")
        .unwrap()
        .1
        .trim()
        .to_owned();
    let port = free_port();

    ok(
        d,
        &[
            "create",
            &format!("--directory-at-host={host_at}"),
            r#"--retry={"regular_steps": 1.0}"#,
        ],
    );
    ok(
        d,
        &[
            "add",
            "test_server_10",
            "server",
            &format!("--server-address=127.0.0.1:{port}"),
        ],
    );
    ok(d, &["add", "test_worker_10", "worker", "--role-count=8"]);
    let listed = ok(d, &["list", "--long-listing"]);
    assert_eq!(listed.lines().count(), 9, "{listed}");

    let _guard = HomeGuard(d.join(".layer-cake"));
    let mut run = cli(d);
    run.arg("run");
    let started = Instant::now();
    let mut run = Proc::start(run);

    // The first table.
    let deadline = Instant::now() + PATIENCE;
    while get_table(port, 2, 2) != (200, true) {
        assert!(Instant::now() < deadline, "no table in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "first table {:.2}s after `layer-cake run`",
        started.elapsed().as_secs_f64()
    );
    run.line_with("(8 in all)");
    assert_eq!(running(d).len(), 10, "the group and its 9 roles");

    // The group sits under host-cake.
    let tree = ok(d, &["network", &format!("--directory-at={host_at}")]);
    assert!(tree.contains("GROUP"), "{tree}");

    // A worker started by hand, through host-cake, joins the pool.
    let mut extra = Command::new(bin_dir().join("test_worker_10"));
    extra.arg(format!("--connect-to-directory={host_at}"));
    let _extra = Proc::start(extra);
    run.line_with("(9 in all)");

    // A worker killed under load: no request fails, and it comes back.
    let victim = running(d)
        .into_iter()
        .find(|(r, _)| r == "worker-3")
        .unwrap()
        .1;
    let load: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                (0..60)
                    .map(|i| get_table(port, 1 + (c + i) % 4, 2))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    signal::kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    for client in load {
        for answer in client.join().unwrap() {
            assert_eq!(answer, (200, true));
        }
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let back = running(d)
            .into_iter()
            .any(|(r, pid)| r == "worker-3" && pid != victim);
        if back {
            break;
        }
        assert!(Instant::now() < deadline, "worker-3 was not restarted");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "worker-3 restarted {:.2}s after SIGKILL (retry 1 s)",
        killed.elapsed().as_secs_f64()
    );
    let history = ok(d, &["history", "worker-3"]);
    assert_eq!(history.lines().count(), 2, "{history}");
    assert!(
        history.lines().next().unwrap().contains("(Faulted)"),
        "{history}"
    );

    // Ctrl-C stops everything.
    let pids: Vec<i32> = running(d).into_iter().map(|(_, pid)| pid).collect();
    let status = run.interrupt_and_wait();
    assert!(
        !status.success(),
        "an interrupted run ends with the group's Aborted"
    );
    let out = cli(d).arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is running"));
    for pid in pids {
        assert!(
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z")),
            "process {pid} outlived the run"
        );
    }
}
