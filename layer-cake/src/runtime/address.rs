//! Addresses: the one way to name an actor, wherever it runs.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::envelope::{Envelope, Lane, Tag};
use super::error::SendError;
use super::mailbox::{Mailbox, PushError, Pushed};
use super::transport::Channel;
use crate::message::{Message, Payload};

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
pub(crate) enum RouteRef<'a> {
    Null,
    Local(&'a Arc<Mailbox>),
    Remote(&'a Arc<dyn Channel>, u64),
    Unreachable,
}

#[derive(Clone, Default)]
pub(crate) enum Route {
    #[default]
    Null,
    Local(Arc<Mailbox>),
    /// An actor reached over a connection: its id in the peer's table for
    /// that connection. Behind one pointer, so that an `Address` stays two
    /// words: addresses sit in every envelope, context and table of children.
    Remote(Arc<Remote>),
    /// An address that leads nowhere this process can reach (read from
    /// another process's JSON, or an id a connection never gave out): every
    /// send to it is refused with the reason.
    Unreachable(Arc<Unreachable>),
}

/// Where a remote address leads: a connection, and an id in the peer's
/// table for it.
pub(crate) struct Remote {
    channel: Arc<dyn Channel>,
    id: u64,
}

/// Why an address leads nowhere, and what it was written as (so that
/// passing it on as JSON keeps it: back in its own process it names the
/// actor again).
pub(crate) struct Unreachable {
    reason: Box<str>,
    json: Option<JsonAddress>,
}

impl Address {
    /// The address of nobody.
    pub const NULL: Address = Address(Route::Null);

    pub(crate) fn local(mailbox: Arc<Mailbox>) -> Self {
        Address(Route::Local(mailbox))
    }

    pub(crate) fn remote(channel: Arc<dyn Channel>, id: u64) -> Self {
        Address(Route::Remote(Arc::new(Remote { channel, id })))
    }

    /// An address every send to which is refused, saying `reason`.
    pub(crate) fn unreachable(reason: impl Into<Box<str>>) -> Self {
        Address(Route::Unreachable(Arc::new(Unreachable {
            reason: reason.into(),
            json: None,
        })))
    }

    /// Why sends to this address are refused, when it leads nowhere this
    /// process can reach (an address read from another process's JSON).
    pub fn unreachable_reason(&self) -> Option<&str> {
        match &self.0 {
            Route::Unreachable(u) => Some(&u.reason),
            _ => None,
        }
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
            Route::Remote(r) => Some(r.channel.channel_id()),
            Route::Null | Route::Local(_) | Route::Unreachable(_) => None,
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
            Route::Null | Route::Remote(..) | Route::Unreachable(..) => None,
        }
    }

    /// Whether the actor behind this address has ended (always true for the
    /// null address and for an address that leads nowhere reachable). An
    /// ended actor refuses messages.
    pub fn is_closed(&self) -> bool {
        match &self.0 {
            Route::Null | Route::Unreachable(..) => true,
            Route::Local(m) => m.is_closed(),
            Route::Remote(r) => r.channel.is_closed(),
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
        meta: Option<Arc<super::Carried>>,
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
        meta: Option<Arc<super::Carried>>,
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
                match m.push(envelope, lane)? {
                    Pushed::Queued => Ok(()),
                    Pushed::Redirect(envelope, to) => match to.push(envelope) {
                        Err((envelope, why)) if why.means_gone() => m.push_here(envelope),
                        other => other,
                    },
                }
            }
            Route::Remote(r) => r.channel.send(envelope, r.id),
            Route::Unreachable(u) => Err((envelope, PushError::Unreachable(u.reason.clone()))),
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
                match std::future::poll_fn(|task| m.poll_push(slot, task)).await {
                    Ok(Pushed::Queued) => Ok(()),
                    Ok(Pushed::Redirect(envelope, to)) => {
                        *slot = Some(envelope);
                        // Rare, and recursive: boxed.
                        return match Box::pin(to.push_waiting(slot)).await {
                            Err(why) if why.means_gone() => match slot.take() {
                                Some(envelope) => {
                                    m.push_here(envelope).map_err(|(envelope, why)| {
                                        *slot = Some(envelope);
                                        why
                                    })
                                }
                                None => Ok(()),
                            },
                            other => other,
                        };
                    }
                    Err(refused) => Err(refused),
                }
            }
            // Most sends find room at once: only a full queue needs the
            // (boxed) waiting send.
            Route::Remote(r) => match r.channel.send(envelope, r.id) {
                Err((envelope, PushError::Full)) => r.channel.send_waiting(envelope, r.id).await,
                other => other,
            },
            _ => self.push(envelope),
        };
        result.map_err(|(envelope, why)| {
            *slot = Some(envelope);
            why
        })
    }

    /// The shape of this address's route, for the network layer.
    pub(crate) fn route(&self) -> RouteRef<'_> {
        match &self.0 {
            Route::Null => RouteRef::Null,
            Route::Local(m) => RouteRef::Local(m),
            Route::Remote(r) => RouteRef::Remote(&r.channel, r.id),
            Route::Unreachable(_) => RouteRef::Unreachable,
        }
    }

    /// `asker` gave up waiting for the answer to request `id`, sent here:
    /// the transport that carried it stops tracking it.
    pub(crate) fn abandon_request(&self, asker: &Address, id: super::RequestId) {
        match &self.0 {
            Route::Remote(r) => r.channel.abandon(asker, id.0),
            Route::Local(m) => {
                if let Some(to) = m.redirect_target() {
                    to.abandon_request(asker, id);
                }
            }
            Route::Null | Route::Unreachable(_) => {}
        }
    }

    /// `asker`'s request `id`, sent here, is cancelled: when it went to
    /// another process, the peer cancels its copy of the request's context
    /// (a local actor shares the asker's context, which is not touched).
    pub(crate) fn cancel_request(&self, asker: &Address, id: super::RequestId) {
        match &self.0 {
            Route::Remote(r) => r.channel.cancel(asker, id.0),
            Route::Local(m) => {
                if let Some(to) = m.redirect_target() {
                    to.cancel_request(asker, id);
                }
            }
            Route::Null | Route::Unreachable(_) => {}
        }
    }

    pub(crate) fn mailbox(&self) -> Option<&Arc<Mailbox>> {
        match &self.0 {
            Route::Local(m) => Some(m),
            Route::Null | Route::Remote(..) | Route::Unreachable(..) => None,
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
            (Route::Remote(a), Route::Remote(b)) => {
                a.channel.channel_id() == b.channel.channel_id() && a.id == b.id
            }
            (Route::Unreachable(a), Route::Unreachable(b)) => Arc::ptr_eq(a, b),
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
            Route::Remote(r) => (2u8, r.channel.channel_id(), r.id).hash(state),
            Route::Unreachable(u) => (3u8, Arc::as_ptr(u) as usize).hash(state),
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
            Route::Remote(r) => write!(f, "<{:08x}@{}>", r.id, r.channel.channel_id()),
            Route::Unreachable(_) => f.write_str("<unreachable>"),
        }
    }
}

