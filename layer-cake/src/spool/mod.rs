//! The ObjectSpool: one address in front of many workers.
//!
//! A spool is an actor. Any message sent to it that is not one of its own
//! ([`JoinSpool`], [`LeaveSpool`], [`InspectSpool`], the directory's
//! `Available` / `Dropped`, a worker process's `Retiring`, `Stop`) is a **request**: the spool passes it to
//! the least-loaded worker and sends the worker's answer back to whoever
//! sent the request, with the request's id — so `ask`, `forward` and an HTTP
//! front all work through a spool exactly as they work with a single worker.
//!
//! ```
//! use layer_cake::spool::{self, SpoolOptions, Workers};
//! use layer_cake::{Context, Faulted, Stop, on, runtime};
//! use std::time::Duration;
//!
//! /// Doubles numbers, one at a time.
//! async fn doubler(mut cx: Context) -> Result<(), Faulted> {
//!     loop {
//!         let message = cx.input().await;
//!         on!(message, {
//!             i64 as n => { let _ = cx.reply(2 * n); },
//!             Stop as _ => return Err(Faulted::aborted()),
//!             other => tracing::warn!("ignored {}", other.signature()),
//!         })
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let spool = spool::spawn(Workers::local(4, doubler), SpoolOptions::default()).unwrap();
//! let n: i64 = runtime::ask(21_i64, spool.address(), Duration::from_secs(5)).await.unwrap();
//! assert_eq!(n, 42);
//! # }
//! ```
//!
//! **Workers** come from one of three sources ([`Workers`]): N local actors
//! made from a worker function ([`Workers::local`]); N child processes of a
//! worker executable ([`Workers::processes`], or anything else an actor can
//! start with [`Workers::spawned`]); or workers that join and leave
//! from outside — usually the publishers of a directory name, fed in by
//! forwarding `Available` and `Dropped` to the spool (or as [`JoinSpool`] /
//! [`LeaveSpool`]).
//!
//! **Dispatch and load** ([`SpoolOptions`]):
//!
//! - each request goes to the least-loaded worker that has room (a worker
//!   holds at most [`worker_capacity`](SpoolOptions::worker_capacity)
//!   requests, one by default); when none has room, requests wait in a
//!   bounded queue, and a full queue answers `Overloaded`;
//! - the average of the last 32 response times is the spool's
//!   *responsiveness*; while it is over the threshold, requests are answered
//!   `Busy` except every k-th, which goes through so that recovery is seen;
//! - with no worker and no prospect of one (external workers, none joined),
//!   a request is answered `TemporarilyUnavailable` at once;
//! - every request has a deadline from its arrival; past it the answer is
//!   `TimedOut`;
//! - a request is executed at most once by a live worker: it is sent to a
//!   second worker only when its first is known to be gone — the worker
//!   ended (its `Returned`, or `Ended` from a watch), its connection closed,
//!   or the spool stopped it — and then once, from a copy the spool kept
//!   (see [`Payload::try_copy`](crate::Payload::try_copy)), or it is
//!   answered with a `Lost` fault: never lost, never answered twice;
//! - a worker that leaves ([`LeaveSpool`], or a forwarded `Dropped`, which
//!   the directory also sends a live worker when a nearer route replaces
//!   its old one) gets no new request but keeps and answers what it holds;
//!   a `Lost` fault a worker answers itself is an answer like any other;
//! - a request that times out keeps its worker's slot until the worker
//!   answers (the late answer is discarded and counted) or goes, so a busy
//!   worker is never handed more than its capacity;
//! - local and spawned workers that end are started again after a
//!   stand-down delay (±25 %, so that a crowd does not restart in step);
//!   a worker process that retires (`--max-requests`, SIGUSR1) says so
//!   ([`Retiring`](crate::process::Retiring)), gets nothing new, and is
//!   replaced at once when it exits with
//!   [`Retired`](crate::process::Retired);
//! - a request its caller cancels (the HTTP client went away, or was
//!   answered 504) leaves the queue, or is answered and left to its worker,
//!   which sees the [`Cancellation`](crate::Cancellation); a worker process
//!   still holding a request [`overrun_grace`](SpoolOptions::overrun_grace)
//!   after it was answered is stopped and replaced, and that request is not
//!   retried.
//!
//! Every request gets exactly one answer: the worker's, or a
//! [`Faulted`](crate::Faulted) whose kind says why not (`Busy`,
//! `Overloaded`, `TemporarilyUnavailable`, `TimedOut`, `Lost`, or `Aborted`
//! when the spool is stopped). An HTTP front
//! maps those to 503, 504 and 502 (`docs/http.md`). `docs/spool.md` has the
//! whole story.
//!
//! **Pipelines** ([`Context::spawn_stage`], [`NextStage`], [`pass`]): spools
//! in a row, a worker of one stage passing an intermediate result to the
//! next stage (answering its own spool [`Passed`]) or answering the
//! requester at once; `docs/pipelines.md`.

