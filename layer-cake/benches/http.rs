//! The HTTP front against a bare hyper server doing the same work.
//!
//! Both answer `GET /Xy?x=2&y=2` with a 2×2 table of random floats in the
//! typed envelope `{"value":["vector<vector<float8>>",[[..],[..]],[]]}`:
//!
//! - **front**: `cx.listen` with `HttpServer::new().accept::<Xy>()`; an actor
//!   replies to each `Xy` inline (like `test_server_1`);
//! - **bare**: a hyper HTTP/1 server whose service parses `x` and `y` from the
//!   query, builds the table and writes the same envelope with `serde_json`.
//!
//! The load is `wrk -t2 -c8 -d10s --latency` when `wrk` is on the `PATH`
//! (`apt-get install -y wrk`), otherwise a built-in generator with 8
//! keep-alive hyper client connections. The two servers are loaded in turn,
//! two rounds each (one with `--quick`), and the best round of each counts.
//! It prints requests/s for both, the ratio front/bare, the latency
//! percentiles and, with wrk, this process's CPU time and context switches
//! per request while each server was under load (the other one is idle).
//!
//! ```console
//! $ cargo bench -p layer-cake --bench http              # 10 s per server
//! $ cargo bench -p layer-cake --bench http -- --quick   # 3 s per server
//! $ cargo bench -p layer-cake --bench http -- --serve   # only serve, for perf
//! $ cargo bench -p layer-cake --bench http -- --threads=1 # both servers on one thread
//! ```

use std::convert::Infallible;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use layer_cake::net::{HttpServer, ListenOptions, Listening};
use layer_cake::{Context, HostPort, Message, Stop, on};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};

/// The request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Message)]
#[serde(default)]
struct Xy {
    x: i64,
    y: i64,
}

impl Default for Xy {
    fn default() -> Self {
        Xy { x: 1, y: 1 }
    }
}

/// The work: a y×x table of random floats rounded to two places.
fn texture(x: i64, y: i64) -> Vec<Vec<f64>> {
    let (x, y) = (x.max(0) as usize, y.max(0) as usize);
    (0..y)
        .map(|_| {
            (0..x)
                .map(|_| (rand::random::<f64>() * 100.0).floor() / 100.0)
                .collect()
        })
        .collect()
}

/// The front: an actor answering each `Xy` inline.
async fn front(mut cx: Context, ready: tokio::sync::oneshot::Sender<u16>) {
    let server = HttpServer::new().accept::<Xy>();
    cx.listen(HostPort::new("127.0.0.1", 0), ListenOptions::http(server));
    let mut ready = Some(ready);
    loop {
        on!(cx.input().await, {
            Listening as l => { if let Some(r) = ready.take() { let _ = r.send(l.listening.port); } },
            Xy as xy => { let _ = cx.reply(texture(xy.x, xy.y)); },
            Stop as _ => return,
            _other => {},
        })
    }
}

/// The bare server's whole service: the same parsing, work and envelope.
async fn bare_service(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut xy = Xy::default();
    for pair in request.uri().query().unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("x", v)) => xy.x = v.parse().unwrap_or(1),
            Some(("y", v)) => xy.y = v.parse().unwrap_or(1),
            _ => {}
        }
    }
    let body = serde_json::to_string(&serde_json::json!({
        "value": ["vector<vector<float8>>", texture(xy.x, xy.y), []]
    }))
    .unwrap();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(response)
}

async fn bare() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
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

/// What one load run measured.
struct Figures {
    requests_per_second: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    errors: u64,
    /// This process's CPU time per request (both servers live in it, but
    /// only the one under load works), in microseconds.
    cpu_us: Option<f64>,
    /// This process's context switches (voluntary and not) per request.
    switches: Option<f64>,
}

/// CPU nanoseconds and context switches of every thread of this process
/// (from `/proc/self/task/*/schedstat` and `status`); `None` off Linux.
fn process_usage() -> Option<(u64, u64)> {
    let (mut cpu_ns, mut switches) = (0_u64, 0_u64);
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        // Threads may end between the listing and the reads: skip those.
        let Ok(schedstat) = std::fs::read_to_string(path.join("schedstat")) else {
            continue;
        };
        cpu_ns += schedstat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(n) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some((cpu_ns, switches))
}