/// An address as JSON: the process it belongs to (its
/// [`incarnation`](super::incarnation), 32 hex digits) and the id that
/// process gave it for JSON (16 hex digits; unguessable, and a string so
/// that JavaScript keeps every digit).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonAddress {
    process: u128,
    id: u64,
}

#[derive(Serialize, Deserialize)]
struct JsonForm {
    process: String,
    id: String,
}

/// What may stand for an address in JSON.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonInput {
    Null(()),
    Full(JsonForm),
    Bare(u64),
}

impl JsonAddress {
    fn read(form: &JsonForm) -> Option<JsonAddress> {
        let process = u128::from_str_radix(&form.process, 16).ok()?;
        let id = u64::from_str_radix(&form.id, 16).ok()?;
        Some(JsonAddress { process, id })
    }
}

impl Address {
    /// This address as JSON names it: null, or its process and an id in
    /// that process's JSON table.
    fn json(&self) -> Option<JsonAddress> {
        let here = super::incarnation();
        match &self.0 {
            Route::Null => None,
            Route::Local(m) => Some(JsonAddress {
                process: here,
                id: super::exports::export(m),
            }),
            Route::Remote(r) => Some(JsonAddress {
                process: here,
                id: super::exports::export_remote(&r.channel, r.id),
            }),
            Route::Unreachable(u) => u.json,
        }
    }

    /// The address JSON names.
    fn from_json(json: JsonAddress) -> Address {
        if json.process != super::incarnation() {
            return Address(Route::Unreachable(Arc::new(Unreachable {
                reason: format!(
                    "the address belongs to another process ({:032x}); \
                     only an address passed in a message reaches an actor there",
                    json.process
                )
                .into(),
                json: Some(json),
            })));
        }
        super::exports::lookup(json.id).unwrap_or_else(|| {
            Address::unreachable(format!(
                "no actor of this process has the JSON id {:016x} (it has ended, or never existed)",
                json.id
            ))
        })
    }
}