mod actor;
mod load;
mod stage;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use stage::{NextStage, Passed, pass};

use crate::message::Message;
use crate::runtime::{ActorHandle, Address, Context, IntoReturn, SpawnOptions};

/// Puts a worker in a spool's rotation (external workers).
///
/// Forwarding a directory `Available` to the spool does the same with the
/// publisher as the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct JoinSpool {
    /// The worker.
    pub worker: Address,
}

/// Takes a worker out of a spool's rotation: it gets no new request, but
/// keeps the requests it holds and its answers still reach their callers
/// (they are not retried: the worker may be working on them). A later
/// [`JoinSpool`] puts it back.
///
/// Forwarding a directory `Dropped` to the spool does the same with the
/// remote side as the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct LeaveSpool {
    /// The worker.
    pub worker: Address,
}

/// Asks a spool how it is doing; the answer is a [`SpoolStatus`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct InspectSpool;

/// A spool's state and its counts since it started (the answer to
/// [`InspectSpool`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message)]
pub struct SpoolStatus {
    /// Workers in rotation.
    pub workers: usize,
    /// Workers in rotation holding no request.
    pub idle: usize,
    /// Workers out of rotation (they left, or were dropped by the
    /// directory) still finishing requests they hold.
    pub leaving: usize,
    /// Requests waiting for a worker.
    pub queued: usize,
    /// Requests held by workers, their callers waiting.
    pub in_flight: usize,
    /// Requests already answered `TimedOut` that their workers still hold;
    /// each keeps its worker's slot until the worker answers or goes.
    pub overdue: usize,
    /// The average of the recent response times, once there is one.
    pub responsiveness: Option<Duration>,
    /// Requests answered by a worker (faults of the worker's own included).
    pub answered: u64,
    /// Requests answered `Busy`.
    pub busy: u64,
    /// Requests answered `Overloaded`.
    pub overloaded: u64,
    /// Requests answered `TemporarilyUnavailable`.
    pub unavailable: u64,
    /// Requests answered `TimedOut`.
    pub timed_out: u64,
    /// Requests their callers cancelled (the HTTP client went away, or was
    /// answered 504 first) before their workers answered; each was answered
    /// `TimedOut` and its cancellation passed on to its worker.
    pub cancelled: u64,
    /// Workers stopped (and started afresh) because they still held a
    /// request `overrun_grace` after it was answered.
    pub stopped_overrunning: u64,
    /// Requests sent again because their worker was gone.
    pub retried: u64,
    /// Requests answered `Lost` (their worker died after a retry, or they
    /// could not be copied for one).
    pub lost: u64,
    /// Requests answered `Aborted` because the spool stopped.
    pub aborted: u64,
    /// Workers started again after ending (recycled ones included).
    pub restarted: u64,
    /// Worker processes the spool started that retired (`--max-requests`,
    /// SIGUSR1) and were replaced at once.
    pub recycled: u64,
    /// Answers that came after their request was answered `TimedOut` (or
    /// its worker given up as gone), and were discarded.
    pub late: u64,
}

/// Makes worker number `slot`, as a child of the spool's context.
type MakeWorker = dyn Fn(&mut Context, usize) -> Address + Send + Sync;

/// Where a spool's workers come from.
#[derive(Clone)]
pub struct Workers {
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// `count` workers made by the spool, started again when they end;
    /// stopped when they overrun, if `stop_overrunning`.
    Spawned {
        count: usize,
        make: Arc<MakeWorker>,
        stop_overrunning: bool,
    },
    /// Workers that join and leave from outside.
    External,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Spawned { count, .. } => write!(f, "Workers::spawned({count})"),
            Source::External => write!(f, "Workers::external()"),
        }
    }
}

