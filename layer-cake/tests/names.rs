//! One instance of a name per scope, at every level: real process, group,
//! host and LAN nodes in one test process, linked by real connections on
//! loopback, each on its own ephemeral port.
//!
//! A second publication of a name at a scope where it is already published
//! is refused with `NotPublished` (at once in one process; from the node
//! above where the two meet otherwise, whose `Advisory` the clashing
//! process's node logs as `Cannot publish <name> at <scope>: …`), the first
//! is untouched, and once the first has gone the name can be published
//! again. Names are distinct per test: the tests share one process (and its
//! log).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use layer_cake::directory::{
    Available, DirectoryListing, Dropped, NotPublished, Published, PublishedCleared, Scope,
    Subscribed,
};
use layer_cake::net::HostPort;
use layer_cake::runtime::{self, ActorHandle};
use layer_cake::{Ack, Address, Context, Payload, Stop, on};
use uuid::Uuid;

mod support;
use support::{PATIENCE, daemon, daemon_at, drain, first, inspect_until, process, wait_for};

// ---- the log --------------------------------------------------------------

/// Where this test process's log lines go (installed once).
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(writer.clone()))
            .try_init();
        buffer
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits until a log line contains `text`; returns it.
async fn logged(text: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let all = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
        if let Some(line) = all.lines().find(|l| l.contains(text)) {
            return line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line with {text:?} in:\n{all}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- messages -------------------------------------------------------------

fn no_refusal(seen: &[Payload]) {
    let refused: Vec<_> = seen
        .iter()
        .filter_map(|m| m.downcast_ref::<NotPublished>())
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
}

// ---- nodes ----------------------------------------------------------------

/// A publisher actor, and the context its directory answers are passed to.
struct Publisher {
    actor: ActorHandle<()>,
    answers: Context,
}

/// An actor that publishes `name` at `scope` through `node`, passes every
/// `Published`, `NotPublished` and `Dropped` it gets on to `answers`, and
/// answers `Ack` with `tag`. It ends on `Stop`.
fn publisher(node: &Address, name: &'static str, scope: Scope, tag: &'static str) -> Publisher {
    let answers = Context::detached(tag);
    let report = answers.address().clone();
    let node = node.clone();
    let actor = runtime::spawn(move |mut cx: Context| async move {
        cx.publish_at(&node, name, scope);
        loop {
            on!(cx.input().await, {
                Published as p => { let _ = cx.send(p, &report); },
                NotPublished as n => { let _ = cx.send(n, &report); },
                Dropped as d => { let _ = cx.send(d, &report); },
                Ack as _ => { let _ = cx.reply(tag.to_string()); },
                Stop as _ => return,
                _other => {},
            })
        }
    });
    Publisher { actor, answers }
}

/// The ids `listing` holds for `name` at `scope`.
fn held(listing: &DirectoryListing, name: &str, scope: Scope) -> Vec<Uuid> {
    listing
        .published
        .iter()
        .filter(|p| p.0 == name && p.1 == scope)
        .map(|p| p.2)
        .collect()
}

fn refused(listing: &DirectoryListing, kind: &str) -> u64 {
    listing
        .refused
        .iter()
        .find(|(k, _)| k == kind)
        .map_or(0, |(_, n)| *n)
}

const CLASH: &str = "a publication of a name already published at its scope";

/// A subscriber through `node` to `pattern` at `scope`: its first
/// `Available`, and which publisher answers there (`Ack` → its tag).
async fn subscribe(node: &Address, pattern: &str, scope: Scope) -> (Context, Available, String) {
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(node, pattern, scope);
    first::<Subscribed>(&mut subscriber).await;
    let available = first::<Available>(&mut subscriber).await;
    let tag: String = subscriber
        .ask(Ack, &available.publisher, PATIENCE)
        .await
        .unwrap();
    (subscriber, available, tag)
}

// ---- the tests ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_scope_one_name_per_process() {
    log();
    let node = process(None);
    let mut a = Context::detached("a");
    a.publish_at(&node, "p-dup", Scope::Process);
    let first_id = first::<Published>(&mut a).await.id;

    // Another actor of the same process: refused at once, with a reason.
    let mut b = Context::detached("b");
    b.publish_at(&node, "p-dup", Scope::Process);
    let refusal = first::<NotPublished>(&mut b).await;
    assert_eq!(refusal.name, "p-dup");
    assert_eq!(refusal.scope, Scope::Process);
    assert_eq!(
        refusal.reason,
        "p-dup is already published at PROCESS by another publisher"
    );
    let line = logged("Cannot publish p-dup at PROCESS: ").await;
    assert!(line.contains("WARN"), "{line}");

    // The first is untouched: found, and nothing dropped.
    let mut subscriber = Context::detached("subscriber");
    subscriber.subscribe_at(&node, "p-dup", Scope::Process);
    let available = first::<Available>(&mut subscriber).await;
    assert_eq!(available.publication, first_id);
    assert_eq!(available.publisher, *a.address());
    let listing = inspect_until(&node, |_| true).await;
    assert_eq!(held(&listing, "p-dup", Scope::Process), vec![first_id]);

    // Another process has a PROCESS name of its own.
    let other = process(None);
    let mut c = Context::detached("c");
    c.publish_at(&other, "p-dup", Scope::Process);
    first::<Published>(&mut c).await;

    // The first withdrawn: the name is free again.
    a.clear_published_at(&node, first_id);
    first::<PublishedCleared>(&mut a).await;
    let dropped = first::<Dropped>(&mut subscriber).await;
    assert_eq!(dropped.publication, first_id);
    b.publish_at(&node, "p-dup", Scope::Process);
    let again = first::<Published>(&mut b).await;
    let available = first::<Available>(&mut subscriber).await;
    assert_eq!(available.publication, again.id);
    assert_eq!(available.publisher, *b.address());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_scope_one_name_per_group() {
    log();
    let (group, group_at) = daemon(Scope::Group, None).await;
    let (pa, pb, pc) = (
        process(Some(&group_at)),
        process(Some(&group_at)),
        process(Some(&group_at)),
    );
    let mut a = publisher(&pa, "g-dup", Scope::Group, "a");
    let first_id = first::<Published>(&mut a.answers).await.id;
    inspect_until(&group, |l| held(l, "g-dup", Scope::Group) == vec![first_id]).await;
    let (mut subscriber, available, tag) = subscribe(&pc, "g-dup", Scope::Group).await;
    assert_eq!((available.publication, tag.as_str()), (first_id, "a"));

    // Another process of the group: listed in its own process first, then
    // refused by the group, which tells its process.
    let mut b = publisher(&pb, "g-dup", Scope::Group, "b");
    let refusal = first::<NotPublished>(&mut b.answers).await;
    assert_eq!(
        (refusal.name.as_str(), refusal.scope),
        ("g-dup", Scope::Group)
    );
    assert_eq!(
        refusal.reason,
        "g-dup is already published at GROUP by another publisher (refused by the GROUP directory)"
    );
    let line = logged("Cannot publish g-dup at GROUP: ").await;
    assert!(line.contains("WARN"), "{line}");
    // Withdrawn in its process; the group holds the first alone.
    inspect_until(&pb, |l| l.published.is_empty()).await;
    let listing = inspect_until(&group, |l| refused(l, CLASH) == 1).await;
    assert_eq!(held(&listing, "g-dup", Scope::Group), vec![first_id]);

    // The same name at another scope is no clash: listed beside it. The
    // subscriber keeps its route to the first (first offered among equals).
    let mut e = publisher(&pb, "g-dup", Scope::Host, "e");
    first::<Published>(&mut e.answers).await;
    inspect_until(&group, |l| held(l, "g-dup", Scope::Host).len() == 1).await;
    no_refusal(&drain(&mut e.answers, Duration::from_millis(300)).await);
    let later = drain(&mut subscriber, Duration::from_millis(300)).await;
    assert!(
        later.iter().all(|m| !m.is::<Dropped>()),
        "the first publisher's session was dropped"
    );
    let name: String = subscriber
        .ask(Ack, &available.publisher, PATIENCE)
        .await
        .unwrap();
    assert_eq!(name, "a");

    // The first ends: once the group has seen it go, the name is free at
    // GROUP again.
    a.actor.address().send(Stop).unwrap();
    wait_for::<Dropped>(&mut subscriber, |d| d.publication == first_id).await;
    inspect_until(&group, |l| held(l, "g-dup", Scope::Group).is_empty()).await;
    let mut f = publisher(&pa, "g-dup", Scope::Group, "f");
    let again = first::<Published>(&mut f.answers).await.id;
    inspect_until(&group, |l| held(l, "g-dup", Scope::Group) == vec![again]).await;
    no_refusal(&drain(&mut f.answers, Duration::from_millis(300)).await);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_in_two_groups_do_not_clash() {
    log();
    let (host, host_at) = daemon(Scope::Host, None).await;
    let (g1, g1_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (g2, g2_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (p1, p2) = (process(Some(&g1_at)), process(Some(&g2_at)));
    let mut a1 = publisher(&p1, "two-groups", Scope::Group, "a1");
    let mut a2 = publisher(&p2, "two-groups", Scope::Group, "a2");
    let id1 = first::<Published>(&mut a1.answers).await.id;
    let id2 = first::<Published>(&mut a2.answers).await.id;
    // Each group holds its own; a GROUP name never goes up, so nothing can
    // refuse it later.
    inspect_until(&g1, |l| held(l, "two-groups", Scope::Group) == vec![id1]).await;
    inspect_until(&g2, |l| held(l, "two-groups", Scope::Group) == vec![id2]).await;
    let listing = inspect_until(&host, |_| true).await;
    assert!(held(&listing, "two-groups", Scope::Group).is_empty());
    no_refusal(&drain(&mut a1.answers, Duration::from_millis(300)).await);
    no_refusal(&drain(&mut a2.answers, Duration::from_millis(100)).await);
    // Each group's subscribers reach their own group's publisher.
    let (_s1, _, tag1) = subscribe(&process(Some(&g1_at)), "two-groups", Scope::Group).await;
    let (_s2, _, tag2) = subscribe(&process(Some(&g2_at)), "two-groups", Scope::Group).await;
    assert_eq!((tag1.as_str(), tag2.as_str()), ("a1", "a2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_scope_one_name_per_host_and_back_after_a_restart() {
    log();
    let (host, host_at) = daemon(Scope::Host, None).await;
    let (_g1, g1_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (g2, g2_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (p1, p2, p3) = (
        process(Some(&g1_at)),
        process(Some(&g2_at)),
        process(Some(&host_at)),
    );
    let mut a = publisher(&p1, "h-dup", Scope::Host, "a");
    let first_id = first::<Published>(&mut a.answers).await.id;
    inspect_until(&host, |l| held(l, "h-dup", Scope::Host) == vec![first_id]).await;
    let (mut subscriber, available, tag) = subscribe(&p3, "h-dup", Scope::Host).await;
    assert_eq!((available.publication, tag.as_str()), (first_id, "a"));

    // In another group of the host: refused by the host, through its group.
    let mut b = publisher(&p2, "h-dup", Scope::Host, "b");
    let refusal = first::<NotPublished>(&mut b.answers).await;
    assert_eq!(
        (refusal.name.as_str(), refusal.scope),
        ("h-dup", Scope::Host)
    );
    assert_eq!(
        refusal.reason,
        "h-dup is already published at HOST by another publisher (refused by the HOST directory)"
    );
    logged("Cannot publish h-dup at HOST: h-dup is already published at HOST").await;
    inspect_until(&p2, |l| l.published.is_empty()).await;
    inspect_until(&g2, |l| l.published.is_empty()).await;
    let listing = inspect_until(&host, |l| refused(l, CLASH) == 1).await;
    assert_eq!(held(&listing, "h-dup", Scope::Host), vec![first_id]);
    let later = drain(&mut subscriber, Duration::from_millis(300)).await;
    assert!(later.iter().all(|m| !m.is::<Dropped>()), "{later:?}");
    let name: String = subscriber
        .ask(Ack, &available.publisher, PATIENCE)
        .await
        .unwrap();
    assert_eq!(name, "a");

    // The first publisher ends: once its withdrawal has reached the host
    // (the subscriber hears sooner, from the publisher's process), another
    // group may publish the name.
    a.actor.address().send(Stop).unwrap();
    wait_for::<Dropped>(&mut subscriber, |d| d.publication == first_id).await;
    inspect_until(&host, |l| held(l, "h-dup", Scope::Host).is_empty()).await;
    let mut c = publisher(&p2, "h-dup", Scope::Host, "c");
    let second_id = first::<Published>(&mut c.answers).await.id;
    let available = wait_for::<Available>(&mut subscriber, |a| a.publication == second_id).await;
    let name: String = subscriber
        .ask(Ack, &available.publisher, PATIENCE)
        .await
        .unwrap();
    assert_eq!(name, "c");

    // The host directory restarts: every child re-sends its snapshot, and
    // the publication it had is listed again — the same publication
    // announced again is no clash. The session, whose direct link lived
    // on, is re-confirmed: neither dropped nor offered again.
    host.send(Stop).unwrap();
    inspect_until(&g2, |l| !l.parent_connected).await;
    let (host, _) = daemon_at(Scope::Host, host_at.clone(), None).await;
    let listing = inspect_until(&host, |l| !held(l, "h-dup", Scope::Host).is_empty()).await;
    assert_eq!(held(&listing, "h-dup", Scope::Host), vec![second_id]);
    assert_eq!(refused(&listing, CLASH), 0, "{listing:#?}");
    let later = drain(&mut subscriber, Duration::from_millis(300)).await;
    assert!(
        later
            .iter()
            .all(|m| !m.is::<Dropped>() && !m.is::<Available>()),
        "{later:?}"
    );
    let name: String = subscriber
        .ask(Ack, &available.publisher, PATIENCE)
        .await
        .unwrap();
    assert_eq!(name, "c");
    no_refusal(&drain(&mut c.answers, Duration::from_millis(300)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lan_scope_one_name_per_lan_and_host_names_per_host() {
    log();
    let (lan, lan_at) = daemon(Scope::Lan, None).await;
    let (h1, h1_at) = daemon(Scope::Host, Some(&lan_at)).await;
    let (h2, h2_at) = daemon(Scope::Host, Some(&lan_at)).await;
    let (p1, p2, p3) = (
        process(Some(&h1_at)),
        process(Some(&h2_at)),
        process(Some(&h2_at)),
    );
    let mut a = publisher(&p1, "l-dup", Scope::Lan, "a");
    let first_id = first::<Published>(&mut a.answers).await.id;
    inspect_until(&lan, |l| held(l, "l-dup", Scope::Lan) == vec![first_id]).await;

    // On another host: refused by the LAN directory, through its host.
    let mut b = publisher(&p2, "l-dup", Scope::Lan, "b");
    let refusal = first::<NotPublished>(&mut b.answers).await;
    assert_eq!(
        (refusal.name.as_str(), refusal.scope),
        ("l-dup", Scope::Lan)
    );
    assert_eq!(
        refusal.reason,
        "l-dup is already published at LAN by another publisher (refused by the LAN directory)"
    );
    logged("Cannot publish l-dup at LAN: ").await;
    inspect_until(&h2, |l| held(l, "l-dup", Scope::Lan).is_empty()).await;
    let listing = inspect_until(&lan, |l| refused(l, CLASH) == 1).await;
    assert_eq!(held(&listing, "l-dup", Scope::Lan), vec![first_id]);
    // A subscriber on the second host reaches the first publisher.
    let (_subscriber, available, tag) = subscribe(&p3, "l-dup", Scope::Lan).await;
    assert_eq!((available.publication, tag.as_str()), (first_id, "a"));

    // HOST names on two hosts do not clash.
    let mut c1 = publisher(&p1, "l-host", Scope::Host, "c1");
    let mut c2 = publisher(&p2, "l-host", Scope::Host, "c2");
    let id1 = first::<Published>(&mut c1.answers).await.id;
    let id2 = first::<Published>(&mut c2.answers).await.id;
    inspect_until(&h1, |l| held(l, "l-host", Scope::Host) == vec![id1]).await;
    inspect_until(&h2, |l| held(l, "l-host", Scope::Host) == vec![id2]).await;
    no_refusal(&drain(&mut c1.answers, Duration::from_millis(300)).await);
    no_refusal(&drain(&mut c2.answers, Duration::from_millis(100)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_while_the_host_was_away_the_first_snapshot_wins() {
    log();
    // A port for the host, free until the host takes it.
    let host_at = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        HostPort::new("127.0.0.1", probe.local_addr().unwrap().port())
    };
    let (_g1, g1_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (_g2, g2_at) = daemon(Scope::Group, Some(&host_at)).await;
    let (p1, p2) = (process(Some(&g1_at)), process(Some(&g2_at)));
    let mut a = publisher(&p1, "away-dup", Scope::Host, "a");
    let mut b = publisher(&p2, "away-dup", Scope::Host, "b");
    let id_a = first::<Published>(&mut a.answers).await.id;
    let id_b = first::<Published>(&mut b.answers).await.id;

    // The host comes: both groups send their snapshots; the first to
    // arrive keeps the name, the other is refused.
    let (host, _) = daemon_at(Scope::Host, host_at.clone(), None).await;
    let listing = inspect_until(&host, |l| refused(l, CLASH) == 1).await;
    let kept = held(&listing, "away-dup", Scope::Host);
    assert_eq!(kept.len(), 1, "{listing:#?}");
    let (winner, loser) = if kept[0] == id_a {
        (&mut a, &mut b)
    } else {
        assert_eq!(kept[0], id_b);
        (&mut b, &mut a)
    };
    let refusal = first::<NotPublished>(&mut loser.answers).await;
    assert_eq!(refusal.name, "away-dup");
    no_refusal(&drain(&mut winner.answers, Duration::from_millis(300)).await);
    // Directly under the host: only the host's listing can match.
    let (_subscriber, available, _) =
        subscribe(&process(Some(&host_at)), "away-dup", Scope::Host).await;
    assert_eq!(available.publication, kept[0]);
}
