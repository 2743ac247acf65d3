//! **drain_server** — an HTTP server for watching a process drain on
//! SIGTERM: `/Slow?ms=N` is answered N ms later (from another task, the
//! server free meanwhile), `/Spin?ms=N` blocks the server's thread for N
//! ms (a long synchronous computation, which an actor should never do).
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin drain_server -- --drain-time=5 &
//! drain_server: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Slow?ms=3000' & sleep 0.5; kill -TERM %1
//! {"value":["integer8",3000,[]]}
//! ```
//!
//! On SIGTERM the front stops accepting, the slow request is still
//! answered, and then the main actor gets `Stop` and ends: exit status 0.
//! A `Spin` outlasting `--drain-time` is cut short by the exit (status
//! 143 for SIGTERM). Each request is announced on stderr
//! (`drain_server: Slow 3000 ms`) so that tests know it has arrived.

use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::{Context, Faulted, Message, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs};
use serde::{Deserialize, Serialize};

/// Answered `ms` milliseconds later with `ms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
#[serde(default)]
struct Slow {
    ms: u64,
}

/// Blocks the server's thread for `ms` milliseconds, then answers `ms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
#[serde(default)]
struct Spin {
    ms: u64,
}

async fn drain_server(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let front = HttpServer::new()
        .accept::<Slow>()
        .accept::<Spin>()
        .answer_within(Duration::from_secs(120));
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("drain_server", &l),
            NotListening as n => return Err(n.into_fault()),
            Slow as slow => {
                eprintln!("drain_server: Slow {} ms", slow.ms);
                let answer = cx.return_path();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(slow.ms)).await;
                    let _ = answer.reply(slow.ms as i64);
                });
            },
            Spin as spin => {
                eprintln!("drain_server: Spin {} ms", spin.ms);
                std::thread::sleep(Duration::from_millis(spin.ms));
                let _ = cx.reply(spin.ms as i64);
            },
            Stop as _ => return Ok(()),
            other => tracing::warn!("drain_server ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(drain_server)
}
