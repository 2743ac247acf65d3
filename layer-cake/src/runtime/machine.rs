//! State machines: an actor written as a type with a handler per state and
//! message, instead of an async function.

use std::fmt::Debug;

use super::context::Context;
use super::spawn::IntoReturn;
use crate::message::{Payload, Start};

/// What a [`Machine`] handler decides.
#[derive(Debug)]
pub enum Step<S, O> {
    /// Stay in the current state.
    Stay,
    /// Move to another state; messages saved in the old state are delivered
    /// again, in order, before any new message.
    Go(S),
    /// Keep this message until the state changes (SDL-style save).
    Save(Payload),
    /// End the actor with this value.
    Complete(O),
}

/// An actor written as a state machine.
///
/// The runtime delivers [`Start`] first, then every message, each to
/// [`received`](Machine::received) with the current state. Handlers are plain
/// functions: a machine never blocks; to ask another actor it sends a
/// [`request`](Context::request) and handles the answer as a message.
///
/// ```
/// use layer_cake::runtime::{self, Context, Machine, Step};
/// use layer_cake::{Faulted, Payload, Start, Stop, on};
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum Door { Closed, Open }
///
/// /// Counts how often it was opened; answers `i64` queries only when closed.
/// struct Counter { opened: i64 }
///
/// impl Machine for Counter {
///     type State = Door;
///     type Output = Result<i64, Faulted>;
///     const INITIAL: Door = Door::Closed;
///
///     fn received(&mut self, cx: &mut Context, state: Door, message: Payload) -> Step<Door, Self::Output> {
///         if state == Door::Open && message.is::<i64>() {
///             return Step::Save(message); // answered once the door closes
///         }
///         on!(message, {
///             Start as _ => Step::Stay,
///             bool as open => if open {
///                 self.opened += 1;
///                 Step::Go(Door::Open)
///             } else {
///                 Step::Go(Door::Closed)
///             },
///             i64 as _ => {
///                 let _ = cx.reply(self.opened);
///                 Step::Stay
///             },
///             Stop as _ => Step::Complete(Ok(self.opened)),
///             _other => Step::Stay,
///         })
///     }
/// }
///
/// # #[tokio::main] async fn main() {
/// let counter = runtime::spawn_machine(Counter { opened: 0 });
/// let door = counter.address().clone();
/// let mut me = Context::detached("test");
/// door.send(true).unwrap(); // open
/// me.request(0_i64, &door).unwrap(); // saved while open
/// door.send(false).unwrap(); // close: the query is answered now
/// assert_eq!(me.input().await.downcast::<i64>().unwrap(), 1);
/// door.send(Stop).unwrap();
/// assert_eq!(counter.join().await.unwrap(), 1);
/// # }
/// ```
pub trait Machine: Send + Sized + 'static {
    /// The machine's states.
    type State: Copy + Eq + Debug + Send + 'static;
    /// What the machine ends with.
    type Output: IntoReturn;
    /// The state it starts in.
    const INITIAL: Self::State;

    /// Handles one message in one state.
    fn received(
        &mut self,
        cx: &mut Context,
        state: Self::State,
        message: Payload,
    ) -> Step<Self::State, Self::Output>;
}

pub(crate) async fn run<M: Machine>(mut cx: Context, mut machine: M) -> M::Output {
    let mut state = M::INITIAL;
    cx.set_state_label(&state);
    let mut message = Payload::new(Start);
    loop {
        match machine.received(&mut cx, state, message) {
            Step::Stay => {}
            Step::Go(next) => {
                if next != state {
                    state = next;
                    cx.set_state_label(&state);
                    cx.restore_saved();
                }
            }
            Step::Save(saved) => cx.save(saved),
            Step::Complete(output) => return output,
        }
        message = cx.input().await;
    }
}
