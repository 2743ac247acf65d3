//! The publish/subscribe directory.
//!
//! An actor **publishes** a name at a [`Scope`] and another **subscribes**
//! to a regular expression at a scope. Directory nodes — one in every process,
//! then `group-cake`, `host-cake` and `lan-cake` — form a tree that matches
//! subscriptions to publications and introduces the two sides: the subscriber
//! receives [`Available`] with the publisher's address, the publisher
//! [`Delivered`] with the subscriber's, and from then on they talk directly
//! over a connection between their two processes. When the session ends —
//! the publication is cleared, a side ends or dies, a link is lost — each side
//! receives [`Dropped`].
//!
//! ```no_run
//! use layer_cake::directory::{Available, Dropped, Published, Scope};
//! use layer_cake::{Context, on};
//!
//! async fn worker(mut cx: Context) {
//!     cx.publish("texture-worker", Scope::Host);
//!     loop {
//!         on!(cx.input().await, {
//!             Published as _ => {},
//!             i64 as n => { let _ = cx.reply(n * 2); },
//!             _other => {},
//!         })
//!     }
//! }
//!
//! async fn server(mut cx: Context) {
//!     cx.subscribe("texture-worker", Scope::Host);
//!     loop {
//!         on!(cx.input().await, {
//!             Available as a => { let _ = cx.send(21_i64, &a.publisher); },
//!             Dropped as _ => {},
//!             _other => {},
//!         })
//!     }
//! }
//! ```
//!
//! Every answer and event here travels on the control lane, in order: a
//! busy actor never misses one, and `PublishedCleared` comes before the
//! `Dropped`s it causes.
//!
//! The semantics — scopes, nearest-route selection, what a lost link
//! withdraws — are described in `docs/directory.md`.

pub mod lan;
mod node;
mod protocol;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::Message;
use crate::runtime::{Address, Context};

pub(crate) use node::configure_process_node;
pub use node::{
    INSPECT_PATIENCE, MAX_COMPILED_PATTERN, MAX_INSPECT_BYTES, MAX_INSPECT_CHILDREN,
    MAX_INSPECT_ENTRIES, MAX_NAME_LEN, MAX_PATTERN_DFA, MAX_PATTERN_LEN, MAX_PENDING_INSPECTIONS,
    MAX_PUBLICATIONS_PER_ACTOR, MAX_PUBLICATIONS_PER_LINK, MAX_SUBSCRIPTIONS_PER_ACTOR,
    MAX_SUBSCRIPTIONS_PER_LINK, NodeOptions, PATTERN_CACHE, RECONFIRM_WITHIN, run_daemon, run_node,
    spawn_node,
};
pub use protocol::{Climb, DirectoryListing, Inspect, MAX_CLIMB};

/// How far a listing is visible: at and below the directory level it names,
/// never beyond. Ordered from narrowest to widest.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scope {
    /// This process only.
    Process,
    /// The composite process under one `group-cake`.
    Group,
    /// Every process on this host (`host-cake`). The default.
    #[default]
    Host,
    /// Every host on the LAN (`lan-cake`).
    Lan,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Process => "PROCESS",
            Scope::Group => "GROUP",
            Scope::Host => "HOST",
            Scope::Lan => "LAN",
        })
    }
}

/// A publication was listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Published {
    /// The name.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// Names this publication, for [`Context::clear_published`].
    pub id: Uuid,
}

/// A publication was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct NotPublished {
    /// The name.
    pub name: String,
    /// The scope asked for.
    pub scope: Scope,
    /// Why (`already published` by the same actor, `<name> is already
    /// published at <scope> by another publisher`, `an empty name` …).
    pub reason: String,
}

/// A subscription was listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Subscribed {
    /// The regular expression, matched against whole names.
    pub pattern: String,
    /// Its scope.
    pub scope: Scope,
    /// Names this subscription, for [`Context::clear_subscribed`].
    pub id: Uuid,
}

/// A subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct NotSubscribed {
    /// The pattern.
    pub pattern: String,
    /// The scope asked for.
    pub scope: Scope,
    /// Why (`already subscribed`, the regular expression's error …).
    pub reason: String,
}

/// A publication was withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct PublishedCleared {
    /// Its id.
    pub id: Uuid,
}

/// A subscription was withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct SubscribedCleared {
    /// Its id.
    pub id: Uuid,
}

/// To a subscriber: a publication matching one of its subscriptions can be
/// reached at `publisher`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Available {
    /// The publication's name.
    pub name: String,
    /// The directory level at which the two were matched (the route).
    pub scope: Scope,
    /// The subscription.
    pub subscription: Uuid,
    /// The publication.
    pub publication: Uuid,
    /// The publisher.
    pub publisher: Address,
}

