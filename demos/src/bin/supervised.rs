//! **supervised** — a flaky worker restarted under a [`RetryPolicy`].
//!
//! The worker fails its first `--failures` runs (alternately with an error
//! and a panic) and then succeeds. The parent spawns it with
//! `spawn_supervised`, receives a `Restarted` before each restart — logged
//! at CONSOLE level and kept in the result — and finally the worker's
//! `Returned`. When the policy runs out first, the last fault is the result
//! and the process exits with status 71.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin supervised -- --failures=2 --debug-level=CONSOLE
//! ... ^ <00000001>supervised - restart 1 after 100ms: worker failed (run 1)
//! ... ^ <00000001>supervised - restart 2 after 200ms: actor panicked (run 2)
//! [
//!   "restart 1 after 100ms: worker failed (run 1)",
//!   "restart 2 after 200ms: actor panicked (run 2)",
//!   "worker succeeded on run 3"
//! ]
//! $ cargo run -p layer-cake-demos --bin supervised -- --failures=9; echo $?
//! supervised: actor panicked (run 6)
//! 71
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use layer_cake::runtime::{RetryPolicy, SpawnOptions};
use layer_cake::{Context, Faulted, Restarted, Returned, Stop, on};
use serde::Deserialize;

/// The arguments: how many runs of the worker fail before one succeeds.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    failures: u32,
}

impl Default for Args {
    fn default() -> Self {
        Args { failures: 2 }
    }
}

/// One run of the flaky worker; `run` counts from 1.
async fn worker(run: u32, failures: u32) -> Result<String, Faulted> {
    if run <= failures {
        if run.is_multiple_of(2) {
            panic!("run {run}");
        }
        return Err(Faulted::new("worker failed").with_explanation(format!("run {run}")));
    }
    Ok(format!("worker succeeded on run {run}"))
}

async fn supervised(mut cx: Context, args: Args) -> Result<Vec<String>, Faulted> {
    // 0.1 s, 0.2 s, then every 0.4 s, five restarts at most.
    let policy = RetryPolicy {
        first_steps: vec![0.1, 0.2],
        regular_steps: Some(0.4),
        step_limit: Some(5),
        ..RetryPolicy::default()
    };
    let runs = Arc::new(AtomicU32::new(0));
    let failures = args.failures;
    cx.spawn_supervised(SpawnOptions::new().name("worker"), policy, move |_cx| {
        let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
        worker(run, failures)
    });
    let mut story = Vec::new();
    loop {
        let message = cx.input().await;
        on!(message, {
            Restarted as r => {
                let line = format!("restart {} after {:?}: {}", r.attempt, r.delay, r.fault);
                tracing::info!("{line}");
                story.push(line);
            },
            Returned as r => {
                story.push(r.into_result::<String>()?);
                return Ok(story);
            },
            Stop as _ => {
                cx.abort();
            },
            _other => {},
        })
    }
}

fn main() {
    layer_cake::create(supervised)
}
