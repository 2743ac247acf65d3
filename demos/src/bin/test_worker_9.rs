//! **test_worker_9** — a worker published as a service.
//!
//! It publishes `test-multihosting:worker-9` at HOST scope (the default) and
//! answers each [`Xy`] it receives with `texture(x, y)`. It never listens or
//! connects by itself: the directory introduces it to its subscribers
//! (`test_server_9`), which then send to it directly.
//!
//! Standalone, against a host-cake on this host:
//!
//! ```text
//! $ cargo run -p host-cake -- --no-lan-autoconnect &
//! host-cake: listening on 127.0.0.1:54195
//! $ cargo run -p layer-cake-demos --bin test_worker_9 &
//! test_worker_9: published test-multihosting:worker-9
//! $ cargo run -p layer-cake-demos --bin test_server_9 &
//! test_server_9: listening on 127.0.0.1:5050
//! test_server_9: worker available
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! {"value":["vector<vector<float8>>",[[0.8,0.12],[0.33,0.5]],[]]}
//! ```
//!
//! A host-cake elsewhere is named with the standard flag
//! `--connect-to-directory=HOST:PORT`.

use layer_cake::directory::{Delivered, Dropped, NotPublished, Published, Scope};
use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::{self as demo, Xy};

/// The service name the server subscribes to.
const SERVICE: &str = "test-multihosting:worker-9";

async fn test_worker_9(mut cx: Context, _: ()) -> Result<(), Faulted> {
    cx.publish(SERVICE, Scope::Host);
    loop {
        let message = cx.input().await;
        on!(message, {
            Published as p => eprintln!("test_worker_9: published {}", p.name),
            NotPublished as n => {
                return Err(Faulted::new(format!("cannot publish {}", n.name)).with_explanation(n.reason));
            },
            Delivered as d => tracing::info!("a subscriber for {}: {}", d.name, d.subscriber),
            Dropped as d => tracing::info!("a session of {} ended: {}", d.name, d.reason),
            Xy as xy => demo::answer_table(&cx, xy),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_worker_9 ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_worker_9)
}