/// To a publisher: a subscriber was introduced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Delivered {
    /// The publication's name.
    pub name: String,
    /// The directory level of the route.
    pub scope: Scope,
    /// The subscription.
    pub subscription: Uuid,
    /// The publication.
    pub publication: Uuid,
    /// The subscriber.
    pub subscriber: Address,
}

/// To either side: a session has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Dropped {
    /// The publication's name.
    pub name: String,
    /// The directory level of the route that ended.
    pub scope: Scope,
    /// The subscription.
    pub subscription: Uuid,
    /// The publication.
    pub publication: Uuid,
    /// The other side.
    pub remote: Address,
    /// Why.
    pub reason: String,
}

/// The reason in the [`Dropped`] a subscriber gets when the publisher
/// retired (`--max-requests`, `layer-cake restart`): a successor is on its
/// way, and a spool waits for it rather than turning requests away.
pub const RETIRED: &str = "the publisher retired";

/// Withdraws every publication of `publisher`, an actor of this process,
/// through this process's directory: each session it had ends with
/// [`Dropped`] on both sides, so a spool fed by the subscriber stops
/// sending it requests. The process entry does this for a main actor that
/// retires (`--max-requests`).
pub(crate) fn retire_publisher(publisher: &Address) {
    let directory = node::process_node();
    let _ = directory.send(protocol::RetirePublisher {
        publisher: publisher.clone(),
    });
}

impl Context {
    /// Publishes `name` at `scope` through this process's directory. The
    /// answer is [`Published`] or [`NotPublished`]; then a [`Delivered`] for
    /// each subscriber introduced.
    ///
    /// There is one instance of a name per scope: where another publisher
    /// has `name` at `scope` already (in this process, composite, host or
    /// LAN, as the scope says), the publication is refused. Within this
    /// process the answer is [`NotPublished`] at once; otherwise the
    /// directory above that finds the clash tells this process's, and a
    /// [`NotPublished`] follows the [`Published`] (the publication is then
    /// withdrawn).
    pub fn publish(&mut self, name: impl Into<String>, scope: Scope) {
        let directory = node::process_node();
        self.publish_at(&directory, name, scope);
    }

    /// [`publish`](Context::publish) through a given directory node.
    pub fn publish_at(&mut self, directory: &Address, name: impl Into<String>, scope: Scope) {
        let request = protocol::PublishAs {
            name: name.into(),
            scope,
            publisher: self.address().clone(),
        };
        // Directory requests take the control lane, so only a directory that
        // has gone refuses one: say so rather than stay silent.
        if let Err(e) = self.send(request, directory) {
            let refused = e.into_inner();
            let _ = self.address().send(NotPublished {
                name: refused.name,
                scope,
                reason: format!("no directory at {directory}"),
            });
        }
    }

    /// Subscribes to every name that `pattern` (a regular expression matched
    /// against whole names) matches, at `scope`. The answer is
    /// [`Subscribed`] or [`NotSubscribed`]; then an [`Available`] for each
    /// matching publication.
    pub fn subscribe(&mut self, pattern: impl Into<String>, scope: Scope) {
        let directory = node::process_node();
        self.subscribe_at(&directory, pattern, scope);
    }

    /// [`subscribe`](Context::subscribe) through a given directory node.
    pub fn subscribe_at(&mut self, directory: &Address, pattern: impl Into<String>, scope: Scope) {
        let request = protocol::SubscribeTo {
            pattern: pattern.into(),
            scope,
            subscriber: self.address().clone(),
        };
        if let Err(e) = self.send(request, directory) {
            let refused = e.into_inner();
            let _ = self.address().send(NotSubscribed {
                pattern: refused.pattern,
                scope,
                reason: format!("no directory at {directory}"),
            });
        }
    }

    /// Withdraws a publication; the answer is [`PublishedCleared`], and every
    /// session it had ends with [`Dropped`] on both sides.
    pub fn clear_published(&mut self, id: Uuid) {
        let directory = node::process_node();
        let _ = self.send(protocol::ClearPublished { id }, &directory);
    }

    /// [`clear_published`](Context::clear_published) at a given node.
    pub fn clear_published_at(&mut self, directory: &Address, id: Uuid) {
        let _ = self.send(protocol::ClearPublished { id }, directory);
    }

    /// Withdraws a subscription; the answer is [`SubscribedCleared`], and
    /// every session it had ends with [`Dropped`] on both sides.
    pub fn clear_subscribed(&mut self, id: Uuid) {
        let directory = node::process_node();
        let _ = self.send(protocol::ClearSubscribed { id }, &directory);
    }

    /// [`clear_subscribed`](Context::clear_subscribed) at a given node.
    pub fn clear_subscribed_at(&mut self, directory: &Address, id: Uuid) {
        let _ = self.send(protocol::ClearSubscribed { id }, directory);
    }
}
