//! A directory node that goes away and comes back interrupts no session
//! whose direct link lives (DESIGN.md decision 6; `docs/directory.md`,
//! "When a directory node restarts").
//!
//! Real nodes — LAN, host, group and process nodes in this test process,
//! each on its own ephemeral loopback port, linked by real connections —
//! with a publisher and a subscriber in two different process nodes, so
//! that their session runs over a direct connection between the two. A
//! directory node in the middle is stopped (its connections close, as they
//! do when its process is killed) and started again on the same port.
//!
//! Re-confirmation is seen through the grace: each subscriber's node holds
//! an unconfirmed session for only a few seconds, so a session still there
//! well past that after the restart was re-confirmed by the healed tree.

use std::time::{Duration, Instant};

use layer_cake::directory::{
    Available, Delivered, DirectoryListing, Dropped, Inspect, NodeOptions, Published, Scope,
    spawn_node,
};
use layer_cake::net::HostPort;
use layer_cake::runtime::AskError;
use layer_cake::{Ack, Address, Context, Payload, Stop};

mod support;
use support::{PATIENCE, daemon, daemon_at, drain, fast, first, publisher};

/// How long a subscriber's node holds an unconfirmed session in these
/// tests: long enough for a restarted node on loopback to heal the tree
/// on a loaded machine, short enough to wait out.
const GRACE: Duration = Duration::from_secs(8);

/// The signatures of what `seen` holds of the directory's events.
fn events(seen: &[Payload]) -> Vec<String> {
    seen.iter()
        .filter(|m| m.is::<Available>() || m.is::<Dropped>() || m.is::<Delivered>())
        .map(|m| format!("{m:?}"))
        .collect()
}

/// A process node under `parent` that holds unconfirmed sessions for
/// `grace`.
fn process(parent: &HostPort, grace: Duration) -> Address {
    spawn_node(
        fast(NodeOptions::new(Scope::Process))
            .parent(parent.clone())
            .reconfirm_within(grace),
        Address::NULL,
    )
}

/// Asks `node` until `done` accepts its description.
async fn inspect_until(node: &Address, done: impl Fn(&DirectoryListing) -> bool) {
    let mut cx = Context::detached("inspector");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(listing) = cx
            .ask::<DirectoryListing, _>(Inspect::default(), node, PATIENCE)
            .await
            && done(&listing)
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lists(listing: &DirectoryListing, name: &str) -> bool {
    listing.published.iter().any(|p| p.0 == name)
}

fn subscribes(listing: &DirectoryListing, pattern: &str) -> bool {
    listing.subscribed.iter().any(|s| s.0 == pattern)
}

/// `n` requests over the session, each answered by the publisher.
async fn answered(cx: &mut Context, publisher: &Address, n: usize) {
    for i in 0..n {
        let name: String = cx
            .ask(Ack, publisher, PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("request {i} over the session: {e:?}"));
        assert_eq!(name, "svc");
    }
}

/// Waits until `since + GRACE` and a little more, asking over the session
/// meanwhile; returns the directory events that came.
async fn outlive_the_grace(cx: &mut Context, publisher: &Address, since: Instant) -> Vec<String> {
    let mut seen = Vec::new();
    while since.elapsed() < GRACE + Duration::from_secs(2) {
        let name: String = cx
            .ask(Ack, publisher, PATIENCE)
            .await
            .expect("answered over the session");
        assert_eq!(name, "svc");
        seen.extend(drain(cx, Duration::from_millis(200)).await);
    }
    events(&seen)
}

/// HOST between two groups: host-cake goes and comes back while the two
/// processes, in different composites, keep talking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_restart_under_a_session_interrupts_nothing() {
    let (_lan, lan_at) = daemon(Scope::Lan, None).await;
    let (host, host_at) = daemon(Scope::Host, Some(&lan_at)).await;
    let (_g1, g1_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (g2, g2_at) = daemon(Scope::Group, Some(&host_at)).await;
    let a = process(&g1_at, GRACE);
    let b = process(&g2_at, GRACE);
    let _p = publisher(a.clone(), "svc", Scope::Lan);
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Lan);
    let available = first::<Available>(&mut subscriber).await;
    assert_eq!(available.scope, Scope::Host, "matched at the host");
    answered(&mut subscriber, &available.publisher, 3).await;

    // host-cake goes: the groups lose their parent, lan-cake its child.
    host.send(Stop).unwrap();
    let lost = Instant::now();
    inspect_until(&g2, |l| !l.parent_connected).await;
    // The session carries on over its direct link: no Dropped.
    answered(&mut subscriber, &available.publisher, 20).await;
    let meanwhile = events(&drain(&mut subscriber, Duration::from_millis(300)).await);
    assert!(meanwhile.is_empty(), "{meanwhile:?}");

    // host-cake comes back on the same port: the tree heals.
    let (host, _) = daemon_at(Scope::Host, host_at.clone(), Some(&lan_at)).await;
    inspect_until(&host, |l| lists(l, "svc") && subscribes(l, "svc")).await;
    // Re-confirmed: no Dropped past the grace, and no second Available.
    let later = outlive_the_grace(&mut subscriber, &available.publisher, lost).await;
    assert!(later.is_empty(), "{later:?}");

    // The publisher's process really goes: seen at once, through the
    // direct link (well before any grace).
    let killed = Instant::now();
    a.send(Stop).unwrap();
    let dropped = first::<Dropped>(&mut subscriber).await;
    assert_eq!(dropped.publication, available.publication);
    assert!(
        dropped.reason.starts_with("lost the publisher's process"),
        "{dropped:?}"
    );
    assert!(killed.elapsed() < GRACE, "took {:?}", killed.elapsed());
    match subscriber
        .ask::<String, _>(Ack, &available.publisher, Duration::from_secs(2))
        .await
    {
        Err(AskError::Send(_)) | Err(AskError::TimedOut) | Err(AskError::Faulted(_)) => {}
        other => panic!("the publisher is gone, got {other:?}"),
    }
}

