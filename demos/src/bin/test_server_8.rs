//! **test_server_8** — a spool of 8 worker processes behind the HTTP front.
//!
//! `test_server_4`'s spool, with each worker a `test_worker_7` child process
//! instead of an actor: the spool starts eight of them (role names
//! `spool-0` … `spool-7`), sends each [`Xy`] to the least-loaded one over its
//! connect-back link, and the table goes back to the HTTP session. A worker
//! process that dies — even killed with SIGKILL — is replaced after a short
//! stand-down, and the requests it held are sent to another worker.
//!
//! ```text
//! $ cargo build -p layer-cake-demos
//! $ target/debug/test_server_8 &
//! test_server_8: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.58,0.57],[0.01,0.29]],[]]}
//! ```
//!
//! `--processes=N` changes the count (8), `--stand-down=SECONDS` the delay
//! before a dead worker is started again (2), `--worker-capacity=N` how many
//! requests the spool may send one worker at once (1; more pipelines them
//! over the worker's link, and the worker answers them in turn).

use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::process::ProcessOptions;
use layer_cake::spool::{SpoolOptions, Workers};
use layer_cake::{Address, Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, Xy};

// The workers' answers arrive over their links and are decoded here.
layer_cake::register!(Vec<Vec<f64>>);

/// How long the spool and its processes have to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// Where to listen, how many worker processes, how soon a dead one returns.
#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Args {
    server_address: layer_cake::HostPort,
    processes: usize,
    stand_down: f64,
    worker_capacity: u32,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: demo::ServerArgs::default().server_address,
            processes: 8,
            stand_down: 2.0,
            worker_capacity: 1,
        }
    }
}

async fn test_server_8(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let stand_down = Duration::try_from_secs_f64(args.stand_down)
        .map_err(|e| Faulted::new("bad --stand-down").with_explanation(e.to_string()))?;
    let workers = Workers::processes(
        args.processes,
        ProcessOptions::new("test_worker_7").role_name("spool"),
    );
    let options = SpoolOptions::new()
        .stand_down(Some(stand_down))
        .worker_capacity(args.worker_capacity);
    let spool = cx.spawn_spool(workers, options)?;
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        on!(cx.input().await, {
            Listening as l => demo::announce("test_server_8", &l),
            NotListening as n => {
                stop(&mut cx, &spool).await;
                return Err(n.into_fault());
            },
            Xy as xy => {
                if let Err(e) = cx.forward(xy, &spool) {
                    let _ = cx.reply(Faulted::out_of_service(format!("the spool is gone: {e}")));
                }
            },
            Returned as r => return Err(r.into_result::<()>().err().unwrap_or_else(|| Faulted::new("the spool ended"))),
            Stop as _ => {
                stop(&mut cx, &spool).await;
                return Err(Faulted::aborted());
            },
            other => tracing::warn!("test_server_8 ignores {}", other.signature()),
        })
    }
}

/// Stops the spool, which stops its worker processes, and waits for it.
async fn stop(cx: &mut Context, spool: &Address) {
    if let Err(fault) = cx.stop(spool, STOP_DEADLINE).await {
        eprintln!("test_server_8: the spool did not stop: {fault}");
    }
}

fn main() {
    layer_cake::create(test_server_8)
}