impl Workers {
    /// `count` local actors running `worker`, named `worker-0`, `worker-1`, …
    ///
    /// A worker is an ordinary actor: it answers each request it receives
    /// with [`reply`](Context::reply) (or later through a
    /// [`ReturnPath`](crate::runtime::ReturnPath)). One that ends is started
    /// again after the stand-down delay.
    pub fn local<F, Fut>(count: usize, worker: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoReturn,
    {
        let worker = Arc::new(worker);
        Workers::spawned(count, move |cx, slot| {
            let worker = Arc::clone(&worker);
            cx.spawn_with(
                SpawnOptions::new().name(format!("worker-{slot}")),
                move |cx| worker(cx),
            )
        })
    }

    /// `count` workers made by `make(cx, slot)`, which starts worker number
    /// `slot` as a child of the spool (`cx` is the spool's context) and
    /// returns its address — for example a child process with
    /// `cx.spawn_process(...)`. The spool learns that a worker ended from its
    /// `Returned`, and calls `make` again for that slot after the stand-down
    /// delay.
    pub fn spawned(
        count: usize,
        make: impl Fn(&mut Context, usize) -> Address + Send + Sync + 'static,
    ) -> Self {
        Workers {
            source: Source::Spawned {
                count,
                make: Arc::new(make),
                stop_overrunning: false,
            },
        }
    }

    /// Spawned workers that `Stop` ends even in the middle of a request (a
    /// child process, which is interrupted and then killed) are stopped
    /// and started afresh when one still holds a request
    /// [`overrun_grace`](SpoolOptions::overrun_grace) after the request was
    /// answered `TimedOut` (or cancelled by its caller). [`Workers::processes`]
    /// does this already. No effect on external workers.
    pub fn stop_overrunning(mut self) -> Self {
        if let Source::Spawned {
            stop_overrunning, ..
        } = &mut self.source
        {
            *stop_overrunning = true;
        }
        self
    }

    /// `count` child processes started from `options`, with role names
    /// `<name>-0`, `<name>-1`, … (the name is the options' role name, or the
    /// program's). Each is a worker process: its main actor answers the
    /// requests the spool forwards to it (see
    /// [`Context::spawn_process`](crate::Context::spawn_process)). One that
    /// exits is started again after the stand-down delay; one that retires
    /// (`.flag("max-requests", "N")` in `options`, or SIGUSR1) is sent
    /// nothing new from its [`Retiring`](crate::process::Retiring) on and
    /// is replaced at once when it exits with
    /// [`Retired`](crate::process::Retired).
    pub fn processes(count: usize, options: crate::process::ProcessOptions) -> Self {
        let base = options.name();
        Workers::spawned(count, move |cx, slot| {
            cx.spawn_process(options.clone().role_name(format!("{base}-{slot}")))
        })
        .stop_overrunning()
    }

    /// No workers to begin with: they join with [`JoinSpool`] (or a
    /// forwarded `Available`) and leave with [`LeaveSpool`] (or a forwarded
    /// `Dropped`).
    pub fn external() -> Self {
        Workers {
            source: Source::External,
        }
    }
}

/// How a spool queues, sheds load and recovers. The defaults suit an HTTP
/// front: a queue of 1 024, a 5 s responsiveness threshold passing every
/// 10th request while over it, 25 s per request, one request per worker at
/// a time, one retry, a 5 s stand-down.
///
/// ```
/// use layer_cake::spool::SpoolOptions;
/// use std::time::Duration;
///
/// let options = SpoolOptions::new()
///     .size_of_queue(64)
///     .responsiveness(Some(Duration::from_millis(500)))
///     .busy_pass_rate(5)
///     .request_timeout(Duration::from_secs(2));
/// assert!(options.validate(&layer_cake::spool::Workers::external()).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub(crate) name: Option<String>,
    pub(crate) size_of_queue: usize,
    pub(crate) responsiveness: Option<Duration>,
    pub(crate) busy_pass_rate: u32,
    pub(crate) request_timeout: Duration,
    pub(crate) worker_capacity: u32,
    pub(crate) retry: bool,
    pub(crate) stand_down: Option<Duration>,
    pub(crate) overrun_grace: Option<Duration>,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            name: None,
            size_of_queue: 1024,
            responsiveness: Some(Duration::from_secs(5)),
            busy_pass_rate: 10,
            request_timeout: Duration::from_secs(25),
            worker_capacity: 1,
            retry: true,
            stand_down: Some(Duration::from_secs(5)),
            overrun_grace: Some(Duration::from_secs(5)),
        }
    }
}

impl SpoolOptions {
    /// The defaults.
    pub fn new() -> Self {
        SpoolOptions::default()
    }

    /// The spool actor's name in log lines (default `spool`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many requests may wait for a worker; one more is answered
    /// `Overloaded`. At least 1.
    pub fn size_of_queue(mut self, size: usize) -> Self {
        self.size_of_queue = size;
        self
    }

    /// The average response time over which the spool sheds load with
    /// `Busy`; `None` never sheds. At least 1 ms.
    pub fn responsiveness(mut self, threshold: Option<Duration>) -> Self {
        self.responsiveness = threshold;
        self
    }

