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

use uuid::Uuid;

use super::protocol::{
    ClearPublished, ClearSubscribed, DirectoryListing, Inspect, Listings, LostAbove, OpenSession,
    PublishAs, Reconnect, RouteOffer, RouteWithdrawn, SessionClosed, SessionOpened, SubscribeTo,
    Withdrawn,
};
use super::{PublishedCleared, Scope, SubscribedCleared};
use crate::message::Faulted;
use crate::net::{
    Accepted, Closed, Connected, HostPort, ListenOptions, Listening, NotConnected, NotListening,
};
use crate::runtime::{self, Address, Context, Ended, RequestId, SpawnOptions};
use crate::{Payload, Stop, on};

mod parent;
mod routes;
mod sessions;
mod store;

use parent::Parent;
use routes::{Peer, RouteKey, Routing};
use sessions::Serving;
use store::{HeldPublication, HeldSubscription};

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
        }
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
        cx.listen(at, ListenOptions::native());
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
}
