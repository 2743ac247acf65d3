//! Worker recycling: a main actor that retires after `--max-requests`
//! requests, or when the process gets SIGUSR1 (`layer-cake restart ROLE`).
//!
//! Retiring is a drain for a worker: the main actor's publications are
//! withdrawn (and the process's HTTP fronts, if any, close their listens and
//! finish the requests in flight, as on SIGTERM), so every subscriber gets `Dropped` and a spool it feeds sends
//! the worker nothing new; the worker answers the requests it holds (and
//! any that were already on their way); once it holds nothing and nothing
//! has come for [`RETIRE_QUIET`], the main actor is sent [`Stop`] and the
//! process exits 0 with [`Retired`] as its value. group-cake starts a fresh
//! process for a role that returned `Retired` at once, whatever its retry
//! policy says (see `docs/processes.md`, "Worker recycling").

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::{FaultKind, Faulted, Message, Payload, Stop};
use crate::runtime::Address;
use crate::runtime::tally::Tally;

/// The most `--max-requests` may ask for (2^53, a number every JSON reader
/// keeps exact).
pub const MAX_REQUESTS: u64 = 1 << 53;

/// How long a retiring worker must have held nothing and taken nothing,
/// after withdrawing its publications, before it stops: requests a spool
/// sent before it heard of the withdrawal are still on their way.
pub const RETIRE_QUIET: Duration = Duration::from_millis(250);

/// How often a retiring worker looks whether it has finished.
const POLL: Duration = Duration::from_millis(20);

/// What a process that retired returns (and prints, exiting 0): its main
/// actor took `requests` requests and was stopped because of `reason`.
///
/// group-cake starts such a role again at once, without using up its
/// retry policy; `layer-cake history` shows the run as
/// `(layer_cake.process.Retired)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(name = "layer_cake.process.Retired")]
pub struct Retired {
    /// The requests the main actor took.
    pub requests: u64,
    /// Why it retired: `max-requests` or `SIGUSR1`.
    pub reason: String,
}

/// One process's retirement: the tally of the main actor's requests, and
/// why it retired, once it has.
pub(crate) struct Retirement {
    tally: Arc<Tally>,
    why: Arc<OnceLock<&'static str>>,
}

impl Retirement {
    /// Retires after `limit` requests (`None`: only on SIGUSR1).
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Retirement {
            tally: Arc::new(Tally::new(limit)),
            why: Arc::new(OnceLock::new()),
        }
    }

    /// The tally the main actor counts its requests in.
    pub(crate) fn tally(&self) -> Arc<Tally> {
        Arc::clone(&self.tally)
    }

    /// Watches, on the current runtime, for the limit or SIGUSR1, and then
    /// retires `main`, giving it at most `patience` to finish what it
    /// holds.
    pub(crate) fn watch(&self, main: Address, patience: Duration) {
        let tally = Arc::clone(&self.tally);
        let why = Arc::clone(&self.why);
        let usr1 = user_signal();
        tokio::spawn(async move {
            let reason = tokio::select! {
                () = tally.spent() => "max-requests",
                () = usr1 => "SIGUSR1",
            };
            retire(&tally, &main, reason, patience).await;
            let _ = why.set(reason);
            let _ = main.send(Stop);
        });
    }

    /// The process's result: a main actor that retired and then returned a
    /// value or `Aborted` (its answer to `Stop`) has retired, and the
    /// process returns [`Retired`]; any other fault stands.
    pub(crate) fn outcome(&self, result: Result<Payload, Faulted>) -> Result<Payload, Faulted> {
        let Some(reason) = self.why.get() else {
            return result;
        };
        match result {
            Err(fault) if fault.kind != FaultKind::Aborted => Err(fault),
            _ => Ok(Payload::new(Retired {
                requests: self.tally.taken(),
                reason: (*reason).to_owned(),
            })),
        }
    }
}

/// Withdraws `main`'s publications and waits until it holds nothing and
/// nothing has come for [`RETIRE_QUIET`] (or `patience` has passed).
async fn retire(tally: &Tally, main: &Address, reason: &str, patience: Duration) {
    tracing::info!(
        reason,
        requests = tally.taken(),
        "Retiring: withdrawing the publications, answering what is held"
    );
    crate::directory::retire_publisher(main);
    // A child process tells its parent (a spool that started it sends it
    // nothing new from then on, and starts a fresh one once it has exited).
    super::child::tell_parent_retiring(reason);
    // A process that serves HTTP itself closes its listens and finishes the
    // requests in flight, as on SIGTERM.
    crate::net::http::drain::drain();
    let withdrawn = tokio::time::Instant::now();
    let deadline = withdrawn + patience;
    let _ = tokio::time::timeout_at(deadline, crate::net::http::drain::drained()).await;
    loop {
        let now = tokio::time::Instant::now();
        let last = tally.last_taken().map_or(withdrawn, |t| {
            tokio::time::Instant::from_std(t).max(withdrawn)
        });
        if tally.held() == 0 && now.duration_since(last) >= RETIRE_QUIET {
            break;
        }
        if now >= deadline {
            tracing::warn!(
                held = tally.held(),
                "Retiring: still holding requests after {patience:?}; stopping anyway"
            );
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::info!(
        requests = tally.taken(),
        "Retiring: done; stopping the main actor"
    );
}

/// Resolves at the first SIGUSR1 (never where it cannot be caught).
fn user_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .map_err(|e| {
            tracing::warn!("cannot catch SIGUSR1: {e}");
        });
    async move {
        #[cfg(unix)]
        if let Ok(mut signal) = signal
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}
