//! The ObjectSpool behind the HTTP front, against a bare hyper server doing
//! the same work (issue 6).
//!
//! Every case answers `GET /Xy?x=2&y=2` with a 2×2 table of random floats in
//! the typed envelope `{"value":["vector<vector<float8>>",[[..],[..]],[]]}`
//! and is loaded with `wrk -t2 -c8 -d{N}s --latency` (8 keep-alive
//! connections), one case after the other, in one run:
//!
//! - **bare** — the baseline: a hyper HTTP/1 server inside this process (a
//!   tokio runtime with 2 workers) that parses `x` and `y`, builds the table
//!   and writes the envelope with `serde_json`. It is measured first and
//!   again last; ratios are against the better of the two, so a machine that
//!   slowed down during the run does not flatter the spool.
//! - **spool-local** — the `test_server_4` process: the HTTP front forwards
//!   each request to a spool of 8 worker actors in the same process.
//! - **spool-hostcake** — a `host-cake` (`--no-lan-autoconnect`, ephemeral
//!   port), `test_server_10` and 8 `test_worker_10` processes pointed at it;
//!   the spool is fed by the directory, each request and table cross a
//!   loopback connection to a worker process. Loaded once the server says
//!   `(8 in all)`.
//! - **spool-processes** — `test_server_8`: a spool of 8 child-process
//!   workers. Its binary is looked up next to `test_server_4` when the
//!   bench runs; while the package has no such binary the case is skipped
//!   with a line saying so.
//!
//! Then the **overload** cases: a fresh `test_server_4 --size-of-queue=16`
//! under 10× the connections (`wrk -t2 -c80`), under half that (`-c40`), for
//! twice as long, and with 200×200 tables. wrk runs a small Lua script that
//! counts the answers by status. Each reports requests/s, the answers by
//! status, wrk's socket errors (a timeout is an answer that took longer than
//! wrk's 2 s), p50/p99, and the server's memory — `VmRSS` before the load,
//! the highest `VmRSS` sampled during it and `VmHWM` after it, and `VmRSS`
//! a second after it — and whether it still answers 200 afterwards.
//!
//! For every case it also says where the CPU went while wrk ran, in cores:
//! each process it started (from `/proc/<pid>/stat`, children of a server
//! included), wrk (this process's reaped children), this process (which
//! hosts the bare server) and the rest of the machine (`/proc/stat`); and
//! what one request cost each of those processes, in CPU microseconds
//! (the server, the workers, a server's children; for bare, this one). The
//! results table adds the cores the server side used and its requests per
//! CPU-second, against bare's: what a request costs, a figure that other
//! load on a shared machine disturbs less than requests/s.
//!
//! ```console
//! $ apt-get install -y wrk                                  # needed
//! $ cargo bench -p layer-cake-demos --bench spool              # 10 s per case
//! $ cargo bench -p layer-cake-demos --bench spool -- --quick   # 3 s per case
//! $ cargo bench -p layer-cake-demos --bench spool -- overload  # cases whose name has "overload"
//! $ cargo bench -p layer-cake-demos --bench spool -- --threads=1  # every process (and bare) on one thread
//! ```
//!
//! Run without `--bench` (as `cargo test --benches` does) it is a smoke test:
//! 1 s per case, no warm-up. Only 127.0.0.1 is ever used; every process it
//! starts is killed (with its children) when the bench ends, however it ends.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The request every throughput case answers.
const XY: &str = "/Xy?x=2&y=2";

/// How long to wait for a process to say something or a server to answer.
const PATIENCE: Duration = Duration::from_secs(30);

/// A throughput case run against a server in other processes.
struct Case {
    name: &'static str,
    /// What it is, for the printout.
    what: &'static str,
    /// The share of the bare server's requests/s it should reach.
    target: f64,
    /// Starts its processes; `None` when it cannot run here (says why).
    start: fn(&Bench) -> Option<Server>,
}