/// `1.23ms`, `456.00us`, `1.01s` in milliseconds.
fn wrk_duration(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn run_wrk(port: u16, seconds: u64) -> Figures {
    let url = format!("http://127.0.0.1:{port}/Xy?x=2&y=2");
    let out = Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{seconds}s"), "--latency", &url])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = Figures {
        requests_per_second: 0.0,
        p50_ms: None,
        p99_ms: None,
        errors: 0,
        cpu_us: None,
        switches: None,
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => figures.requests_per_second = n.parse().unwrap_or(0.0),
            ["50%", d] => figures.p50_ms = wrk_duration(d),
            ["99%", d] => figures.p99_ms = wrk_duration(d),
            ["Non-2xx", "or", "3xx", "responses:", n] => figures.errors += n.parse().unwrap_or(0),
            ["Socket", "errors:", ..] => figures.errors += 1,
            _ => {}
        }
    }
    figures
}

/// The built-in load: 8 keep-alive connections asking in a loop.
async fn run_builtin(port: u16, seconds: u64) -> Figures {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let _ = stream.set_nodelay(true);
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            let mut errors = 0_u64;
            while Instant::now() < until {
                let request = Request::get("/Xy?x=2&y=2")
                    .header("host", "127.0.0.1")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let started = Instant::now();
                let ok = match sender.send_request(request).await {
                    Ok(r) => {
                        let ok = r.status() == 200;
                        ok && r.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(started.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pick = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        requests_per_second: all.len() as f64 / seconds as f64,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        errors,
        cpu_us: None,
        switches: None,
    }
}

fn show(name: &str, f: &Figures) {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
    let per =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    println!(
        "{name:<7} {:>10.0} req/s   p50 {:>9}   p99 {:>9}   errors {}   per request: {} us CPU, {} context switches",
        f.requests_per_second,
        ms(f.p50_ms),
        ms(f.p99_ms),
        f.errors,
        per(f.cpu_us, 1),
        per(f.switches, 2),
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 3 } else { 10 };
    let wrk = Command::new("wrk").arg("--version").output().is_ok();
    // --threads=N: the runtime both servers share (2 by default).
    let threads = std::env::args()
        .find_map(|a| a.strip_prefix("--threads=").map(str::to_owned))
        .map(|n| n.parse::<usize>().expect("--threads=N takes a number"))
        .filter(|&n| n >= 1)
        .unwrap_or(2);
    println!("both servers on a tokio runtime with {threads} worker thread(s)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let (front_port, bare_port) = runtime.block_on(async {
        let (ready, port) = tokio::sync::oneshot::channel();
        layer_cake::runtime::spawn(move |cx| front(cx, ready));
        (port.await.unwrap(), bare().await)
    });
    if std::env::args().any(|a| a == "--serve") {
        // For profiling one server at a time with outside tools.
        println!("bare  http://127.0.0.1:{bare_port}/Xy?x=2&y=2");
        println!("front http://127.0.0.1:{front_port}/Xy?x=2&y=2");
        println!("serving until interrupted");
        runtime.block_on(std::future::pending::<()>());
    }
    let load = |port: u16| {
        let before = process_usage();
        let mut figures = if wrk {
            run_wrk(port, seconds)
        } else {
            runtime.block_on(run_builtin(port, seconds))
        };
        // With the built-in client the load runs in this process too, so
        // its usage is the client's and the server's together.
        if let (true, Some(before), Some(after)) = (wrk, before, process_usage()) {
            let requests = (figures.requests_per_second * seconds as f64).max(1.0);
            figures.cpu_us = Some(after.0.saturating_sub(before.0) as f64 / 1000.0 / requests);
            figures.switches = Some(after.1.saturating_sub(before.1) as f64 / requests);
        }
        figures
    };
    println!(
        "load: {} for {seconds} s per server, 8 keep-alive connections, GET /Xy?x=2&y=2",
        if wrk {
            "wrk -t2 -c8 --latency"
        } else {
            "built-in hyper client (wrk not found)"
        }
    );
    // A short warm-up of each, then alternating measured runs; the best run
    // of each counts (the machine is shared with the load generator).
    if wrk {
        run_wrk(front_port, 1);
        run_wrk(bare_port, 1);
    }
    let rounds = if quick { 1 } else { 2 };
    let best = |a: Option<Figures>, b: Figures| match a {
        Some(a) if a.requests_per_second >= b.requests_per_second => Some(a),
        _ => Some(b),
    };
    let (mut bare, mut front) = (None, None);
    for round in 1..=rounds {
        let b = load(bare_port);
        let f = load(front_port);
        println!("round {round}:");
        show("  bare", &b);
        show("  front", &f);
        bare = best(bare, b);
        front = best(front, f);
    }
    let (bare, front) = (bare.unwrap(), front.unwrap());
    println!("best of {rounds}:");
    show("bare", &bare);
    show("front", &front);
    println!(
        "ratio  front/bare = {:.0} % (target >= 90 %, issue 12)",
        100.0 * front.requests_per_second / bare.requests_per_second.max(1.0)
    );
}
