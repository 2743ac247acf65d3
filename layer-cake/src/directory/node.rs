//! The directory node: one implementation for every level.
//!
//! A node holds the listings visible at its level — its own process's, and
//! those its children pushed up — matches every subscription against every
//! publication, and offers each match as a route to the subscriber's *home*
//! (its process node). It pushes up what is wider than itself, withdraws
//! everything learned through a link that is lost, and re-sends a full
//! snapshot to its parent on every (re)connect.
//!
//! A process node is also the *home* of its subscriptions: of the routes
//! offered for one (subscription, publication) pair it opens the narrowest,
//! falls back when that goes and upgrades when a narrower one comes; and it
//! is the *peer* of its publications, taking sessions from subscribers'
//! homes over direct connections.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use uuid::Uuid;

use super::protocol::{
    ClearPublished, ClearSubscribed, DirectoryListing, Inspect, Listings, LostAbove, OpenSession,
    Publication, PublishAs, Reconnect, RouteOffer, RouteWithdrawn, SessionClosed, SessionOpened,
    SubscribeTo, Subscription, Withdrawn,
};
use super::{
    Available, Delivered, Dropped, NotPublished, NotSubscribed, Published, PublishedCleared, Scope,
    Subscribed, SubscribedCleared,
};
use crate::message::Faulted;
use crate::net::{
    Accepted, Closed, ConnectOptions, Connected, HostPort, LinkOptions, ListenOptions, Listening,
    NotConnected, NotListening,
};
use crate::runtime::{self, Address, Context, Ended, RequestId, SpawnOptions};
use crate::{Payload, Stop, on};

/// How a node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    /// The node's level.
    pub level: Scope,
    /// Where to listen for child directories (group, host and LAN nodes).
    pub accept_at: Option<HostPort>,
    /// The parent to connect to when a listing needs to go up. None: this
    /// node has no parent (a LAN node, or auto-connect switched off).
    pub parent: Option<HostPort>,
    /// The first delay before reconnecting to a lost parent; it doubles up
    /// to `reconnect_max`, each with ±10 % jitter.
    pub reconnect_first: Duration,
    /// The longest delay between reconnects.
    pub reconnect_max: Duration,
    /// The settings of the node's links, listened for and connected; among
    /// them which local users' processes it admits
    /// ([`LinkOptions::allowed_group`]).
    pub link: LinkOptions,
}

impl NodeOptions {
    /// A node at `level` with no listen and no parent.
    pub fn new(level: Scope) -> Self {
        NodeOptions {
            level,
            accept_at: None,
            parent: None,
            reconnect_first: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(8),
            link: LinkOptions::default(),
        }
    }

    /// The settings of the node's links (`--allow-group` goes here).
    pub fn link(mut self, link: LinkOptions) -> Self {
        self.link = link;
        self
    }

    /// Listens for child directories at `at`.
    pub fn accept_at(mut self, at: HostPort) -> Self {
        self.accept_at = Some(at);
        self
    }

    /// Connects up to `parent` when a listing needs to go there.
    pub fn parent(mut self, parent: HostPort) -> Self {
        self.parent = Some(parent);
        self
    }

    /// The reconnect backoff.
    pub fn reconnect(mut self, first: Duration, max: Duration) -> Self {
        self.reconnect_first = first;
        self.reconnect_max = max;
        self
    }
}

/// Starts a directory node as a top-level actor; it runs until sent `Stop`.
/// With `accept_at`, the node reports where it listens by sending
/// [`Listening`] to `report_to` (if not null).
pub fn spawn_node(options: NodeOptions, report_to: Address) -> Address {
    let name = format!("directory[{}]", options.level);
    let handle = runtime::spawn_with(SpawnOptions::new().name(name), move |cx| {
        run(cx, options, report_to)
    });
    handle.address().clone()
}

/// This process's node, started on first use from the process's flags
/// (`--connect-to-directory`, else the host's directory at 127.0.0.1:54195).
pub(crate) fn process_node() -> Address {
    static NODE: OnceLock<Address> = OnceLock::new();
    NODE.get_or_init(|| {
        let config = crate::process::config();
        let parent = config
            .connect_to_directory
            .clone()
            .unwrap_or_else(super::lan::directory_at_host);
        spawn_node(
            NodeOptions::new(Scope::Process).parent(parent),
            Address::NULL,
        )
    })
    .clone()
}

/// Where a listing came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// An actor of this process (process nodes only).
    Local(Address),
    /// A child node, by its proxy.
    Child(Address),
}

struct HeldPublication {
    listing: Publication,
    from: Source,
}

struct HeldSubscription {
    listing: Subscription,
    regex: Regex,
    from: Source,
}

enum Parent {
    /// No parent configured.
    None,
    /// Not connected; a listing that needs to go up starts a connect.
    Idle,
    Connecting,
    /// Waiting to retry.
    Waiting,
    Up(Address),
}

/// What a subscriber's home knows about one name a subscription matched:
/// every route offered to a publication of that name, and the one open.
/// Publishers may share a name; the nearest route wins.
struct Routing {
    subscriber: Address,
    /// Offered routes, in the order they came.
    candidates: Vec<(Scope, Publication)>,
    active: Option<Active>,
    /// A session being opened: its route, and its request once sent.
    opening: Option<(Scope, Uuid, Option<RequestId>)>,
}

