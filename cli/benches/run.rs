//! `layer-cake run` of a server and 8 workers, timed on the real path:
//! release binaries, real processes, a host-cake on an ephemeral port.
//!
//! Each round makes a fresh home (`create --retry='{"regular_steps": 1.0}'`,
//! `add test_server_10 server`, `add test_worker_10 worker --role-count=8`),
//! then measures:
//!
//! - **first table**: from starting `layer-cake run` to the first HTTP
//!   request answered with a table (polled every 5 ms);
//! - **all 8 in the pool**: to the server's `(8 in all)` line;
//! - **restarted**: from SIGKILL of `worker-3` to `layer-cake status`
//!   showing a new pid for it (the retry delay is 1 s);
//! - **back in the pool**: from the SIGKILL to the server's `(8 in all)`
//!   line again — the new worker published and joined the spool.
//!
//! ```console
//! $ cargo bench -p layer-cake-cli --bench run            # 5 rounds
//! $ cargo bench -p layer-cake-cli --bench run -- --quick # 2 rounds
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps")
        .to_path_buf()
}

fn build() {
    let dir = bin_dir();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "group-cake",
            "-p",
            "host-cake",
            "-p",
            "layer-cake-demos",
        ])
        .args(["-p", "layer-cake-cli"])
        .args([
            "--bin",
            "group-cake",
            "--bin",
            "host-cake",
            "--bin",
            "test_server_10",
            "--bin",
            "test_worker_10",
        ])
        .args(["--bin", "layer-cake"])
        .arg("--target-dir")
        .arg(dir.parent().unwrap())
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    assert!(cargo.status().unwrap().success(), "release build");
}

/// A process with its stderr lines on a channel; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(wanted) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {wanted:?}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
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

fn cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin_dir().join("layer-cake"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "layer-cake {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pid_of(dir: &Path, role: &str) -> Option<i32> {
    let out = Command::new(bin_dir().join("layer-cake"))
        .args(["status", "-l"])
        .current_dir(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let pid: i32 = w.get(2)?.parse().ok()?;
        // Never 0: kill(0, …) would signal this bench's own process group.
        (w.first() == Some(&role) && pid > 0).then_some(pid)
    })
}

fn table(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PATIENCE));
    let _ = write!(
        s,
        "GET /Xy?x=2&y=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.starts_with("HTTP/1.1 200") && raw.contains("vector<vector<float8>>")
}

struct Round {
    first_table: f64,
    all_eight: f64,
    restarted: f64,
    back: f64,
}

fn round(host_at: &str) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cli(
        d,
        &[
            "create",
            &format!("--directory-at-host={host_at}"),
            r#"--retry={"regular_steps": 1.0}"#,
        ],
    );
    cli(
        d,
        &[
            "add",
            "test_server_10",
            "server",
            &format!("--server-address=127.0.0.1:{port}"),
        ],
    );
    cli(d, &["add", "test_worker_10", "worker", "--role-count=8"]);
    let mut command = Command::new(bin_dir().join("layer-cake"));
    command.arg("run").current_dir(d);
    let started = Instant::now();
    let run = Proc::start(command);
    while !table(port) {
        assert!(started.elapsed() < PATIENCE, "no table");
        std::thread::sleep(Duration::from_millis(5));
    }
    let first_table = started.elapsed().as_secs_f64();
    run.line_with("(8 in all)");
    let all_eight = started.elapsed().as_secs_f64();
    let victim = pid_of(d, "worker-3").expect("worker-3 runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    run.line_with("(7 left)");
    loop {
        if pid_of(d, "worker-3").is_some_and(|p| p != victim) {
            break;
        }
        assert!(killed.elapsed() < PATIENCE, "not restarted");
        std::thread::sleep(Duration::from_millis(5));
    }
    let restarted = killed.elapsed().as_secs_f64();
    run.line_with("(8 in all)");
    let back = killed.elapsed().as_secs_f64();
    drop(run);
    Round {
        first_table,
        all_eight,
        restarted,
        back,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = if std::env::args().any(|a| a == "--quick") {
        2
    } else {
        5
    };
    build();
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
    println!(
        "round  first table  all 8 in pool  worker restarted  back in pool   (seconds; retry delay 1 s)"
    );
    let mut all = Vec::new();
    for i in 0..rounds {
        let r = round(&host_at);
        println!(
            "{i:>5}  {:>11.3}  {:>13.3}  {:>16.3}  {:>12.3}",
            r.first_table, r.all_eight, r.restarted, r.back
        );
        all.push(r);
    }
    let worst = |f: fn(&Round) -> f64| all.iter().map(f).fold(0.0_f64, f64::max);
    println!(
        "worst  {:>11.3}  {:>13.3}  {:>16.3}  {:>12.3}",
        worst(|r| r.first_table),
        worst(|r| r.all_eight),
        worst(|r| r.restarted),
        worst(|r| r.back)
    );
}
