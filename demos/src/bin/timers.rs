//! **timers** — one-shot and repeating timers, cancelling and restarting
//! them, and stopping with Ctrl-C.
//!
//! A repeating `Tick` counts; a one-shot `Lull` watchdog is restarted on
//! every tick, so it only fires if the ticks stall; after the last tick both
//! are cancelled and a one-shot `Done` ends the run.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin timers -- --ticks=4 --every=200ms --debug-level=CONSOLE
//! ... ^ <00000001>timers - tick 1
//! ...
//! {
//!   "ticks": 4,
//!   "lulls": 0
//! }
//! ```
//!
//! `--ticks=0` ticks until interrupted. Ctrl-C (SIGINT) or SIGTERM sends the
//! main actor `Stop`; like every layer-cake actor it then ends with
//! `Aborted`, which the process reports on stderr with exit status 71:
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin timers -- --ticks=0
//! ^Ctimers: aborted (user or software interrupt)
//! $ echo $?
//! 71
//! ```

use std::time::Duration;

use layer_cake::{Context, Faulted, Message, Stop, on};
use serde::{Deserialize, Serialize};

/// The arguments: how many ticks (0: until interrupted), and how often.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    ticks: u32,
    every: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            ticks: 5,
            every: Duration::from_millis(250),
        }
    }
}

/// The repeating timer.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
struct Tick;

/// The watchdog: fires only when no tick came for three periods.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
struct Lull;

/// The last one-shot timer.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
struct Done;

/// What the run saw: the result printed on stdout.
#[derive(Debug, Serialize, Deserialize, Message)]
struct Ticked {
    ticks: u32,
    lulls: u32,
}

async fn timers(mut cx: Context, args: Args) -> Result<Ticked, Faulted> {
    let Args { ticks, every } = args;
    if every.is_zero() {
        return Err(Faulted::new("bad period").with_explanation("--every must be more than 0"));
    }
    let mut seen = Ticked { ticks: 0, lulls: 0 };
    cx.start_repeating_timer(Tick, every);
    cx.start_timer(Lull, every * 3);
    loop {
        let message = cx.input().await;
        on!(message, {
            Tick as _ => {
                seen.ticks += 1;
                tracing::info!("tick {}", seen.ticks);
                // Restarting a pending timer pushes its deadline back.
                cx.start_timer(Lull, every * 3);
                if seen.ticks == ticks {
                    cx.cancel_timer::<Tick>();
                    cx.cancel_timer::<Lull>();
                    cx.start_timer(Done, every);
                }
            },
            Lull as _ => {
                seen.lulls += 1;
                tracing::warn!("no tick for {:?}", every * 3);
                cx.start_timer(Lull, every * 3);
            },
            Done as _ => return Ok(seen),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("unexpected {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(timers)
}
