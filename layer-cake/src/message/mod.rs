//! Messages: the [`Message`] trait, the type-erased [`Payload`], the runtime's
//! standard messages, type signatures, the name registry and the codecs.
//!
//! Every message is an ordinary Rust type registered under a stable *type
//! signature* — the short name (`Xy`) for user types, a constructed name
//! (`vector<vector<float8>>`) for containers. The signature is what travels on
//! the wire and what the HTTP front maps a URL onto; in-process sends never
//! serialize and never look at it: a mailbox carries a [`Payload`] and the
//! receiving actor matches on the Rust type.

use std::any::{Any, TypeId};
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod codec;
mod opaque;
pub mod registry;
pub(crate) mod signature;
mod standard;
pub mod text;

pub use layer_cake_macros::Message;
pub use opaque::Opaque;
pub use signature::signature_of;
pub use standard::{Ack, FAULTY_EXIT, FaultKind, Faulted, Nak, Restarted, Returned, Start, Stop};

/// A type that can be sent to an actor.
///
/// Implemented for the primitive and container types that have a layer-cake
/// signature (`i64` → `integer8`, `Vec<Vec<f64>>` → `vector<vector<float8>>`,
/// `BTreeMap<String, i64>` → `map<unicode,integer8>` …) and, through
/// `#[derive(Message)]`, for your own structs and enums. Because a message may
/// cross a process boundary, it must be serde-serializable; in-process sends
/// move the value without serializing it.
///
/// ```
/// use layer_cake::Message;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, Serialize, Deserialize, Message)]
/// struct Xy {
///     x: i64,
///     y: i64,
/// }
///
/// assert_eq!(layer_cake::message::signature_of::<Xy>(), "Xy");
/// assert_eq!(layer_cake::message::signature_of::<Vec<Vec<f64>>>(), "vector<vector<float8>>");
/// ```
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// Whether this message travels on the control lane of a mailbox: never
    /// refused for lack of room, and read before user messages. True for the
    /// runtime's lifecycle messages and the network's connection events;
    /// application messages leave it `false`.
    const CONTROL: bool = false;

    /// Appends this type's layer-cake type signature to `out`.
    fn write_signature(out: &mut String);
}

/// The object-safe face of a [`Message`], used inside [`Payload`].
pub(crate) trait DynMessage: Send {
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    fn signature(&self) -> &'static str;
    fn as_serialize(&self) -> &dyn erased_serde::Serialize;
    fn is_control(&self) -> bool;
    fn try_copy(&self) -> Result<Payload, codec::CodecError>;
}

impl<T: Message> DynMessage for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn signature(&self) -> &'static str {
        signature::static_signature::<T>()
    }
    fn as_serialize(&self) -> &dyn erased_serde::Serialize {
        self
    }
    fn is_control(&self) -> bool {
        T::CONTROL
    }
    fn try_copy(&self) -> Result<Payload, codec::CodecError> {
        let mut bytes = Vec::new();
        codec::binary::encode(self, &mut bytes)?;
        codec::binary::decode_named::<T>(&bytes, signature::static_signature::<T>())
            .map(Payload::new)
    }
}

/// A message of any registered type, as it sits in a mailbox.
///
/// An actor receives a `Payload` and matches on its type with
/// [`Payload::downcast`] (or the [`on!`](crate::on) macro); a wrong guess hands
/// the payload back so the next type can be tried.
///
/// ```
/// use layer_cake::{Payload, Stop};
///
/// let p = Payload::new(42_i64);
/// assert!(p.is::<i64>());
/// let p = p.downcast::<Stop>().unwrap_err(); // not a Stop: handed back
/// assert_eq!(p.downcast::<i64>().unwrap(), 42);
/// ```
pub struct Payload(Box<dyn DynMessage>);

impl Payload {
    /// Wraps a message.
    pub fn new<M: Message>(message: M) -> Self {
        Payload(Box::new(message))
    }

    /// Whether the message is of type `M`.
    pub fn is<M: Message>(&self) -> bool {
        self.0.as_any().type_id() == TypeId::of::<M>()
    }

    /// The message as an `M`, or the payload back when it is something else.
    pub fn downcast<M: Message>(self) -> Result<M, Payload> {
        if self.is::<M>() {
            match self.0.into_any().downcast::<M>() {
                Ok(boxed) => Ok(*boxed),
                Err(_) => unreachable!("type id checked above"),
            }
        } else {
            Err(self)
        }
    }

    /// A reference to the message as an `M`, if it is one.
    pub fn downcast_ref<M: Message>(&self) -> Option<&M> {
        self.0.as_any().downcast_ref::<M>()
    }

