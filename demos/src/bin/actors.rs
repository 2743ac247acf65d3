//! **actors** — spawning children and collecting what they return, asking
//! with a deadline, and `abort`/`working` to stop the ones still running.
//!
//! 1. `--workers` children each compute a texture; the last one panics. Each
//!    child's value reaches the parent as `Returned` — the panic as a
//!    `Faulted`, not a crash of the process.
//! 2. A `doubler` child answers `ask` within its deadline; a question it
//!    ignores times out.
//! 3. Two idle children and the doubler are still `working()`; `abort()`
//!    sends them `Stop` and each returns `Aborted`.
//!
//! The result is the story of the run:
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin actors -- --workers=3
//! [
//!   "worker 1 returned a 1x1 table",
//!   "worker 2 returned a 2x2 table",
//!   "worker 3 faulted: actor panicked (worker 3 gave up)",
//!   "doubler answered 42",
//!   "the ignored question timed out (timed out)",
//!   "3 children still working, aborted",
//!   "aborted (user or software interrupt)",
//!   ...
//! ]
//! ```
//!
//! (The panic's own message also appears on stderr, from Rust's panic hook.)

use std::collections::HashMap;
use std::time::Duration;

use layer_cake::runtime::{ActorId, AskError};
use layer_cake::{Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, Xy};
use serde::Deserialize;

/// How long a well-behaved child has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The arguments: how many texture workers to start (at least 1).
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    workers: u32,
}

impl Default for Args {
    fn default() -> Self {
        Args { workers: 3 }
    }
}

/// Doubles every number it is asked; ignores anything else; ends on `Stop`.
async fn doubler(mut cx: Context) -> Result<(), Faulted> {
    loop {
        let message = cx.input().await;
        on!(message, {
            i64 as n => { let _ = cx.reply(n * 2); },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::info!("doubler ignores {}", other.signature()),
        })
    }
}

/// Does nothing until stopped.
async fn idler(mut cx: Context) -> Result<(), Faulted> {
    loop {
        if cx.input().await.is::<Stop>() {
            return Err(Faulted::aborted());
        }
    }
}

async fn actors(mut cx: Context, args: Args) -> Result<Vec<String>, Faulted> {
    let mut story = Vec::new();

    // 1. Children and their returned values.
    let workers = args.workers.max(1);
    let mut names: HashMap<Option<ActorId>, String> = HashMap::new();
    for n in 1..=workers {
        let xy = Xy {
            x: i64::from(n),
            y: i64::from(n),
        };
        let child = cx.spawn(move |_cx| async move {
            if n == workers {
                panic!("worker {n} gave up");
            }
            demo::texture(xy.x, xy.y)
        });
        names.insert(child.id(), format!("worker {n}"));
    }
    let mut results = HashMap::new();
    while results.len() < names.len() {
        let message = cx.input().await;
        let returned = on!(message, {
            Returned as r => r,
            Stop as _ => { cx.abort(); return Err(Faulted::aborted()); },
            _other => continue,
        });
        let name = names[&cx.return_address().id()].clone();
        let line = match returned.into_result::<Vec<Vec<f64>>>() {
            Ok(table) => format!(
                "{name} returned a {}x{} table",
                table.first().map_or(0, Vec::len),
                table.len()
            ),
            Err(fault) => format!("{name} faulted: {fault}"),
        };
        results.insert(name, line);
    }
    // In worker order, whatever order they finished in.
    for n in 1..=workers {
        story.push(results.remove(&format!("worker {n}")).unwrap_or_default());
    }

    // 2. Asking, with a deadline.
    let doubling = cx.spawn(doubler);
    match cx.ask::<i64, _>(21_i64, &doubling, ANSWER_WITHIN).await {
        Ok(answer) => story.push(format!("doubler answered {answer}")),
        Err(e) => story.push(format!("doubler did not answer: {e}")),
    }
    match cx
        .ask::<i64, _>(
            "what is six times seven?".to_string(),
            &doubling,
            Duration::from_millis(200),
        )
        .await
    {
        Err(AskError::TimedOut) => story.push("the ignored question timed out (timed out)".into()),
        Ok(answer) => story.push(format!("the ignored question was answered: {answer}")),
        Err(e) => story.push(format!("the ignored question failed: {e}")),
    }

    // 3. Stopping whatever is still working.
    cx.spawn(idler);
    cx.spawn(idler);
    let working = cx.working();
    cx.abort();
    story.push(format!("{working} children still working, aborted"));
    while cx.working() > 0 {
        let message = cx.input().await;
        if let Ok(returned) = message.downcast::<Returned>() {
            match returned.into_result::<()>() {
                Ok(()) => story.push("a child returned".into()),
                Err(fault) => story.push(fault.to_string()),
            }
        }
    }
    Ok(story)
}

fn main() {
    layer_cake::create(actors)
}