/// LAN between two hosts: lan-cake goes and comes back; the session, found
/// at the LAN, carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lan_restart_under_a_session_interrupts_nothing() {
    let (lan, lan_at) = daemon(Scope::Lan, None).await;
    let (_h1, h1_at) = daemon(Scope::Host, Some(&lan_at)).await;
    let (h2, h2_at) = daemon(Scope::Host, Some(&lan_at)).await;
    let a = process(&h1_at, GRACE);
    let b = process(&h2_at, GRACE);
    let p = publisher(a.clone(), "svc", Scope::Lan);
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Lan);
    let available = first::<Available>(&mut subscriber).await;
    assert_eq!(available.scope, Scope::Lan);
    answered(&mut subscriber, &available.publisher, 3).await;

    lan.send(Stop).unwrap();
    let lost = Instant::now();
    inspect_until(&h2, |l| !l.parent_connected).await;
    answered(&mut subscriber, &available.publisher, 20).await;

    let (lan, _) = daemon_at(Scope::Lan, lan_at.clone(), None).await;
    inspect_until(&lan, |l| lists(l, "svc") && subscribes(l, "svc")).await;
    let later = outlive_the_grace(&mut subscriber, &available.publisher, lost).await;
    assert!(later.is_empty(), "{later:?}");

    // The publisher ends: Dropped at once.
    p.address().send(Stop).unwrap();
    let dropped = first::<Dropped>(&mut subscriber).await;
    assert_eq!(dropped.publication, available.publication);
    assert_eq!(dropped.reason, "the publisher has ended");
}

/// A publication withdrawn while the tree is broken: its publisher's node
/// closes the session over the direct link, so the subscriber hears of it
/// at once; the healed tree does not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_withdrawn_while_the_tree_is_broken_is_dropped() {
    let (host, host_at) = daemon(Scope::Host, None).await;
    let (_g1, g1_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (g2, g2_at) = daemon(Scope::Group, Some(&host_at)).await;
    let a = process(&g1_at, GRACE);
    let b = process(&g2_at, GRACE);
    let mut publisher = Context::detached("publisher");
    publisher.publish_at(&a, "svc", Scope::Host);
    let published = first::<Published>(&mut publisher).await;
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    let available = first::<Available>(&mut subscriber).await;
    first::<Delivered>(&mut publisher).await;

    host.send(Stop).unwrap();
    inspect_until(&g2, |l| !l.parent_connected).await;
    let meanwhile = events(&drain(&mut subscriber, Duration::from_millis(300)).await);
    assert!(meanwhile.is_empty(), "{meanwhile:?}");

    let cleared = Instant::now();
    publisher.clear_published_at(&a, published.id);
    let dropped = first::<Dropped>(&mut subscriber).await;
    assert_eq!(dropped.publication, available.publication);
    assert_eq!(dropped.reason, "publication cleared");
    assert!(cleared.elapsed() < GRACE, "took {:?}", cleared.elapsed());
    let dropped = first::<Dropped>(&mut publisher).await;
    assert_eq!(dropped.subscription, available.subscription);

    // The tree heals with the subscription and without the publication:
    // nothing comes back.
    let (host, _) = daemon_at(Scope::Host, host_at.clone(), None).await;
    inspect_until(&host, |l| subscribes(l, "svc")).await;
    let later = events(&drain(&mut subscriber, Duration::from_secs(1)).await);
    assert!(later.is_empty(), "{later:?}");
}

/// A tree that does not heal within the grace: the session is dropped on
/// both sides then, and comes back when the tree does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_tree_never_reconfirms_is_dropped_after_the_grace() {
    let grace = Duration::from_secs(2);
    let (host, host_at) = daemon(Scope::Host, None).await;
    let a = process(&host_at, grace);
    let b = process(&host_at, grace);
    let mut publisher = Context::detached("publisher");
    publisher.publish_at(&a, "svc", Scope::Host);
    first::<Published>(&mut publisher).await;
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    let available = first::<Available>(&mut subscriber).await;
    first::<Delivered>(&mut publisher).await;

    host.send(Stop).unwrap();
    let lost = Instant::now();
    let dropped = first::<Dropped>(&mut subscriber).await;
    let took = lost.elapsed();
    assert_eq!(dropped.publication, available.publication);
    assert!(
        dropped
            .reason
            .starts_with("not re-confirmed by the directory within 2 s"),
        "{dropped:?}"
    );
    assert!(took >= grace, "dropped before the grace: {took:?}");
    let dropped = first::<Dropped>(&mut publisher).await;
    assert_eq!(dropped.subscription, available.subscription);

    // The tree heals: the session is opened again, as a new one.
    let (_host, _) = daemon_at(Scope::Host, host_at.clone(), None).await;
    let again = first::<Available>(&mut subscriber).await;
    assert_eq!(again.publication, available.publication);
    first::<Delivered>(&mut publisher).await;
}
