//! Addresses: the one way to name an actor, wherever it runs.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::envelope::{Envelope, Lane, Tag};
use super::error::SendError;
use super::mailbox::{Mailbox, PushError};
use crate::message::{Message, Payload};
use crate::net::native::{Link, book};

/// The process-unique number of an actor; prints as `<0000000e>` in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorId(pub u64);

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{:08x}>", self.0)
    }
}

/// The address of an actor.
///
/// An `Address` is cheap to clone, can be compared and hashed, and can travel
/// inside messages. Sending to it looks the same whether the actor is a task in
/// this process or (with the networking layer) in another process or host;
/// only the transport differs. [`Address::NULL`] names nobody: a message sent
/// there is refused with [`SendError::NoAddress`].
///
/// Most code sends from inside an actor with [`Context::send`], which also
/// fills in the return address; [`Address::send`] sends from outside any actor
/// (the receiver sees the null address as the sender).
///
/// [`Context::send`]: crate::runtime::Context::send
#[derive(Clone, Default)]
pub struct Address(pub(crate) Route);

/// An address's route as the network layer sees it.
pub(crate) enum RouteRef {
    Null,
    Local,
    Remote(Arc<Link>, u64),
}

#[derive(Clone, Default)]
pub(crate) enum Route {
    #[default]
    Null,
    Local(Arc<Mailbox>),
    /// An actor reached over a native link: its id in the peer's table.
    /// Behind one pointer, so that an `Address` stays two words: addresses
    /// sit in every envelope, context and table of children.
    Remote(Arc<Remote>),
}

/// Where a remote address leads: a link, and an id in the peer's table.
pub(crate) struct Remote {
    link: Arc<Link>,
    id: u64,
}

impl Address {
    /// The address of nobody.
    pub const NULL: Address = Address(Route::Null);

    pub(crate) fn local(mailbox: Arc<Mailbox>) -> Self {
        Address(Route::Local(mailbox))
    }

    pub(crate) fn remote(link: Arc<Link>, id: u64) -> Self {
        Address(Route::Remote(Arc::new(Remote { link, id })))
    }

    /// Whether this address names an actor in another process.
    pub fn is_remote(&self) -> bool {
        matches!(self.0, Route::Remote(..))
    }

    /// The id of the link a remote address routes over (`None` for local
    /// and null addresses): the identity the directory keys what a peer
    /// listed by, so only that link can replace or withdraw it.
    pub(crate) fn link_id(&self) -> Option<u64> {
        match &self.0 {
            Route::Remote(r) => Some(r.link.id),
            Route::Null | Route::Local(_) => None,
        }
    }

    /// Whether this is the null address.
    pub fn is_null(&self) -> bool {
        matches!(self.0, Route::Null)
    }

    /// The actor's id in this process (`None` for the null address and for
    /// remote addresses).
    pub fn id(&self) -> Option<ActorId> {
        match &self.0 {
            Route::Local(m) => Some(m.id),
            Route::Null | Route::Remote(..) => None,
        }
    }

    /// Whether the actor behind this address has ended (always true for the
    /// null address). An ended actor refuses messages.
    pub fn is_closed(&self) -> bool {
        match &self.0 {
            Route::Null => true,
            Route::Local(m) => m.is_closed(),
            Route::Remote(r) => r.link.is_closed(),
        }
    }

    /// Sends `message` from outside any actor (the return address is null).
    ///
    /// Control messages ([`Stop`](crate::Stop) and the other lifecycle
    /// messages) are never refused for lack of room; any other message is
    /// refused with [`SendError::Full`] when the mailbox holds its capacity of
    /// user messages. The error hands the message back.
    pub fn send<M: Message>(&self, message: M) -> Result<(), SendError<M>> {
        self.post(message, Address::NULL, Tag::None, None)
    }

    /// Delivers a message with the given envelope fields; on failure the
    /// message is handed back inside the error.
    pub(crate) fn post<M: Message>(
        &self,
        message: M,
        from: Address,
        tag: Tag,
        meta: Option<Arc<super::Meta>>,
    ) -> Result<(), SendError<M>> {
        self.post_payload(Payload::new(message), from, tag, meta)
            .map_err(|e| e.map(typed_back))
    }

