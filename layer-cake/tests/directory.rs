//! The publish/subscribe directory with real nodes: process, group and host
//! nodes in one test process, linked by real connections on loopback, each
//! on its own ephemeral port.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use layer_cake::directory::{
    Available, Delivered, DirectoryListing, Dropped, Inspect, MAX_NAME_LEN, MAX_PATTERN_LEN,
    MAX_SUBSCRIPTIONS_PER_ACTOR, NodeOptions, NotPublished, NotSubscribed, Published,
    PublishedCleared, Scope, Subscribed, spawn_node,
};
use layer_cake::net::{ConnectOptions, Connected, HostPort, Listening};
use layer_cake::runtime::AskError;
use layer_cake::{Ack, Context, Stop};
use uuid::Uuid;

mod support;
use support::{PATIENCE, daemon, drain, fast, first, inspect_until, process, publisher, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_match_inside_one_process() {
    let node = process(None);
    let mut publisher = Context::detached("publisher");
    let mut subscriber = Context::detached("subscriber");
    publisher.publish_at(&node, "abc", Scope::Process);
    let published = first::<Published>(&mut publisher).await;
    assert_eq!(published.name, "abc");
    subscriber.subscribe_at(&node, "abc", Scope::Process);
    let subscribed = first::<Subscribed>(&mut subscriber).await;

    let available = first::<Available>(&mut subscriber).await;
    assert_eq!(available.publisher, *publisher.address());
    assert_eq!(available.scope, Scope::Process);
    assert_eq!(available.subscription, subscribed.id);
    assert_eq!(available.publication, published.id);
    let delivered = first::<Delivered>(&mut publisher).await;
    assert_eq!(delivered.subscriber, *subscriber.address());

    // They talk directly.
    subscriber.send(Ack, &available.publisher).unwrap();
    first::<Ack>(&mut publisher).await;
    assert_eq!(publisher.return_address(), subscriber.address());

    // Clearing the publication ends the session on both sides.
    publisher.clear_published_at(&node, published.id);
    first::<PublishedCleared>(&mut publisher).await;
    let dropped = first::<Dropped>(&mut subscriber).await;
    assert_eq!(dropped.publication, published.id);
    let dropped = first::<Dropped>(&mut publisher).await;
    assert_eq!(dropped.remote, *subscriber.address());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_a_reason() {
    let node = process(None);
    let mut cx = Context::detached("app");
    cx.subscribe_at(&node, "(unclosed", Scope::Process);
    let refused = first::<NotSubscribed>(&mut cx).await;
    assert!(
        refused.reason.contains("regular expression"),
        "{}",
        refused.reason
    );
    cx.subscribe_at(&node, "x", Scope::Process);
    first::<Subscribed>(&mut cx).await;
    cx.subscribe_at(&node, "x", Scope::Process);
    assert_eq!(
        first::<NotSubscribed>(&mut cx).await.reason,
        "already subscribed"
    );
    cx.publish_at(&node, "", Scope::Process);
    assert_eq!(first::<NotPublished>(&mut cx).await.reason, "an empty name");
    cx.publish_at(&node, "y", Scope::Process);
    first::<Published>(&mut cx).await;
    cx.publish_at(&node, "y", Scope::Process);
    assert_eq!(
        first::<NotPublished>(&mut cx).await.reason,
        "already published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_meet_through_the_host_and_talk_directly() {
    let (_host, host_at) = daemon(Scope::Host, None).await;
    let a = process(Some(&host_at));
    let b = process(Some(&host_at));
    let p1 = publisher(a.clone(), "worker:1", Scope::Host);
    let _p2 = publisher(a.clone(), "worker:2", Scope::Host);
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "worker:[0-9]+", Scope::Host);
    first::<Subscribed>(&mut subscriber).await;

    // Each match is a session of its own.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let available = first::<Available>(&mut subscriber).await;
        assert_eq!(available.scope, Scope::Host);
        assert!(available.publisher.is_remote());
        sessions.push((available.name, available.publisher));
    }
    sessions.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(sessions[0].0, "worker:1");
    assert_eq!(sessions[1].0, "worker:2");
    for (name, publisher) in &sessions {
        let answer: String = subscriber.ask(Ack, publisher, PATIENCE).await.unwrap();
        assert_eq!(&answer, name, "each session reaches its own publisher");
    }

    // A publisher that ends: its session is dropped, the other carries on.
    p1.address().send(Stop).unwrap();
    let dropped = wait_for::<Dropped>(&mut subscriber, |d| d.name == "worker:1").await;
    assert_eq!(dropped.scope, Scope::Host);
    let name: String = subscriber.ask(Ack, &sessions[1].1, PATIENCE).await.unwrap();
    assert_eq!(name, "worker:2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_is_never_visible_beyond_its_scope() {
    let (_host, host_at) = daemon(Scope::Host, None).await;
    let (_g1, g1_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (_g2, g2_at) = daemon(Scope::Group, Some(&host_at)).await;
    let a = process(Some(&g1_at));
    let _group_only = publisher(a.clone(), "only-in-g1", Scope::Group);
    let _host_wide = publisher(a.clone(), "host-wide", Scope::Host);

    // In the same group: the GROUP listing is visible.
    let c = process(Some(&g1_at));
    let mut near = Context::detached("near");
    near.subscribe_at(&c, "only-in-g1|host-wide", Scope::Host);
    let mut seen = [
        first::<Available>(&mut near).await,
        first::<Available>(&mut near).await,
    ];
    seen.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(seen[0].name, "host-wide");
    assert_eq!(seen[1].name, "only-in-g1");
    assert_eq!(seen[1].scope, Scope::Group, "matched in the group");

    // In another group: only the HOST listing.
    let b = process(Some(&g2_at));
    let mut far = Context::detached("far");
    far.subscribe_at(&b, "only-in-g1|host-wide", Scope::Host);
    let available = first::<Available>(&mut far).await;
    assert_eq!(available.name, "host-wide");
    assert_eq!(available.scope, Scope::Host);
    let later = drain(&mut far, Duration::from_millis(500)).await;
    assert!(
        later.iter().all(|m| !m.is::<Available>()),
        "a GROUP listing leaked to another group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nearest_publisher_wins_with_fallback_and_upgrade() {
    let (_host, host_at) = daemon(Scope::Host, None).await;
    let a = process(Some(&host_at));
    let b = process(Some(&host_at));
    // A far publisher of "svc" in another process.
    let _far = publisher(a.clone(), "svc", Scope::Host);
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    let available = first::<Available>(&mut subscriber).await;
    assert_eq!(available.scope, Scope::Host);
    let far = available.publisher;

    // A near publisher of the same name in the subscriber's own process, at
    // PROCESS scope (one instance of a name per scope: another at HOST
    // would be refused): the session moves to it (upgrade).
    let near = publisher(b.clone(), "svc", Scope::Process);
    let dropped = first::<Dropped>(&mut subscriber).await;
    assert_eq!(dropped.remote, far);
    assert_eq!(dropped.reason, "a nearer route");
    let available = first::<Available>(&mut subscriber).await;
    assert_eq!(available.scope, Scope::Process);
    assert_eq!(available.publisher, *near.address());

    // The near one goes: back to the far one (fallback).
    near.address().send(Stop).unwrap();
    let dropped = first::<Dropped>(&mut subscriber).await;
    assert_eq!(dropped.scope, Scope::Process);
    let available = first::<Available>(&mut subscriber).await;
    assert_eq!(available.scope, Scope::Host);
    assert_eq!(available.publisher, far);
    let name: String = subscriber.ask(Ack, &far, PATIENCE).await.unwrap();
    assert_eq!(name, "svc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_host_keeps_the_session_and_a_lost_process_is_dropped() {
    let (host, host_at) = daemon(Scope::Host, None).await;
    let a = process(Some(&host_at));
    let b = process(Some(&host_at));
    let _p = publisher(a.clone(), "svc", Scope::Host);
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    let first_session = first::<Available>(&mut subscriber).await;

    // The host directory goes away (with its connections): the routes it
    // offered are void, but the session's direct link lives, so the
    // session is kept (`tests/heal.rs` has the rest of this story).
    host.send(Stop).unwrap();
    let name: String = subscriber
        .ask(Ack, &first_session.publisher, PATIENCE)
        .await
        .unwrap();
    assert_eq!(name, "svc");

    // A new host directory on the same port: both processes reconnect,
    // re-send their listings, and the session is re-confirmed — not
    // dropped, not offered a second time.
    let mut starter = Context::detached("starter");
    let _host = spawn_node(
        fast(NodeOptions::new(Scope::Host).accept_at(host_at.clone())),
        starter.address().clone(),
    );
    first::<Listening>(&mut starter).await;
    let later = drain(&mut subscriber, Duration::from_millis(500)).await;
    assert!(
        later
            .iter()
            .all(|m| !m.is::<Dropped>() && !m.is::<Available>()),
        "{later:?}"
    );
    let again = first_session.clone();
    let name: String = subscriber
        .ask(Ack, &again.publisher, PATIENCE)
        .await
        .unwrap();
    assert_eq!(name, "svc");

    // The publisher's whole process goes (its node and connections with it).
    a.send(Stop).unwrap();
    let dropped = first::<Dropped>(&mut subscriber).await;
    assert_eq!(dropped.publication, first_session.publication);
    match subscriber
        .ask::<String, _>(Ack, &again.publisher, Duration::from_secs(2))
        .await
    {
        Err(AskError::Send(_)) | Err(AskError::TimedOut) | Err(AskError::Faulted(_)) => {}
        other => panic!("the publisher is gone, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_has_gone_says_so() {
    let node = process(None);
    let mut cx = Context::detached("app");
    assert!(cx.watch(&node));
    node.send(Stop).unwrap();
    first::<layer_cake::runtime::Ended>(&mut cx).await;
    cx.publish_at(&node, "x", Scope::Host);
    assert!(
        first::<NotPublished>(&mut cx)
            .await
            .reason
            .starts_with("no directory")
    );
    cx.subscribe_at(&node, "x", Scope::Host);
    assert!(
        first::<NotSubscribed>(&mut cx)
            .await
            .reason
            .starts_with("no directory")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_too_many_patterns_are_refused_with_a_reason() {
    let node = process(None);
    let mut cx = Context::detached("app");
    cx.subscribe_at(&node, "a".repeat(MAX_PATTERN_LEN + 1), Scope::Process);
    let refused = first::<NotSubscribed>(&mut cx).await;
    assert_eq!(
        refused.reason,
        format!(
            "a pattern of {} bytes (the limit is {MAX_PATTERN_LEN})",
            MAX_PATTERN_LEN + 1
        )
    );
    // Short, but it would compile to megabytes.
    cx.subscribe_at(&node, "(?:[a-z]{1000}){1000}", Scope::Process);
    let refused = first::<NotSubscribed>(&mut cx).await;
    assert!(
        refused.reason.contains("compiles to more than"),
        "{}",
        refused.reason
    );
    cx.publish_at(&node, "n".repeat(MAX_NAME_LEN + 1), Scope::Process);
    let refused = first::<NotPublished>(&mut cx).await;
    assert!(
        refused.reason.contains("the limit is"),
        "{}",
        refused.reason
    );

    // One actor may hold so many subscriptions and no more.
    let mut many = Context::detached("greedy");
    for i in 0..MAX_SUBSCRIPTIONS_PER_ACTOR {
        many.subscribe_at(&node, format!("p{i}"), Scope::Process);
    }
    for _ in 0..MAX_SUBSCRIPTIONS_PER_ACTOR {
        first::<Subscribed>(&mut many).await;
    }
    many.subscribe_at(&node, "one-more", Scope::Process);
    let refused = first::<NotSubscribed>(&mut many).await;
    assert_eq!(
        refused.reason,
        format!("too many subscriptions (the limit is {MAX_SUBSCRIPTIONS_PER_ACTOR} per actor)")
    );
    // Another actor is not held to the first one's count.
    cx.subscribe_at(&node, "one-more", Scope::Process);
    first::<Subscribed>(&mut cx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_actor_that_published_can_clear_it() {
    let node = process(None);
    let mut publisher = Context::detached("publisher");
    let mut other = Context::detached("other");
    let mut subscriber = Context::detached("subscriber");
    publisher.publish_at(&node, "mine", Scope::Process);
    let published = first::<Published>(&mut publisher).await;
    subscriber.subscribe_at(&node, "mine", Scope::Process);
    first::<Available>(&mut subscriber).await;

    other.clear_published_at(&node, published.id);
    // Positive control: the node has handled the clear once it answers
    // this (its mailbox is in order).
    let listing: DirectoryListing = other
        .ask(Inspect::default(), &node, PATIENCE)
        .await
        .unwrap();
    assert!(
        listing
            .refused
            .iter()
            .any(|(kind, n)| kind == "a clear of a publication the sender did not make" && *n == 1),
        "{listing:#?}"
    );
    assert_eq!(listing.published.len(), 1);
    let later = drain(&mut subscriber, Duration::from_millis(300)).await;
    assert!(later.iter().all(|m| !m.is::<Dropped>()));

    publisher.clear_published_at(&node, published.id);
    first::<PublishedCleared>(&mut publisher).await;
    first::<Dropped>(&mut subscriber).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_from_another_process_shows_no_ids_or_addresses() {
    let (host, host_at) = daemon(Scope::Host, None).await;
    let a = process(Some(&host_at));
    let b = process(Some(&host_at));
    let _p = publisher(a.clone(), "svc", Scope::Host);
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    first::<Available>(&mut subscriber).await;

    // From this process: the whole view, ids included.
    let mut local = Context::detached("local");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let full = loop {
        let l: DirectoryListing = local
            .ask(Inspect::default(), &host, PATIENCE)
            .await
            .unwrap();
        if !l.published.is_empty() && !l.subscribed.is_empty() {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "{l:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(full.published.iter().all(|p| !p.2.is_nil()));

    // Over a connection, as a peer: names, scopes and counts, and tags in
    // place of ids (the same tag at every node), never the ids.
    let real: Vec<Uuid> = full
        .published
        .iter()
        .map(|p| p.2)
        .chain(full.subscribed.iter().map(|s| s.2))
        .collect();
    let hidden = |id: &Uuid| !id.is_nil() && !real.contains(id);
    let mut peer = Context::detached("peer");
    peer.connect(host_at.clone(), ConnectOptions::native());
    let proxy = first::<Connected>(&mut peer).await.proxy;
    let seen: DirectoryListing = peer
        .ask(Inspect::default(), &proxy, PATIENCE)
        .await
        .unwrap();
    assert_eq!(seen.published.len(), full.published.len());
    assert_eq!(seen.published[0].0, "svc");
    assert_eq!(seen.published[0].1, Scope::Host);
    assert!(seen.published.iter().all(|p| hidden(&p.2)), "{seen:#?}");
    assert!(seen.subscribed.iter().all(|s| hidden(&s.2)), "{seen:#?}");
    // The host holds both: one route, between those two tags.
    assert_eq!(
        seen.routed,
        vec![("svc".to_string(), seen.subscribed[0].2, seen.published[0].2)],
        "{seen:#?}"
    );
    // Children are where they connect from, and an Inspect passed down by
    // the host reaches each of them (its answer has no ids either).
    assert_eq!(seen.children.len(), 2, "{seen:#?}");
    let mut names = Vec::new();
    for child in &seen.children {
        let below: DirectoryListing = peer
            .ask(
                Inspect {
                    below: vec![child.clone()],
                },
                &proxy,
                PATIENCE,
            )
            .await
            .unwrap();
        assert_eq!(below.level, Scope::Process);
        assert!(below.published.iter().all(|p| p.2 == seen.published[0].2));
        assert!(below.connected.iter().all(|c| c.2 == seen.published[0].2));
        names.extend(below.published.iter().map(|p| p.0.clone()));
    }
    assert_eq!(names, vec!["svc".to_string()]);
    // A path to nowhere is a fault, not a hang.
    let nowhere = peer
        .ask::<DirectoryListing, _>(
            Inspect {
                below: vec![HostPort::new("192.0.2.1", 9)],
            },
            &proxy,
            PATIENCE,
        )
        .await;
    assert!(matches!(nowhere, Err(AskError::Faulted(_))), "{nowhere:?}");
}

/// A TCP relay on loopback between a child directory and its parent: each
/// connection it accepts is carried over one of its own to the parent.
/// [`Relay::cut_child_side`] ends a carried connection on the child's side
/// only, so that the parent goes on holding the old link open — as when a
/// child's link breaks somewhere the parent does not see yet — until
/// [`Relay::cut_parent_side`]. Everything it runs stops when it is dropped.
struct Relay {
    at: HostPort,
    pairs: Arc<Mutex<Vec<Pair>>>,
    accepting: tokio::task::JoinHandle<()>,
}

/// One carried connection.
struct Pair {
    /// The relay's end toward the parent, as the parent sees the child
    /// (`DirectoryListing::children`).
    toward_parent: HostPort,
    /// A second descriptor of the parent-side socket: it stays open (no FIN)
    /// when the copying stops, until cut.
    parent_side: Option<std::net::TcpStream>,
    copying: Vec<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(parent: HostPort) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pairs: Arc<Mutex<Vec<Pair>>> = Arc::default();
        let kept = pairs.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((child, _)) = listener.accept().await {
                let to = format!("{}:{}", parent.host, parent.port);
                let Ok(upward) = tokio::net::TcpStream::connect(to).await else {
                    continue;
                };
                let local = upward.local_addr().unwrap();
                let upward = upward.into_std().unwrap();
                let parent_side = upward.try_clone().unwrap();
                let upward = tokio::net::TcpStream::from_std(upward).unwrap();
                // Halves that close nothing when dropped: the descriptor
                // kept above holds the parent's side open.
                let (mut up_read, mut up_write) = tokio::io::split(upward);
                let (mut child_read, mut child_write) = tokio::io::split(child);
                let copying = vec![
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut child_read, &mut up_write).await;
                    }),
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut up_read, &mut child_write).await;
                    }),
                ];
                kept.lock().unwrap().push(Pair {
                    toward_parent: HostPort::new(local.ip().to_string(), local.port()),
                    parent_side: Some(parent_side),
                    copying,
                });
            }
        });
        Relay {
            at: HostPort::new("127.0.0.1", port),
            pairs,
            accepting,
        }
    }

    /// The `n`th carried connection, as the parent sees it, once there.
    async fn link(&self, n: usize) -> HostPort {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(pair) = self.pairs.lock().unwrap().get(n) {
                return pair.toward_parent.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no connection {n} through the relay in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the `n`th connection on the child's side only.
    fn cut_child_side(&self, n: usize) {
        for task in &self.pairs.lock().unwrap()[n].copying {
            task.abort();
        }
    }

    /// Ends the `n`th connection on the parent's side too.
    fn cut_parent_side(&self, n: usize) {
        if let Some(socket) = self.pairs.lock().unwrap()[n].parent_side.take() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
        for pair in self.pairs.lock().unwrap().iter_mut() {
            for task in &pair.copying {
                task.abort();
            }
            if let Some(socket) = pair.parent_side.take() {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_reconnects_before_its_old_link_closes_keeps_its_listings() {
    let (host, host_at) = daemon(Scope::Host, None).await;
    let relay = Relay::start(host_at.clone()).await;
    let a = process(Some(&relay.at));
    let b = process(Some(&host_at));
    let _p = publisher(a.clone(), "svc", Scope::Host);
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    let before = first::<Available>(&mut subscriber).await;
    let old = relay.link(0).await;

    // The child's link breaks on its side only: the child reconnects (a new
    // link through the relay) and its snapshot reaches the host while the
    // host still holds the old link open.
    relay.cut_child_side(0);
    let new = relay.link(1).await;
    // The host has handled the new link's snapshot once it names the child.
    inspect_until(&host, |l| l.children.contains(&new)).await;
    // Now the old link's end reaches the host too.
    relay.cut_parent_side(0);
    let listing = inspect_until(&host, |l| !l.children.contains(&old)).await;

    // The child's listing is in place as its snapshot left it, without
    // another snapshot: held at the host, found by a new subscriber, ...
    let held: Vec<_> = listing.published.iter().filter(|p| p.0 == "svc").collect();
    assert_eq!(held.len(), 1, "{listing:#?}");
    assert_eq!(held[0].2, before.publication);
    assert!(
        listing
            .refused
            .iter()
            .all(|(kind, _)| kind != "a publication already listed by another source"),
        "{listing:#?}"
    );
    let c = process(Some(&host_at));
    let mut late = Context::detached("late");
    late.subscribe_at(&c, "svc", Scope::Host);
    let available = first::<Available>(&mut late).await;
    assert_eq!(available.publication, before.publication);
    let name: String = late.ask(Ack, &available.publisher, PATIENCE).await.unwrap();
    assert_eq!(name, "svc");

    // ... and the first subscriber has a route to it (again, if the move
    // dropped it).
    let mut route = Some(before.publisher);
    for message in drain(&mut subscriber, Duration::from_millis(500)).await {
        if message.is::<Dropped>() {
            route = None;
        } else if message.is::<Available>() {
            route = Some(message.downcast::<Available>().unwrap().publisher);
        }
    }
    let publisher = match route {
        Some(publisher) => publisher,
        None => first::<Available>(&mut subscriber).await.publisher,
    };
    let name: String = subscriber.ask(Ack, &publisher, PATIENCE).await.unwrap();
    assert_eq!(name, "svc");
}
