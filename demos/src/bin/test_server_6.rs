//! **test_server_6** — a child process per request, all at once.
//!
//! Like `test_server_5`, each [`Xy`] starts `test_function_5` as a child
//! process, but the server does not wait: it keeps the request's
//! [`ReturnPath`] under the child's id and answers when that child's
//! `Returned` arrives. Requests overlap — at the cost of a process each.
//!
//! ```text
//! $ cargo build -p layer-cake-demos
//! $ target/debug/test_server_6 &
//! test_server_6: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.31,0.9],[0.42,0.07]],[]]}
//! ```

use std::collections::HashMap;
use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::process::ProcessOptions;
use layer_cake::runtime::{ActorId, ReturnPath};
use layer_cake::{Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

// The children's result type, decoded from their output.
layer_cake::register!(Vec<Vec<f64>>);

/// How long the children have to stop when the server is stopped.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

async fn test_server_6(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    let mut waiting: HashMap<ActorId, ReturnPath> = HashMap::new();
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_6", &l),
            NotListening as n => return Err(n.into_fault()),
            Xy as xy => {
                let child = cx.spawn_process(
                    ProcessOptions::new("test_function_5")
                        .flag("x", xy.x.to_string())
                        .flag("y", xy.y.to_string()),
                );
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
            Stop as _ => {
                for child in cx.children() {
                    let _ = cx.stop(&child, STOP_DEADLINE).await;
                }
                return Err(Faulted::aborted());
            },
            other => tracing::warn!("test_server_6 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_6)
}