    /// The message's layer-cake type signature, e.g. `Xy` or `vector<float8>`.
    pub fn signature(&self) -> String {
        self.0.signature().to_owned()
    }

    /// The signature, cached per type.
    pub(crate) fn static_signature(&self) -> &'static str {
        self.0.signature()
    }

    /// The message as a serde value (its value alone, without the type).
    pub(crate) fn as_serialize(&self) -> &dyn erased_serde::Serialize {
        self.0.as_serialize()
    }

    /// Whether the message travels on the control lane (see
    /// [`Message::CONTROL`]).
    pub fn is_control(&self) -> bool {
        self.0.is_control()
    }

    /// The Rust `TypeId` of the message inside.
    pub fn type_id(&self) -> TypeId {
        self.0.as_any().type_id()
    }

    /// The message's value as JSON (without the typed envelope).
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self.0.as_serialize())
    }

    /// A copy of the message, made through the binary codec (encoded, then
    /// decoded as its own type; no registration needed).
    ///
    /// [`Message`] has no `Clone` bound — a message is moved, not shared —
    /// but some holders need a spare: a spool keeps one of each request so
    /// it can retry the request on another worker when the first dies with
    /// it. The copy costs what sending the message to another process would.
    ///
    /// ```
    /// use layer_cake::Payload;
    ///
    /// let p = Payload::new(vec![1.5_f64, 2.5]);
    /// let copy = p.try_copy().unwrap();
    /// assert_eq!(copy.downcast::<Vec<f64>>().unwrap(), vec![1.5, 2.5]);
    /// ```
    ///
    /// # Errors
    ///
    /// The codec's error when the value does not encode (a map with
    /// non-string keys in some codecs, a serializer that fails on purpose).
    pub fn try_copy(&self) -> Result<Payload, codec::CodecError> {
        self.0.try_copy()
    }

    /// Appends the message's value in the binary codec to `out`.
    pub fn encode_binary(&self, out: &mut Vec<u8>) -> Result<(), codec::CodecError> {
        codec::binary::encode(self.0.as_serialize(), out).map_err(|e| match e {
            codec::CodecError::Encode { reason, .. } => {
                codec::CodecError::encode(self.static_signature(), reason)
            }
            other => other,
        })
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Payload").field(&self.signature()).finish()
    }
}

impl<M: Message> From<M> for Payload {
    fn from(message: M) -> Self {
        Payload::new(message)
    }
}

// A payload serializes as its signature followed by its value, so it can sit
// inside other messages (`Returned { value }`) and still be decoded by
// signature on the other side. Human-readable formats (JSON) get the original
// library's three-element form `[signature, value, []]` (the last element is
// the empty pointer list); binary formats get the pair `(signature, value)`.
impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let human = s.is_human_readable();
        if human && let Some(opaque) = self.as_opaque() {
            // Written back out as the type it came as.
            let mut t = s.serialize_tuple(3)?;
            t.serialize_element(&opaque.signature)?;
            t.serialize_element(&opaque.value())?;
            t.serialize_element(&[(); 0])?;
            return t.end();
        }
        let mut t = s.serialize_tuple(if human { 3 } else { 2 })?;
        t.serialize_element(self.static_signature())?;
        t.serialize_element(self.as_serialize())?;
        if human {
            t.serialize_element(&[(); 0])?;
        }
        t.end()
    }
}

/// How deeply payloads may nest inside one another when decoded (a
/// [`Returned`] whose value is a message holding a `Payload` holding …).
///
/// A payload is the one type the library decodes recursively (by signature,
/// through the registry), so without a bound a small frame of nested
/// payloads would recurse until the decoding thread's stack overflowed and
/// took the process with it. Deeper nesting is refused as one undecodable
/// message, with an error naming this limit. Sixteen levels is far more
/// than any real message uses, and stays well inside a 2 MiB tokio worker
/// stack even in a debug build.
pub const MAX_PAYLOAD_DEPTH: usize = 16;

