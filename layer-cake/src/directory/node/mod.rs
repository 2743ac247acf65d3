//! The directory node: one implementation for every level.
//!
//! A node holds the listings visible at its level — its own process's, and
//! those its children pushed up, one publication of a name per scope
//! (`names.rs`) — matches every subscription against every publication,
//! and offers each match as a route to the subscriber's *home* (its process
//! node). It pushes up what is wider than itself, withdraws
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

use super::Scope;
use super::protocol::{
    Advisory, ClearPublished, ClearSubscribed, DirectoryListing, Inspect, Listings, LostAbove,
    OpenSession, PublishAs, Reconfirm, Reconnect, RouteOffer, RouteWithdrawn, SessionClosed,
    SessionOpened, SubscribeTo, Withdrawn,
};
use crate::message::Faulted;
use crate::net::{
    Accepted, Closed, Connected, HostPort, LinkOptions, ListenOptions, Listening, NotConnected,
    NotListening,
};
use crate::runtime::{self, Address, Context, Ended, RequestId, SpawnOptions};
use crate::{Payload, Stop, on};

#[cfg(test)]
mod hostile_tests;
mod inspect;
mod matching;
mod names;
mod parent;
mod refusals;
mod routes;
mod sessions;
mod store;

pub use inspect::{
    INSPECT_PATIENCE, MAX_INSPECT_BYTES, MAX_INSPECT_CHILDREN, MAX_INSPECT_ENTRIES,
    MAX_PENDING_INSPECTIONS,
};
pub use matching::{
    MAX_COMPILED_PATTERN, MAX_NAME_LEN, MAX_PATTERN_DFA, MAX_PATTERN_LEN,
    MAX_PUBLICATIONS_PER_ACTOR, MAX_PUBLICATIONS_PER_LINK, MAX_SUBSCRIPTIONS_PER_ACTOR,
    MAX_SUBSCRIPTIONS_PER_LINK, PATTERN_CACHE,
};

use parent::Parent;
use routes::{Peer, RouteKey, Routing};
use sessions::Serving;
use store::{HeldPublication, HeldSubscription, Source};

