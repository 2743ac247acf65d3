//! What the directory benchmarks share: waiting for a message with a
//! deadline, and the role that runs a HOST directory node in a process of
//! its own. Shared with `#[path = "support/node.rs"] mod node;`.

// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use layer_cake::directory::{NodeOptions, Scope, spawn_node};
use layer_cake::net::{HostPort, Listening};
use layer_cake::{Context, Message};

/// How long any one wait in a benchmark may take before it fails, saying
/// what it waited for.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The next `M` to arrive (others are skipped); panics, naming `M`, when
/// none comes within [`PATIENCE`].
pub(crate) async fn expect<M: Message>(cx: &mut Context) -> M {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, cx.input())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {} within {PATIENCE:?}",
                    layer_cake::message::signature_of::<M>()
                )
            });
        if let Ok(m) = message.downcast::<M>() {
            return m;
        }
    }
}

/// The `--role=host` of a benchmark: a HOST node on an ephemeral loopback
/// port (the node host-cake runs) that prints where it listens as its first
/// line, then runs until killed.
pub(crate) async fn host_role() {
    let mut cx = Context::detached("host");
    let _node = spawn_node(
        NodeOptions::new(Scope::Host).accept_at(HostPort::new("127.0.0.1", 0)),
        cx.address().clone(),
    );
    let at = expect::<Listening>(&mut cx).await.listening;
    println!("{at}");
    std::future::pending::<()>().await;
}
