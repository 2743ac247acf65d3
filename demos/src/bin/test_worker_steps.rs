//! **test_worker_steps** — a worker process doing long work in steps, that
//! stops when its request is cancelled (see `layer_cake_demos::steps`).
//!
//! Started by an `ObjectSpool` of processes behind an HTTP front: when the
//! HTTP client goes away, or is answered 504, the cancellation crosses the
//! link to this process and the work stops at the next step. With
//! `heed=false` it never looks (a stuck worker), and the spool stops the
//! process once it overruns the request's deadline by the spool's
//! `overrun_grace`. `demos/tests/cancellation.rs` runs both.

use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::steps::{self, Steps};

/// Answers each `Steps` with the steps done; ends on `Stop`.
async fn test_worker_steps(mut cx: Context, _: ()) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            Steps as request => {
                // Blocking work goes off the runtime's threads (which keep
                // reading the link: that is how the cancellation arrives),
                // with the request's signal; the actor waits for it.
                let signal = cx.cancellation();
                let work = tokio::task::spawn_blocking(move || steps::work(request, &signal));
                match work.await {
                    Ok(Ok(done)) => { let _ = cx.reply(done); },
                    Ok(Err(fault)) => { let _ = cx.reply(fault); },
                    Err(e) => { let _ = cx.reply(Faulted::new("the work panicked").with_explanation(e.to_string())); },
                }
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("test_worker_steps ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(test_worker_steps)
}
