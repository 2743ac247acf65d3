//! The native wire format.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes: a
//! bincode [`Header`], then (for a message) the message body in the binary
//! codec. Addresses inside a body are written as indices into the header's
//! address book, so a process relaying a frame rewrites the book and never
//! decodes the body — it need not even know the message's type. See
//! `docs/wire-protocol.md`.

use serde::{Deserialize, Serialize};

/// The protocol version in every header; a peer speaking another is refused.
pub(crate) const VERSION: u8 = 1;

/// An address as written on one link, relative to that link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum WireAddr {
    /// The null address.
    Null,
    /// An id in the *receiver's* table: one of its actors, or a route it
    /// relays (an address travelling back the way it came).
    Yours(u64),
    /// An id in the *sender's* table: reached by sending back over this link.
    Mine(u64),
}

/// A W3C trace context on the wire.
pub(crate) type WireTrace = (u128, u64, u8);

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// The first frame each way: who the sender's controlling actor is.
    Hello {
        /// The actor that listened or connected, in the sender's table.
        controller: u64,
        /// Identifies this start of the sending process.
        incarnation: u128,
    },
    /// A message; the body follows the header.
    Message(MessageHeader),
    /// Nothing to say; keeps a quiet link alive.
    Heartbeat,
    /// The sender is closing the link.
    Close {
        /// Why.
        note: String,
    },
}

/// The envelope of a message on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MessageHeader {
    pub(crate) to: WireAddr,
    pub(crate) from: WireAddr,
    /// The body's type signature.
    pub(crate) signature: String,
    /// 0: none; 1: request; 2: response — with `request` the id.
    pub(crate) tag: u8,
    pub(crate) request: u64,
    pub(crate) trace: Option<WireTrace>,
    pub(crate) caller: Option<String>,
    pub(crate) ingress: WireAddr,
    /// The addresses the body refers to, by index.
    pub(crate) book: Vec<WireAddr>,
}

/// A frame header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) version: u8,
    pub(crate) kind: Kind,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("undecodable frame header: {0}")]
    Header(String),
    #[error("protocol version {0} is not spoken here (expected {VERSION})")]
    Version(u8),
}

/// Splits a frame (without its length prefix) into header and body.
pub(crate) fn split(frame: &[u8]) -> Result<(Header, &[u8]), FrameError> {
    let (header, used): (Header, usize) = crate::message::codec::binary::decode_prefix(frame)
        .map_err(|e| FrameError::Header(e.to_string()))?;
    if header.version != VERSION {
        return Err(FrameError::Version(header.version));
    }
    Ok((header, &frame[used..]))
}

/// Appends a whole frame — length prefix, header, body — to `out`.
pub(crate) fn frame(
    out: &mut Vec<u8>,
    header: &Header,
    body: &[u8],
) -> Result<(), crate::message::codec::CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    crate::message::codec::binary::encode(header, out)?;
    out.extend_from_slice(body);
    let length = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// Decodes one frame (without its length prefix) as far as a receiving link
/// would without a connection: the header, then the body by its type
/// signature. For fuzzing: whatever the bytes, this returns, never panics.
#[doc(hidden)]
pub fn decode_frame_for_fuzzing(frame: &[u8]) -> Result<(), String> {
    let (header, body) = split(frame).map_err(|e| e.to_string())?;
    if let Kind::Message(message) = header.kind {
        crate::message::codec::binary::decode_payload(&message.signature, body)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let header = Header {
            version: VERSION,
            kind: Kind::Message(MessageHeader {
                to: WireAddr::Yours(7),
                from: WireAddr::Mine(3),
                signature: "Xy".into(),
                tag: 1,
                request: 9,
                trace: Some((1, 2, 1)),
                caller: None,
                ingress: WireAddr::Null,
                book: vec![WireAddr::Mine(4)],
            }),
        };
        let mut out = Vec::new();
        frame(&mut out, &header, b"body").unwrap();
        let length = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(length, out.len() - 4);
        let (back, body) = split(&out[4..]).unwrap();
        assert_eq!(back, header);
        assert_eq!(body, b"body");
    }

    /// The property the fuzz target checks, run in CI: random bytes and
    /// mutations of valid frames are refused with an error, never a panic.
    #[test]
    fn the_decoder_never_panics() {
        use rand::{Rng, SeedableRng};
        crate::message::registry::register::<Vec<Vec<f64>>>();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x1a7e5);
        let mut valid = Vec::new();
        let body = {
            let mut b = Vec::new();
            crate::message::codec::binary::encode(&vec![vec![0.5_f64, 1.5]], &mut b).unwrap();
            b
        };
        let message = MessageHeader {
            to: WireAddr::Yours(1),
            from: WireAddr::Mine(2),
            signature: "vector<vector<float8>>".into(),
            tag: 0,
            request: 0,
            trace: None,
            caller: None,
            ingress: WireAddr::Null,
            book: vec![],
        };
        frame(
            &mut valid,
            &Header {
                version: VERSION,
                kind: Kind::Message(message),
            },
            &body,
        )
        .unwrap();
        assert_eq!(decode_frame_for_fuzzing(&valid[4..]), Ok(()));
        for round in 0..20_000 {
            let input: Vec<u8> = if round % 2 == 0 {
                let n = rng.random_range(0..64);
                (0..n).map(|_| rng.random()).collect()
            } else {
                let mut m = valid[4..].to_vec();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..m.len());
                    m[at] = rng.random();
                }
                m.truncate(rng.random_range(0..=m.len()));
                m
            };
            let _ = decode_frame_for_fuzzing(&input);
        }
    }

    #[test]
    fn garbage_and_wrong_versions_are_refused() {
        assert!(matches!(split(&[0xff; 16]), Err(FrameError::Header(_))));
        assert!(matches!(split(&[]), Err(FrameError::Header(_))));
        let mut out = Vec::new();
        frame(
            &mut out,
            &Header {
                version: 9,
                kind: Kind::Heartbeat,
            },
            &[],
        )
        .unwrap();
        assert_eq!(split(&out[4..]), Err(FrameError::Version(9)));
    }
}