    /// While shedding, one request in `rate` is let through (so that the
    /// average can fall again). At least 1.
    pub fn busy_pass_rate(mut self, rate: u32) -> Self {
        self.busy_pass_rate = rate;
        self
    }

    /// How long a request may take from its arrival at the spool, queueing
    /// included, before it is answered `TimedOut`. At least 1 ms.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many requests one worker may hold at once (1 by default: a
    /// worker that serves one request at a time). More suits workers that
    /// answer concurrently, or that sit across a network where a request in
    /// transit would otherwise leave the worker idle. At least 1.
    pub fn worker_capacity(mut self, capacity: u32) -> Self {
        self.worker_capacity = capacity;
        self
    }

    /// Whether a request held by a worker that is gone (ended, its
    /// connection closed) is retried once on another (true by default).
    /// Retrying keeps a copy of every request in flight.
    pub fn retry(mut self, retry: bool) -> Self {
        self.retry = retry;
        self
    }

    /// How long a spawned worker that ended stays down before it is started
    /// again (±25 %); `None` leaves it down. At least 1 ms.
    pub fn stand_down(mut self, delay: Option<Duration>) -> Self {
        self.stand_down = delay;
        self
    }

    /// How long a worker may go on holding a request after the request was
    /// answered `TimedOut` (or cancelled by its caller) before it is
    /// stopped and started afresh — workers that can be stopped only
    /// ([`Workers::processes`], [`Workers::stop_overrunning`]); the request
    /// is not retried elsewhere. 5 s by default; `None` never stops one (it
    /// keeps the request's slot until it answers, as a local worker
    /// always does). At least 1 ms.
    pub fn overrun_grace(mut self, grace: Option<Duration>) -> Self {
        self.overrun_grace = grace;
        self
    }

    /// Checks the options against `workers`, as spawning does.
    pub fn validate(&self, workers: &Workers) -> Result<(), SpoolError> {
        let bad = |option, reason: &str| {
            Err(SpoolError::BadOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if let Source::Spawned { count: 0, .. } = workers.source {
            return bad("workers", "a spool needs at least one worker");
        }
        if self.size_of_queue < 1 {
            return bad("size_of_queue", "must be at least 1");
        }
        if self
            .responsiveness
            .is_some_and(|r| r < Duration::from_millis(1))
        {
            return bad("responsiveness", "must be at least 1 ms");
        }
        if self.busy_pass_rate < 1 {
            return bad("busy_pass_rate", "must be at least 1");
        }
        if self.request_timeout < Duration::from_millis(1) {
            return bad("request_timeout", "must be at least 1 ms");
        }
        if self.worker_capacity < 1 {
            return bad("worker_capacity", "must be at least 1");
        }
        if self
            .stand_down
            .is_some_and(|d| d < Duration::from_millis(1))
        {
            return bad("stand_down", "must be at least 1 ms");
        }
        if self
            .overrun_grace
            .is_some_and(|d| d < Duration::from_millis(1))
        {
            return bad("overrun_grace", "must be at least 1 ms");
        }
        Ok(())
    }
}

/// A spool could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    /// An option is out of range.
    #[error("bad spool option {option}: {reason}")]
    BadOption {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<SpoolError> for crate::Faulted {
    fn from(e: SpoolError) -> Self {
        crate::Faulted::new("cannot start a spool").with_explanation(e.to_string())
    }
}

impl Context {
    /// Starts a spool of `workers` as a child of this actor and returns its
    /// address. Send it requests (or `forward` them, or `ask` it); send it
    /// `Stop` to end it, which answers whatever it still holds with
    /// `Aborted`, stops its workers and returns `Aborted`.
    ///
    /// # Errors
    ///
    /// [`SpoolError::BadOption`] when an option is out of range.
    pub fn spawn_spool(
        &mut self,
        workers: Workers,
        options: SpoolOptions,
    ) -> Result<Address, SpoolError> {
        options.validate(&workers)?;
        let spawn = spawn_options(&options);
        Ok(self.spawn_with(spawn, move |cx| actor::run(cx, workers, options)))
    }
}

/// Starts a spool of `workers` at the top level (see
/// [`Context::spawn_spool`]).
///
/// # Errors
///
/// [`SpoolError::BadOption`] when an option is out of range.
pub fn spawn(workers: Workers, options: SpoolOptions) -> Result<ActorHandle<()>, SpoolError> {
    options.validate(&workers)?;
    let spawn = spawn_options(&options);
    Ok(crate::runtime::spawn_with(spawn, move |cx| {
        actor::run(cx, workers, options)
    }))
}

fn spawn_options(options: &SpoolOptions) -> SpawnOptions {
    SpawnOptions::new().name(options.name.clone().unwrap_or_else(|| "spool".into()))
}