thread_local! {
    /// Payloads being decoded on this thread, outermost first. Decoding is
    /// synchronous, so nesting on one thread is nesting in one value.
    static PAYLOAD_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// Why the innermost failing payload did not decode, as plain text.
    /// bincode renders an error it is handed back as its `Debug` form,
    /// escaped once more at every level, so a message that travels up
    /// through nested payloads would grow exponentially (eight levels: half
    /// a gigabyte); each level reads the clean text from here instead.
    static PAYLOAD_ERROR: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The longest decode error kept for one payload level.
const MAX_ERROR_TEXT: usize = 1024;

/// Takes the clean text of the last payload decode failure on this thread
/// (and clears it).
pub(crate) fn take_payload_error() -> Option<String> {
    PAYLOAD_ERROR.with(|e| e.borrow_mut().take())
}

fn set_payload_error(mut text: String) -> String {
    if text.len() > MAX_ERROR_TEXT {
        let mut end = MAX_ERROR_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    PAYLOAD_ERROR.with(|e| *e.borrow_mut() = Some(text.clone()));
    text
}

/// One level of payload nesting, left when dropped (also on an error).
struct Nested;

impl Nested {
    fn enter() -> Option<Nested> {
        PAYLOAD_DEPTH.with(|depth| {
            let now = depth.get();
            (now < MAX_PAYLOAD_DEPTH).then(|| {
                depth.set(now + 1);
                Nested
            })
        })
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        PAYLOAD_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Some(_level) = Nested::enter() else {
            return Err(D::Error::custom(set_payload_error(format!(
                "messages nested more than {MAX_PAYLOAD_DEPTH} levels deep"
            ))));
        };
        if d.is_human_readable() {
            d.deserialize_tuple(3, PayloadVisitor)
        } else {
            // The binary codec's depth adapter recognises the name and
            // decodes the pair itself (see `payload_from_seq`).
            d.deserialize_tuple_struct(PAYLOAD_TUPLE, 2, PayloadVisitor)
        }
    }
}

/// The tuple-struct name a payload's binary form is read under.
///
/// bincode reads a tuple struct exactly as a tuple, so the wire form is the
/// pair `(signature, value)` either way; the name lets the binary codec's
/// depth adapter take the pair from the concrete decoder and decode it with
/// [`payload_from_seq`]. Otherwise every payload nested in another would be
/// read through one more layer of `erased_serde` than its parent (each
/// registry decoder erases the deserializer it is given, already erased at
/// the level above), and every level inside a payload nested `n` deep would
/// cost `n` dynamic hops and their stack frames: sixteen nested payloads
/// around a deep value overflowed a 2 MiB stack in a debug build.
pub(crate) const PAYLOAD_TUPLE: &str = "layer_cake::Payload";

thread_local! {
    /// A payload the binary codec's depth adapter decoded directly, handed
    /// to the [`PayloadVisitor`] that asked for it (see [`PAYLOAD_TUPLE`]).
    static DELIVERED: std::cell::RefCell<Option<Payload>> = const { std::cell::RefCell::new(None) };
}

/// Decodes a payload's `(signature, value)` pair from `seq` (for the binary
/// codec's depth adapter, which holds the concrete decoder).
pub(crate) fn payload_from_seq<'de, A: serde::de::SeqAccess<'de>>(
    seq: A,
) -> Result<Payload, A::Error> {
    serde::de::Visitor::visit_seq(PayloadVisitor, seq)
}

/// Hands `payload` to the [`PayloadVisitor`] about to be told `visit_unit`.
pub(crate) fn deliver_payload(payload: Payload) {
    DELIVERED.with(|d| *d.borrow_mut() = Some(payload));
}

struct PayloadVisitor;

impl<'de> serde::de::Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a typed message [signature, value, pointers]")
    }

    /// The payload the binary codec's depth adapter decoded for this visitor
    /// (see [`PAYLOAD_TUPLE`]); a plain unit is not a payload.
    fn visit_unit<E: serde::de::Error>(self) -> Result<Payload, E> {
        DELIVERED
            .with(|d| d.borrow_mut().take())
            .ok_or_else(|| E::invalid_type(serde::de::Unexpected::Unit, &self))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
        use serde::de::Error;
        let signature: std::borrow::Cow<'de, str> = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let entry = registry::lookup(&signature).ok_or_else(|| {
            A::Error::custom(set_payload_error(format!(
                "unknown type signature \"{signature}\""
            )))
        })?;
        let payload = seq
            .next_element_seed(EntrySeed(entry))?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        // The pointer list of the JSON form: absent, or empty.
        if let Some(pointers) = seq.next_element::<Vec<serde::de::IgnoredAny>>()?
            && !pointers.is_empty()
        {
            return Err(A::Error::custom("pointer aliases are not supported"));
        }
        Ok(payload)
    }
}

struct EntrySeed(&'static registry::Entry);

impl<'de> serde::de::DeserializeSeed<'de> for EntrySeed {
    type Value = Payload;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Payload, D::Error> {
        use serde::de::Error;
        let mut erased = <dyn erased_serde::Deserializer>::erase(d);
        self.0.decode_erased(&mut erased).map_err(|e| {
            let inner =
                take_payload_error().unwrap_or_else(|| codec::depth::plain_text(e.to_string()));
            D::Error::custom(set_payload_error(format!(
                "cannot decode {}: {inner}",
                self.0.signature()
            )))
        })
    }
}
