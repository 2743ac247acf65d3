//! **test_server_7** — one worker process serving every request.
//!
//! The server starts `test_worker_7` once, as a child process, and
//! forwards each [`Xy`] to the address `spawn_process` gave it: the request
//! crosses to the worker process, and the worker's answer goes straight back
//! to the HTTP session that asked. If the worker process ends, so does the
//! server, with a fault that says how the worker ended.
//!
//! ```text
//! $ cargo build -p layer-cake-demos
//! $ target/debug/test_server_7 &
//! test_server_7: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.58,0.57],[0.01,0.29]],[]]}
//! ```

use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::process::ProcessOptions;
use layer_cake::{Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

// The worker's answers arrive over the link and are decoded here.
layer_cake::register!(Vec<Vec<f64>>);

/// How long the worker has to stop when the server is stopped.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

async fn test_server_7(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let worker = cx.spawn_process(ProcessOptions::new("test_worker_7").role_name("worker"));
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_7", &l),
            NotListening as n => {
                let _ = cx.stop(&worker, STOP_DEADLINE).await;
                return Err(n.into_fault());
            },
            Xy as xy => {
                if let Err(e) = cx.forward(xy, &worker) {
                    let _ = cx.reply(Faulted::new("the worker is gone").with_explanation(e.to_string()));
                }
            },
            Returned as r => {
                let ended = match r.into_result::<()>() {
                    Err(fault) => fault.to_string(),
                    Ok(()) => "it returned".to_owned(),
                };
                return Err(Faulted::new("the worker process ended").with_explanation(ended));
            },
            Stop as _ => {
                let _ = cx.stop(&worker, STOP_DEADLINE).await;
                return Err(Faulted::aborted());
            },
            other => tracing::warn!("test_server_7 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_server_7)
}
