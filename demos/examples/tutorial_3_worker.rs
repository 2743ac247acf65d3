//! The tutorial's step 3 (`docs/tutorial.md`): a worker process, which
//! `tutorial_3_server` starts (several times) and sends work to.

use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::tutorial::Greet;

/// Answers each `Greet` with a greeting that says which process made it.
async fn worker(mut cx: Context, (): ()) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            Greet as g => {
                let _ = cx.reply(format!("hello {} from worker {}", g.name, std::process::id()));
            },
            Stop as _ => return Ok(()),
            other => tracing::warn!("ignored {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(worker)
}
