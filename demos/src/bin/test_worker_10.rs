//! **test_worker_10** — one of many workers, each under its own name.
//!
//! Like `test_worker_9`, but the name it publishes ends in a fresh uuid,
//! `test-multihosting:worker-10:<uuid v4>`, so any number of them can be
//! listed at once; `test_server_10` subscribes to all of them with a regular
//! expression. It answers each [`Xy`] with `texture(x, y)`.
//!
//! Standalone, against a host-cake on this host:
//!
//! ```text
//! $ cargo run -p host-cake -- --no-lan-autoconnect &
//! $ cargo run -p layer-cake-demos --bin test_server_10 &
//! test_server_10: listening on 127.0.0.1:5050
//! $ cargo run -p layer-cake-demos --bin test_worker_10 &
//! test_worker_10: published test-multihosting:worker-10:5c6a0d8e-…
//! $ cargo run -p layer-cake-demos --bin test_worker_10 &
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! $ cargo run -p layer-cake-cli -- network --list-published
//! ```
//!
//! `--connect-to-directory=HOST:PORT` names another directory; `--scope=LAN`
//! publishes for the whole LAN (through host-cake to lan-cake).

use layer_cake::directory::{Delivered, Dropped, NotPublished, Published, Scope};
use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::{self as demo, Xy};

/// The arguments: the scope to publish at (`--scope=LAN` for workers on
/// other hosts; HOST by default).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Args {
    scope: Scope,
}

async fn test_worker_10(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let name = format!("test-multihosting:worker-10:{}", uuid::Uuid::new_v4());
    cx.publish(name, args.scope);
    loop {
        let message = cx.input().await;
        on!(message, {
            Published as p => eprintln!("test_worker_10: published {}", p.name),
            NotPublished as n => {
                return Err(Faulted::new(format!("cannot publish {}", n.name)).with_explanation(n.reason));
            },
            Delivered as d => tracing::info!("a subscriber for {}: {}", d.name, d.subscriber),
            Dropped as d => tracing::info!("a session of {} ended: {}", d.name, d.reason),
            Xy as xy => demo::answer_table(&cx, xy),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_worker_10 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_worker_10)
}
