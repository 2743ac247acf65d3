//! The actor runtime: addresses, mailboxes, contexts, spawning, timers, state
//! machines and supervision.
//!
//! An actor is an async function that takes a [`Context`] and loops on
//! [`Context::input`], or a type implementing [`Machine`]. Either way it runs
//! as a tokio task; an idle actor is a parked task and a small mailbox.

mod address;
mod cancel;
mod context;
mod envelope;
mod error;
pub(crate) mod exports;
mod helpers;
pub(crate) mod ids;
mod machine;
mod mailbox;
mod spawn;
mod supervise;
pub(crate) mod tally;
mod timer;
mod trace_state;
pub(crate) mod transport;

pub use address::{ActorId, Address};
pub use cancel::Cancellation;
pub use context::{Context, Input, ReturnPath};
pub use envelope::{Meta, RequestId, TraceContext, TraceParseError};
pub use error::{AskError, SendError};
pub use machine::{Machine, Step};
pub use spawn::{
    ActorHandle, AnyReturn, DEFAULT_CAPACITY, IntoReturn, SpawnOptions, ask, spawn, spawn_machine,
    spawn_with,
};
pub use supervise::RetryPolicy;
pub use trace_state::{TraceState, TraceStateError};
pub use transport::incarnation;

/// An actor this one [`watch`](Context::watch)es has ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, crate::Message)]
#[message(control)]
pub struct Ended {
    /// The actor that ended.
    pub address: Address,
}

pub(crate) use address::RouteRef;
pub(crate) use cancel::Carried;
pub(crate) use envelope::{Envelope, Tag};
pub(crate) use mailbox::{Mailbox, PushError, Watcher};
pub(crate) use spawn::next_id;

/// Matches a [`Payload`](crate::Payload) on its type, like a `match` on
/// types: each arm `Type as binding => expression` tries one type (`_` as the
/// binding ignores the value); the final arm `name => expression` (required)
/// gets the payload of any other type.
///
/// ```
/// use layer_cake::{Payload, Stop, on};
///
/// fn describe(message: Payload) -> String {
///     on!(message, {
///         i64 as n => format!("number {n}"),
///         Stop as _ => "stop".to_string(),
///         other => format!("something else: {}", other.signature()),
///     })
/// }
/// assert_eq!(describe(Payload::new(3_i64)), "number 3");
/// assert_eq!(describe(Payload::new(Stop)), "stop");
/// assert_eq!(describe(Payload::new(true)), "something else: boolean");
/// ```
#[macro_export]
macro_rules! on {
    ($payload:expr, { $($arms:tt)* }) => {{
        let __payload: $crate::Payload = $payload;
        $crate::on!(@arm __payload; $($arms)*)
    }};
    (@arm $p:ident; $t:ty as $bind:tt => $body:expr, $($rest:tt)+) => {
        match $p.downcast::<$t>() {
            ::std::result::Result::Ok($bind) => $body,
            ::std::result::Result::Err($p) => $crate::on!(@arm $p; $($rest)+),
        }
    };
    (@arm $p:ident; $t:ty as $bind:tt => $body:expr $(,)?) => {
        ::std::compile_error!("on!: the last arm must be `name => ...`, taking any other message")
    };
    (@arm $p:ident; $other:ident => $body:expr $(,)?) => {{
        let $other = $p;
        $body
    }};
}
