//! The tutorial's step 1 (`docs/tutorial.md`): a first actor.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --example tutorial_1_actor -- --count=4
//! 10
//! ```

use std::time::Duration;

use layer_cake::{Context, Faulted, Stop, on};

/// An actor: it keeps a running total of the numbers it is sent, answers
/// each with the total so far, and returns the total when it is stopped.
async fn adder(mut cx: Context) -> Result<i64, Faulted> {
    let mut total = 0;
    loop {
        on!(cx.input().await, {
            i64 as n => {
                total += n;
                let _ = cx.reply(total);
            },
            Stop as _ => return Ok(total),
            other => tracing::warn!("adder ignores {}", other.signature()),
        })
    }
}

/// The program's arguments: `--count=N`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Args {
    count: i64,
}

/// The main actor: starts an adder, asks it to add 1, 2, … `count`, and
/// returns the last total, which the process prints.
async fn main_actor(mut cx: Context, args: Args) -> Result<i64, Faulted> {
    let adder = cx.spawn(adder);
    let mut total = 0;
    for n in 1..=args.count {
        total = cx.ask::<i64, _>(n, &adder, Duration::from_secs(5)).await?;
    }
    Ok(total)
}

fn main() {
    layer_cake::create(main_actor)
}
