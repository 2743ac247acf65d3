//! Codecs (STUB: being filled in).

pub mod binary;

/// A failure to encode or decode a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);
