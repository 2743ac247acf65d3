//! Errors of sending and asking. Each hands the undelivered message back.

use std::fmt;

use crate::message::{Faulted, Payload};

/// A message could not be delivered; the message is handed back.
///
/// Like tokio's `SendError<T>`, the `Debug` impl does not require `M: Debug`.
pub enum SendError<M> {
    /// The receiver's user lane holds its capacity of messages.
    Full(M),
    /// The receiver has ended.
    Closed(M),
    /// The address was the null address.
    NoAddress(M),
    /// The receiver is in another process and the message cannot be encoded
    /// for the wire (the reason is logged).
    Unencodable(M),
    /// The address leads nowhere this process can reach — it was read from
    /// another process's JSON, or names an id its connection never gave
    /// out — with the reason.
    Unreachable(M, Box<str>),
}

impl<M> SendError<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m)
            | SendError::Closed(m)
            | SendError::NoAddress(m)
            | SendError::Unencodable(m)
            | SendError::Unreachable(m, _) => m,
        }
    }

    /// The same error with the message transformed (e.g. typed back from a
    /// [`Payload`]).
    pub fn map<N>(self, f: impl FnOnce(M) -> N) -> SendError<N> {
        match self {
            SendError::Full(m) => SendError::Full(f(m)),
            SendError::Closed(m) => SendError::Closed(f(m)),
            SendError::NoAddress(m) => SendError::NoAddress(f(m)),
            SendError::Unencodable(m) => SendError::Unencodable(f(m)),
            SendError::Unreachable(m, why) => SendError::Unreachable(f(m), why),
        }
    }

    pub(crate) fn from_push(message: M, why: super::mailbox::PushError) -> Self {
        match why {
            super::mailbox::PushError::Full => SendError::Full(message),
            super::mailbox::PushError::Closed => SendError::Closed(message),
            super::mailbox::PushError::NoAddress => SendError::NoAddress(message),
            super::mailbox::PushError::Unencodable => SendError::Unencodable(message),
            super::mailbox::PushError::Unreachable(why) => SendError::Unreachable(message, why),
        }
    }

    /// Whether the receiver was full (so trying later may succeed).
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full(_))
    }

    /// Whether the receiver has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self, SendError::Closed(_))
    }

    fn reason(&self) -> &str {
        match self {
            SendError::Unreachable(_, why) => why,
            SendError::Full(_) => "mailbox full",
            SendError::Closed(_) => "actor has ended",
            SendError::NoAddress(_) => "null address",
            SendError::Unencodable(_) => "the message cannot be encoded for the network",
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("reason", &self.reason())
            .finish_non_exhaustive()
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot send: {}", self.reason())
    }
}

impl<M> std::error::Error for SendError<M> {}

/// An `ask` that did not produce the expected answer.
pub enum AskError<M> {
    /// The request could not be sent; the message is handed back.
    Send(SendError<M>),
    /// An actor asked itself, which could only deadlock; the message is handed back.
    AskedSelf(M),
    /// No answer arrived before the deadline.
    TimedOut,
    /// The answer was a fault.
    Faulted(Faulted),
    /// The answer was of another type than the one asked for.
    Unexpected(Payload),
}

impl<M> AskError<M> {
    /// The same error with the undelivered message transformed.
    pub fn map<N>(self, f: impl FnOnce(M) -> N) -> AskError<N> {
        match self {
            AskError::Send(e) => AskError::Send(e.map(f)),
            AskError::AskedSelf(m) => AskError::AskedSelf(f(m)),
            AskError::TimedOut => AskError::TimedOut,
            AskError::Faulted(x) => AskError::Faulted(x),
            AskError::Unexpected(p) => AskError::Unexpected(p),
        }
    }

    /// The undelivered request, when it was never sent.
    pub fn into_message(self) -> Option<M> {
        match self {
            AskError::Send(e) => Some(e.into_inner()),
            AskError::AskedSelf(m) => Some(m),
            _ => None,
        }
    }

    /// This error as a fault (for returning from an actor with `?`).
    pub fn into_fault(self) -> Faulted {
        match self {
            AskError::Faulted(f) => f,
            AskError::TimedOut => Faulted::timed_out("no answer to a request before its deadline"),
            other => Faulted::new("request failed").with_explanation(other.to_string()),
        }
    }
}

impl<M> From<AskError<M>> for Faulted {
    fn from(e: AskError<M>) -> Self {
        e.into_fault()
    }
}

impl<M> fmt::Debug for AskError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Send(e) => f.debug_tuple("Send").field(e).finish(),
            AskError::AskedSelf(_) => f.write_str("AskedSelf(..)"),
            AskError::TimedOut => f.write_str("TimedOut"),
            AskError::Faulted(x) => f.debug_tuple("Faulted").field(x).finish(),
            AskError::Unexpected(p) => f.debug_tuple("Unexpected").field(p).finish(),
        }
    }
}

impl<M> fmt::Display for AskError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Send(e) => write!(f, "request not sent: {e}"),
            AskError::AskedSelf(_) => f.write_str("an actor cannot ask itself (it would deadlock)"),
            AskError::TimedOut => f.write_str("no answer before the deadline"),
            AskError::Faulted(x) => write!(f, "answered with a fault: {x}"),
            AskError::Unexpected(p) => write!(f, "unexpected answer of type {}", p.signature()),
        }
    }
}

impl<M> std::error::Error for AskError<M> {}