/// The spool cases, in the order they run (between the two bare runs).
const CASES: &[Case] = &[
    Case {
        name: "spool-local",
        what: "test_server_4: front + spool of 8 local worker actors, 1 process",
        target: 0.60,
        start: spool_local,
    },
    Case {
        name: "spool-hostcake",
        what: "host-cake + test_server_10 + 8 test_worker_10 processes, 10 processes",
        target: 0.35,
        start: spool_hostcake,
    },
    Case {
        name: "spool-processes",
        what: "test_server_8: front + spool of 8 child-process workers, 9 processes",
        target: 0.35,
        start: spool_processes,
    },
];

/// An overload case: a fresh `test_server_4` with a small queue under many
/// connections.
struct Overload {
    name: &'static str,
    connections: u32,
    target: &'static str,
    /// How many times the run's duration per case.
    length: u64,
}

/// The spool's queue in the overload cases.
const OVERLOAD_QUEUE: usize = 16;

const OVERLOADS: &[Overload] = &[
    Overload {
        name: "overload-c80",
        connections: 80,
        target: XY,
        length: 1,
    },
    Overload {
        name: "overload-c40",
        connections: 40,
        target: XY,
        length: 1,
    },
    Overload {
        name: "overload-c80-2x-long",
        connections: 80,
        target: XY,
        length: 2,
    },
    Overload {
        name: "overload-c80-200x200",
        connections: 80,
        target: "/Xy?x=200&y=200",
        length: 1,
    },
];

// ---------------------------------------------------------------------------
// The bench's setting.

/// What every case needs to know.
struct Bench {
    /// Where cargo put this package's binaries (`target/<profile>`).
    bin_dir: PathBuf,
    /// host-cake, built on first use.
    host_cake: OnceLock<PathBuf>,
    /// Flags for every layer-cake process the bench starts
    /// (`--worker-threads=N` with `--threads=N`).
    flags: Vec<String>,
}

impl Bench {
    /// One of this package's binaries, when it exists.
    fn binary(&self, name: &str) -> Option<PathBuf> {
        let path = self.bin_dir.join(name);
        path.is_file().then_some(path)
    }

    /// host-cake's binary. It belongs to another package, which cargo does
    /// not build for this bench: build it into the same target directory,
    /// with the profile this bench's binaries were built with (`cargo bench`
    /// puts them in `target/release`). Up to date, that costs nothing.
    fn host_cake(&self) -> &Path {
        self.host_cake.get_or_init(|| {
            let profile = self
                .bin_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("debug")
                .to_string();
            let target_dir = self.bin_dir.parent().expect("a target directory");
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .args(["build", "--quiet", "-p", "host-cake", "--bin", "host-cake"])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            match profile.as_str() {
                "debug" => {}
                "release" => {
                    cargo.arg("--release");
                }
                other => {
                    cargo.args(["--profile", other]);
                }
            }
            match cargo.status() {
                Ok(s) if s.success() => {}
                Ok(s) => panic!("cargo build -p host-cake failed: {s}"),
                Err(e) => panic!("cannot run cargo: {e}"),
            }
            self.bin_dir.join("host-cake")
        })
    }
}

// ---------------------------------------------------------------------------
// Processes.

/// A child process whose stderr lines are read as they come; killed with
/// its own children (SIGKILL) on drop.
struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(program: &Path, args: &[String]) -> Proc {
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        // Drained to the end, so that a chatty process never blocks on a
        // full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        Proc { name, child, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line from now on that contains `wanted`; panics past the
    /// deadline or when the process ends first.
    fn line_with(&self, wanted: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(wanted) => return line,
                Ok(_) => {}
                Err(e) => panic!("{}: no line with {wanted:?} ({e})", self.name),
            }
        }
    }

    /// The port of its `listening on HOST:PORT` line.
    fn port(&self) -> u16 {
        let line = self.line_with("listening on ");
        line.rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no port in {line:?}", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // Its children first (a server's worker processes), by pid.
            for pid in descendants(self.pid()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A server under test: its port, and the processes behind it.
struct Server {
    port: u16,
    /// The process with the HTTP front, whose memory the overload cases
    /// watch.
    front: Option<u32>,
    /// Everything started for it, the front first; killed on drop.
    procs: Vec<Proc>,
}

impl Server {
    /// Each started process's pid under a label (workers share one).
    fn roles(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.pid()))
            .collect()
    }
}

