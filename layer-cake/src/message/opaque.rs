//! A value of a type this process does not know.

use serde::{Deserialize, Serialize};

use super::Payload;
use crate::Message;

/// A value of a type this process has not registered, kept as the JSON it
/// arrived as, so that it can be passed on unchanged.
///
/// A supervisor like group-cake cannot know every type its roles return: a
/// child process's result whose signature is unknown here becomes an
/// `Opaque`, and is written back out (in a typed envelope, in a history,
/// on stdout) exactly as the child wrote it.
///
/// ```
/// use layer_cake::message::{Opaque, codec::json};
/// use layer_cake::Payload;
///
/// let p = Payload::new(Opaque::new("vector<my.Point>", "[1, 2]"));
/// assert_eq!(json::to_typed_string(&p, false).unwrap(), r#"{"value":["vector<my.Point>",[1,2],[]]}"#);
/// assert_eq!(json::to_value_string(&p, false).unwrap(), "[1,2]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(name = "layer_cake.Opaque")]
pub struct Opaque {
    /// The value's own type signature.
    pub signature: String,
    /// The value, as JSON text.
    pub json: String,
}

impl Opaque {
    /// A value of type `signature`, as JSON text.
    pub fn new(signature: impl Into<String>, json: impl Into<String>) -> Self {
        Opaque {
            signature: signature.into(),
            json: json.into(),
        }
    }

    /// The value as a JSON tree (`null` if the text is not JSON).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(&self.json).unwrap_or(serde_json::Value::Null)
    }
}

impl Payload {
    /// The opaque value inside, if this payload is one.
    pub(crate) fn as_opaque(&self) -> Option<&Opaque> {
        self.downcast_ref::<Opaque>()
    }
}