struct Active {
    level: Scope,
    publication: Uuid,
    publisher: Address,
    /// The connection to the publisher's process (None: in this process).
    peer: Option<HostPort>,
}

/// A home's routing key: the subscription and the name.
type RouteKey = (Uuid, String);

impl Routing {
    /// The nearest route (the first offered among equals).
    fn best(&self) -> Option<(Scope, Uuid)> {
        self.candidates
            .iter()
            .min_by_key(|(level, _)| *level)
            .map(|(level, p)| (*level, p.id))
    }

    fn current(&self) -> Option<(Scope, Uuid)> {
        self.active
            .as_ref()
            .map(|a| (a.level, a.publication))
            .or(self.opening.as_ref().map(|(l, p, _)| (*l, *p)))
    }

    fn candidate(&self, level: Scope, publication: Uuid) -> Option<&Publication> {
        self.candidates
            .iter()
            .find(|(l, p)| *l == level && p.id == publication)
            .map(|(_, p)| p)
    }
}

/// A session as the publisher's node sees it.
struct Serving {
    publisher: Address,
    subscriber: Address,
    /// The subscriber's home node (the connection's proxy).
    home: Address,
    name: String,
    level: Scope,
}

enum Peer {
    Connecting(Vec<RouteKey>),
    Up(Address),
}

struct Node {
    options: NodeOptions,
    me: Address,
    report_to: Address,
    publications: HashMap<Uuid, HeldPublication>,
    subscriptions: HashMap<Uuid, HeldSubscription>,
    parent: Parent,
    backoff: Duration,
    /// Where this node accepts children, once listening.
    accepting: Option<HostPort>,
    /// Accepted connections by proxy, with the address they come from.
    accepted: HashMap<Address, HostPort>,
    /// Child nodes (accepted connections that sent listings) by proxy.
    children: HashMap<Address, HostPort>,
    /// Peer listens of this process: loopback (group/host) and any (LAN).
    loopback: Option<HostPort>,
    any: Option<HostPort>,
    /// Publications waiting for a peer listen.
    waiting: Vec<(PublishAs, crate::runtime::ReturnPath, Uuid)>,
    // The home side.
    routing: HashMap<RouteKey, Routing>,
    peers: HashMap<HostPort, Peer>,
    opening: HashMap<RequestId, RouteKey>,
    // The publisher side.
    serving: HashMap<(Uuid, Uuid), Serving>,
    /// Actors watched for their end.
    watched: HashSet<Address>,
}

/// Runs a directory node as the actor owning `cx`, until it receives
/// `Stop`. With `accept_at`, where it listens (or why it cannot) goes to
/// `report_to` as [`Listening`] / [`NotListening`]. The daemons' main actors
/// run their node through this.
pub async fn run_node(cx: Context, options: NodeOptions, report_to: Address) {
    run(cx, options, report_to).await
}

/// The main actor of a directory daemon (`host-cake`, `lan-cake`,
/// `group-cake`): runs a node with `options` as a child, prints
/// `<program>: listening on <address>` on stderr once it listens, and on
/// `Stop` (SIGINT, SIGTERM) stops the node and returns. A listen that fails
/// is the daemon's fault (exit 71).
pub async fn run_daemon(
    mut cx: Context,
    program: &str,
    options: NodeOptions,
) -> Result<(), Faulted> {
    let me = cx.address().clone();
    let node = cx.spawn(move |node_cx| run_node(node_cx, options, me));
    loop {
        on!(cx.input().await, {
            Listening as l => eprintln!("{program}: listening on {}", l.listening),
            NotListening as n => {
                let _ = cx.send(Stop, &node);
                return Err(n.into_fault());
            },
            Stop as _ => {
                let _ = cx.stop(&node, Duration::from_secs(5)).await;
                return Ok(());
            },
            _other => {},
        })
    }
}

async fn run(mut cx: Context, options: NodeOptions, report_to: Address) {
    let parent = if options.parent.is_some() {
        Parent::Idle
    } else {
        Parent::None
    };
    let backoff = options.reconnect_first;
    if let Some(at) = options.accept_at.clone() {
        cx.listen(at, ListenOptions::native().link(options.link.clone()));
    }
    let mut node = Node {
        me: cx.address().clone(),
        options,
        report_to,
        publications: HashMap::new(),
        subscriptions: HashMap::new(),
        parent,
        backoff,
        accepting: None,
        accepted: HashMap::new(),
        children: HashMap::new(),
        loopback: None,
        any: None,
        waiting: Vec::new(),
        routing: HashMap::new(),
        peers: HashMap::new(),
        opening: HashMap::new(),
        serving: HashMap::new(),
        watched: HashSet::new(),
    };
    loop {
        let message = cx.input().await;
        if message.is::<Stop>() {
            return;
        }
        node.received(&mut cx, message);
    }
}