/// The `test_server_4` process with extra flags, answering.
fn test_server_4(bench: &Bench, flags: &[String]) -> Server {
    let program = bench
        .binary("test_server_4")
        .expect("test_server_4 is built");
    let mut args = vec!["--server-address=127.0.0.1:0".to_string()];
    args.extend_from_slice(flags);
    args.extend_from_slice(&bench.flags);
    let server = Proc::start(&program, &args);
    let port = server.port();
    wait_answering(port);
    Server {
        port,
        front: Some(server.pid()),
        procs: vec![server],
    }
}

fn spool_local(bench: &Bench) -> Option<Server> {
    Some(test_server_4(bench, &[]))
}

fn spool_hostcake(bench: &Bench) -> Option<Server> {
    let with = |args: &[String]| [args, &bench.flags].concat();
    let host = Proc::start(
        bench.host_cake(),
        &with(&[
            "--directory-at-host=127.0.0.1:0".into(),
            "--no-lan-autoconnect".into(),
        ]),
    );
    let directory = format!("--connect-to-directory=127.0.0.1:{}", host.port());
    let server = Proc::start(
        &bench
            .binary("test_server_10")
            .expect("test_server_10 is built"),
        &with(&["--server-address=127.0.0.1:0".into(), directory.clone()]),
    );
    let port = server.port();
    let worker = bench
        .binary("test_worker_10")
        .expect("test_worker_10 is built");
    let workers: Vec<Proc> = (0..8)
        .map(|_| Proc::start(&worker, &with(std::slice::from_ref(&directory))))
        .collect();
    server.line_with("(8 in all)");
    wait_answering(port);
    let front = Some(server.pid());
    let mut procs = vec![server];
    procs.extend(workers);
    procs.push(host);
    Some(Server { port, front, procs })
}

/// The spool of child processes: `test_server_8`, found next to
/// `test_server_4` when it has been built (cargo builds every binary of the
/// package for a bench).
fn spool_processes(bench: &Bench) -> Option<Server> {
    let Some(program) = bench.binary("test_server_8") else {
        println!(
            "spool-processes: skipped, no test_server_8 in {}",
            bench.bin_dir.display()
        );
        return None;
    };
    // Its children inherit --worker-threads.
    let args = [
        &["--server-address=127.0.0.1:0".to_string()][..],
        &bench.flags,
    ]
    .concat();
    let server = Proc::start(&program, &args);
    let port = server.port();
    wait_answering(port);
    // One worker answering is not all eight: wait (a while) for the eight
    // child processes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while descendants(server.pid()).len() < 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "spool-processes: {} processes below test_server_8",
        descendants(server.pid()).len()
    );
    Some(Server {
        port,
        front: Some(server.pid()),
        procs: vec![server],
    })
}

// ---------------------------------------------------------------------------
// The bare server.

/// The bare server's whole service: the same parsing, work and envelope as
/// the demos.
async fn bare_service(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (mut x, mut y) = (1, 1);
    for pair in request.uri().query().unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("x", v)) => x = v.parse().unwrap_or(1),
            Some(("y", v)) => y = v.parse().unwrap_or(1),
            _ => {}
        }
    }
    let body = serde_json::to_string(&serde_json::json!({
        "value": ["vector<vector<float8>>", layer_cake_demos::texture(x, y), []]
    }))
    .expect("a table serializes");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn bare() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let port = listener.local_addr().expect("an address").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(bare_service))
                    .await;
            });
        }
    });
    port
}

// ---------------------------------------------------------------------------
// HTTP checks.

/// `GET target` on a fresh connection; the status.
fn http_status(port: u16, target: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let head = String::from_utf8_lossy(&raw);
    head.split(' ').nth(1)?.parse().ok()
}

