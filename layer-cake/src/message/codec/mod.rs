//! Codecs: the binary codec used between processes ([`binary`]) and the JSON
//! forms used by the HTTP front, the command line and files ([`json`]).
//!
//! Both decode into a [`Payload`](crate::Payload) through the
//! [registry](crate::message::registry), which maps a type signature to the
//! Rust type that reads it.

pub mod binary;
pub(crate) mod depth;
pub mod json;

use std::fmt;

/// A failure to encode or decode a message.
///
/// Decode failures carry the type signature being decoded, the path of the
/// offending field inside it (`x`, `points[3].y`; empty for the value
/// itself) and the reason, so the text reads
/// `cannot decode Xy: field "x": invalid type: string "abc", expected i64`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value did not decode as the named type.
    #[error("cannot decode {signature}: {}{reason}", FieldPrefix(path))]
    Decode {
        /// The type signature being decoded (`Xy`, `vector<float8>`).
        signature: String,
        /// Where in the value it went wrong (`x`, `a.b[2]`); empty for the
        /// value as a whole.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The value nests deeper than the binary codec decodes
    /// ([`binary::MAX_DECODE_DEPTH`]): refused before it could exhaust the
    /// decoding thread's stack.
    #[error("cannot decode {signature}: nested deeper than {limit} levels")]
    TooDeep {
        /// The type signature being decoded (the outermost, when the
        /// excess is inside a nested payload).
        signature: String,
        /// The bound that was exceeded.
        limit: usize,
    },
    /// No type is registered under this signature.
    #[error("unknown type signature \"{0}\"")]
    UnknownSignature(String),
    /// The JSON envelope around the value does not have the expected shape.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(String),
    /// The value could not be encoded.
    #[error("cannot encode {signature}: {reason}")]
    Encode {
        /// The type signature being encoded.
        signature: String,
        /// What went wrong.
        reason: String,
    },
}

struct FieldPrefix<'a>(&'a str);

impl fmt::Display for FieldPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "field \"{}\": ", self.0)
        }
    }
}

impl CodecError {
    /// A decode error for `signature` from a `serde_path_to_error` failure.
    pub(crate) fn from_path<E: fmt::Display>(
        signature: &str,
        e: serde_path_to_error::Error<E>,
    ) -> Self {
        let path = path_text(e.path());
        CodecError::Decode {
            signature: signature.to_owned(),
            reason: if path.is_empty() {
                e.into_inner().to_string()
            } else {
                without_position(e.into_inner().to_string())
            },
            path,
        }
    }

    /// A decode error with no field path.
    pub(crate) fn decode(signature: &str, reason: impl fmt::Display) -> Self {
        CodecError::Decode {
            signature: signature.to_owned(),
            path: String::new(),
            reason: reason.to_string(),
        }
    }

    /// A depth refusal of `signature` at [`binary::MAX_DECODE_DEPTH`].
    pub(crate) fn too_deep(signature: &str) -> Self {
        CodecError::TooDeep {
            signature: signature.to_owned(),
            limit: binary::MAX_DECODE_DEPTH,
        }
    }

    /// An encode error.
    pub(crate) fn encode(signature: &str, reason: impl fmt::Display) -> Self {
        CodecError::Encode {
            signature: signature.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// serde_json appends ` at line L column C` to its messages; the field path
/// says more, so it is dropped from decode errors that have one.
fn without_position(mut reason: String) -> String {
    if let Some(at) = reason.rfind(" at line ") {
        let tail = &reason[at + " at line ".len()..];
        let is_position = tail.split_once(" column ").is_some_and(|(l, c)| {
            !l.is_empty() && !c.is_empty() && (l.to_owned() + c).bytes().all(|b| b.is_ascii_digit())
        });
        if is_position {
            reason.truncate(at);
        }
    }
    reason
}

/// The path as text, empty for the root (serde_path_to_error prints `.`).
fn path_text(path: &serde_path_to_error::Path) -> String {
    if path.iter().next().is_none() {
        String::new()
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_error_text_names_the_field() {
        let e = CodecError::Decode {
            signature: "Xy".into(),
            path: "x".into(),
            reason: "bad".into(),
        };
        assert_eq!(e.to_string(), "cannot decode Xy: field \"x\": bad");
        assert_eq!(
            CodecError::decode("Xy", "bad").to_string(),
            "cannot decode Xy: bad"
        );
    }
}