/// How long a subscriber's home keeps a session *unconfirmed* by default:
/// 30 s. A session whose route went with a lost directory link, while the
/// direct link between its two processes lives, is kept (no `Dropped`) until
/// the tree heals and offers the same route again — then it is re-confirmed
/// silently — or until this much time has passed — then it is dropped on
/// both sides, as if its route had been withdrawn. Thirty seconds covers a
/// daemon that is restarted (its children retry every 0.5 s, doubling to at
/// most 8 s) with room to spare, and bounds how long a session the
/// directory can no longer vouch for is used. See
/// [`NodeOptions::reconfirm_within`].
pub const RECONFIRM_WITHIN: Duration = Duration::from_secs(30);

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
    /// How long a session stays unconfirmed before it is dropped (see
    /// [`RECONFIRM_WITHIN`], the default). Only a subscriber's home — a
    /// process node — holds sessions.
    pub reconfirm_within: Duration,
    /// The settings of every link the node opens or accepts (to its parent,
    /// from its children, publisher sessions) — among them the LAN key that
    /// secures the ones leaving the host.
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
            reconfirm_within: RECONFIRM_WITHIN,
            link: LinkOptions::default(),
        }
    }

    /// The settings of the node's links (for one: the LAN key).
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

    /// How long a session whose route went with a lost directory link,
    /// while its direct link lives, is kept before it is dropped
    /// ([`RECONFIRM_WITHIN`] by default).
    pub fn reconfirm_within(mut self, grace: Duration) -> Self {
        self.reconfirm_within = grace;
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

static PROCESS_NODE_OPTIONS: OnceLock<NodeOptions> = OnceLock::new();

/// Sets how this process's node is started (its parent directory): the
/// process entry point passes what its flags say (`--connect-to-directory`)
/// before the main actor runs, so that the directory never reads the
/// process layer's configuration. The first call wins; it has no effect once
/// the node has started.
pub(crate) fn configure_process_node(options: NodeOptions) {
    let _ = PROCESS_NODE_OPTIONS.set(options);
}

/// This process's node, started on first use from the process's flags
/// (`--connect-to-directory`, else the host's directory at 127.0.0.1:54195).
pub(crate) fn process_node() -> Address {
    static NODE: OnceLock<Address> = OnceLock::new();
    NODE.get_or_init(|| {
        let options = PROCESS_NODE_OPTIONS.get().cloned().unwrap_or_else(|| {
            NodeOptions::new(Scope::Process).parent(super::lan::directory_at_host())
        });
        spawn_node(options, Address::NULL)
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
    /// Accepted connections by proxy.
    accepted: HashMap<Address, AcceptedLink>,
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
    /// Whether the grace timer for unconfirmed sessions runs.
    reconfirm_armed: bool,
    /// Actors watched for their end.
    watched: HashSet<Address>,
    // Trust and bounds.
    /// Identifies this node in `Inspect` (random: it names no actor).
    id: Uuid,
    /// Proves to the parent, in every full snapshot, that a new link is
    /// this node reconnecting (random; shown to no one else).
    secret: Uuid,
    /// How many publications and subscriptions each source holds here.
    held: HashMap<Source, (usize, usize)>,
    /// Compiled patterns, reused by text.
    patterns: matching::Patterns,
    refusals: refusals::Refusals,
    /// `Inspect`s and `Climb`s passed on, waiting for an answer, and
    /// `Climb`s waiting for the parent link.
    inspecting: inspect::Inspections,
}

/// A connection accepted by a node.
struct AcceptedLink {
    /// Where the peer connects from.
    remote: HostPort,
    /// Accepted where the node takes child directories (not a session).
    child: bool,
    /// The secret the child presented with its first full snapshot.
    secret: Option<Uuid>,
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
            // The node ended on its own: the daemon has no directory left,
            // so it says so and ends rather than live on without a listener.
            crate::Returned as _ => {
                if cx.return_address() == &node {
                    tracing::error!("{program}: the directory node has ended");
                    return Err(Faulted::new("the directory node has ended")
                        .with_explanation(format!("{program} cannot serve without it")));
                }
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
        reconfirm_armed: false,
        watched: HashSet::new(),
        id: Uuid::new_v4(),
        secret: Uuid::new_v4(),
        held: HashMap::new(),
        patterns: matching::Patterns::default(),
        refusals: refusals::Refusals::default(),
        inspecting: inspect::Inspections::default(),
    };
    loop {
        let message = cx.input().await;
        if message.is::<Stop>() {
            // Only its own process stops a node: a peer that can reach it
            // (the listener offers it) must not end the daemon's directory.
            if !cx.return_address().is_remote() {
                return;
            }
            let from = cx.return_address().clone();
            node.refusals
                .refuse(node.options.level, "a Stop from another process", &from);
            continue;
        }
        node.received(&mut cx, message);
    }
}

impl Node {
    fn level(&self) -> Scope {
        self.options.level
    }

    fn received(&mut self, cx: &mut Context, message: Payload) {
        // What the runtime and the network layer tell the node about its
        // own actors, listens and connections never comes from a peer.
        let event = message.is::<Ended>()
            || message.is::<Listening>()
            || message.is::<NotListening>()
            || message.is::<Accepted>()
            || message.is::<Connected>()
            || message.is::<NotConnected>()
            || message.is::<Closed>()
            || message.is::<Reconnect>()
            || message.is::<Reconfirm>()
            || message.is::<super::protocol::InspectSweep>();
        if event && cx.return_address().is_remote() {
            let from = cx.return_address().clone();
            let what = format!("{} from {from}", message.signature());
            self.refusals
                .refuse(self.level(), "a runtime event from another process", &what);
            return;
        }
        on!(message, {
            PublishAs as p => self.publish(cx, p),
            SubscribeTo as s => self.subscribe(cx, s),
            // Confirmed first, then each session it had is dropped.
            ClearPublished as c => self.clear_published(cx, c.id),
            ClearSubscribed as c => self.clear_subscribed(cx, c.id),
            super::protocol::RetirePublisher as r => self.retire_publisher(cx, &r.publisher),
            Ended as e => self.ended(cx, &e.address),
            Listings as l => self.listings(cx, l),
            Withdrawn as w => self.withdrawn(cx, w),
            Advisory as a => self.advised(cx, a),
            RouteOffer as o => {
                if self.came_from_above(cx, "a route offer") {
                    self.route_offered(cx, o);
                }
            },
            RouteWithdrawn as w => {
                if self.came_from_above(cx, "a route withdrawal") {
                    self.route_withdrawn(cx, w, "the publication was withdrawn");
                }
            },
            LostAbove as l => {
                if matches!(&self.parent, Parent::Up(p) if p == cx.return_address()) {
                    self.lost_above(cx, l.level, "lost a directory above");
                } else {
                    let from = cx.return_address().clone();
                    self.refusals.refuse(self.level(), "a LostAbove not from the parent", &from);
                }
            },
            OpenSession as o => self.open_session(cx, o),
            SessionOpened as o => self.session_opened(cx, o.publisher),
            SessionClosed as c => self.session_closed(cx, c),
            DirectoryListing as l => self.inspected(cx, l),
            Faulted as f => {
                if !self.inspect_failed(cx, &f) {
                    self.answer_failed(cx, f);
                }
            },
            inspect::Sweep as _ => self.sweep_inspections(cx),
            Listening as l => self.listening(cx, l),
            NotListening as n => self.not_listening(cx, n),
            Accepted as a => {
                let child = self.accepting.as_ref() == Some(&a.listening);
                if child {
                    let from = match a.transport {
                        crate::net::Transport::Unix => "a process of this host (Unix socket)".to_owned(),
                        crate::net::Transport::Tcp => a.remote.to_string(),
                    };
                    tracing::debug!(level = %self.level(), link = a.proxy.link_id(), "Accepted a child directory from {from}");
                }
                self.accepted.insert(a.proxy, AcceptedLink { remote: a.remote, child, secret: None });
            },
            Connected as c => self.connected(cx, c),
            NotConnected as n => self.not_connected(cx, n),
            Closed as c => self.closed(cx, c),
            Reconnect as _ => self.connect_parent(cx),
            Reconfirm as _ => self.reconfirm_due(cx),
            Inspect as i => self.inspect(cx, i),
            super::protocol::Climb as c => self.climb(cx, c),
            crate::Ack as _ => { let _ = cx.reply(crate::Ack); },
            other => tracing::warn!(level = %self.level(), "directory ignores {}", other.signature()),
        })
    }
}
