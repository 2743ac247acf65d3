//! The envelope every message travels in.
//!
//! Besides the message and its return address, an envelope carries what a
//! request needs across hops (DESIGN.md decision 8): a request id to match an
//! answer to its question, and shared [`Meta`] — the W3C trace context, the
//! caller the gateway authenticated, and the ingress reply-to. Local sends fill
//! these cheaply: the request id is a plain integer and `Meta` is shared by
//! reference count, inherited by every message an actor sends while handling
//! the message that carried it.

use std::fmt;
use std::sync::Arc;

use super::address::Address;
use super::trace_state::TraceState;
#[cfg(doc)]
use crate::message::Message;
use crate::message::Payload;

/// Identifies one request from one asker; the answer carries the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What kind of delivery an envelope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// An ordinary message.
    None,
    /// A request expecting an answer with the same id.
    Request(RequestId),
    /// The answer to a request.
    Response(RequestId),
    /// A timer firing, with the generation it was started under.
    Timer(u64),
}

/// Which lane of a mailbox a message takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Bounded; refused when full.
    User,
    /// Never refused for lack of room, and read first.
    Control,
}

impl Lane {
    /// Control messages ([`Message::CONTROL`]), timers and answers to
    /// requests take the control lane.
    pub(crate) fn of(payload: &Payload, tag: Tag) -> Lane {
        if payload.is_control() || matches!(tag, Tag::Response(_) | Tag::Timer(_)) {
            Lane::Control
        } else {
            Lane::User
        }
    }
}

pub(crate) struct Envelope {
    pub(crate) from: Address,
    pub(crate) payload: Payload,
    pub(crate) tag: Tag,
    pub(crate) meta: Option<Arc<super::Carried>>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("from", &self.from)
            .field("payload", &self.payload)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// Request context that follows a message across hops.
///
/// Set with [`Context::set_meta`](crate::runtime::Context::set_meta) (the
/// HTTP front sets one per request), it is shared by everything sent while
/// handling the message that carried it, and so is the request's
/// [`Cancellation`](crate::runtime::Cancellation), which travels beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The W3C trace context of the request.
    pub trace: Option<TraceContext>,
    /// The W3C `tracestate` that came with the trace context, passed on
    /// unchanged wherever the trace goes.
    pub trace_state: Option<TraceState>,
    /// Who the gateway authenticated, if anyone.
    pub caller: Option<String>,
    /// The HTTP session that must get the final answer, so that any stage of a
    /// pipeline can answer early.
    pub ingress: Option<Address>,
}

/// A W3C `traceparent`: trace id, the current span id and flags.
///
/// ```
/// use layer_cake::runtime::TraceContext;
///
/// let t: TraceContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
/// assert_eq!(t.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// let hop = t.child();
/// assert_eq!(hop.trace_id, t.trace_id);
/// assert_ne!(hop.span_id, t.span_id);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The id shared by every span of one trace.
    pub trace_id: u128,
    /// The id of the current span (hop).
    pub span_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// A new trace with random ids, sampled.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: rand::random::<u128>() | 1,
            span_id: rand::random::<u64>() | 1,
            flags: 1,
        }
    }

    /// The context for the next hop: same trace, a new span id.
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: rand::random::<u64>() | 1,
            ..*self
        }
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// A `traceparent` header that does not follow the W3C format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed traceparent {0:?}: expected 00-<32 hex>-<16 hex>-<2 hex>")]
pub struct TraceParseError(pub String);

impl std::str::FromStr for TraceContext {
    type Err = TraceParseError;

    /// Parses a `traceparent` value by the W3C rules: blanks around it are
    /// ignored; the hex is lowercase; version `ff`, an all-zero trace id or
    /// span id are invalid; version `00` is exactly 55 characters, and a
    /// later version may add fields after a `-` (they are ignored: what goes
    /// out again is version `00`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TraceParseError(s.to_string());
        let text = s.trim_matches([' ', '\t']);
        let b = text.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(bad());
        }
        let hex = |field: &[u8]| -> Option<u128> {
            field
                .iter()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                .then(|| {
                    field
                        .iter()
                        .fold(0_u128, |n, c| (n << 4) | u128::from(hex_value(*c)))
                })
        };
        let version = hex(&b[0..2]).ok_or_else(bad)?;
        let future_ok = b.len() == 55 || (version != 0 && b[55] == b'-');
        if version == 0xff || !future_ok {
            return Err(bad());
        }
        let trace_id = hex(&b[3..35]).ok_or_else(bad)?;
        let span_id = hex(&b[36..52]).ok_or_else(bad)?;
        let flags = hex(&b[53..55]).ok_or_else(bad)?;
        if trace_id == 0 || span_id == 0 {
            return Err(bad());
        }
        Ok(TraceContext {
            trace_id,
            span_id: span_id as u64,
            flags: flags as u8,
        })
    }
}

/// The value of one lowercase hex digit (checked by the caller).
fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::TraceContext;

    const ID: u128 = 0x1234_5678_9012_3456_7890_1234_5678_9012;

    fn trace_id(text: &str) -> Option<u128> {
        text.parse::<TraceContext>().ok().map(|t| t.trace_id)
    }

    #[test]
    fn traceparent_follows_the_w3c_rules() {
        for valid in [
            "00-12345678901234567890123456789012-1234567890123456-01",
            " \t00-12345678901234567890123456789012-1234567890123456-01\t ",
            "cc-12345678901234567890123456789012-1234567890123456-01",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        ] {
            assert_eq!(trace_id(valid), Some(ID), "{valid:?}");
        }
        for invalid in [
            "00-12345678901234567890123456789012-1234567890123456-01.",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
            "ff-12345678901234567890123456789012-1234567890123456-01",
            ".0-12345678901234567890123456789012-1234567890123456-01",
            "0.-12345678901234567890123456789012-1234567890123456-01",
            "000-12345678901234567890123456789012-1234567890123456-01",
            "0-12345678901234567890123456789012-1234567890123456-01",
            "00-00000000000000000000000000000000-1234567890123456-01",
            "00-.2345678901234567890123456789012-1234567890123456-01",
            "00-1234567890123456789012345678901.-1234567890123456-01",
            "00-123456789012345678901234567890123-1234567890123456-01",
            "00-1234567890123456789012345678901-1234567890123456-01",
            "00-12345678901234567890123456789012-0000000000000000-01",
            "00-12345678901234567890123456789012-.234567890123456-01",
            "00-12345678901234567890123456789012-12345678901234567-01",
            "00-12345678901234567890123456789012-123456789012345-01",
            "00-12345678901234567890123456789012-1234567890123456-.0",
            "00-12345678901234567890123456789012-1234567890123456-001",
            "00-12345678901234567890123456789012-1234567890123456-1",
            "00-ABCDEF78901234567890123456789012-1234567890123456-01",
            "00-1234567890123456789012345678901é-1234567890123456-01",
        ] {
            assert_eq!(trace_id(invalid), None, "{invalid:?}");
        }
    }
}
