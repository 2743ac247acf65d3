//! The tutorial's step 3 (`docs/tutorial.md`): an HTTP front over a spool
//! of worker processes.
//!
//! ```text
//! $ cargo build -p layer-cake-demos --examples
//! $ target/debug/examples/tutorial_3_server --workers=3
//! tutorial_3_server: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Greet?name=Ann'      # from another terminal
//! {"value":["unicode","hello Ann from worker 48213",[]]}
//! ```

use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::process::ProcessOptions;
use layer_cake::spool::{SpoolOptions, Workers};
use layer_cake::{Context, Faulted, HostPort, Returned, Stop, on};
use layer_cake_demos::tutorial::Greet;
use serde::Deserialize;

/// The program's arguments: where to listen, how many worker processes.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    server_address: HostPort,
    workers: usize,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: HostPort::new("127.0.0.1", 5050),
            workers: 3,
        }
    }
}

async fn main_actor(mut cx: Context, args: Args) -> Result<(), Faulted> {
    // `workers` processes of the program `tutorial_3_worker`, found next to
    // this one (or on PATH), each restarted if it dies.
    let workers = Workers::processes(args.workers, ProcessOptions::new("tutorial_3_worker"));
    let spool = cx.spawn_spool(workers, SpoolOptions::new())?;
    let front = HttpServer::new().accept::<Greet>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        on!(cx.input().await, {
            Listening as l => eprintln!("tutorial_3_server: listening on {}", l.listening),
            NotListening as n => return Err(n.into_fault()),
            // The worker's answer goes straight back to the HTTP request.
            Greet as g => {
                if let Err(e) = cx.forward(g, &spool) {
                    let _ = cx.reply(Faulted::out_of_service(format!("the spool is gone: {e}")));
                }
            },
            Returned as _ => return Err(Faulted::new("the spool ended")),
            Stop as _ => {
                // The spool stops its worker processes.
                let _ = cx.stop(&spool, Duration::from_secs(15)).await;
                return Ok(());
            },
            other => tracing::warn!("ignored {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(main_actor)
}