/// Waits until the server answers `XY` with 200.
fn wait_answering(port: u16) {
    let deadline = Instant::now() + PATIENCE;
    while http_status(port, XY) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the server on port {port} does not answer 200"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// wrk.

/// Counts answers by status in every wrk thread and prints `status N COUNT`
/// lines at the end.
const STATUS_SCRIPT: &str = r#"
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      all[status] = (all[status] or 0) + n
    end
  end
  for status, n in pairs(all) do
    io.write(string.format("status %d %d\n", status, n))
  end
end
"#;

/// What one wrk run measured.
#[derive(Default)]
struct Figures {
    requests_per_second: f64,
    requests: u64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    non_2xx: u64,
    /// connect, read, write, timeout.
    socket_errors: [u64; 4],
    /// By status, when the status script ran.
    statuses: Vec<(u16, u64)>,
}

impl Figures {
    fn errors(&self) -> u64 {
        self.socket_errors.iter().sum()
    }

    fn status(&self, status: u16) -> u64 {
        self.statuses
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }
}

/// `1.23ms`, `456.00us`, `1.01s`, `2.00m` in milliseconds.
fn wrk_duration(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn run_wrk(
    port: u16,
    connections: u32,
    seconds: u64,
    target: &str,
    script: Option<&Path>,
) -> Figures {
    let url = format!("http://127.0.0.1:{port}{target}");
    let mut wrk = Command::new("wrk");
    wrk.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        wrk.arg("-s").arg(script);
    }
    let out = wrk.arg(&url).output().expect("wrk runs");
    assert!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn parse_wrk(text: &str) -> Figures {
    let mut figures = Figures::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => figures.requests_per_second = n.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => figures.requests = n.parse().unwrap_or(0),
            ["50%", d] => figures.p50_ms = wrk_duration(d),
            ["99%", d] => figures.p99_ms = wrk_duration(d),
            ["Non-2xx", "or", "3xx", "responses:", n] => figures.non_2xx = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                for (i, pair) in rest.chunks(2).take(4).enumerate() {
                    if let [_, n] = pair {
                        figures.socket_errors[i] = n.trim_end_matches(',').parse().unwrap_or(0);
                    }
                }
            }
            ["status", status, n] => {
                if let (Ok(s), Ok(n)) = (status.parse(), n.parse()) {
                    figures.statuses.push((s, n));
                }
            }
            _ => {}
        }
    }
    figures.statuses.sort_unstable();
    figures
}

// ---------------------------------------------------------------------------
// /proc: CPU and memory.

/// The fields of `/proc/<pid>/stat` after the command, from field 3 (state)
/// on.
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// User + system clock ticks of a process (fields 14 and 15).
fn cpu_ticks(pid: &str) -> u64 {
    stat_fields(pid).map_or(0, |f| f[10] + f[11])
}

/// User + system ticks of this process's waited-for children (fields 16
/// and 17): wrk, once it has ended.
fn reaped_children_ticks() -> u64 {
    stat_fields("self").map_or(0, |f| f[12] + f[13])
}

