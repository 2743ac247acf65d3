//! **test_server_5** — a child process per request, one at a time.
//!
//! For each [`Xy`] the server starts `test_function_5 --x=.. --y=..` as a
//! child process and waits for its `Returned`: the table the child printed,
//! decoded, or the fault it ended with. Requests that arrive meanwhile wait
//! their turn.
//!
//! ```text
//! $ cargo build -p layer-cake-demos
//! $ target/debug/test_server_5 &
//! test_server_5: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.8,0.12],[0.33,0.5]],[]]}
//! ```
//!
//! `test_function_5` is found next to `test_server_5` (or on `PATH`).

use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::process::ProcessOptions;
use layer_cake::{Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

// The children's result type, decoded from their output.
layer_cake::register!(Vec<Vec<f64>>);

/// How long a child has to stop when the server is stopped.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

async fn test_server_5(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_5", &l),
            NotListening as n => return Err(n.into_fault()),
            Xy as xy => {
                let answer = cx.return_path();
                let child = cx.spawn_process(
                    ProcessOptions::new("test_function_5")
                        .flag("x", xy.x.to_string())
                        .flag("y", xy.y.to_string()),
                );
                // Serial: wait for this child, keeping other requests for later.
                let returned = loop {
                    let message = cx.input().await;
                    on!(message, {
                        Returned as r => break r,
                        Stop as _ => {
                            let _ = cx.stop(&child, STOP_DEADLINE).await;
                            return Err(Faulted::aborted());
                        },
                        other => cx.save(other),
                    })
                };
                cx.restore_saved();
                let _ = answer.reply_payload(returned.value);
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_server_5 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_5)
}
