//! Helpers shared by the directory's integration tests (`directory.rs`,
//! `names.rs`, `heal.rs`): waiting for a message, real directory nodes on
//! loopback, and a node's description. Each test binary takes part of them.

#![allow(dead_code)]

use std::time::Duration;

use layer_cake::directory::{DirectoryListing, Inspect, NodeOptions, Scope, spawn_node};
use layer_cake::net::{HostPort, Listening};
use layer_cake::runtime::{self, ActorHandle};
use layer_cake::{Ack, Address, Context, Message, Payload, Stop, on};

/// Generous: the machine is a loaded 2-core box.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// Waits for the first `M` that `wanted` accepts; other messages are
/// skipped. Panics (failing the test) past the deadline.
pub(crate) async fn wait_for<M: Message>(cx: &mut Context, wanted: impl Fn(&M) -> bool) -> M {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, cx.input())
            .await
            .unwrap_or_else(|_| panic!("no {} in time", layer_cake::message::signature_of::<M>()));
        if let Some(m) = message.downcast_ref::<M>()
            && wanted(m)
        {
            return message.downcast::<M>().unwrap();
        }
    }
}

/// The first `M` to arrive.
pub(crate) async fn first<M: Message>(cx: &mut Context) -> M {
    wait_for::<M>(cx, |_| true).await
}

/// Messages that arrive within `quiet` of the last, for checking that
/// something does *not* happen (after a positive control has already
/// arrived).
pub(crate) async fn drain(cx: &mut Context, quiet: Duration) -> Vec<Payload> {
    let mut seen = Vec::new();
    while let Ok(message) = tokio::time::timeout(quiet, cx.input()).await {
        seen.push(message);
    }
    seen
}

/// Quick reconnects, so that a restarted node is found again soon.
pub(crate) fn fast(options: NodeOptions) -> NodeOptions {
    options.reconnect(Duration::from_millis(50), Duration::from_millis(400))
}

/// A node at `level` that accepts children at `at` (port 0: any), under
/// `parent`; its address and where it listens.
pub(crate) async fn daemon_at(
    level: Scope,
    at: HostPort,
    parent: Option<&HostPort>,
) -> (Address, HostPort) {
    let mut cx = Context::detached("starter");
    let mut options = fast(NodeOptions::new(level).accept_at(at));
    if let Some(parent) = parent {
        options = options.parent(parent.clone());
    }
    let node = spawn_node(options, cx.address().clone());
    let at = first::<Listening>(&mut cx).await.listening;
    (node, at)
}

/// A node that accepts children on an ephemeral port.
pub(crate) async fn daemon(level: Scope, parent: Option<&HostPort>) -> (Address, HostPort) {
    daemon_at(level, HostPort::new("127.0.0.1", 0), parent).await
}

/// A process node under `parent`.
pub(crate) fn process(parent: Option<&HostPort>) -> Address {
    let mut options = fast(NodeOptions::new(Scope::Process));
    if let Some(parent) = parent {
        options = options.parent(parent.clone());
    }
    spawn_node(options, Address::NULL)
}

/// An actor that publishes `name` and answers `Ack` with its name.
pub(crate) fn publisher(node: Address, name: &'static str, scope: Scope) -> ActorHandle<()> {
    runtime::spawn(move |mut cx: Context| async move {
        cx.publish_at(&node, name, scope);
        loop {
            on!(cx.input().await, {
                Ack as _ => { let _ = cx.reply(name.to_string()); },
                Stop as _ => return,
                _other => {},
            })
        }
    })
}

/// Asks `node` (from this process: the full view) until `done` accepts the
/// answer.
pub(crate) async fn inspect_until(
    node: &Address,
    done: impl Fn(&DirectoryListing) -> bool,
) -> DirectoryListing {
    let mut cx = Context::detached("inspector");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listing: DirectoryListing = cx.ask(Inspect::default(), node, PATIENCE).await.unwrap();
        if done(&listing) {
            return listing;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never: {listing:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
