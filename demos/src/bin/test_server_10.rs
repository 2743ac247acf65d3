//! **test_server_10** — an HTTP front over any number of workers.
//!
//! The server subscribes to the regular expression
//! `test-multihosting:worker-10:[-a-f0-9]+`, which every `test_worker_10`
//! matches under its own name, and feeds the workers into an
//! [`ObjectSpool`](layer_cake::spool): every [`Available`] and [`Dropped`]
//! the directory sends is forwarded to the spool, which puts the publisher
//! in rotation or takes it out. Each [`Xy`] is forwarded to the spool,
//! which sends it to the least-loaded worker (not round robin: the one
//! holding the fewest requests); the worker's table goes straight back to
//! the HTTP session. A worker that dies holding a request is replaced for
//! that request by another (one retry); with no worker at all a request is
//! answered `TemporarilyUnavailable` (503).
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
//! `--connect-to-directory=HOST:PORT` names another directory;
//! `--worker-capacity=N` lets the spool send each worker up to N requests
//! at once (1), which they answer in turn: pipelining over the link.

use layer_cake::directory::{Available, Dropped, NotSubscribed, Scope, Subscribed};
use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::spool::{SpoolOptions, Workers};
use layer_cake::{Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

/// Every worker-10's name.
const SERVICES: &str = "test-multihosting:worker-10:[-a-f0-9]+";

// The worker's table comes back through this process on its way to the
// HTTP session (the reply to a forward), so this process must be able to
// decode it.
layer_cake::register!(Vec<Vec<f64>>);

/// The arguments: where to listen (`--server-address`, 127.0.0.1:5050 by
/// default) and the scope to subscribe at (`--scope=LAN` to reach workers on
/// other hosts; HOST by default), and how many requests one worker may
/// hold (`--worker-capacity`, 1).
#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Args {
    server_address: layer_cake::HostPort,
    scope: Scope,
    worker_capacity: u32,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: ServerArgs::default().server_address,
            scope: Scope::Host,
            worker_capacity: 1,
        }
    }
}

async fn test_server_10(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let options = SpoolOptions::new().worker_capacity(args.worker_capacity);
    let spool = cx.spawn_spool(Workers::external(), options)?;
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    cx.subscribe(SERVICES, args.scope);
    let mut count = 0_usize;
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
                count += 1;
                eprintln!("test_server_10: worker available {} ({count} in all)", a.name);
                let _ = cx.send(a, &spool);
            },
            Dropped as d => {
                count = count.saturating_sub(1);
                eprintln!("test_server_10: worker dropped {} ({count} left)", d.name);
                let _ = cx.send(d, &spool);
            },
            Xy as xy => {
                if let Err(e) = cx.forward(xy, &spool) {
                    let _ = cx.reply(Faulted::out_of_service(format!("the spool is gone: {e}")));
                }
            },
            Returned as r => return Err(r.into_result::<()>().err().unwrap_or_else(|| Faulted::new("the spool ended"))),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_10 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_10)
}
