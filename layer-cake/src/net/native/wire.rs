//! The native wire format.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes: a
//! [`Header`], then (for a message) the message body in the binary codec.
//! Addresses inside a body are written as indices into the header's address
//! book, so a process relaying a frame rewrites the book and never decodes
//! the body — it need not even know the message's type. See
//! `docs/wire-protocol.md`.
//!
//! The header's bytes are those of bincode 2's standard configuration
//! (little-endian, variable-length integers), written and read here by hand:
//! every frame has one, and reading it in place — its strings borrowed from
//! the frame, nothing allocated but the book — costs a fraction of a general
//! decoder. The tests check the bytes against bincode's own.

/// The protocol version in every header; a peer speaking another is refused.
pub(crate) const VERSION: u8 = 2;

/// An address as written on one link, relative to that link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(test, derive(serde::Serialize))]
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

/// What a frame carries. Strings are borrowed from the frame they were read
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) enum Kind<'a> {
    /// The first frame each way: who the sender's controlling actor is.
    Hello {
        /// The actor that listened or connected, in the sender's table.
        controller: u64,
        /// Identifies this start of the sending process.
        incarnation: u128,
    },
    /// A message; the body follows the header.
    Message(MessageHeader<'a>),
    /// Nothing to say; keeps a quiet link alive.
    Heartbeat,
    /// The sender is closing the link.
    Close {
        /// Why.
        note: &'a str,
    },
    /// A request the sender sent over this link is cancelled: its asker
    /// (as the request's `from` was written) and its request id.
    Cancel {
        /// The request's `from`, as its message header wrote it.
        from: WireAddr,
        /// The request id.
        request: u64,
    },
}

/// The envelope of a message on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct MessageHeader<'a> {
    pub(crate) to: WireAddr,
    pub(crate) from: WireAddr,
    /// The body's type signature.
    pub(crate) signature: &'a str,
    /// 0: none; 1: request; 2: response — with `request` the id.
    pub(crate) tag: u8,
    pub(crate) request: u64,
    pub(crate) trace: Option<WireTrace>,
    pub(crate) caller: Option<&'a str>,
    /// The W3C `tracestate` text (checked by the receiver).
    pub(crate) trace_state: Option<&'a str>,
    pub(crate) ingress: WireAddr,
    /// The addresses the body refers to, by index.
    pub(crate) book: Vec<WireAddr>,
}

/// A frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Header<'a> {
    pub(crate) version: u8,
    pub(crate) kind: Kind<'a>,
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
pub(crate) fn split(frame: &[u8]) -> Result<(Header<'_>, &[u8]), FrameError> {
    let mut reader = Reader { bytes: frame };
    let header = reader.header().map_err(FrameError::Header)?;
    if header.version != VERSION {
        return Err(FrameError::Version(header.version));
    }
    Ok((header, reader.bytes))
}

