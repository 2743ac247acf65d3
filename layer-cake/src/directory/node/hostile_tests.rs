//! A hostile child link against a real host node: real connections on
//! loopback (ephemeral ports), the hostile side speaking the directory's own
//! protocol. What it lists is its own; what other links listed it can
//! neither replace nor withdraw, and everything it listed goes with it.

use std::time::Duration;

use uuid::Uuid;

use super::super::protocol::{Advisory, Listings, Publication, Withdrawn};
use super::super::{
    DirectoryListing, Dropped, Inspect, NotPublished, Published, Scope, Subscribed,
};
use super::{NodeOptions, spawn_node};
use crate::message::Message;
use crate::net::{Close, ConnectOptions, Connected, HostPort, ListenOptions, Listening};
use crate::runtime::Context;
use crate::{Address, Payload};

const PATIENCE: Duration = Duration::from_secs(20);

async fn first<M: Message>(cx: &mut Context) -> M {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, cx.input())
            .await
            .unwrap_or_else(|_| panic!("no {} in time", crate::message::signature_of::<M>()));
        if message.is::<M>() {
            return message.downcast::<M>().unwrap();
        }
    }
}

async fn drain(cx: &mut Context, quiet: Duration) -> Vec<Payload> {
    let mut seen = Vec::new();
    while let Ok(message) = tokio::time::timeout(quiet, cx.input()).await {
        seen.push(message);
    }
    seen
}

fn fast(options: NodeOptions) -> NodeOptions {
    options.reconnect(Duration::from_millis(50), Duration::from_millis(400))
}

async fn host() -> (Address, HostPort) {
    let mut cx = Context::detached("starter");
    let node = spawn_node(
        fast(NodeOptions::new(Scope::Host).accept_at(HostPort::new("127.0.0.1", 0))),
        cx.address().clone(),
    );
    let at = first::<Listening>(&mut cx).await.listening;
    (node, at)
}

fn process(parent: &HostPort) -> Address {
    spawn_node(
        fast(NodeOptions::new(Scope::Process).parent(parent.clone())),
        Address::NULL,
    )
}

/// A peer connected to `at` as a child directory would be.
async fn hostile(at: &HostPort) -> (Context, Address) {
    let mut cx = Context::detached("hostile");
    cx.connect(at.clone(), ConnectOptions::native());
    let proxy = first::<Connected>(&mut cx).await.proxy;
    (cx, proxy)
}

fn fake(id: Uuid, name: &str, publisher: &Address) -> Publication {
    Publication {
        id,
        name: name.into(),
        scope: Scope::Host,
        listening: Some(HostPort::new("127.0.0.1", 9)),
        publisher: publisher.clone(),
        incarnation: 1,
    }
}

