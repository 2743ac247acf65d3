//! **test_server_1** — the simplest HTTP server: the main actor listens with
//! an HTTP front for [`Xy`] and answers each request inline.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin test_server_1 &
//! test_server_1: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.56,0.55],[0.15,0.7]],[]]}
//! ```
//!
//! One request at a time: the table is computed between two `input()`s. A
//! port that cannot be had ends the process with the `NotListening` as its
//! fault; Ctrl-C (a `Stop`) ends it `Aborted`.

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

async fn test_server_1(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_1", &l),
            NotListening as n => return Err(n.into_fault()),
            Xy as xy => demo::answer_table(&cx, xy),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_1 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_1)
}