/// Appends a whole frame — length prefix, header, body — to `out`.
pub(crate) fn frame(out: &mut Vec<u8>, header: &Header<'_>, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write_header(out, header);
    out.extend_from_slice(body);
    let length = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

// bincode's variable-length integers: below 251 one byte; else a marker
// byte and the value little-endian in 2, 4, 8 or 16 bytes.
const U16_MARKER: u8 = 251;
const U32_MARKER: u8 = 252;
const U64_MARKER: u8 = 253;
const U128_MARKER: u8 = 254;

fn write_varint(out: &mut Vec<u8>, value: u128) {
    if value < u128::from(U16_MARKER) {
        out.push(value as u8);
    } else if let Ok(v) = u16::try_from(value) {
        out.push(U16_MARKER);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(value) {
        out.push(U32_MARKER);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u64::try_from(value) {
        out.push(U64_MARKER);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(U128_MARKER);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    write_varint(out, s.len() as u128);
    out.extend_from_slice(s.as_bytes());
}

fn write_addr(out: &mut Vec<u8>, addr: WireAddr) {
    match addr {
        WireAddr::Null => out.push(0),
        WireAddr::Yours(id) => {
            out.push(1);
            write_varint(out, id.into());
        }
        WireAddr::Mine(id) => {
            out.push(2);
            write_varint(out, id.into());
        }
    }
}

/// Appends `header` to `out`.
pub(crate) fn write_header(out: &mut Vec<u8>, header: &Header<'_>) {
    out.push(header.version);
    match &header.kind {
        Kind::Hello {
            controller,
            incarnation,
        } => {
            out.push(0);
            write_varint(out, (*controller).into());
            write_varint(out, *incarnation);
        }
        Kind::Message(m) => {
            out.push(1);
            write_addr(out, m.to);
            write_addr(out, m.from);
            write_str(out, m.signature);
            out.push(m.tag);
            write_varint(out, m.request.into());
            match m.trace {
                None => out.push(0),
                Some((trace, span, flags)) => {
                    out.push(1);
                    write_varint(out, trace);
                    write_varint(out, span.into());
                    out.push(flags);
                }
            }
            match m.caller {
                None => out.push(0),
                Some(caller) => {
                    out.push(1);
                    write_str(out, caller);
                }
            }
            match m.trace_state {
                None => out.push(0),
                Some(state) => {
                    out.push(1);
                    write_str(out, state);
                }
            }
            write_addr(out, m.ingress);
            write_varint(out, m.book.len() as u128);
            for entry in &m.book {
                write_addr(out, *entry);
            }
        }
        Kind::Heartbeat => out.push(2),
        Kind::Close { note } => {
            out.push(3);
            write_str(out, note);
        }
        Kind::Cancel { from, request } => {
            out.push(4);
            write_addr(out, *from);
            write_varint(out, (*request).into());
        }
    }
}

/// Reads a header from the front of a frame, as bincode would: the same
/// integer encodings (a long form of a small value is accepted, as bincode
/// accepts it), every length checked against the bytes left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!(
                "{what}: {n} bytes needed, {} left",
                self.bytes.len()
            ));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn byte(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    /// A variable-length integer of at most `max_bits` bits.
    fn varint(&mut self, max_bits: u32, what: &str) -> Result<u128, String> {
        let first = self.byte(what)?;
        let (width, value) = match first {
            b if b < U16_MARKER => return Ok(u128::from(b)),
            U16_MARKER => (16, self.le(2, what)?),
            U32_MARKER => (32, self.le(4, what)?),
            U64_MARKER => (64, self.le(8, what)?),
            U128_MARKER => (128, self.le(16, what)?),
            other => return Err(format!("{what}: invalid integer marker {other}")),
        };
        if width > max_bits {
            return Err(format!(
                "{what}: a {width}-bit integer where at most {max_bits} bits fit"
            ));
        }
        Ok(value)
    }

    fn le(&mut self, n: usize, what: &str) -> Result<u128, String> {
        let mut buf = [0u8; 16];
        buf[..n].copy_from_slice(self.take(n, what)?);
        Ok(u128::from_le_bytes(buf))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        // At most 64 bits, checked by `varint`.
        self.varint(64, what).map(|v| v as u64)
    }

    fn variant(&mut self, what: &str) -> Result<u32, String> {
        self.varint(32, what).map(|v| v as u32)
    }

    fn len(&mut self, what: &str) -> Result<usize, String> {
        let n = self.u64(what)?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "{what}: a length of {n} where {} bytes are left",
                    self.bytes.len()
                )
            })
    }

    fn str(&mut self, what: &str) -> Result<&'a str, String> {
        let n = self.len(what)?;
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes).map_err(|e| format!("{what}: {e}"))
    }

    fn flag(&mut self, what: &str) -> Result<bool, String> {
        match self.byte(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("{what}: invalid option tag {other}")),
        }
    }

    fn addr(&mut self, what: &str) -> Result<WireAddr, String> {
        match self.variant(what)? {
            0 => Ok(WireAddr::Null),
            1 => Ok(WireAddr::Yours(self.u64(what)?)),
            2 => Ok(WireAddr::Mine(self.u64(what)?)),
            other => Err(format!("{what}: unknown address variant {other}")),
        }
    }

    fn header(&mut self) -> Result<Header<'a>, String> {
        let version = self.byte("version")?;
        let kind = match self.variant("kind")? {
            0 => Kind::Hello {
                controller: self.u64("controller")?,
                incarnation: self.varint(128, "incarnation")?,
            },
            1 => Kind::Message(self.message()?),
            2 => Kind::Heartbeat,
            3 => Kind::Close {
                note: self.str("note")?,
            },
            4 => Kind::Cancel {
                from: self.addr("from")?,
                request: self.u64("request")?,
            },
            other => return Err(format!("unknown frame kind {other}")),
        };
        Ok(Header { version, kind })
    }

    fn message(&mut self) -> Result<MessageHeader<'a>, String> {
        let to = self.addr("to")?;
        let from = self.addr("from")?;
        let signature = self.str("signature")?;
        let tag = self.byte("tag")?;
        let request = self.u64("request")?;
        let trace = if self.flag("trace")? {
            Some((
                self.varint(128, "trace id")?,
                self.u64("span id")?,
                self.byte("trace flags")?,
            ))
        } else {
            None
        };
        let caller = if self.flag("caller")? {
            Some(self.str("caller")?)
        } else {
            None
        };
        let trace_state = if self.flag("trace state")? {
            Some(self.str("trace state")?)
        } else {
            None
        };
        let ingress = self.addr("ingress")?;
        // Each entry takes at least one byte: a count past the bytes left
        // is refused before anything is allocated.
        let n = self.len("book")?;
        let mut book = Vec::with_capacity(n);
        for _ in 0..n {
            book.push(self.addr("book entry")?);
        }
        Ok(MessageHeader {
            to,
            from,
            signature,
            tag,
            request,
            trace,
            caller,
            trace_state,
            ingress,
            book,
        })
    }
}

