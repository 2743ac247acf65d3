//! The runtime's own messages: lifecycle (`Start`, `Stop`, `Returned`,
//! `Restarted`), small acknowledgements (`Ack`, `Nak`) and the fault family
//! (`Faulted` and its [`FaultKind`]s).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Message, Payload};
use crate::runtime::Address;

/// The first message a state machine receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start;

/// A request to end cooperatively.
///
/// `Stop` travels on the control lane, so it is never refused by a full
/// mailbox and is seen before queued user messages. An actor decides what to do
/// with it; the convention is to end with [`Faulted::aborted`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop;

/// A positive acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack;

/// A negative acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nak;

impl Message for Start {
    fn write_signature(out: &mut String) {
        out.push_str("Start");
    }
}
impl Message for Stop {
    const CONTROL: bool = true;

    fn write_signature(out: &mut String) {
        out.push_str("Stop");
    }
}
impl Message for Ack {
    fn write_signature(out: &mut String) {
        out.push_str("Ack");
    }
}
impl Message for Nak {
    fn write_signature(out: &mut String) {
        out.push_str("Nak");
    }
}

/// What a child actor ended with, delivered to its parent.
///
/// The parent always receives exactly one `Returned` per child it spawned.
/// The value is the child's return value — or a [`Faulted`] when the child
/// returned an error or panicked. The message's return address is the child.
///
/// ```
/// use layer_cake::{Faulted, Payload, Returned};
///
/// let r = Returned::new(Payload::new(7_i64));
/// assert_eq!(r.into_result::<i64>().unwrap(), 7);
///
/// let r = Returned::new(Payload::new(Faulted::new("no luck")));
/// assert_eq!(r.into_result::<i64>().unwrap_err().condition, "no luck");
/// ```
#[derive(Debug, Serialize, Deserialize)]
pub struct Returned {
    /// The child's value.
    pub value: Payload,
}

impl Message for Returned {
    const CONTROL: bool = true;

    fn write_signature(out: &mut String) {
        out.push_str("Returned");
    }
}

impl Returned {
    /// Wraps a returned value.
    pub fn new(value: Payload) -> Self {
        Returned { value }
    }

    /// Whether the child ended with a fault.
    pub fn is_fault(&self) -> bool {
        self.value.is::<Faulted>()
    }

    /// The value as a `T`, the child's fault, or a fault saying the value was
    /// of another type.
    pub fn into_result<T: Message>(self) -> Result<T, Faulted> {
        match self.value.downcast::<T>() {
            Ok(value) => Ok(value),
            Err(other) => match other.downcast::<Faulted>() {
                Ok(fault) => Err(fault),
                Err(other) => Err(Faulted::new("unexpected return type").with_explanation(
                    format!(
                        "expected {}, got {}",
                        super::signature_of::<T>(),
                        other.signature()
                    ),
                )),
            },
        }
    }
}

/// Sent to a parent each time a supervised child is restarted after a fault.
#[derive(Debug, Serialize, Deserialize)]
pub struct Restarted {
    /// The child's address (the same before and after the restart).
    pub address: Address,
    /// How many restarts there have been, counting this one.
    pub attempt: u32,
    /// What the previous run ended with.
    pub fault: Faulted,
    /// How long the supervisor waited before this restart.
    pub delay: std::time::Duration,
}

impl Message for Restarted {
    const CONTROL: bool = true;

    fn write_signature(out: &mut String) {
        out.push_str("Restarted");
    }
}

/// Which member of the fault family a [`Faulted`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// A plain fault.
    #[default]
    Faulted,
    /// Ended by a user or software interrupt (a `Stop`, SIGINT).
    Aborted,
    /// A deadline passed.
    TimedOut,
    /// The service has nothing that can do the work right now, but may later.
    TemporarilyUnavailable,
    /// The service is working but too slowly; try again shortly.
    Busy,
    /// The service's queue is full.
    Overloaded,
    /// The service has been taken out of operation.
    OutOfService,
    /// The request never got an answer from the one that held it: the actor
    /// ended, or the connection to it was lost, before answering. Whether the
    /// work was done is unknown; a spool retries such a request once.
    Lost,
}

impl FaultKind {
    /// The condition text the runtime uses for this kind.
    pub fn condition(self) -> &'static str {
        match self {
            FaultKind::Faulted => "faulted",
            FaultKind::Aborted => "aborted",
            FaultKind::TimedOut => "timed out",
            FaultKind::TemporarilyUnavailable => "temporarily unavailable",
            FaultKind::Busy => "busy",
            FaultKind::Overloaded => "overloaded",
            FaultKind::OutOfService => "out of service",
            FaultKind::Lost => "lost",
        }
    }
}

