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

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TraceParseError(s.to_string());
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [version, trace, span, flags] = parts.as_slice() else {
            return Err(bad());
        };
        let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
        if *version != "00" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return Err(bad());
        }
        let trace_id = u128::from_str_radix(trace, 16).map_err(|_| bad())?;
        let span_id = u64::from_str_radix(span, 16).map_err(|_| bad())?;
        if trace_id == 0 || span_id == 0 {
            return Err(bad());
        }
        Ok(TraceContext {
            trace_id,
            span_id,
            flags: u8::from_str_radix(flags, 16).map_err(|_| bad())?,
        })
    }
}
