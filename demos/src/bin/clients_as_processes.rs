//! **clients_as_processes** — the load client, spread over processes:
//! `--processes` child processes of `clients_as_threads`, each running
//! `--clients` client actors, and one report that adds them all up.
//!
//! ```text
//! $ target/release/test_server_4 &
//! $ target/release/clients_as_processes --processes=4 --clients=8 --seconds=5
//! {
//!   "processes": 4,
//!   "clients": 32,
//!   "requests": 81234,
//!   "answered": 81234,
//!   "seconds": 5.0,
//!   "requests_per_second": 16246.8,
//!   "latency_ms": { "p50": 1.7, "p99": 4.1 },
//!   "errors": { "busy": 0, "overloaded": 0, "other": 0 },
//!   "tally": { … }
//! }
//! ```
//!
//! Each child's report comes back as its typed return value; the latency
//! histograms and the counts of `Busy`, `Overloaded` and other answers are
//! added up, and the rate is the total over the longest child's run. A
//! child that fails (it cannot connect, it is killed) fails the run, after
//! the others have finished. `Stop` (Ctrl-C) stops every child.

use layer_cake::process::ProcessOptions;
use layer_cake::{Context, Faulted, HostPort, Returned, Stop, on};
use layer_cake_demos::load::{Report, Tally};
use serde::Deserialize;

/// The arguments: the load of each child, and how many children.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct Args {
    /// The server.
    server_address: HostPort,
    /// How many client processes.
    processes: u32,
    /// Clients in each process.
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
            processes: 2,
            clients: 4,
            requests: 100,
            seconds: None,
            big_table: 10,
        }
    }
}

async fn clients_as_processes(mut cx: Context, args: Args) -> Result<Report, Faulted> {
    let processes = args.processes.max(1);
    for i in 0..processes {
        let mut options = ProcessOptions::new("clients_as_threads")
            .role_name(format!("clients-{i}"))
            .flag("server-address", args.server_address.to_string())
            .flag("clients", args.clients.to_string())
            .flag("requests", args.requests.to_string())
            .flag("big-table", args.big_table.to_string());
        if let Some(seconds) = args.seconds {
            options = options.flag("seconds", seconds.to_string());
        }
        cx.spawn_process(options);
    }
    let mut total = Tally::default();
    let mut clients = 0;
    let mut longest = 0.0_f64;
    let mut faults = Vec::new();
    while cx.working() > 0 {
        on!(cx.input().await, {
            Returned as r => match r.into_result::<Report>() {
                Ok(report) => {
                    total.merge(&report.tally);
                    clients += report.clients;
                    longest = longest.max(report.seconds);
                }
                Err(fault) => faults.push(fault),
            },
            Stop as _ => {
                cx.abort();
                faults.push(Faulted::aborted());
            },
            other => tracing::warn!("clients_as_processes ignores {}", other.signature()),
        })
    }
    if let Some(first) = faults.first() {
        return Err(Faulted::new(format!(
            "{} of {processes} client processes failed",
            faults.len()
        ))
        .with_explanation(first.to_string()));
    }
    Ok(Report::new(processes, clients, longest, total))
}

fn main() {
    layer_cake::create(clients_as_processes)
}
