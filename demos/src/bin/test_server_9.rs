//! **test_server_9** — an HTTP front for one published worker.
//!
//! The server listens with an HTTP front for [`Xy`] and subscribes to
//! `test-multihosting:worker-9`. The directory tells it when a worker is
//! [`Available`] (and where) and when that session is [`Dropped`]; it keeps
//! the one it has. Each request is *forwarded* to the worker, so the
//! worker's reply goes straight back to the HTTP session that asked; with
//! no worker the request is answered `TemporarilyUnavailable`, which the
//! front turns into a 503.
//!
//! Standalone, against a host-cake on this host (see `test_worker_9` for
//! the whole session):
//!
//! ```text
//! $ cargo run -p host-cake -- --no-lan-autoconnect &
//! $ cargo run -p layer-cake-demos --bin test_server_9 &
//! test_server_9: listening on 127.0.0.1:5050
//! $ curl -s -o /dev/null -w '%{http_code}\n' 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! 503
//! $ cargo run -p layer-cake-demos --bin test_worker_9 &
//! test_server_9: worker available
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

/// The worker's service name.
const SERVICE: &str = "test-multihosting:worker-9";

// The worker's table comes back through this process on its way to the
// HTTP session (the reply to a forward), so this process must be able to
// decode it.
layer_cake::register!(Vec<Vec<f64>>);

async fn test_server_9(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    cx.subscribe(SERVICE, Scope::Host);
    let mut worker: Option<Address> = None;
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_9", &l),
            NotListening as n => return Err(n.into_fault()),
            Subscribed as _ => {},
            NotSubscribed as n => {
                return Err(Faulted::new(format!("cannot subscribe to {}", n.pattern)).with_explanation(n.reason));
            },
            Available as a => {
                eprintln!("test_server_9: worker available");
                worker = Some(a.publisher);
            },
            Dropped as d => {
                if worker.as_ref() == Some(&d.remote) {
                    eprintln!("test_server_9: worker dropped ({})", d.reason);
                    worker = None;
                }
            },
            Xy as xy => {
                let sent = match &worker {
                    Some(w) => cx.forward(xy, w).map_err(drop),
                    None => Err(()),
                };
                if sent.is_err() {
                    let _ = cx.reply(Faulted::temporarily_unavailable("no worker available"));
                }
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_9 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_9)
}