/// Inside a frame on a connection an address is an index into the frame's
/// address book, which the transport fills and reads (relative to the
/// connection, so that a relaying process can rewrite it). Anywhere else —
/// JSON for the HTTP front or stdout, a child's result — it is null or
/// `{"process": "<incarnation>", "id": "<id>"}`: decoding that in the same
/// process finds the live actor again; in another process it gives an
/// address that refuses every send, saying why.
impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Some(index) = super::transport::encode_in_frame(self) {
            return s.serialize_u32(index.map_err(serde::ser::Error::custom)?);
        }
        let json = self.json();
        if s.is_human_readable() {
            json.map(|j| JsonForm {
                process: format!("{:032x}", j.process),
                id: format!("{:016x}", j.id),
            })
            .serialize(s)
        } else {
            json.map(|j| (j.process, j.id)).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if super::transport::decoding_frame() {
            let index = u32::deserialize(d)?;
            return super::transport::decode_in_frame(index).map_err(serde::de::Error::custom);
        }
        if !d.is_human_readable() {
            let json = Option::<(u128, u64)>::deserialize(d)?;
            return Ok(json.map_or(Address::NULL, |(process, id)| {
                Address::from_json(JsonAddress { process, id })
            }));
        }
        Ok(match JsonInput::deserialize(d)? {
            JsonInput::Null(()) => Address::NULL,
            JsonInput::Full(form) => match JsonAddress::read(&form) {
                Some(json) => Address::from_json(json),
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "an address needs a process of 32 hex digits and an id of 16, not {:?} and {:?}",
                        form.process, form.id
                    )));
                }
            },
            JsonInput::Bare(id) => Address::unreachable(format!(
                "a bare number ({id}) names no actor: an address in JSON carries its process"
            )),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Context, SendError};

    fn json(address: &Address) -> serde_json::Value {
        serde_json::to_value(address).unwrap()
    }

    fn from_json(value: serde_json::Value) -> Address {
        serde_json::from_value(value).unwrap()
    }

    #[tokio::test]
    async fn as_json_an_address_names_its_process_and_finds_the_actor_again_here() {
        let mut cx = Context::detached("json");
        let written = json(cx.address());
        let process = format!("{:032x}", crate::runtime::incarnation());
        assert_eq!(written["process"], serde_json::Value::String(process));
        let id = written["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 16);
        // Not the actor's id in this process: that is sequential.
        assert_ne!(u64::from_str_radix(&id, 16).unwrap(), cx.id().0);
        // The same actor keeps its JSON id.
        assert_eq!(json(cx.address()), written);
        let back = from_json(written);
        assert_eq!(back, *cx.address());
        back.send(5_i64).unwrap();
        assert_eq!(cx.input().await.downcast::<i64>().ok(), Some(5));
        // Null stays null.
        assert_eq!(json(&Address::NULL), serde_json::Value::Null);
        assert!(from_json(serde_json::Value::Null).is_null());
    }

    #[test]
    fn an_address_from_another_process_refuses_every_send_with_the_reason() {
        let cx = Context::detached("json");
        let mut written = json(cx.address());
        let other = format!("{:032x}", crate::runtime::incarnation() ^ 1);
        written["process"] = serde_json::Value::String(other.clone());
        let foreign = from_json(written.clone());
        assert!(foreign.is_closed());
        assert!(!foreign.is_null());
        assert_ne!(foreign, *cx.address());
        let reason = foreign.unreachable_reason().unwrap().to_string();
        assert!(reason.contains("another process"), "{reason}");
        assert!(reason.contains(&other), "{reason}");
        match foreign.send(5_i64) {
            Err(SendError::Unreachable(5, why)) => assert_eq!(&*why, reason),
            other => panic!("expected Unreachable, got {other:?}"),
        }
        // Passed on as JSON it is written as it was read: back in its own
        // process it would name the actor again.
        assert_eq!(json(&foreign), written);
    }

    #[test]
    fn a_bare_number_or_a_malformed_address_is_no_local_actor() {
        let cx = Context::detached("json");
        let bare = from_json(serde_json::json!(cx.id().0));
        assert!(bare.is_closed());
        assert!(bare.unreachable_reason().unwrap().contains("bare number"));
        let unknown = from_json(serde_json::json!({
            "process": format!("{:032x}", crate::runtime::incarnation()),
            "id": "0000000000000001",
        }));
        assert!(unknown.unreachable_reason().unwrap().contains("no actor"));
        let bad: Result<Address, _> =
            serde_json::from_value(serde_json::json!({"process": "xyz", "id": "1"}));
        assert!(bad.unwrap_err().to_string().contains("32 hex digits"));
    }

    #[test]
    fn outside_a_frame_the_binary_form_round_trips_in_this_process() {
        let cx = Context::detached("binary");
        let mut bytes = Vec::new();
        crate::message::codec::binary::encode(cx.address(), &mut bytes).unwrap();
        let back: Address = crate::message::codec::binary::decode(&bytes).unwrap();
        assert_eq!(back, *cx.address());
    }

    #[test]
    fn an_ended_actor_is_not_found_from_its_json() {
        let written = {
            let cx = Context::detached("brief");
            json(cx.address())
        };
        let gone = from_json(written);
        assert!(gone.is_closed());
        assert!(gone.unreachable_reason().is_some());
    }

    #[tokio::test]
    async fn request_ids_do_not_start_at_one() {
        let sink = crate::runtime::spawn(|mut cx: Context| async move {
            while !cx.input().await.is::<crate::Stop>() {}
        });
        let mut a = Context::detached("a");
        let mut b = Context::detached("b");
        let first = a.request(1_i64, sink.address()).unwrap();
        let second = a.request(2_i64, sink.address()).unwrap();
        let other = b.request(3_i64, sink.address()).unwrap();
        assert_ne!(second, first);
        // Drawn at random per actor: three coincidences with the old
        // sequential ids are out of the question.
        assert_ne!(first.0, 1);
        assert_ne!(other.0, 1);
        assert_ne!(first, other);
        sink.address().send(crate::Stop).unwrap();
    }
}
