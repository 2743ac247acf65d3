//! What directory nodes say to applications and to each other.
//!
//! Every one of these travels on the control lane: a directory request or
//! event is never refused for lack of room (DESIGN.md decision 5).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Scope;
use crate::message::Message;
use crate::net::HostPort;
use crate::runtime::Address;

/// App → its process node: list a publication.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct PublishAs {
    pub(crate) name: String,
    pub(crate) scope: Scope,
    pub(crate) publisher: Address,
}

/// App → its process node: list a subscription.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct SubscribeTo {
    pub(crate) pattern: String,
    pub(crate) scope: Scope,
    pub(crate) subscriber: Address,
}

/// App → its process node: withdraw a publication.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct ClearPublished {
    pub(crate) id: Uuid,
}

/// The process → its process node: withdraw every publication of
/// `publisher` (a worker retiring after `--max-requests`); each session it
/// had ends with `Dropped` on both sides.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct RetirePublisher {
    pub(crate) publisher: Address,
}

/// App → its process node: withdraw a subscription.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct ClearSubscribed {
    pub(crate) id: Uuid,
}

/// A publication as nodes know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Publication {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) scope: Scope,
    /// Where the publisher's process takes sessions, as seen from the node
    /// holding this copy (rewritten on the way up).
    pub(crate) listening: Option<HostPort>,
    /// The publisher, for a match inside its own process.
    pub(crate) publisher: Address,
    /// The publisher process's start.
    pub(crate) incarnation: u128,
}

/// A subscription as nodes know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Subscription {
    pub(crate) id: Uuid,
    pub(crate) pattern: String,
    pub(crate) scope: Scope,
    /// The subscriber's process node, which picks and opens routes.
    pub(crate) home: Address,
}

/// Child → parent: listings. `full` replaces everything learned from this
/// child before (sent on every (re)connect); otherwise these are additions.
/// Its `Debug` leaves the secret out, so that no log line can show it.
#[derive(Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct Listings {
    pub(crate) full: bool,
    pub(crate) publications: Vec<Publication>,
    pub(crate) subscriptions: Vec<Subscription>,
    /// With a `full` snapshot: the child node's secret, drawn at random
    /// when the node starts and sent only to its parent, over the parent
    /// link. A later link presenting the same secret is the same child
    /// reconnecting: what its earlier link listed goes at once, as if that
    /// link had closed, rather than outlive it and have the new snapshot
    /// refused as another link's. None with additions.
    pub(crate) secret: Option<Uuid>,
}

impl std::fmt::Debug for Listings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listings")
            .field("full", &self.full)
            .field("publications", &self.publications)
            .field("subscriptions", &self.subscriptions)
            .field("secret", &self.secret.map(|_| "<redacted>"))
            .finish()
    }
}

/// Child → parent: listings withdrawn.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct Withdrawn {
    pub(crate) publications: Vec<Uuid>,
    pub(crate) subscriptions: Vec<Uuid>,
}

/// A node → the child link a publication came over, when that publication
/// clashes with one the node holds already (the same name at the same
/// scope, another id): the node did not list it. Each node below passes it
/// on down the link the publication came from, to the publisher's process
/// node, which logs it, tells the publisher (`NotPublished`) and withdraws
/// the publication. Only the node's parent is believed.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct Advisory {
    /// The publication refused.
    pub(crate) publication: Uuid,
    /// Its name.
    pub(crate) name: String,
    /// Its scope.
    pub(crate) scope: Scope,
    /// The level of the node that refused it.
    pub(crate) level: Scope,
}

/// A matching node → the subscriber's home: the publication can be reached
/// by a route at `level`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct RouteOffer {
    pub(crate) subscription: Uuid,
    pub(crate) publication: Publication,
    pub(crate) level: Scope,
}

/// A matching node → the subscriber's home: that route is gone.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct RouteWithdrawn {
    pub(crate) subscription: Uuid,
    pub(crate) publication: Uuid,
    pub(crate) level: Scope,
}

/// Parent → children, passed down to every process node: every route offered
/// from a level above `level` is void (a link above has been lost).
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct LostAbove {
    pub(crate) level: Scope,
}

/// Subscriber's home → the publisher's process node, over a direct
/// connection: open a session.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct OpenSession {
    pub(crate) subscription: Uuid,
    /// The subscription's pattern: the publisher's node checks it matches.
    pub(crate) pattern: String,
    pub(crate) publication: Uuid,
    pub(crate) subscriber: Address,
    pub(crate) level: Scope,
}

/// The answer to [`OpenSession`].
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct SessionOpened {
    pub(crate) publisher: Address,
}

/// Either side's node → the other's: a session has ended.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct SessionClosed {
    pub(crate) subscription: Uuid,
    pub(crate) publication: Uuid,
    pub(crate) reason: String,
}

/// A node's retry timer for its parent link.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct Reconnect;