/// Something went wrong: the runtime's error value, and a message in its own
/// right (it can be replied, returned and sent over the wire).
///
/// It prints as `condition (explanation)`. [`FaultKind`] tells the members of
/// the family apart, so one match on `Faulted` handles them all.
///
/// ```
/// use layer_cake::{FaultKind, Faulted};
///
/// let f = Faulted::busy("queue is slow");
/// assert_eq!(f.kind, FaultKind::Busy);
/// assert_eq!(f.to_string(), "busy (queue is slow)");
/// assert_eq!(Faulted::new("bad").with_exit_status(3).exit_code(), 3);
/// assert_eq!(Faulted::new("bad").exit_code(), 71);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faulted {
    /// Which member of the fault family this is.
    pub kind: FaultKind,
    /// What went wrong, in a few words.
    pub condition: String,
    /// Why, or more detail.
    pub explanation: Option<String>,
    /// An application error code (the HTTP front maps it to a status).
    pub error_code: Option<i32>,
    /// The exit status a process ending with this fault uses (default 71).
    pub exit_status: Option<i32>,
}

impl Message for Faulted {
    fn write_signature(out: &mut String) {
        out.push_str("Faulted");
    }
}

/// The exit status of a process that ends with a fault that names none.
pub const FAULTY_EXIT: i32 = 71;

impl Faulted {
    /// A plain fault with a condition.
    pub fn new(condition: impl Into<String>) -> Self {
        Faulted {
            condition: condition.into(),
            ..Faulted::default()
        }
    }

    fn of(kind: FaultKind, explanation: Option<String>) -> Self {
        Faulted {
            kind,
            condition: kind.condition().to_string(),
            explanation,
            ..Faulted::default()
        }
    }

    /// Ended by a user or software interrupt.
    pub fn aborted() -> Self {
        Faulted::of(
            FaultKind::Aborted,
            Some("user or software interrupt".into()),
        )
    }

    /// A deadline passed.
    pub fn timed_out(explanation: impl Into<String>) -> Self {
        Faulted::of(FaultKind::TimedOut, Some(explanation.into()))
    }

    /// Nothing can do the work now; `unavailable` names what is missing.
    pub fn temporarily_unavailable(explanation: impl Into<String>) -> Self {
        Faulted::of(FaultKind::TemporarilyUnavailable, Some(explanation.into()))
    }

    /// Working, but too slowly.
    pub fn busy(explanation: impl Into<String>) -> Self {
        Faulted::of(FaultKind::Busy, Some(explanation.into()))
    }

    /// The queue is full.
    pub fn overloaded(explanation: impl Into<String>) -> Self {
        Faulted::of(FaultKind::Overloaded, Some(explanation.into()))
    }

    /// Taken out of operation.
    pub fn out_of_service(explanation: impl Into<String>) -> Self {
        Faulted::of(FaultKind::OutOfService, Some(explanation.into()))
    }

    /// A request lost with the actor or connection that held it.
    pub fn lost(condition: impl Into<String>, explanation: impl Into<String>) -> Self {
        Faulted {
            kind: FaultKind::Lost,
            condition: condition.into(),
            explanation: Some(explanation.into()),
            ..Faulted::default()
        }
    }

    /// Sets the explanation.
    pub fn with_explanation(mut self, explanation: impl Into<String>) -> Self {
        self.explanation = Some(explanation.into());
        self
    }

    /// Sets the error code.
    pub fn with_error_code(mut self, code: i32) -> Self {
        self.error_code = Some(code);
        self
    }

    /// Sets the exit status.
    pub fn with_exit_status(mut self, status: i32) -> Self {
        self.exit_status = Some(status);
        self
    }

    /// The process exit status for this fault: its own, or [`FAULTY_EXIT`]
    /// (also when its own is 0: a fault never exits as a success).
    pub fn exit_code(&self) -> i32 {
        match self.exit_status {
            Some(0) | None => FAULTY_EXIT,
            Some(status) => status,
        }
    }

    /// A fault describing any error (its `Display` text, with its sources).
    pub fn from_error(condition: impl Into<String>, error: &dyn std::error::Error) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        Faulted::new(condition).with_explanation(text)
    }
}

impl fmt::Display for Faulted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.explanation {
            Some(e) => write!(f, "{} ({e})", self.condition),
            None => f.write_str(&self.condition),
        }
    }
}

impl std::error::Error for Faulted {}
