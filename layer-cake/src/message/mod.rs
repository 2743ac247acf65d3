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
pub mod registry;
mod signature;
mod standard;
pub mod text;

pub use layer_cake_macros::Message;
pub use signature::signature_of;
pub use standard::{Ack, FaultKind, Faulted, Nak, Restarted, Returned, Start, Stop};

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
    /// Appends this type's layer-cake type signature to `out`.
    fn write_signature(out: &mut String);
}

/// The object-safe face of a [`Message`], used inside [`Payload`].
pub(crate) trait DynMessage: Send {
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    fn signature(&self) -> String;
    fn encode_json(&self) -> Result<serde_json::Value, serde_json::Error>;
    fn encode_binary(&self, out: &mut Vec<u8>) -> Result<(), codec::CodecError>;
}

impl<T: Message> DynMessage for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn signature(&self) -> String {
        signature_of::<T>()
    }
    fn encode_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
    fn encode_binary(&self, out: &mut Vec<u8>) -> Result<(), codec::CodecError> {
        codec::binary::encode(self, out)
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
        self.0.signature()
    }

    /// The Rust `TypeId` of the message inside.
    pub fn type_id(&self) -> TypeId {
        self.0.as_any().type_id()
    }

    /// The message's value as JSON (without the typed envelope).
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        self.0.encode_json()
    }

    /// Appends the message's value in the binary codec to `out`.
    pub fn encode_binary(&self, out: &mut Vec<u8>) -> Result<(), codec::CodecError> {
        self.0.encode_binary(out)
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

// STUB: replaced by the registry-backed typed encoding.
impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        Err(S::Error::custom(format!("cannot serialize {}", self.signature())))
    }
}
impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(_d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        Err(D::Error::custom("cannot deserialize payloads yet"))
    }
}