/// Decodes one frame (without its length prefix) as far as a receiving link
/// would without a connection: the header, then the body by its type
/// signature. For fuzzing: whatever the bytes, this returns, never panics.
#[doc(hidden)]
pub fn decode_frame_for_fuzzing(frame: &[u8]) -> Result<(), String> {
    let (header, body) = split(frame).map_err(|e| e.to_string())?;
    if let Kind::Message(message) = header.kind {
        crate::message::codec::binary::decode_payload(message.signature, body)
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
                signature: "Xy",
                tag: 1,
                request: 9,
                trace: Some((1, 2, 1)),
                caller: None,
                trace_state: Some("foo=1,bar=2"),
                ingress: WireAddr::Null,
                book: vec![WireAddr::Mine(4)],
            }),
        };
        let mut out = Vec::new();
        frame(&mut out, &header, b"body");
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
            signature: "vector<vector<float8>>",
            tag: 0,
            request: 0,
            trace: None,
            caller: None,
            trace_state: None,
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
        );
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

    /// Headers with every field at the edges of bincode's integer
    /// encodings: the bytes written here are bincode's own, and reading
    /// them (or bincode's) gives the header back.
    #[test]
    fn the_bytes_are_bincodes() {
        let edges: [u64; 9] = [
            0,
            1,
            250,
            251,
            65_535,
            65_536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ];
        let addr = |i: usize| match i % 3 {
            0 => WireAddr::Null,
            1 => WireAddr::Yours(edges[i % edges.len()]),
            _ => WireAddr::Mine(edges[(i * 7) % edges.len()]),
        };
        let mut headers = vec![
            Kind::Heartbeat,
            Kind::Close { note: "" },
            Kind::Close {
                note: "bye — for now",
            },
        ];
        for (i, edge) in edges.iter().enumerate() {
            headers.push(Kind::Cancel {
                from: addr(i),
                request: *edge,
            });
            headers.push(Kind::Hello {
                controller: *edge,
                incarnation: u128::from(*edge) << (i * 8),
            });
            headers.push(Kind::Message(MessageHeader {
                to: addr(i),
                from: addr(i + 1),
                signature: if i % 2 == 0 {
                    "Xy"
                } else {
                    "vector<vector<float8>>"
                },
                tag: (i % 3) as u8,
                request: *edge,
                trace: (i % 2 == 1).then_some((u128::MAX >> i, *edge, i as u8)),
                caller: (i % 3 == 0).then_some("user-42"),
                trace_state: None,
                ingress: addr(i + 2),
                book: (0..i * 40).map(addr).collect(),
            }));
        }
        for kind in headers {
            let header = Header {
                version: VERSION,
                kind,
            };
            let mut ours = Vec::new();
            write_header(&mut ours, &header);
            let mut theirs = Vec::new();
            crate::message::codec::binary::encode(&header, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "{header:?}");
            ours.extend_from_slice(b"body");
            let (back, body) = split(&ours).unwrap();
            assert_eq!(back, header);
            assert_eq!(body, b"body");
        }
    }

    #[test]
    fn every_truncation_of_a_header_is_refused() {
        let header = Header {
            version: VERSION,
            kind: Kind::Message(MessageHeader {
                to: WireAddr::Yours(u64::MAX),
                from: WireAddr::Mine(300),
                signature: "Xy",
                tag: 1,
                request: 70_000,
                trace: Some((u128::MAX, 5, 1)),
                caller: Some("me"),
                trace_state: None,
                ingress: WireAddr::Mine(1),
                book: vec![WireAddr::Mine(2), WireAddr::Null],
            }),
        };
        let mut bytes = Vec::new();
        write_header(&mut bytes, &header);
        for n in 0..bytes.len() {
            assert!(
                matches!(split(&bytes[..n]), Err(FrameError::Header(_))),
                "{n} of {} bytes",
                bytes.len()
            );
        }
        assert!(split(&bytes).is_ok());
    }

    #[test]
    fn claims_past_the_frame_and_bad_values_are_refused() {
        let refused = |bytes: &[u8], why: &str| match split(bytes) {
            Err(FrameError::Header(e)) => assert!(e.contains(why), "{e}"),
            other => panic!("{bytes:?} gave {other:?}"),
        };
        // A close note claiming 2^64-1 bytes.
        let mut bytes = vec![VERSION, 3, U64_MARKER];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        refused(&bytes, "a length of");
        // A book of a billion entries in a few bytes.
        let mut bytes = vec![
            VERSION, 1, 0, 0, 2, b'X', b'y', 0, 0, 0, 0, 0, 0, U32_MARKER,
        ];
        bytes.extend_from_slice(&1_000_000_000u32.to_le_bytes());
        refused(&bytes, "book");
        // A 128-bit request id, an unknown kind, address and option tag, bad UTF-8.
        let mut bytes = vec![VERSION, 1, 0, 0, 2, b'X', b'y', 0, U128_MARKER];
        bytes.extend_from_slice(&[0xff; 16]);
        refused(&bytes, "128-bit integer");
        refused(&[VERSION, 9], "unknown frame kind 9");
        refused(&[VERSION, 1, 7], "unknown address variant 7");
        refused(&[VERSION, 1, 0, 0, 0, 0, 0, 2], "invalid option tag 2");
        refused(&[VERSION, 3, 2, 0xc3, 0x28], "note");
        refused(&[VERSION, 255], "invalid integer marker 255");
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
        );
        assert_eq!(split(&out[4..]), Err(FrameError::Version(9)));
    }
}
