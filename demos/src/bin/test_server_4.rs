//! **test_server_4** — a spool of 8 local workers behind the HTTP front.
//!
//! The server starts an [`ObjectSpool`](layer_cake::spool) of eight `worker`
//! actors and `forward`s each [`Xy`] to it: the spool hands the request to
//! the least-loaded worker, queues it while all eight are busy, and the
//! worker's table goes back to the HTTP session. A request the spool cannot
//! serve is answered with a fault that says why — `Overloaded` (queue full)
//! or `Busy` (answers have become slow) are 503 with `Retry-After`.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin test_server_4 &
//! test_server_4: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.8,0.12],[0.33,0.5]],[]]}
//! ```
//!
//! `--size-of-queue=N` bounds the spool's queue (1024 by default),
//! `--responsiveness=SECONDS` sets the Busy threshold (5).

use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::spool::{SpoolOptions, Workers};
use layer_cake::{Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, Xy};

/// Computes a table for every `Xy`; ends on `Stop`.
async fn worker(mut cx: Context) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            Xy as xy => demo::answer_table(&cx, xy),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("worker ignores {}", other.signature()),
        })
    }
}

/// Where to listen and how the spool sheds load.
#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Args {
    server_address: layer_cake::HostPort,
    size_of_queue: usize,
    responsiveness: f64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: demo::ServerArgs::default().server_address,
            size_of_queue: 1024,
            responsiveness: 5.0,
        }
    }
}

async fn test_server_4(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let options = SpoolOptions::new()
        .size_of_queue(args.size_of_queue)
        .responsiveness(Some(Duration::from_secs_f64(args.responsiveness)));
    let spool = cx.spawn_spool(Workers::local(8, worker), options)?;
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        on!(cx.input().await, {
            Listening as l => demo::announce("test_server_4", &l),
            NotListening as n => return Err(n.into_fault()),
            Xy as xy => {
                if let Err(e) = cx.forward(xy, &spool) {
                    let _ = cx.reply(Faulted::out_of_service(format!("the spool is gone: {e}")));
                }
            },
            Returned as r => return Err(r.into_result::<()>().err().unwrap_or_else(|| Faulted::new("the spool ended"))),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_4 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_4)
}