/// Every process below `pid`, from the parent links in `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(fields) = stat_fields(&child.to_string()) {
                parents.push((child, fields[0] as u32));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parents {
            if parent == p && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// Busy and total ticks of the whole machine (`/proc/stat`).
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU ticks by label at one moment.
struct CpuSnapshot {
    by_label: Vec<(String, u64)>,
    wrk: u64,
    machine: (u64, u64),
    at: Instant,
}

fn cpu_snapshot(roles: &[(String, u32)]) -> CpuSnapshot {
    let mut by_label: Vec<(String, u64)> = Vec::new();
    let mut add = |label: String, ticks: u64| match by_label.iter_mut().find(|(l, _)| *l == label) {
        Some((_, t)) => *t += ticks,
        None => by_label.push((label, ticks)),
    };
    add("bench".into(), cpu_ticks("self"));
    for (label, pid) in roles {
        add(label.clone(), cpu_ticks(&pid.to_string()));
        for child in descendants(*pid) {
            add(format!("{label}'s children"), cpu_ticks(&child.to_string()));
        }
    }
    CpuSnapshot {
        by_label,
        wrk: reaped_children_ticks(),
        machine: machine_ticks(),
        at: Instant::now(),
    }
}

/// What each labelled process used between two snapshots, in CPU seconds
/// (labels that used nothing left out).
fn cpu_seconds_by_label(before: &CpuSnapshot, after: &CpuSnapshot) -> Vec<(String, f64)> {
    let hz = clock_ticks_per_second();
    after
        .by_label
        .iter()
        .filter_map(|(label, t1)| {
            let t0 = before
                .by_label
                .iter()
                .find(|(l, _)| l == label)
                .map_or(0, |(_, t)| *t);
            let d = t1.saturating_sub(t0);
            (d > 0).then(|| (label.clone(), d as f64 / hz))
        })
        .collect()
}

/// Where the CPU went between two snapshots, in cores; and the cores the
/// server side used (every process but wrk, this one included since it
/// hosts the bare server).
fn cpu_usage(before: &CpuSnapshot, after: &CpuSnapshot) -> (String, f64) {
    let hz = clock_ticks_per_second();
    let seconds = after.at.duration_since(before.at).as_secs_f64().max(1e-3);
    let cores = |ticks: u64| ticks as f64 / hz / seconds;
    let mut ours = 0;
    let mut parts = Vec::new();
    for (label, t1) in &after.by_label {
        let t0 = before
            .by_label
            .iter()
            .find(|(l, _)| l == label)
            .map_or(0, |(_, t)| *t);
        let d = t1.saturating_sub(t0);
        ours += d;
        parts.push(format!("{label} {:.2}", cores(d)));
    }
    let wrk = after.wrk.saturating_sub(before.wrk);
    ours += wrk;
    parts.push(format!("wrk {:.2}", cores(wrk)));
    let busy = after.machine.0.saturating_sub(before.machine.0);
    let total = after.machine.1.saturating_sub(before.machine.1).max(1);
    let machine_cores = busy as f64 / total as f64 * available_cores() as f64;
    parts.push(format!(
        "rest of the machine {:.2}",
        (machine_cores - cores(ours)).max(0.0)
    ));
    parts.push(format!(
        "machine busy {machine_cores:.2} of {}",
        available_cores()
    ));
    (parts.join(", "), cores(ours - wrk))
}

fn clock_ticks_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A `kB` figure of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Samples a process's `VmRSS` every 50 ms until dropped; the highest seen.
struct RssSampler {
    stop: Arc<AtomicBool>,
    highest: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let highest = Arc::new(AtomicU64::new(status_kb(pid, "VmRSS")));
        let thread = {
            let (stop, highest) = (Arc::clone(&stop), Arc::clone(&highest));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    highest.fetch_max(status_kb(pid, "VmRSS"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        RssSampler {
            stop,
            highest,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.highest.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `/proc/loadavg`'s first three figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Running the cases.

/// One throughput row of the results.
struct Row {
    name: String,
    figures: Figures,
    /// Cores the server side used while loaded.
    server_cores: f64,
    target: Option<f64>,
}

/// One overload row of the results.
struct OverloadRow {
    name: &'static str,
    connections: u32,
    seconds: u64,
    figures: Figures,
    rss_before: u64,
    rss_peak: u64,
    hwm: u64,
    rss_after: u64,
    answers_after: Option<u16>,
}

/// Loads `port` with 8 connections on `XY` (after a 1 s warm-up unless this
/// is a smoke run) and says where the CPU went. The figures, and the cores
/// the server side used.
fn throughput(
    name: &str,
    port: u16,
    roles: &[(String, u32)],
    seconds: u64,
    warm: bool,
) -> (Figures, f64) {
    if warm {
        run_wrk(port, 8, 1, XY, None);
    }
    let before = cpu_snapshot(roles);
    let figures = run_wrk(port, 8, seconds, XY, None);
    let after = cpu_snapshot(roles);
    println!(
        "{name}: {:.0} req/s, p50 {}, p99 {}, non-2xx {}, socket errors {}",
        figures.requests_per_second,
        ms(figures.p50_ms),
        ms(figures.p99_ms),
        figures.non_2xx,
        figures.errors()
    );
    let (usage, server_cores) = cpu_usage(&before, &after);
    println!("  cpu (cores): {usage}");
    // What one request cost each process, in CPU microseconds: the server
    // (for bare, this process), the workers, their children.
    let requests = figures.requests_per_second * after.at.duration_since(before.at).as_secs_f64();
    if requests > 0.0 {
        let per_request: Vec<String> = cpu_seconds_by_label(&before, &after)
            .iter()
            .map(|(label, cpu)| format!("{label} {:.1}", cpu * 1e6 / requests))
            .collect();
        println!("  cpu per request (us): {}", per_request.join(", "));
    }
    (figures, server_cores)
}

fn overload(bench: &Bench, o: &Overload, seconds: u64, script: &Path) -> OverloadRow {
    let server = test_server_4(bench, &[format!("--size-of-queue={OVERLOAD_QUEUE}")]);
    let pid = server.front.expect("a process");
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = status_kb(pid, "VmRSS");
    let roles = server.roles();
    let sampler = RssSampler::start(pid);
    let before = cpu_snapshot(&roles);
    let seconds = seconds * o.length;
    let figures = run_wrk(server.port, o.connections, seconds, o.target, Some(script));
    let after = cpu_snapshot(&roles);
    let rss_peak = sampler.finish();
    let hwm = status_kb(pid, "VmHWM");
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = status_kb(pid, "VmRSS");
    let answers_after = http_status(server.port, XY);
    let statuses: Vec<String> = figures
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    println!(
        "{}: -c{} {seconds} s {}: {:.0} req/s, {} answers {{{}}}, socket errors {:?}, p50 {}, p99 {}",
        o.name,
        o.connections,
        o.target,
        figures.requests_per_second,
        figures.requests,
        statuses.join(", "),
        figures.socket_errors,
        ms(figures.p50_ms),
        ms(figures.p99_ms),
    );
    println!(
        "  memory: VmRSS {rss_before} kB before, {rss_peak} kB highest during, VmHWM {hwm} kB, VmRSS {rss_after} kB 1 s after; then GET {XY} -> {}",
        answers_after.map_or("no answer".into(), |s| s.to_string())
    );
    println!("  cpu (cores): {}", cpu_usage(&before, &after).0);
    OverloadRow {
        name: o.name,
        connections: o.connections,
        seconds,
        figures,
        rss_before,
        rss_peak,
        hwm,
        rss_after,
        answers_after,
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2} ms"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `cargo bench` passes --bench; without it this runs as a smoke test.
    let smoke = !args.iter().any(|a| a == "--bench");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let seconds = if smoke {
        1
    } else if quick {
        3
    } else {
        10
    };
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("spool bench: wrk not found, nothing measured (apt-get install -y wrk)");
        return;
    }
    // --threads=N: every process on N threads (--worker-threads=N), and the
    // bare server too, so that the ratio compares like with like.
    let threads: Option<usize> = args
        .iter()
        .find_map(|a| a.strip_prefix("--threads="))
        .map(|n| n.parse().expect("--threads=N takes a number from 1"))
        .filter(|&n| n >= 1);
    let bench = Bench {
        bin_dir: Path::new(env!("CARGO_BIN_EXE_test_server_4"))
            .parent()
            .expect("a directory")
            .to_path_buf(),
        host_cake: OnceLock::new(),
        flags: threads
            .map(|n| vec![format!("--worker-threads={n}")])
            .unwrap_or_default(),
    };
    if let Some(n) = threads {
        println!(
            "every process on {n} thread(s): --worker-threads={n}, and the bare server's runtime"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.unwrap_or(2))
        .enable_all()
        .build()
        .expect("a runtime");
    let bare_port = runtime.block_on(bare());
    wait_answering(bare_port);
    let script = TempFile(
        std::env::temp_dir().join(format!("layer-cake-spool-bench-{}.lua", std::process::id())),
    );
    std::fs::write(&script.0, STATUS_SCRIPT).expect("writes the wrk script");

    println!(
        "spool bench: {seconds} s per case, wrk -t2 -c8 --latency on {XY}; {} cores, load average {}",
        available_cores(),
        load_average()
    );
    if smoke {
        println!(
            "(a smoke run without --bench, in whatever profile it was built: not a measurement)"
        );
    }
    let mut rows = Vec::new();
    let (figures, server_cores) = throughput("bare", bare_port, &[], seconds, !smoke);
    rows.push(Row {
        name: "bare".into(),
        figures,
        server_cores,
        target: None,
    });
    for case in CASES.iter().filter(|c| wanted(c.name)) {
        println!("{}: {}", case.name, case.what);
        let Some(server) = (case.start)(&bench) else {
            continue;
        };
        let (figures, server_cores) =
            throughput(case.name, server.port, &server.roles(), seconds, !smoke);
        drop(server);
        rows.push(Row {
            name: case.name.into(),
            figures,
            server_cores,
            target: Some(case.target),
        });
    }
    let (figures, server_cores) = throughput("bare (again)", bare_port, &[], seconds, !smoke);
    rows.push(Row {
        name: "bare (again)".into(),
        figures,
        server_cores,
        target: None,
    });

    let mut overloads = Vec::new();
    for o in OVERLOADS.iter().filter(|o| wanted(o.name)) {
        overloads.push(overload(&bench, o, seconds, &script.0));
    }

    // The tables.
    let bare_best = rows
        .iter()
        .filter(|r| r.name.starts_with("bare"))
        .map(|r| r.figures.requests_per_second)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    // Requests per CPU-second of the server side: what a request costs,
    // which other load on the machine disturbs less than requests/s.
    let per_cpu = |r: &Row| r.figures.requests_per_second / r.server_cores.max(1e-3);
    let bare_per_cpu = rows
        .iter()
        .filter(|r| r.name.starts_with("bare"))
        .map(per_cpu)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    println!();
    println!(
        "results ({seconds} s per case, ratios against the better bare run, load average now {}):",
        load_average()
    );
    println!(
        "{:<16} {:>10} {:>7} {:>10} {:>10} {:>8} {:>7} {:>7} {:>10} {:>7}  target",
        "case", "req/s", "/bare", "p50", "p99", "non-2xx", "errors", "cores", "req/cpu-s", "/bare"
    );
    for r in &rows {
        let ratio = r.figures.requests_per_second / bare_best;
        let target = r.target.map_or(String::new(), |t| {
            format!(
                ">= {:.0} % {}",
                t * 100.0,
                if ratio >= t { "met" } else { "MISSED" }
            )
        });
        println!(
            "{:<16} {:>10.0} {:>6.0} % {:>10} {:>10} {:>8} {:>7} {:>7.2} {:>10.0} {:>6.0} %  {target}",
            r.name,
            r.figures.requests_per_second,
            ratio * 100.0,
            ms(r.figures.p50_ms),
            ms(r.figures.p99_ms),
            r.figures.non_2xx,
            r.figures.errors(),
            r.server_cores,
            per_cpu(r),
            100.0 * per_cpu(r) / bare_per_cpu,
        );
    }
    if !overloads.is_empty() {
        println!();
        println!(
            "overload: test_server_4 --size-of-queue={OVERLOAD_QUEUE}, wrk -t2 (answers by status; memory in MiB)"
        );
        println!(
            "{:<22} {:>4} {:>4} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10} {:>10}  {:>27}  after",
            "case",
            "-c",
            "s",
            "req/s",
            "200/s",
            "200",
            "503",
            "errors",
            "p50",
            "p99",
            "RSS before/highest/HWM/after"
        );
        let mib = |kb: u64| kb as f64 / 1024.0;
        for o in &overloads {
            let other: u64 = o
                .figures
                .statuses
                .iter()
                .filter(|(s, _)| *s != 200 && *s != 503)
                .map(|(_, n)| n)
                .sum();
            println!(
                "{:<22} {:>4} {:>4} {:>9.0} {:>9.0} {:>9} {:>9} {:>7} {:>10} {:>10}  {:>6.1}/{:>6.1}/{:>6.1}/{:>6.1}  {}{}",
                o.name,
                o.connections,
                o.seconds,
                o.figures.requests_per_second,
                o.figures.status(200) as f64 / o.seconds as f64,
                o.figures.status(200),
                o.figures.status(503),
                o.figures.errors(),
                ms(o.figures.p50_ms),
                ms(o.figures.p99_ms),
                mib(o.rss_before),
                mib(o.rss_peak),
                mib(o.hwm),
                mib(o.rss_after),
                o.answers_after.map_or("none".into(), |s| s.to_string()),
                if other > 0 {
                    format!(" ({other} other non-200)")
                } else {
                    String::new()
                },
            );
        }
    }
}
