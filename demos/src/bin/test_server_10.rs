//! **test_server_10** — an HTTP front over any number of workers.
//!
//! The server subscribes to the regular expression
//! `test-multihosting:worker-10:[-a-f0-9]+`, which every `test_worker_10`
//! matches under its own name. It keeps the set of workers that are
//! [`Available`] (dropping each on [`Dropped`]) and forwards each [`Xy`] to
//! the next one in turn, so the worker's reply goes straight back to the
//! HTTP session. With no worker left a request is answered
//! `TemporarilyUnavailable` (503).
//!
//! Plain round robin, deliberately: it neither queues nor looks at how busy
//! a worker is. Least-loaded dispatch with queueing is the ObjectSpool's
//! job, which comes later.
//!
//! Standalone, against a host-cake on this host:
//!
//! ```text
//! $ cargo run -p host-cake -- --no-lan-autoconnect &
//! $ cargo run -p layer-cake-demos --bin test_server_10 &
//! test_server_10: listening on 127.0.0.1:5050
//! $ cargo run -p layer-cake-demos --bin test_worker_10 &   # as many as you like
//! test_server_10: worker available test-multihosting:worker-10:5c6a0d8e-… (1 in all)
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.8,0.12],[0.33,0.5]],[]]}
//! ```
//!
//! `--server-address` (default 127.0.0.1:5050) says where to listen;
//! `--connect-to-directory=HOST:PORT` names another directory.

use layer_cake::directory::{Available, Dropped, NotSubscribed, Scope, Subscribed};
use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::{Address, Context, Faulted, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

/// Every worker-10's name.
const SERVICES: &str = "test-multihosting:worker-10:[-a-f0-9]+";

/// The available workers, served in turn.
#[derive(Debug, Default)]
struct RoundRobin {
    /// (publication name, publisher).
    workers: Vec<(String, Address)>,
    next: usize,
}

impl RoundRobin {
    fn add(&mut self, name: String, worker: Address) {
        if !self.workers.iter().any(|(n, _)| *n == name) {
            self.workers.push((name, worker));
        }
    }

    fn remove(&mut self, name: &str, worker: &Address) -> bool {
        let before = self.workers.len();
        self.workers.retain(|(n, w)| n != name || w != worker);
        self.workers.len() != before
    }

    /// The next worker, if any.
    fn next(&mut self) -> Option<&Address> {
        if self.workers.is_empty() {
            return None;
        }
        let i = self.next % self.workers.len();
        self.next = i + 1;
        Some(&self.workers[i].1)
    }
}

// The worker's table comes back through this process on its way to the
// HTTP session (the reply to a forward), so this process must be able to
// decode it.
layer_cake::register!(Vec<Vec<f64>>);

/// The arguments: where to listen (`--server-address`, 127.0.0.1:5050 by
/// default) and the scope to subscribe at (`--scope=LAN` to reach workers on
/// other hosts; HOST by default).
#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Args {
    server_address: layer_cake::HostPort,
    scope: Scope,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: ServerArgs::default().server_address,
            scope: Scope::Host,
        }
    }
}

async fn test_server_10(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    cx.subscribe(SERVICES, args.scope);
    let mut workers = RoundRobin::default();
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_10", &l),
            NotListening as n => return Err(n.into_fault()),
            Subscribed as _ => {},
            NotSubscribed as n => {
                return Err(Faulted::new(format!("cannot subscribe to {}", n.pattern)).with_explanation(n.reason));
            },
            Available as a => {
                workers.add(a.name.clone(), a.publisher);
                eprintln!("test_server_10: worker available {} ({} in all)", a.name, workers.workers.len());
            },
            Dropped as d => {
                if workers.remove(&d.name, &d.remote) {
                    eprintln!("test_server_10: worker dropped {} ({} left)", d.name, workers.workers.len());
                }
            },
            Xy as xy => {
                // A worker whose connection has just closed refuses the
                // forward: try the others before giving up.
                let mut request = Some(xy);
                for _ in 0..workers.workers.len() {
                    let Some(worker) = workers.next() else { break };
                    match cx.forward(request.take().expect("still held"), worker) {
                        Ok(()) => break,
                        Err(e) => request = Some(e.into_inner()),
                    }
                }
                if request.is_some() {
                    let _ = cx.reply(Faulted::temporarily_unavailable("no worker available"));
                }
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_10 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_10)
}