fn full_match(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

impl Node {
    fn level(&self) -> Scope {
        self.options.level
    }

    fn received(&mut self, cx: &mut Context, message: Payload) {
        on!(message, {
            PublishAs as p => self.publish(cx, p),
            SubscribeTo as s => self.subscribe(cx, s),
            // Confirmed first, then each session it had is dropped.
            ClearPublished as c => {
                if self.publications.contains_key(&c.id) {
                    let _ = cx.reply(PublishedCleared { id: c.id });
                    self.withdraw_publication(cx, c.id, "publication cleared");
                }
            },
            ClearSubscribed as c => {
                if self.subscriptions.contains_key(&c.id) {
                    let _ = cx.reply(SubscribedCleared { id: c.id });
                    self.withdraw_subscription(cx, c.id, "subscription cleared");
                }
            },
            Ended as e => self.ended(cx, &e.address),
            Listings as l => self.listings(cx, l),
            Withdrawn as w => self.withdrawn(cx, w),
            RouteOffer as o => self.offered(cx, o),
            RouteWithdrawn as w => self.route_withdrawn(cx, w),
            LostAbove as l => {
                if matches!(&self.parent, Parent::Up(p) if p == cx.return_address()) {
                    self.lost_above(cx, l.level, "lost a directory above");
                }
            },
            OpenSession as o => self.open_session(cx, o),
            SessionOpened as o => self.session_opened(cx, o.publisher),
            SessionClosed as c => self.session_closed(cx, c),
            Faulted as f => self.answer_failed(cx, f),
            Listening as l => self.listening(cx, l),
            NotListening as n => self.not_listening(cx, n),
            Accepted as a => { self.accepted.insert(a.proxy, a.remote); },
            Connected as c => self.connected(cx, c),
            NotConnected as n => self.not_connected(cx, n),
            Closed as c => self.closed(cx, c),
            Reconnect as _ => self.connect_parent(cx),
            Inspect as _ => { let _ = cx.reply(self.describe()); },
            crate::Ack as _ => { let _ = cx.reply(crate::Ack); },
            other => tracing::warn!(level = %self.level(), "directory ignores {}", other.signature()),
        })
    }

    fn describe(&self) -> DirectoryListing {
        let mut published: Vec<_> = self
            .publications
            .values()
            .map(|h| {
                (
                    h.listing.name.clone(),
                    h.listing.scope,
                    h.listing.id,
                    h.listing.listening.clone(),
                )
            })
            .collect();
        published.sort();
        let mut subscribed: Vec<_> = self
            .subscriptions
            .values()
            .map(|h| (h.listing.pattern.clone(), h.listing.scope, h.listing.id))
            .collect();
        subscribed.sort();
        let mut connected: Vec<_> = self
            .routing
            .iter()
            .filter_map(|(key, r)| {
                r.active
                    .as_ref()
                    .map(|a| (key.1.clone(), a.level, a.publication, a.peer.clone()))
            })
            .collect();
        connected.sort();
        let executable = std::env::args()
            .next()
            .and_then(|p| {
                std::path::Path::new(&p)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        DirectoryListing {
            id: Uuid::from_u128(
                crate::process::incarnation() ^ self.me.id().map_or(0, |i| i.0 as u128),
            ),
            level: self.level(),
            executable,
            accepting: self.accepting.clone(),
            parent: self.options.parent.clone(),
            parent_connected: matches!(self.parent, Parent::Up(_)),
            published,
            subscribed,
            connected,
            children: self.children.keys().cloned().collect(),
        }
    }

    // ---- listings ------------------------------------------------------

    fn publish(&mut self, cx: &mut Context, p: PublishAs) {
        let refuse = |cx: &mut Context, reason: &str| {
            let _ = cx.reply(NotPublished {
                name: p.name.clone(),
                scope: p.scope,
                reason: reason.into(),
            });
        };
        if p.name.is_empty() {
            return refuse(cx, "an empty name");
        }
        if self.level() != Scope::Process {
            return refuse(cx, "publish through a process's own directory");
        }
        let duplicate = self
            .publications
            .values()
            .any(|h| h.listing.name == p.name && h.from == Source::Local(p.publisher.clone()));
        if duplicate {
            return refuse(cx, "already published");
        }
        let id = Uuid::new_v4();
        if p.scope > Scope::Process {
            let have = if p.scope == Scope::Lan {
                self.any.is_some()
            } else {
                self.loopback.is_some()
            };
            if !have {
                // List it once the peer listen is up.
                let first = !self
                    .waiting
                    .iter()
                    .any(|(w, ..)| (w.scope == Scope::Lan) == (p.scope == Scope::Lan));
                if first {
                    let at = if p.scope == Scope::Lan {
                        "0.0.0.0"
                    } else {
                        "127.0.0.1"
                    };
                    cx.listen(
                        HostPort::new(at, 0),
                        ListenOptions::native().link(self.options.link.clone()),
                    );
                }
                self.waiting.push((p, cx.return_path(), id));
                return;
            }
        }
        let path = cx.return_path();
        self.list_publication(cx, p, path, id);
    }

    fn list_publication(
        &mut self,
        cx: &mut Context,
        p: PublishAs,
        path: crate::runtime::ReturnPath,
        id: Uuid,
    ) {
        let listening = match p.scope {
            Scope::Process => None,
            Scope::Lan => self.any.clone(),
            _ => self.loopback.clone(),
        };
        let listing = Publication {
            id,
            name: p.name.clone(),
            scope: p.scope,
            listening,
            publisher: p.publisher.clone(),
            incarnation: crate::process::incarnation(),
        };
        if self.watched.insert(p.publisher.clone()) {
            cx.watch(&p.publisher);
        }
        let _ = path.reply(Published {
            name: p.name,
            scope: p.scope,
            id,
        });
        self.add_publication(cx, listing, Source::Local(p.publisher));
    }

    fn subscribe(&mut self, cx: &mut Context, s: SubscribeTo) {
        let refuse = |cx: &mut Context, reason: String| {
            let _ = cx.reply(NotSubscribed {
                pattern: s.pattern.clone(),
                scope: s.scope,
                reason,
            });
        };
        if self.level() != Scope::Process {
            return refuse(cx, "subscribe through a process's own directory".into());
        }
        let regex = match full_match(&s.pattern) {
            Ok(regex) => regex,
            Err(e) => return refuse(cx, format!("not a regular expression: {e}")),
        };
        let duplicate = self.subscriptions.values().any(|h| {
            h.listing.pattern == s.pattern && h.from == Source::Local(s.subscriber.clone())
        });
        if duplicate {
            return refuse(cx, "already subscribed".into());
        }
        let id = Uuid::new_v4();
        let listing = Subscription {
            id,
            pattern: s.pattern.clone(),
            scope: s.scope,
            home: self.me.clone(),
        };
        if self.watched.insert(s.subscriber.clone()) {
            cx.watch(&s.subscriber);
        }
        let _ = cx.reply(Subscribed {
            pattern: s.pattern,
            scope: s.scope,
            id,
        });
        self.add_subscription(cx, listing, regex, Source::Local(s.subscriber));
    }

    fn add_publication(&mut self, cx: &mut Context, listing: Publication, from: Source) {
        let matches: Vec<Subscription> = self
            .subscriptions
            .values()
            .filter(|s| s.regex.is_match(&listing.name))
            .map(|s| s.listing.clone())
            .collect();
        for subscription in matches {
            self.offer(cx, &subscription, &listing);
        }
        if listing.scope > self.level() {
            self.send_up(
                cx,
                Listings {
                    full: false,
                    publications: vec![listing.clone()],
                    subscriptions: vec![],
                },
            );
        }
        self.publications
            .insert(listing.id, HeldPublication { listing, from });
    }

    fn add_subscription(
        &mut self,
        cx: &mut Context,
        listing: Subscription,
        regex: Regex,
        from: Source,
    ) {
        let matches: Vec<Publication> = self
            .publications
            .values()
            .filter(|p| regex.is_match(&p.listing.name))
            .map(|p| p.listing.clone())
            .collect();
        // Held before offering: a match made here is offered to this very
        // node when it is the subscriber's home.
        self.subscriptions.insert(
            listing.id,
            HeldSubscription {
                listing: listing.clone(),
                regex,
                from,
            },
        );
        for publication in &matches {
            self.offer(cx, &listing, publication);
        }
        if listing.scope > self.level() {
            self.send_up(
                cx,
                Listings {
                    full: false,
                    publications: vec![],
                    subscriptions: vec![listing],
                },
            );
        }
    }

    /// Offers a match found here to the subscriber's home.
    fn offer(&mut self, cx: &mut Context, subscription: &Subscription, publication: &Publication) {
        let offer = RouteOffer {
            subscription: subscription.id,
            publication: publication.clone(),
            level: self.level(),
        };
        if subscription.home == self.me {
            self.offered(cx, offer);
        } else {
            let _ = cx.send(offer, &subscription.home);
        }
    }

    fn withdraw_publication(&mut self, cx: &mut Context, id: Uuid, reason: &str) -> bool {
        let Some(held) = self.publications.remove(&id) else {
            return false;
        };
        let listing = held.listing;
        let homes: Vec<Subscription> = self
            .subscriptions
            .values()
            .filter(|s| s.regex.is_match(&listing.name))
            .map(|s| s.listing.clone())
            .collect();
        for subscription in homes {
            let withdrawn = RouteWithdrawn {
                subscription: subscription.id,
                publication: id,
                level: self.level(),
            };
            if subscription.home == self.me {
                self.route_withdrawn(cx, withdrawn);
            } else {
                let _ = cx.send(withdrawn, &subscription.home);
            }
        }
        // Sessions this process serves for it end now.
        let keys: Vec<(Uuid, Uuid)> = self.serving.keys().filter(|k| k.1 == id).cloned().collect();
        for key in keys {
            self.end_serving(cx, key, reason, true);
        }
        if listing.scope > self.level() {
            self.send_up(
                cx,
                Withdrawn {
                    publications: vec![id],
                    subscriptions: vec![],
                },
            );
        }
        true
    }

    fn withdraw_subscription(&mut self, cx: &mut Context, id: Uuid, reason: &str) -> bool {
        let Some(held) = self.subscriptions.remove(&id) else {
            return false;
        };
        let keys: Vec<RouteKey> = self.routing.keys().filter(|k| k.0 == id).cloned().collect();
        for key in keys {
            if let Some(mut routing) = self.routing.remove(&key) {
                self.end_active(cx, &key, &mut routing, reason);
            }
        }
        if held.listing.scope > self.level() {
            self.send_up(
                cx,
                Withdrawn {
                    publications: vec![],
                    subscriptions: vec![id],
                },
            );
        }
        true
    }

    /// The ids of what `source` listed here.
    fn listed_by(&self, source: &Source) -> (Vec<Uuid>, Vec<Uuid>) {
        let publications = self
            .publications
            .iter()
            .filter(|(_, h)| h.from == *source)
            .map(|(id, _)| *id)
            .collect();
        let subscriptions = self
            .subscriptions
            .iter()
            .filter(|(_, h)| h.from == *source)
            .map(|(id, _)| *id)
            .collect();
        (publications, subscriptions)
    }

    /// Withdraws everything `source` listed here.
    fn withdraw_all(
        &mut self,
        cx: &mut Context,
        source: &Source,
        publications_why: &str,
        subscriptions_why: &str,
    ) {
        let (publications, subscriptions) = self.listed_by(source);
        for id in publications {
            self.withdraw_publication(cx, id, publications_why);
        }
        for id in subscriptions {
            self.withdraw_subscription(cx, id, subscriptions_why);
        }
    }

    /// An actor with listings here has ended: everything it listed goes.
    fn ended(&mut self, cx: &mut Context, actor: &Address) {
        self.watched.remove(actor);
        let source = Source::Local(actor.clone());
        self.withdraw_all(
            cx,
            &source,
            "the publisher has ended",
            "the subscriber has ended",
        );
    }

    // ---- the tree ------------------------------------------------------

    fn send_up<M: crate::Message>(&mut self, cx: &mut Context, message: M) {
        match &self.parent {
            Parent::Up(proxy) => {
                let _ = cx.send(message, proxy);
            }
            // The snapshot on connect will carry it.
            Parent::Idle => self.connect_parent(cx),
            Parent::None | Parent::Connecting | Parent::Waiting => {}
        }
    }

    fn connect_parent(&mut self, cx: &mut Context) {
        if let (Some(at), Parent::Idle | Parent::Waiting) =
            (self.options.parent.clone(), &self.parent)
        {
            self.parent = Parent::Connecting;
            cx.connect(
                at,
                ConnectOptions::native()
                    .link(self.options.link.clone())
                    .timeout(Duration::from_secs(3)),
            );
        }
    }

    fn snapshot(&self) -> Listings {
        let level = self.level();
        Listings {
            full: true,
            publications: self
                .publications
                .values()
                .map(|h| h.listing.clone())
                .filter(|l| l.scope > level)
                .collect(),
            subscriptions: self
                .subscriptions
                .values()
                .map(|h| h.listing.clone())
                .filter(|l| l.scope > level)
                .collect(),
        }
    }

    fn connected(&mut self, cx: &mut Context, c: Connected) {
        if matches!(self.parent, Parent::Connecting)
            && Some(&c.requested) == self.options.parent.as_ref()
        {
            self.parent = Parent::Up(c.proxy.clone());
            self.backoff = self.options.reconnect_first;
            let snapshot = self.snapshot();
            let _ = cx.send(snapshot, &c.proxy);
            return;
        }
        // A connection to a publisher's process.
        if let Some(Peer::Connecting(queued)) = self.peers.remove(&c.requested) {
            self.peers
                .insert(c.requested.clone(), Peer::Up(c.proxy.clone()));
            for key in queued {
                self.request_session(cx, key);
            }
        }
    }

    fn not_connected(&mut self, cx: &mut Context, n: NotConnected) {
        if matches!(self.parent, Parent::Connecting)
            && Some(&n.requested) == self.options.parent.as_ref()
        {
            self.retry_parent(cx);
            return;
        }
        if let Some(Peer::Connecting(queued)) = self.peers.remove(&n.requested) {
            for key in queued {
                self.route_failed(
                    cx,
                    key,
                    &format!("cannot reach the publisher: {}", n.reason),
                );
            }
        }
    }

    fn retry_parent(&mut self, cx: &mut Context) {
        self.parent = Parent::Waiting;
        let jitter = 0.9 + rand::random::<f64>() * 0.2;
        cx.start_timer(Reconnect, self.backoff.mul_f64(jitter));
        self.backoff = (self.backoff * 2).min(self.options.reconnect_max);
    }

    fn listings(&mut self, cx: &mut Context, l: Listings) {
        let child = cx.return_address().clone();
        let level = self.level();
        if l.full {
            // Replace what this child told us before.
            let from = Source::Child(child.clone());
            let (old_publications, old_subscriptions) = self.listed_by(&from);
            let keep_p: HashSet<Uuid> = l.publications.iter().map(|p| p.id).collect();
            let keep_s: HashSet<Uuid> = l.subscriptions.iter().map(|s| s.id).collect();
            for id in old_publications
                .into_iter()
                .filter(|id| !keep_p.contains(id))
            {
                self.withdraw_publication(cx, id, "withdrawn below");
            }
            for id in old_subscriptions
                .into_iter()
                .filter(|id| !keep_s.contains(id))
            {
                self.withdraw_subscription(cx, id, "withdrawn below");
            }
        }
        if let Some(remote) = self.accepted.get(&child) {
            self.children.insert(child.clone(), remote.clone());
        }
        let remote_host = self.children.get(&child).map(|r| r.host.clone());
        for mut publication in l.publications {
            if publication.scope < level || self.publications.contains_key(&publication.id) {
                continue;
            }
            // The address a subscriber will use, as reachable from here.
            if let Some(at) = publication.listening.as_mut() {
                match level {
                    Scope::Lan => {
                        if let Some(host) = &remote_host {
                            at.host = host.clone();
                        }
                    }
                    _ => at.host = "127.0.0.1".into(),
                }
            }
            self.add_publication(cx, publication, Source::Child(child.clone()));
        }
        for subscription in l.subscriptions {
            if subscription.scope < level || self.subscriptions.contains_key(&subscription.id) {
                continue;
            }
            let Ok(regex) = full_match(&subscription.pattern) else {
                continue;
            };
            self.add_subscription(cx, subscription, regex, Source::Child(child.clone()));
        }
    }

    fn withdrawn(&mut self, cx: &mut Context, w: Withdrawn) {
        for id in w.publications {
            self.withdraw_publication(cx, id, "withdrawn below");
        }
        for id in w.subscriptions {
            self.withdraw_subscription(cx, id, "withdrawn below");
        }
    }

    fn listening(&mut self, cx: &mut Context, l: Listening) {
        if Some(&l.requested) == self.options.accept_at.as_ref() {
            self.accepting = Some(l.listening.clone());
            let _ = cx.send(l, &self.report_to.clone());
            return;
        }
        if l.requested.host == "0.0.0.0" {
            self.any = Some(l.listening);
        } else {
            self.loopback = Some(l.listening);
        }
        let lan = l.requested.host == "0.0.0.0";
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(p, ..)| (p.scope == Scope::Lan) == lan);
        self.waiting = still;
        for (p, path, id) in ready {
            self.list_publication(cx, p, path, id);
        }
    }

    /// A peer listen failed: the publications waiting for it are refused.
    fn not_listening(&mut self, cx: &mut Context, n: NotListening) {
        if Some(&n.requested) == self.options.accept_at.as_ref() {
            tracing::warn!(level = %self.level(), "directory cannot listen at {}: {}", n.requested, n.reason);
            let _ = cx.send(n, &self.report_to.clone());
            return;
        }
        let lan = n.requested.host == "0.0.0.0";
        let (failed, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(p, ..)| (p.scope == Scope::Lan) == lan);
        self.waiting = still;
        for (p, path, _) in failed {
            let _ = path.reply(NotPublished {
                name: p.name,
                scope: p.scope,
                reason: format!("cannot take sessions: {}", n.reason),
            });
        }
    }

    fn closed(&mut self, cx: &mut Context, c: Closed) {
        if matches!(&self.parent, Parent::Up(proxy) if *proxy == c.proxy) {
            tracing::warn!(level = %self.level(), "lost the parent directory ({:?}: {})", c.reason, c.note);
            self.lost_above(cx, self.level(), "lost the parent directory");
            self.parent = Parent::Waiting;
            self.backoff = self.options.reconnect_first;
            self.retry_parent(cx);
            return;
        }
        // A child: everything learned through it goes.
        self.accepted.remove(&c.proxy);
        self.children.remove(&c.proxy);
        let from = Source::Child(c.proxy.clone());
        let why = "lost the directory below";
        self.withdraw_all(cx, &from, why, why);
        // Sessions this process served over that connection.
        let keys: Vec<(Uuid, Uuid)> = self
            .serving
            .iter()
            .filter(|(_, s)| s.home == c.proxy)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.end_serving(cx, key, "the subscriber's process went away", false);
        }
        // A publisher's process we had sessions with.
        let lost: Vec<HostPort> = self
            .peers
            .iter()
            .filter(|(_, p)| matches!(p, Peer::Up(proxy) if *proxy == c.proxy))
            .map(|(at, _)| at.clone())
            .collect();
        for at in lost {
            self.peers.remove(&at);
            let keys: Vec<RouteKey> = self
                .routing
                .iter()
                .filter(|(_, r)| {
                    r.candidates
                        .iter()
                        .any(|(_, p)| p.listening.as_ref() == Some(&at))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                self.peer_lost(
                    cx,
                    key,
                    &at,
                    &format!("lost the publisher's process ({:?})", c.reason),
                );
            }
        }
    }

    /// Routes offered from above `level` are void.
    fn lost_above(&mut self, cx: &mut Context, level: Scope, why: &str) {
        for child in self.children.keys() {
            let _ = cx.send(LostAbove { level }, child);
        }
        let keys: Vec<RouteKey> = self.routing.keys().cloned().collect();
        for key in keys {
            if let Some(routing) = self.routing.get_mut(&key) {
                routing.candidates.retain(|(l, _)| *l <= level);
            }
            self.reselect(cx, key, why);
        }
    }

    // ---- the home: choosing and opening routes --------------------------

    fn offered(&mut self, cx: &mut Context, o: RouteOffer) {
        let Some(subscription) = self.subscriptions.get(&o.subscription) else {
            return;
        };
        let Source::Local(subscriber) = subscription.from.clone() else {
            return;
        };
        let key = (o.subscription, o.publication.name.clone());
        let routing = self.routing.entry(key.clone()).or_insert_with(|| Routing {
            subscriber,
            candidates: Vec::new(),
            active: None,
            opening: None,
        });
        // The same route again replaces the old offer.
        routing
            .candidates
            .retain(|(l, p)| !(*l == o.level && p.id == o.publication.id));
        routing.candidates.push((o.level, o.publication));
        self.reselect(cx, key, "route replaced");
    }

    /// A publication is gone from some level: it is gone. Every route to it
    /// is dropped at once, so a withdrawal travelling up the tree level by
    /// level does not make the session hop from route to route.
    fn route_withdrawn(&mut self, cx: &mut Context, w: RouteWithdrawn) {
        let keys: Vec<RouteKey> = self
            .routing
            .iter()
            .filter(|(k, r)| {
                k.0 == w.subscription && r.candidates.iter().any(|(_, p)| p.id == w.publication)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(routing) = self.routing.get_mut(&key) {
                routing.candidates.retain(|(_, p)| p.id != w.publication);
            }
            self.reselect(cx, key, "the publication was withdrawn");
        }
    }

    /// Opens the nearest offered route if it is not the one open (or being
    /// opened): an upgrade, a fallback, or the first session.
    fn reselect(&mut self, cx: &mut Context, key: RouteKey, why: &str) {
        let Some(mut routing) = self.routing.remove(&key) else {
            return;
        };
        let best = routing.best();
        let current = routing.current();
        if best != current {
            if routing.active.is_some() {
                let why = match (best, current) {
                    (Some((b, _)), Some((c, _))) if b < c => "a nearer route",
                    _ => why,
                };
                self.end_active(cx, &key, &mut routing, why);
            }
            if let Some((_, _, Some(request))) = routing.opening.take() {
                self.opening.remove(&request);
            }
            if let Some((level, publication)) = best {
                self.open(cx, &key, &mut routing, level, publication);
            }
        }
        if routing.candidates.is_empty() && routing.active.is_none() && routing.opening.is_none() {
            return;
        }
        self.routing.insert(key, routing);
    }

    fn open(
        &mut self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &mut Routing,
        level: Scope,
        id: Uuid,
    ) {
        let Some(publication) = routing.candidate(level, id).cloned() else {
            return;
        };
        if level == Scope::Process {
            // Both sides in this process: introduce them directly.
            let publisher = publication.publisher.clone();
            routing.active = Some(Active {
                level,
                publication: id,
                publisher: publisher.clone(),
                peer: None,
            });
            self.introduce(cx, key, routing, &publication, level, &publisher);
            let _ = cx.forward_from(
                Delivered {
                    name: key.1.clone(),
                    scope: level,
                    subscription: key.0,
                    publication: id,
                    subscriber: routing.subscriber.clone(),
                },
                &publisher,
                &routing.subscriber,
            );
            return;
        }
        let Some(at) = publication.listening.clone() else {
            return;
        };
        routing.opening = Some((level, id, None));
        match self.peers.get_mut(&at) {
            Some(Peer::Up(_)) => {
                let request = self.send_open(cx, key, routing, level, id, &at);
                routing.opening = Some((level, id, request));
            }
            Some(Peer::Connecting(queued)) => queued.push(key.clone()),
            None => {
                self.peers
                    .insert(at.clone(), Peer::Connecting(vec![key.clone()]));
                cx.connect(at, ConnectOptions::native().link(self.options.link.clone()));
            }
        }
    }

    fn introduce(
        &self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &Routing,
        publication: &Publication,
        level: Scope,
        publisher: &Address,
    ) {
        let _ = cx.forward_from(
            Available {
                name: key.1.clone(),
                scope: level,
                subscription: key.0,
                publication: publication.id,
                publisher: publisher.clone(),
            },
            &routing.subscriber,
            publisher,
        );
    }

    fn send_open(
        &mut self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &Routing,
        level: Scope,
        publication: Uuid,
        at: &HostPort,
    ) -> Option<RequestId> {
        let Some(Peer::Up(proxy)) = self.peers.get(at) else {
            return None;
        };
        let open = OpenSession {
            subscription: key.0,
            publication,
            subscriber: routing.subscriber.clone(),
            level,
        };
        let proxy = proxy.clone();
        match cx.request(open, &proxy) {
            Ok(request) => {
                self.opening.insert(request, key.clone());
                Some(request)
            }
            Err(_) => None,
        }
    }

    /// A queued open whose connection is now up.
    fn request_session(&mut self, cx: &mut Context, key: RouteKey) {
        let Some(mut routing) = self.routing.remove(&key) else {
            return;
        };
        if let Some((level, id, None)) = routing.opening {
            let at = routing
                .candidate(level, id)
                .and_then(|p| p.listening.clone());
            if let Some(at) = at {
                let request = self.send_open(cx, &key, &routing, level, id, &at);
                routing.opening = Some((level, id, request));
            }
        }
        self.routing.insert(key, routing);
    }

    fn session_opened(&mut self, cx: &mut Context, publisher: Address) {
        let Some(request) = cx.answers() else { return };
        let Some(key) = self.opening.remove(&request) else {
            return;
        };
        let Some(mut routing) = self.routing.remove(&key) else {
            return;
        };
        if let Some((level, id, Some(expected))) = routing.opening
            && expected == request
        {
            routing.opening = None;
            let peer = routing
                .candidate(level, id)
                .and_then(|p| p.listening.clone());
            if let Some(publication) = routing.candidate(level, id).cloned() {
                routing.active = Some(Active {
                    level,
                    publication: id,
                    publisher: publisher.clone(),
                    peer,
                });
                self.introduce(cx, &key, &routing, &publication, level, &publisher);
            }
        }
        self.routing.insert(key, routing);
    }

    /// An open that was refused, or whose connection was lost.
    fn answer_failed(&mut self, cx: &mut Context, f: Faulted) {
        let Some(request) = cx.answers() else {
            tracing::warn!(level = %self.level(), "directory: {f}");
            return;
        };
        let Some(key) = self.opening.remove(&request) else {
            return;
        };
        self.route_failed(cx, key, &f.to_string());
    }

    /// The route being opened cannot be: forget it and try the next.
    fn route_failed(&mut self, cx: &mut Context, key: RouteKey, why: &str) {
        let Some(routing) = self.routing.get_mut(&key) else {
            return;
        };
        if let Some((level, id, _)) = routing.opening.take() {
            tracing::warn!("route to \"{}\" at {level} failed: {why}", key.1);
            routing
                .candidates
                .retain(|(l, p)| !(*l == level && p.id == id));
        }
        self.reselect(cx, key, why);
    }

    /// The connection to a publisher's process is gone: sessions over it
    /// end, and routes through it are unusable.
    fn peer_lost(&mut self, cx: &mut Context, key: RouteKey, at: &HostPort, why: &str) {
        let Some(mut routing) = self.routing.remove(&key) else {
            return;
        };
        if routing
            .active
            .as_ref()
            .is_some_and(|a| a.peer.as_ref() == Some(at))
            && let Some(active) = routing.active.take()
        {
            self.tell_dropped(cx, &key, &routing, &active, why);
        }
        routing
            .candidates
            .retain(|(_, p)| p.listening.as_ref() != Some(at));
        self.routing.insert(key.clone(), routing);
        self.reselect(cx, key, why);
    }

    /// Ends the open session of `routing`, telling both sides.
    fn end_active(&mut self, cx: &mut Context, key: &RouteKey, routing: &mut Routing, why: &str) {
        let Some(active) = routing.active.take() else {
            return;
        };
        self.tell_dropped(cx, key, routing, &active, why);
        match &active.peer {
            None => {
                let _ = cx.forward_from(
                    Dropped {
                        name: key.1.clone(),
                        scope: active.level,
                        subscription: key.0,
                        publication: active.publication,
                        remote: routing.subscriber.clone(),
                        reason: why.into(),
                    },
                    &active.publisher,
                    &routing.subscriber,
                );
            }
            Some(at) => {
                if let Some(Peer::Up(proxy)) = self.peers.get(at) {
                    let _ = cx.send(
                        SessionClosed {
                            subscription: key.0,
                            publication: active.publication,
                            reason: why.into(),
                        },
                        proxy,
                    );
                }
            }
        }
    }

    fn tell_dropped(
        &self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &Routing,
        active: &Active,
        why: &str,
    ) {
        let _ = cx.forward_from(
            Dropped {
                name: key.1.clone(),
                scope: active.level,
                subscription: key.0,
                publication: active.publication,
                remote: active.publisher.clone(),
                reason: why.into(),
            },
            &routing.subscriber,
            &active.publisher,
        );
    }

    // ---- the publisher's side --------------------------------------------

    fn open_session(&mut self, cx: &mut Context, o: OpenSession) {
        let key = (o.subscription, o.publication);
        let Some(held) = self.publications.get(&o.publication) else {
            let _ = cx.reply(
                Faulted::new("no such publication").with_explanation("it has been withdrawn"),
            );
            return;
        };
        let Source::Local(publisher) = held.from.clone() else {
            let _ = cx.reply(
                Faulted::new("no such publication")
                    .with_explanation("not published in this process"),
            );
            return;
        };
        let name = held.listing.name.clone();
        let _ = cx.forward_from(
            Delivered {
                name: name.clone(),
                scope: o.level,
                subscription: key.0,
                publication: key.1,
                subscriber: o.subscriber.clone(),
            },
            &publisher,
            &o.subscriber,
        );
        self.serving.insert(
            key,
            Serving {
                publisher: publisher.clone(),
                subscriber: o.subscriber,
                home: cx.return_address().clone(),
                name,
                level: o.level,
            },
        );
        let _ = cx.reply(SessionOpened { publisher });
    }

    fn session_closed(&mut self, cx: &mut Context, c: SessionClosed) {
        let served = (c.subscription, c.publication);
        if self.serving.contains_key(&served) {
            // The subscriber's home closed it.
            self.end_serving(cx, served, &c.reason, false);
            return;
        }
        // The publisher's node closed it: the publication is gone, so every
        // route to it goes and the next best (if any) is opened.
        let keys: Vec<RouteKey> = self
            .routing
            .iter()
            .filter(|(k, r)| {
                k.0 == c.subscription
                    && r.active
                        .as_ref()
                        .is_some_and(|a| a.publication == c.publication)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(mut routing) = self.routing.remove(&key) else {
                continue;
            };
            if let Some(active) = routing.active.take() {
                self.tell_dropped(cx, &key, &routing, &active, &c.reason);
            }
            routing.candidates.retain(|(_, p)| p.id != c.publication);
            self.routing.insert(key.clone(), routing);
            self.reselect(cx, key, &c.reason);
        }
    }

    /// Ends a session this process serves; `tell_home` when the end comes
    /// from this side.
    fn end_serving(&mut self, cx: &mut Context, key: (Uuid, Uuid), why: &str, tell_home: bool) {
        let Some(serving) = self.serving.remove(&key) else {
            return;
        };
        let _ = cx.forward_from(
            Dropped {
                name: serving.name.clone(),
                scope: serving.level,
                subscription: key.0,
                publication: key.1,
                remote: serving.subscriber.clone(),
                reason: why.into(),
            },
            &serving.publisher,
            &serving.subscriber,
        );
        if tell_home {
            let _ = cx.send(
                SessionClosed {
                    subscription: key.0,
                    publication: key.1,
                    reason: why.into(),
                },
                &serving.home,
            );
        }
    }
}
