//! **test_server_2** — a child actor per request, answered out of order.
//!
//! Each [`Xy`] is handed to a new child that computes the table; the request's
//! [`ReturnPath`] is kept under the child's id, and when the child's
//! `Returned` arrives its value goes back through that path. Requests overlap:
//! a slow table does not hold up a fast one.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin test_server_2 -- --server-address=127.0.0.1:5050 &
//! test_server_2: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.31,0.9],[0.42,0.07]],[]]}
//! ```

use std::collections::HashMap;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::runtime::{ActorId, ReturnPath};
use layer_cake::{Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

async fn test_server_2(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    let mut waiting: HashMap<ActorId, ReturnPath> = HashMap::new();
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_2", &l),
            NotListening as n => return Err(n.into_fault()),
            Xy as xy => {
                let child = cx.spawn(move |_cx: Context| async move { xy.table() });
                if let Some(id) = child.id() {
                    waiting.insert(id, cx.return_path());
                }
            },
            Returned as r => {
                let child = cx.return_address().id();
                if let Some(answer) = child.and_then(|id| waiting.remove(&id)) {
                    let _ = answer.reply_payload(r.value);
                }
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_2 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_2)
}