/// A home's grace timer for the sessions it holds unconfirmed (their route
/// went with a lost directory link while their direct link lives).
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct Reconfirm;

/// A node's timer for the `Inspect`s and `Climb`s it passed on.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[message(control)]
pub(crate) struct InspectSweep;

/// Anyone → a node: describe yourself, or the node `below` you. Answered
/// with [`DirectoryListing`] (or a fault saying why not).
///
/// `below` is a path down the tree: each step is one of the `children` the
/// node before it listed (where that child connects from). The node passes
/// the rest of the path on to that child and answers with what comes back,
/// so an asker walks the whole tree over its one connection, hop by hop,
/// without ever holding an address of a node below.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Inspect {
    /// The path from the asked node to the node to describe; empty: the
    /// asked node itself.
    pub below: Vec<HostPort>,
}

/// Anyone → a node: climb the tree first, then inspect from there.
/// Answered with [`DirectoryListing`] (or a fault saying why not), as
/// [`Inspect`] is.
///
/// A node narrower than `up_to` that has a parent passes the climb on to
/// it (connecting first if it is not connected yet); the first node that is
/// as wide as `up_to`, or has no parent, or cannot reach it, is the *top*:
/// it answers as if asked `Inspect { below }`. `Climb { up_to: Scope::Lan,
/// .. }` so reaches the root of the tree. The node asked first (`climbed`
/// 0) answers a fault when it cannot reach its own parent, so that an
/// asker learns why; a climb that has passed [`MAX_CLIMB`] nodes stops
/// where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Climb {
    /// The widest level to climb to.
    pub up_to: Scope,
    /// The path down from the top, as [`Inspect::below`] takes it.
    pub below: Vec<HostPort>,
    /// How many nodes have passed this climb on (0 from the asker).
    pub climbed: u8,
}

/// The most nodes a [`Climb`] is passed on by: far beyond process → group
/// → host → LAN, a guard against parents configured in a loop.
pub const MAX_CLIMB: u8 = 8;

/// A node's description, for `layer-cake network`.
///
/// An asker in another process (any remote peer) gets names, scopes, where
/// sessions are taken and counts, but no listing ids and no addresses of
/// actors: nothing it could use to withdraw or open what is not its own.
/// In place of each id it gets the id's *tag*, a one-way hash of it
/// (Blake2s), the same at every node, so that a listing can be followed
/// through the tree and a route matched to its two listings. An actor of
/// the node's own process gets the ids themselves.
///
/// The answer to a remote asker is bounded whoever filled the node: past
/// [`MAX_INSPECT_ENTRIES`](super::MAX_INSPECT_ENTRIES) entries or
/// [`MAX_INSPECT_BYTES`](super::MAX_INSPECT_BYTES) of names and patterns
/// the rest are left out and counted in `omitted`, and at most
/// [`MAX_INSPECT_CHILDREN`](super::MAX_INSPECT_CHILDREN) children are
/// named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct DirectoryListing {
    /// Identifies the node (random, chosen when the node starts).
    pub id: Uuid,
    /// The node's level.
    pub level: Scope,
    /// The program the node runs in.
    pub executable: String,
    /// Where it accepts child directories, if it does.
    pub accepting: Option<HostPort>,
    /// Its parent, if it has one configured.
    pub parent: Option<HostPort>,
    /// Whether it is connected to that parent.
    pub parent_connected: bool,
    /// The publications it holds: (name, scope, id (nil for a remote asker),
    /// where sessions are taken).
    pub published: Vec<(String, Scope, Uuid, Option<HostPort>)>,
    /// The subscriptions it holds: (pattern, scope, id (nil for a remote
    /// asker)).
    pub subscribed: Vec<(String, Scope, Uuid)>,
    /// Open sessions of its subscribers: (name, route level, publication id
    /// (nil for a remote asker), the publisher's process, if another).
    pub connected: Vec<(String, Scope, Uuid, Option<HostPort>)>,
    /// The matches it holds, each a route it offered to the subscriber's
    /// process: (publication name, subscription id, publication id), ids
    /// as in `subscribed` and `published`.
    pub routed: Vec<(String, Uuid, Uuid)>,
    /// Its child nodes, by where each connects from: a step of
    /// [`Inspect::below`].
    pub children: Vec<HostPort>,
    /// How many entries (publications, subscriptions, sessions, routes,
    /// children) were left out to keep the answer bounded.
    pub omitted: u64,
    /// What the node has refused from peers and actors, by kind, with how
    /// many times (a listing from a link that is not its owner, a pattern
    /// too long …).
    pub refused: Vec<(String, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_never_shows_in_debug() {
        let secret = Uuid::new_v4();
        let listings = Listings {
            full: true,
            publications: Vec::new(),
            subscriptions: Vec::new(),
            secret: Some(secret),
        };
        let shown = format!("{listings:?}");
        assert!(!shown.contains(&secret.to_string()), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
