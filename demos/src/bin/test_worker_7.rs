//! **test_worker_7** — a long-lived worker process: a "library" other
//! processes send requests to.
//!
//! The main actor answers every [`Xy`] it is sent with the table, until it
//! is stopped. Started with `spawn_process` (by `test_server_7`, or by an
//! `ObjectSpool` of them), it connects back to its parent, which then
//! forwards requests to it; the answers go straight back to whoever asked.
//!
//! ```text
//! $ cargo build -p layer-cake-demos
//! $ target/debug/test_server_7 &          # starts test_worker_7 itself
//! test_server_7: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.58,0.57],[0.01,0.29]],[]]}
//! ```
//!
//! Run alone it waits for requests that cannot come; Ctrl-C ends it
//! (`aborted`, exit status 71).

use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::{self as demo, Xy};

/// Answers each `Xy` with a table; ends on `Stop`.
async fn test_worker_7(mut cx: Context, _: ()) -> Result<(), Faulted> {
    loop {
        let message = cx.input().await;
        on!(message, {
            Xy as xy => {
                tracing::info!(x = xy.x, y = xy.y, "Computing a texture");
                demo::answer_table(&cx, xy);
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_worker_7 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_worker_7)
}