/// Asks `node` (from this process: the full view) until `done` accepts the
/// answer.
async fn inspect_until(
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

fn refused(listing: &DirectoryListing, kind: &str) -> u64 {
    listing
        .refused
        .iter()
        .find(|(k, _)| k == kind)
        .map_or(0, |(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_link_can_neither_replace_nor_withdraw_another_links_listing() {
    let (host, host_at) = host().await;
    let a = process(&host_at);
    let b = process(&host_at);
    let mut publisher = Context::detached("publisher");
    publisher.publish_at(&a, "svc", Scope::Host);
    let real = first::<Published>(&mut publisher).await.id;
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    first::<Subscribed>(&mut subscriber).await;
    let available = first::<super::super::Available>(&mut subscriber).await;
    assert_eq!(available.publication, real);

    let (bad, proxy) = hostile(&host_at).await;
    let me = bad.address().clone();
    // Withdraw the real one by its id; list a fake under the same id; a full
    // snapshot of nothing (which replaces only what this link listed).
    bad.send(
        Withdrawn {
            publications: vec![real],
            subscriptions: vec![],
        },
        &proxy,
    )
    .unwrap();
    bad.send(
        Listings {
            full: false,
            secret: None,
            publications: vec![fake(real, "svc", &me)],
            subscriptions: vec![],
        },
        &proxy,
    )
    .unwrap();
    bad.send(
        Listings {
            full: true,
            secret: None,
            publications: vec![],
            subscriptions: vec![],
        },
        &proxy,
    )
    .unwrap();

    let listing = inspect_until(&host, |l| {
        refused(l, "a withdrawal of another source's publication") == 1
            && refused(l, "a publication already listed by another source") == 1
    })
    .await;
    // The real listing is still there, as it was.
    let held: Vec<_> = listing.published.iter().filter(|p| p.0 == "svc").collect();
    assert_eq!(held.len(), 1, "{listing:#?}");
    assert_eq!(held[0].2, real);
    let later = drain(&mut subscriber, Duration::from_millis(500)).await;
    assert!(
        later.iter().all(|m| !m.is::<Dropped>()),
        "the real session was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_link_listed_goes_with_it_whatever_its_sender_said() {
    let (host, host_at) = host().await;
    let (bad, proxy) = hostile(&host_at).await;
    let me = bad.address().clone();
    let other = Context::detached("someone else");
    // Its own listing, as a child would send it.
    bad.send(
        Listings {
            full: false,
            secret: None,
            publications: vec![fake(Uuid::new_v4(), "ghost", &me)],
            subscriptions: vec![],
        },
        &proxy,
    )
    .unwrap();
    // One claiming another sender on the same link: refused, never held.
    bad.forward_from(
        Listings {
            full: false,
            secret: None,
            publications: vec![fake(Uuid::new_v4(), "ghost-2", &me)],
            subscriptions: vec![],
        },
        &proxy,
        other.address(),
    )
    .unwrap();
    let listing = inspect_until(&host, |l| {
        l.published.iter().any(|p| p.0 == "ghost") && refused(l, "listings") == 1
    })
    .await;
    assert!(
        listing.published.iter().all(|p| p.0 != "ghost-2"),
        "{listing:#?}"
    );

    // The link goes: so does everything listed over it.
    bad.send(Close::default(), &proxy).unwrap();
    inspect_until(&host, |l| l.published.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_list_or_clear_through_a_process_node_it_reaches() {
    let (_host, host_at) = host().await;
    let a = process(&host_at);
    // A HOST publication makes the process listen for sessions.
    let mut publisher = Context::detached("publisher");
    publisher.publish_at(&a, "svc", Scope::Host);
    let real = first::<Published>(&mut publisher).await.id;
    let listing = inspect_until(&a, |l| !l.published.is_empty()).await;
    let sessions_at = listing.published[0].3.clone().expect("a session listen");

    let (mut bad, proxy) = hostile(&sessions_at).await;
    bad.send(super::super::protocol::ClearPublished { id: real }, &proxy)
        .unwrap();
    bad.send(
        super::super::protocol::PublishAs {
            name: "intruder".into(),
            scope: Scope::Host,
            publisher: bad.address().clone(),
        },
        &proxy,
    )
    .unwrap();
    let refusal = first::<super::super::NotPublished>(&mut bad).await;
    assert_eq!(
        refusal.reason,
        "only actors of this process list through its directory"
    );
    // A route offer not from its parent; a session open whose pattern does
    // not match the name.
    bad.send(
        super::super::protocol::RouteOffer {
            subscription: Uuid::new_v4(),
            publication: fake(Uuid::new_v4(), "svc", bad.address()),
            level: Scope::Host,
        },
        &proxy,
    )
    .unwrap();
    let open = super::super::protocol::OpenSession {
        subscription: Uuid::new_v4(),
        pattern: "something-else".into(),
        publication: real,
        subscriber: bad.address().clone(),
        level: Scope::Host,
    };
    let refused_open = bad
        .ask::<super::super::protocol::SessionOpened, _>(open, &proxy, PATIENCE)
        .await;
    match refused_open {
        Err(crate::runtime::AskError::Faulted(f)) => assert!(
            f.to_string()
                .contains("the subscription does not match the name"),
            "{f}"
        ),
        other => panic!("a session opened for a pattern that does not match: {other:?}"),
    }
    let listing = inspect_until(&a, |l| {
        refused(l, "a clear of a publication the sender did not make") == 1
            && refused(l, "a route offer") == 1
            && refused(l, "a session open") == 1
    })
    .await;
    assert_eq!(listing.published.len(), 1, "{listing:#?}");
    assert_eq!(listing.published[0].2, real);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_holds_so_many_publications_and_no_more() {
    use super::super::MAX_PUBLICATIONS_PER_LINK;
    let (host, host_at) = host().await;
    let (bad, proxy) = hostile(&host_at).await;
    let me = bad.address().clone();
    let total = MAX_PUBLICATIONS_PER_LINK + 5;
    let mut sent = 0;
    while sent < total {
        let batch = (total - sent).min(1000);
        let publications = (sent..sent + batch)
            .map(|i| fake(Uuid::new_v4(), &format!("flood:{i}"), &me))
            .collect();
        bad.send(
            Listings {
                full: false,
                secret: None,
                publications,
                subscriptions: vec![],
            },
            &proxy,
        )
        .unwrap();
        sent += batch;
    }
    let listing = inspect_until(&host, |l| refused(l, "a publication from a link") == 5).await;
    assert_eq!(listing.published.len(), MAX_PUBLICATIONS_PER_LINK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_stop_a_node() {
    let (host, host_at) = host().await;
    let (bad, proxy) = hostile(&host_at).await;
    bad.send(crate::Stop, &proxy).unwrap();
    let listing = inspect_until(&host, |l| refused(l, "a Stop from another process") == 1).await;
    assert_eq!(listing.level, Scope::Host);
    // Still taking children.
    let (_again, _) = hostile(&host_at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_pose_as_the_network_layer() {
    let (host, host_at) = host().await;
    let (bad, proxy) = hostile(&host_at).await;
    // A retry timer the node never started, fired by a peer.
    bad.send(super::super::protocol::Reconnect, &proxy).unwrap();
    inspect_until(&host, |l| {
        refused(l, "a runtime event from another process") == 1
    })
    .await;
    // Nor the grace timer that drops unconfirmed sessions.
    bad.send(super::super::protocol::Reconfirm, &proxy).unwrap();
    inspect_until(&host, |l| {
        refused(l, "a runtime event from another process") == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_without_a_childs_secret_cannot_take_its_listings() {
    let (host, host_at) = host().await;
    let a = process(&host_at);
    let b = process(&host_at);
    let mut publisher = Context::detached("publisher");
    publisher.publish_at(&a, "svc", Scope::Host);
    let real = first::<Published>(&mut publisher).await.id;
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    first::<Subscribed>(&mut subscriber).await;
    first::<super::super::Available>(&mut subscriber).await;

    // A full snapshot of the real listing with a secret of its own: the
    // hostile link is not the child that listed it, so nothing moves.
    let (bad, proxy) = hostile(&host_at).await;
    let me = bad.address().clone();
    let snapshot = |secret| Listings {
        full: true,
        publications: vec![fake(real, "svc", &me)],
        subscriptions: vec![],
        secret: Some(secret),
    };
    bad.send(snapshot(Uuid::new_v4()), &proxy).unwrap();
    // Nor does trying another secret on the same link.
    bad.send(snapshot(Uuid::new_v4()), &proxy).unwrap();
    let listing = inspect_until(&host, |l| {
        refused(l, "a publication already listed by another source") == 2
            && refused(l, "a snapshot with another secret than its link's first") == 1
    })
    .await;
    let held: Vec<_> = listing.published.iter().filter(|p| p.0 == "svc").collect();
    assert_eq!(held.len(), 1, "{listing:#?}");
    assert_eq!(held[0].2, real);
    assert_ne!(
        held[0].3,
        Some(HostPort::new("127.0.0.1", 9)),
        "{listing:#?}"
    );
    let later = drain(&mut subscriber, Duration::from_millis(500)).await;
    assert!(
        later.iter().all(|m| !m.is::<Dropped>()),
        "the real session was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_presenting_its_secret_over_a_new_link_takes_its_listings_there() {
    let (host, host_at) = host().await;
    let secret = Uuid::new_v4();
    let id = Uuid::new_v4();
    let (mut before, old) = hostile(&host_at).await;
    let me = before.address().clone();
    before
        .send(
            Listings {
                full: true,
                publications: vec![fake(id, "mine", &me)],
                subscriptions: vec![],
                secret: Some(secret),
            },
            &old,
        )
        .unwrap();
    inspect_until(&host, |l| l.published.iter().any(|p| p.2 == id)).await;

    // The same child over a new link, before the old one has closed: its
    // snapshot is held as the new link's, and the old link is closed.
    let (after, new) = hostile(&host_at).await;
    let me = after.address().clone();
    after
        .send(
            Listings {
                full: true,
                publications: vec![fake(id, "mine", &me)],
                subscriptions: vec![],
                secret: Some(secret),
            },
            &new,
        )
        .unwrap();
    let closed = first::<crate::net::Closed>(&mut before).await;
    assert_eq!(closed.proxy, old);
    let listing = inspect_until(&host, |l| l.children.len() == 1).await;
    assert_eq!(listing.published.len(), 1, "{listing:#?}");
    assert_eq!(listing.published[0].2, id);
    assert_eq!(
        refused(&listing, "a publication already listed by another source"),
        0
    );
    // It is the new link's now: it goes with that link.
    after.send(Close::default(), &new).unwrap();
    inspect_until(&host, |l| l.published.is_empty()).await;
}

/// A listing of a name a node already holds at that scope, from another
/// link: not listed, counted, and an `Advisory` goes back down that link
/// alone. The real listing and its session are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clashing_listing_is_refused_and_advised_down_its_own_link() {
    let (host, host_at) = host().await;
    let a = process(&host_at);
    let b = process(&host_at);
    let mut publisher = Context::detached("publisher");
    publisher.publish_at(&a, "svc", Scope::Host);
    let real = first::<Published>(&mut publisher).await.id;
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&b, "svc", Scope::Host);
    first::<Subscribed>(&mut subscriber).await;
    let available = first::<super::super::Available>(&mut subscriber).await;
    assert_eq!(available.publication, real);

    let (mut bad, proxy) = hostile(&host_at).await;
    let me = bad.address().clone();
    let squatter = Uuid::new_v4();
    bad.send(
        Listings {
            full: false,
            secret: None,
            publications: vec![fake(squatter, "svc", &me)],
            subscriptions: vec![],
        },
        &proxy,
    )
    .unwrap();
    let advisory = first::<Advisory>(&mut bad).await;
    assert_eq!(
        (advisory.publication, advisory.name.as_str()),
        (squatter, "svc")
    );
    assert_eq!((advisory.scope, advisory.level), (Scope::Host, Scope::Host));
    assert_eq!(bad.return_address(), &proxy);
    let listing = inspect_until(&host, |l| {
        refused(l, "a publication of a name already published at its scope") == 1
    })
    .await;
    let held: Vec<_> = listing.published.iter().filter(|p| p.0 == "svc").collect();
    assert_eq!(held.len(), 1, "{listing:#?}");
    assert_eq!(held[0].2, real);
    // Sent up to the host, an Advisory is refused: the host has no parent.
    bad.send(advisory, &proxy).unwrap();
    inspect_until(&host, |l| {
        refused(l, "an Advisory not from the parent") == 1
    })
    .await;
    let later = drain(&mut subscriber, Duration::from_millis(300)).await;
    assert!(
        later.iter().all(|m| !m.is::<Dropped>()),
        "the real session was dropped"
    );
}

/// A process node believes an `Advisory` only from its parent, and only
/// for what it passed up there as it passed it; then it withdraws the
/// publication and tells its publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advisory_is_believed_only_from_the_parent_as_listed() {
    // The parent is this test, listening as a host directory would.
    let mut parent = Context::detached("parent");
    parent.listen(HostPort::new("127.0.0.1", 0), ListenOptions::native());
    let parent_at = first::<Listening>(&mut parent).await.listening;
    let a = process(&parent_at);
    let mut publisher = Context::detached("publisher");
    publisher.publish_at(&a, "svc", Scope::Host);
    let real = first::<Published>(&mut publisher).await.id;
    let snapshot = first::<Listings>(&mut parent).await;
    assert_eq!(snapshot.publications.len(), 1);
    assert_eq!(snapshot.publications[0].id, real);
    let child = parent.return_address().clone();
    let advisory = |name: &str, scope: Scope, level: Scope| Advisory {
        publication: real,
        name: name.into(),
        scope,
        level,
    };

    // From a peer that is not the parent (over the session listener).
    let listing = inspect_until(&a, |l| !l.published.is_empty()).await;
    let sessions_at = listing.published[0].3.clone().expect("a session listen");
    let (bad, proxy) = hostile(&sessions_at).await;
    bad.send(advisory("svc", Scope::Host, Scope::Host), &proxy)
        .unwrap();
    // From the parent, but not as listed: another name (a long one, logged
    // cut short), another scope, a level not above the process node.
    parent
        .send(
            advisory(&"x".repeat(100_000), Scope::Host, Scope::Host),
            &child,
        )
        .unwrap();
    parent
        .send(advisory("svc", Scope::Lan, Scope::Lan), &child)
        .unwrap();
    parent
        .send(advisory("svc", Scope::Host, Scope::Process), &child)
        .unwrap();
    // For a publication it does not hold: nothing to do.
    parent
        .send(
            Advisory {
                publication: Uuid::new_v4(),
                ..advisory("svc", Scope::Host, Scope::Host)
            },
            &child,
        )
        .unwrap();
    let listing = inspect_until(&a, |l| {
        refused(l, "an Advisory not from the parent") == 1
            && refused(l, "an Advisory that does not fit what was passed up") == 3
    })
    .await;
    assert_eq!(listing.published.len(), 1, "{listing:#?}");
    let early = drain(&mut publisher, Duration::from_millis(300)).await;
    assert!(
        early.iter().all(|m| !m.is::<NotPublished>()),
        "refused on a bad Advisory"
    );

    // As listed, from the parent: refused, withdrawn, and said so.
    parent
        .send(advisory("svc", Scope::Host, Scope::Host), &child)
        .unwrap();
    let refusal = first::<NotPublished>(&mut publisher).await;
    assert_eq!(
        refusal.reason,
        "svc is already published at HOST by another publisher (refused by the HOST directory)"
    );
    let withdrawn = first::<Withdrawn>(&mut parent).await;
    assert_eq!(withdrawn.publications, vec![real]);
    inspect_until(&a, |l| l.published.is_empty()).await;
}