    /// [`post`](Address::post) for a message of any type.
    pub(crate) fn post_payload(
        &self,
        payload: Payload,
        from: Address,
        tag: Tag,
        meta: Option<Arc<super::Meta>>,
    ) -> Result<(), SendError<Payload>> {
        let envelope = Envelope {
            from,
            payload,
            tag,
            meta,
        };
        self.push(envelope)
            .map_err(|(envelope, why)| SendError::from_push(envelope.payload, why))
    }

    /// Queues an envelope on the lane its message and tag call for, without
    /// waiting; on failure the envelope is handed back.
    pub(crate) fn push(&self, envelope: Envelope) -> Result<(), (Envelope, PushError)> {
        match &self.0 {
            Route::Null => Err((envelope, PushError::NoAddress)),
            Route::Local(m) => {
                let lane = Lane::of(&envelope.payload, envelope.tag);
                m.push(envelope, lane)
            }
            Route::Remote(r) => r.link.send(envelope, r.id),
        }
    }

    /// Queues the envelope in `slot`, waiting while a user lane is full. On
    /// failure the envelope stays in `slot`.
    pub(crate) async fn push_waiting(&self, slot: &mut Option<Envelope>) -> Result<(), PushError> {
        let Some(envelope) = slot.take() else {
            return Ok(());
        };
        let result = match &self.0 {
            Route::Local(m) if Lane::of(&envelope.payload, envelope.tag) == Lane::User => {
                *slot = Some(envelope);
                std::future::poll_fn(|task| m.poll_push(slot, task)).await
            }
            Route::Remote(r) => r.link.send_waiting(envelope, r.id).await,
            _ => self.push(envelope),
        };
        result.map_err(|(envelope, why)| {
            *slot = Some(envelope);
            why
        })
    }

    /// The shape of this address's route, for the network layer.
    pub(crate) fn route(&self) -> RouteRef {
        match &self.0 {
            Route::Null => RouteRef::Null,
            Route::Local(_) => RouteRef::Local,
            Route::Remote(r) => RouteRef::Remote(r.link.clone(), r.id),
        }
    }

    pub(crate) fn mailbox(&self) -> Option<&Arc<Mailbox>> {
        match &self.0 {
            Route::Local(m) => Some(m),
            Route::Null | Route::Remote(..) => None,
        }
    }
}

/// Takes a message back out of the payload it was put in.
pub(crate) fn typed_back<M: Message>(payload: Payload) -> M {
    payload
        .downcast::<M>()
        .unwrap_or_else(|_| unreachable!("the payload was built from an M"))
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Route::Null, Route::Null) => true,
            (Route::Local(a), Route::Local(b)) => Arc::ptr_eq(a, b),
            (Route::Remote(a), Route::Remote(b)) => a.link.id == b.link.id && a.id == b.id,
            _ => false,
        }
    }
}

impl Eq for Address {}

impl Hash for Address {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Route::Null => 0u8.hash(state),
            Route::Local(m) => (1u8, m.id).hash(state),
            Route::Remote(r) => (2u8, r.link.id, r.id).hash(state),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Route::Null => f.write_str("<null>"),
            Route::Local(m) => fmt::Display::fmt(&m.id, f),
            Route::Remote(r) => write!(f, "<{:08x}@{}>", r.id, r.link.id),
        }
    }
}

/// Inside a frame on a native link an address is an index into the frame's
/// address book, which the link fills and reads (relative to itself, so a
/// relaying process can rewrite it). Anywhere else — JSON for the HTTP front
/// or stdout — it is the actor's id in this process (or null), and decoding
/// that id in this process finds the live actor again.
impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Some(index) = book::encode(self) {
            return s.serialize_u32(index);
        }
        let id = match &self.0 {
            Route::Local(m) => Some(super::exports::export(m)),
            Route::Remote(r) => Some(super::exports::export_relay(&r.link, r.id)),
            Route::Null => None,
        };
        id.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if book::decoding_now() {
            let index = u32::deserialize(d)?;
            return book::decode(index).map_err(serde::de::Error::custom);
        }
        let id = Option::<u64>::deserialize(d)?;
        Ok(id
            .and_then(|id| super::exports::lookup(ActorId(id)))
            .unwrap_or_default())
    }
}

impl Message for Address {
    fn write_signature(out: &mut String) {
        out.push_str("address");
    }
}

// An address is in every envelope, context and table of children: keep it
// two words (a remote route lives behind its own pointer).
const _: () = assert!(std::mem::size_of::<Address>() == 2 * std::mem::size_of::<usize>());
