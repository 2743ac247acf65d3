//! **clients_as_threads** — an HTTP load client: `--clients` client actors,
//! each with its own HTTP client connection, each asking for random tables
//! (`--requests` each, or for `--seconds`), then one report.
//!
//! ```text
//! $ cargo run --release -p layer-cake-demos --bin test_server_1 &
//! $ cargo run --release -p layer-cake-demos --bin clients_as_threads -- --clients=8 --requests=1000
//! {
//!   "processes": 1,
//!   "clients": 8,
//!   "requests": 8000,
//!   "answered": 8000,
//!   "seconds": 1.9,
//!   "requests_per_second": 4210.5,
//!   "latency_ms": { "p50": 1.7, "p99": 4.1 },
//!   "errors": { "busy": 0, "overloaded": 0, "other": 0 },
//!   "tally": { … }
//! }
//! ```
//!
//! A table of the wrong size counts as an `other` error; `Busy` and
//! `Overloaded` answers are counted apart (a loaded server says them on
//! purpose). A client that cannot connect ends the run with its fault.

use std::time::{Duration, Instant};

use layer_cake::net::{Close, Closed, ConnectOptions, Connected, HttpClient, NotConnected};
use layer_cake::runtime::AskError;
use layer_cake::{Context, FaultKind, Faulted, HostPort, Returned, Stop, on};
use layer_cake_demos::Xy;
use layer_cake_demos::load::{Report, Tally};
use serde::Deserialize;

/// How long one request may take before it counts as an error.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct Args {
    /// The server.
    server_address: HostPort,
    /// How many clients run at once, each with its own connection.
    clients: u32,
    /// Requests per client (when `--seconds` is not given).
    requests: u64,
    /// Run for this many seconds instead of a count of requests.
    seconds: Option<f64>,
    /// Tables are at most this many rows and columns.
    big_table: i64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: HostPort::new("127.0.0.1", 5050),
            clients: 4,
            requests: 100,
            seconds: None,
            big_table: 10,
        }
    }
}

/// One client: connect, ask until done, close.
async fn client(mut cx: Context, args: Args) -> Result<Tally, Faulted> {
    cx.connect(
        args.server_address.clone(),
        ConnectOptions::http(HttpClient::new()),
    );
    let proxy = loop {
        let message = cx.input().await;
        on!(message, {
            Connected as c => break c.proxy,
            NotConnected as n => return Err(n.into_fault()),
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    };
    let until = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut tally = Tally::default();
    let mut sent = 0_u64;
    loop {
        match until {
            Some(t) if Instant::now() >= t => break,
            None if sent >= args.requests => break,
            _ => {}
        }
        sent += 1;
        let big = args.big_table.max(1);
        let xy = Xy {
            x: rand::random_range(1..=big),
            y: rand::random_range(1..=big),
        };
        let started = Instant::now();
        match cx.ask::<Vec<Vec<f64>>, _>(xy, &proxy, ANSWER_WITHIN).await {
            Ok(table)
                if table.len() == xy.y as usize
                    && table.iter().all(|r| r.len() == xy.x as usize) =>
            {
                tally
                    .latency_us
                    .record(started.elapsed().as_micros() as u64);
            }
            Ok(_) => tally.other += 1,
            Err(AskError::Faulted(f)) if f.kind == FaultKind::Busy => tally.busy += 1,
            Err(AskError::Faulted(f)) if f.kind == FaultKind::Overloaded => tally.overloaded += 1,
            Err(e) => {
                tracing::debug!("request failed: {e}");
                tally.other += 1;
            }
        }
    }
    let _ = cx.send(Close::default(), &proxy);
    // Wait for the connection to be gone (Stop ends the wait too).
    loop {
        let message = cx.input().await;
        on!(message, {
            Closed as _ => break,
            Stop as _ => break,
            _other => {},
        })
    }
    Ok(tally)
}

async fn clients_as_threads(mut cx: Context, args: Args) -> Result<Report, Faulted> {
    layer_cake::message::registry::register::<Vec<Vec<f64>>>();
    let started = Instant::now();
    for _ in 0..args.clients.max(1) {
        let args = args.clone();
        cx.spawn(move |cx| client(cx, args));
    }
    let mut total = Tally::default();
    let mut fault = None;
    while cx.working() > 0 {
        let message = cx.input().await;
        on!(message, {
            Returned as r => match r.into_result::<Tally>() {
                Ok(t) => total.merge(&t),
                Err(f) => fault = Some(f),
            },
            Stop as _ => { cx.abort(); fault = Some(Faulted::aborted()); },
            _other => {},
        })
    }
    if let Some(f) = fault {
        return Err(f);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report::new(1, args.clients.max(1), seconds, total))
}

fn main() {
    layer_cake::create(clients_as_threads)
}
