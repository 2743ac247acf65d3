//! **test_server_3** — one long-lived worker, reached with `ask`.
//!
//! The server starts a `worker` child once; each [`Xy`] is asked of it with
//! a deadline, and the answer (or the fault: the worker too slow, or gone)
//! is the reply.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin test_server_3 &
//! test_server_3: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.8,0.12],[0.33,0.5]],[]]}
//! ```
//!
//! The ask is made inline, so the server handles one request at a time,
//! like the worker behind it.

use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

/// How long the worker has for one table.
const WORKER_DEADLINE: Duration = Duration::from_secs(5);

/// Computes a table for every `Xy` it is asked; ends on `Stop`.
async fn worker(mut cx: Context) -> Result<(), Faulted> {
    loop {
        let message = cx.input().await;
        on!(message, {
            Xy as xy => demo::answer_table(&cx, xy),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("worker ignores {}", other.signature()),
        })
    }
}

async fn test_server_3(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let worker = cx.spawn(worker);
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_3", &l),
            NotListening as n => return Err(n.into_fault()),
            Xy as xy => {
                let answer = cx.ask::<Vec<Vec<f64>>, _>(xy, &worker, WORKER_DEADLINE).await;
                let _ = match answer {
                    Ok(table) => cx.reply(table).map_err(drop),
                    Err(e) => cx.reply(e.into_fault()).map_err(drop),
                };
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_3 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_3)
}
