//! Helpers shared by the CLI's integration tests and its `run` bench
//! (`mod support;`, or `#[path]` from `benches/`): where the binaries are,
//! building the ones the roles run, processes read line by line, and
//! `layer-cake` itself run in a folder. Each user takes part of them.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// Generous: the machine is a loaded 2-core box.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// `target/<profile>`: the directory above the test's `deps/`, where the
/// CLI finds the executables the roles run.
pub(crate) fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// Builds, once, what the homes of these tests run — group-cake, host-cake
/// and the demo roles — into this target directory and profile: cargo
/// builds only this package's binaries for its tests, and a build that is
/// up to date costs nothing.
pub(crate) fn build_executables() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let dir = bin_dir();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "group-cake", "-p", "host-cake"])
            .args(["-p", "layer-cake-demos", "-p", "layer-cake-cli"])
            .args([
                "--bin",
                "group-cake",
                "--bin",
                "host-cake",
                "--bin",
                "layer-cake",
            ])
            .args(["--bin", "test_server_10", "--bin", "test_worker_10"])
            .args(["--bin", "test_function_5"])
            .args(["--bin", "test_server_7", "--bin", "test_worker_7"])
            .args(["--bin", "prime_server", "--bin", "prime_parse"])
            .args(["--bin", "prime_compute"])
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

/// A child process whose stderr lines are read as they come; on drop,
/// SIGINT, then SIGKILL if it has not ended within the patience.
pub(crate) struct Proc {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub(crate) fn start(mut command: Command) -> Proc {
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

    /// The first line from now on containing `wanted`.
    pub(crate) fn line_with(&self, wanted: &str) -> String {
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

    /// Every line from now on up to the first containing `wanted`, that
    /// one included.
    pub(crate) fn lines_until(&self, wanted: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(wanted);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(_) => panic!(
                    "no line with {wanted:?} in time; got:\n{}",
                    lines.join("\n")
                ),
            }
        }
    }

    /// Every line from now on until its stderr closes (it has ended, and
    /// so has everything that shared its stderr), or the patience runs out.
    pub(crate) fn rest_of_lines(&self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => return lines,
            }
        }
    }

    /// Where it listens, from its `listening on HOST:PORT` line.
    pub(crate) fn listening(&self) -> String {
        let line = self.line_with("listening on ");
        line.rsplit_once("listening on ")
            .unwrap()
            .1
            .trim()
            .to_owned()
    }

    /// SIGINT, and its exit status once it has ended.
    pub(crate) fn interrupt_and_wait(&mut self) -> std::process::ExitStatus {
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
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = signal::kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A host-cake on an ephemeral port (never the standard one, never the
/// LAN), and where it listens.
pub(crate) fn host_cake() -> (Proc, String) {
    build_executables();
    let mut command = Command::new(bin_dir().join("host-cake"));
    command.args(["--directory-at-host=127.0.0.1:0", "--no-lan-autoconnect"]);
    let host = Proc::start(command);
    let at = host.listening();
    (host, at)
}

/// `layer-cake` to run in `dir`.
pub(crate) fn cli(dir: &Path) -> Command {
    build_executables();
    let mut command = Command::new(bin_dir().join("layer-cake"));
    command.current_dir(dir);
    command
}

/// Runs a `layer-cake` command that must succeed; its stdout.
pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "layer-cake {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The seed's home in `dir`: group-cake under the host-cake at `host_at`
/// with a 1 s retry, a `test_server_10` on `port`, eight `test_worker_10`.
pub(crate) fn seed_home(dir: &Path, host_at: &str, port: u16) {
    ok(
        dir,
        &[
            "create",
            &format!("--directory-at-host={host_at}"),
            r#"--retry={"regular_steps": 1.0}"#,
        ],
    );
    let server_address = format!("--server-address=127.0.0.1:{port}");
    ok(dir, &["add", "test_server_10", "server", &server_address]);
    ok(dir, &["add", "test_worker_10", "worker", "--role-count=8"]);
}

/// Sends `request` on a fresh connection: the status and the body (0 and
/// nothing when the server is not there yet).
pub(crate) fn exchange(port: u16, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut raw = Vec::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_end(&mut raw).is_err() {
        return (0, String::new());
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// A port free right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The pid of each running role (the group and sub-roles included), from
/// `status --long-listing`.
pub(crate) fn running(dir: &Path) -> Vec<(String, i32)> {
    let out = cli(dir)
        .args(["status", "-l", "--group-role", "--sub-roles"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let pid: i32 = words.get(2)?.parse().ok()?;
            // Never 0: kill(0, …) would signal our own process group.
            (pid > 0).then(|| (words[0].to_string(), pid))
        })
        .collect()
}

/// The pid of running role `role`.
pub(crate) fn pid_of(dir: &Path, role: &str) -> Option<i32> {
    running(dir)
        .into_iter()
        .find(|(r, _)| r == role)
        .map(|(_, pid)| pid)
}

/// Kills the roles of a home still running when it is dropped (group-cake
/// first; its roles also follow it through their lifelines).
pub(crate) struct HomeGuard(pub(crate) PathBuf);

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

/// GET /Xy?x=..&y=..: the status and whether the body is an x×y table.
pub(crate) fn get_table(port: u16, x: usize, y: usize) -> (u16, bool) {
    let (status, body) = exchange(
        port,
        &format!("GET /Xy?x={x}&y={y} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    let ok = serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| {
        v["value"][1].as_array().is_some_and(|rows| {
            rows.len() == y
                && rows
                    .iter()
                    .all(|r| r.as_array().is_some_and(|r| r.len() == x))
        })
    });
    (status, ok)
}
