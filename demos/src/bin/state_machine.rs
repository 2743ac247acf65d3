//! **state_machine** — a turnstile written as a [`Machine`]: states,
//! messages saved until the state changes, and timers of its own.
//!
//! Visitors arrive (a repeating `Visitor` timer) and push; coins drop (a
//! repeating `Coin` timer). A push on the `Locked` turnstile is *saved* —
//! the visitor waits — and is handled again as soon as a coin moves it to
//! `Unlocked`, where the push lets one visitor through and locks it again.
//! A one-shot `Relock` timer, restarted on every unlock, locks it when
//! nobody comes. After `--passes` visitors have gone through, it completes.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin state_machine -- --passes=3
//! {
//!   "passes": 3,
//!   "coins": 3,
//!   "saved": 10,
//!   "relocked": 0
//! }
//! ```
//!
//! (`saved` counts how often a push was set aside; the numbers depend on the
//! pace.) `--debug-level=OBJECT` shows every message the machine receives,
//! with its state: `<00000002>Gate[Locked] - Received Visitor from ...`.
//!
//! Ctrl-C stops it with `Aborted` (exit status 71), like the other demos.

use std::time::Duration;

use layer_cake::runtime::{Machine, Step};
use layer_cake::{Context, Faulted, Message, Payload, Start, Stop, on};
use serde::{Deserialize, Serialize};

/// The arguments: passes to count, and the pace of visitors and coins.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    passes: u32,
    visitors_every: Duration,
    coins_every: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            passes: 3,
            visitors_every: Duration::from_millis(100),
            coins_every: Duration::from_millis(250),
        }
    }
}

/// A visitor pushes the bar.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
struct Visitor;

/// A coin drops.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
struct Coin;

/// Nobody used the unlocked turnstile in time.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
struct Relock;

/// What happened: the result printed on stdout.
#[derive(Debug, Default, Serialize, Deserialize, Message)]
struct Turnstile {
    passes: u32,
    coins: u32,
    saved: u32,
    relocked: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Locked,
    Unlocked,
}

struct Gate {
    args: Args,
    seen: Turnstile,
}

impl Machine for Gate {
    type State = State;
    type Output = Result<Turnstile, Faulted>;
    const INITIAL: State = State::Locked;

    fn received(
        &mut self,
        cx: &mut Context,
        state: State,
        message: Payload,
    ) -> Step<State, Self::Output> {
        // Locked: a visitor waits for the next coin.
        if state == State::Locked && message.is::<Visitor>() {
            self.seen.saved += 1;
            return Step::Save(message);
        }
        on!(message, {
            Start as _ => {
                cx.start_repeating_timer(Visitor, self.args.visitors_every);
                cx.start_repeating_timer(Coin, self.args.coins_every);
                Step::Stay
            },
            Coin as _ => {
                self.seen.coins += 1;
                // Restarted on every coin: it fires only if nobody comes.
                cx.start_timer(Relock, self.args.coins_every * 4);
                Step::Go(State::Unlocked)
            },
            Visitor as _ => {
                // Unlocked (the locked case is saved above).
                self.seen.passes += 1;
                cx.cancel_timer::<Relock>();
                if self.seen.passes >= self.args.passes {
                    return Step::Complete(Ok(std::mem::take(&mut self.seen)));
                }
                Step::Go(State::Locked)
            },
            Relock as _ => {
                self.seen.relocked += 1;
                Step::Go(State::Locked)
            },
            Stop as _ => Step::Complete(Err(Faulted::aborted())),
            other => {
                tracing::warn!("unexpected {}", other.signature());
                Step::Stay
            },
        })
    }
}

async fn turnstile(mut cx: Context, args: Args) -> Result<Turnstile, Faulted> {
    if args.visitors_every.is_zero() || args.coins_every.is_zero() {
        return Err(Faulted::new("bad pace").with_explanation("the periods must be more than 0"));
    }
    // The machine runs as a child; its value comes back as `Returned`.
    let gate = cx.spawn_machine(Gate {
        args,
        seen: Turnstile::default(),
    });
    loop {
        let message = cx.input().await;
        on!(message, {
            layer_cake::Returned as r => return r.into_result::<Turnstile>(),
            Stop as _ => { let _ = cx.send(Stop, &gate); },
            _other => {},
        })
    }
}

fn main() {
    layer_cake::create(turnstile)
}
