//! A long computation done in steps, for cancellation (`docs/http.md`,
//! "Cancellation"): [`Steps`] is the request, [`work`] the worker's loop.
//!
//! A worker that heeds cancellation checks the request's signal between
//! steps and stops when it is set; one that does not (`heed=false`) plays
//! a worker stuck in a loop that never looks, which its spool stops once it
//! overruns (`docs/spool.md`). What each worker does is written, one line
//! at a time, to the file named by `STEPS_LOG` when it is set — `started
//! TAG PID`, `cancelled TAG AFTER-STEPS`, `finished TAG` — so that a test in
//! another process can see it.

use std::io::Write;
use std::time::Duration;

use layer_cake::{Cancellation, Faulted, Message};
use serde::{Deserialize, Serialize};

/// Do `steps` steps of `step_ms` milliseconds each; answered with the
/// number of steps done. Over HTTP: `/Steps?steps=100&step_ms=50&tag=7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Message)]
#[serde(default)]
pub struct Steps {
    /// How many steps.
    pub steps: u32,
    /// How long each step takes, in milliseconds.
    pub step_ms: u64,
    /// Names the request in the log lines.
    pub tag: u64,
    /// Whether to check for cancellation between steps.
    pub heed: bool,
}

impl Default for Steps {
    fn default() -> Self {
        Steps {
            steps: 10,
            step_ms: 10,
            tag: 0,
            heed: true,
        }
    }
}

/// Appends `line` to the file named by `STEPS_LOG`, if set.
pub fn record(line: &str) {
    let Some(path) = std::env::var_os("STEPS_LOG") else {
        return;
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// Does the steps of `request` on this thread (each a blocking sleep, as
/// CPU-bound work would be), checking `signal` between steps when the
/// request says to heed it. The steps done, or a fault once cancelled.
pub fn work(request: Steps, signal: &Cancellation) -> Result<u32, Faulted> {
    record(&format!("started {} {}", request.tag, std::process::id()));
    for done in 0..request.steps {
        if request.heed && signal.is_cancelled() {
            record(&format!("cancelled {} {done}", request.tag));
            return Err(Faulted::timed_out(format!(
                "cancelled after {done} of {} steps",
                request.steps
            )));
        }
        std::thread::sleep(Duration::from_millis(request.step_ms));
    }
    record(&format!("finished {}", request.tag));
    Ok(request.steps)
}
