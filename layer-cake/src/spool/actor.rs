//! The spool actor: requests in, workers' answers out.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::load::{Pool, Window};
use super::{InspectSpool, JoinSpool, LeaveSpool, Source, SpoolOptions, SpoolStatus, Workers};
use crate::directory::{Available, Dropped};
use crate::message::{FaultKind, Faulted, Message, Payload, Returned, Stop};
use crate::runtime::{Address, Carried, Context, Ended, RequestId, ReturnPath, SendError};

/// How long a stopping spool waits for its workers to return.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a worker that retired (its `Dropped` says
/// [`RETIRED`](crate::directory::RETIRED)) counts as the prospect of a
/// successor: meanwhile, with no worker in rotation, requests wait in the
/// queue (each within its own deadline) rather than being answered
/// `TemporarilyUnavailable`.
pub(super) const SUCCESSOR_WAIT: Duration = Duration::from_secs(10);

/// The spool's clock for deadlines.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Tick;

impl Message for Tick {
    fn write_signature(out: &mut String) {
        out.push_str("layer_cake.spool.Tick");
    }
}

/// Worker number `slot` has stood down long enough: start it again.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Restart {
    slot: usize,
}

impl Message for Restart {
    const CONTROL: bool = true;

    fn write_signature(out: &mut String) {
        out.push_str("layer_cake.spool.Restart");
    }
}

/// A request waiting for a worker.
#[derive(Debug)]
struct Held {
    request: Payload,
    path: ReturnPath,
    meta: Option<Arc<Carried>>,
    arrived: Instant,
    /// Whether it has already been sent to a worker that died with it.
    retried: bool,
}

/// A request a worker holds.
#[derive(Debug)]
struct Sent {
    worker: Address,
    /// The caller, while it waits: `None` once it has been answered
    /// `TimedOut`. The worker still holds the request, so it keeps the
    /// worker's slot until the worker answers (the answer is then discarded)
    /// or goes.
    caller: Option<Caller>,
    sent: Instant,
    /// Since when its caller has been answered (`TimedOut`, or it was
    /// cancelled) while the worker still holds it: past
    /// `overrun_grace`, a worker that can be stopped is.
    overdue_since: Option<Instant>,
}

/// The caller's side of a request a worker holds.
#[derive(Debug)]
struct Caller {
    /// A copy to send again if the worker is gone with the request.
    spare: Option<Payload>,
    path: ReturnPath,
    meta: Option<Arc<Carried>>,
    arrived: Instant,
    retried: bool,
}

/// Everything the spool keeps.
struct Spool {
    options: SpoolOptions,
    source: Source,
    pool: Pool,
    queue: VecDeque<Held>,
    in_flight: HashMap<RequestId, Sent>,
    window: Window,
    /// Requests seen while shedding, for letting every k-th through.
    shedding: u64,
    /// For spawned workers: the worker in each slot, `None` while it stands
    /// down.
    slots: Vec<Option<Address>>,
    /// Spawned workers that said they are retiring
    /// ([`Retiring`](crate::process::Retiring)): out of rotation, not
    /// stopped, each replaced at once when it exits with `Retired`.
    retiring: Vec<Address>,
    /// Successors expected for workers that retired (one per retirement,
    /// one fewer per worker that joins), and until when.
    successors: (usize, Option<Instant>),
    status: SpoolStatus,
}

pub(super) async fn run(
    mut cx: Context,
    workers: Workers,
    options: SpoolOptions,
) -> Result<(), Faulted> {
    let tick =
        (options.request_timeout / 20).clamp(Duration::from_millis(5), Duration::from_millis(250));
    let mut spool = Spool {
        pool: Pool::new(options.worker_capacity),
        source: workers.source,
        options,
        queue: VecDeque::new(),
        in_flight: HashMap::new(),
        window: Window::new(),
        shedding: 0,
        slots: Vec::new(),
        retiring: Vec::new(),
        successors: (0, None),
        status: SpoolStatus::default(),
    };
    spool.start_workers(&mut cx);
    cx.start_repeating_timer(Tick, tick);
    loop {
        let message = cx.input().await;
        if let Some(id) = cx.answers() {
            spool.answered(&mut cx, id, message);
            continue;
        }
        crate::on!(message, {
            Tick as _ => spool.expire(&mut cx),
            Returned as r => {
                let worker = cx.return_address().clone();
                let retired = r.value.is::<crate::process::Retired>();
                spool.returned(&mut cx, &worker, retired);
            },
            crate::process::Retiring as r => {
                let worker = cx.return_address().clone();
                spool.retiring(&mut cx, &worker, &r.reason);
            },
            Ended as e => spool.gone(&mut cx, &e.address, "ended"),
            Restart as r => spool.restart(&mut cx, r.slot),
            JoinSpool as j => spool.join(&mut cx, j.worker),
            Available as a => spool.join(&mut cx, a.publisher),
            LeaveSpool as l => spool.leave(&mut cx, &l.worker, "left the spool"),
            Dropped as d => {
                if d.reason == crate::directory::RETIRED {
                    // A recycled worker: its successor is on its way.
                    spool.successors = (spool.successors.0 + 1, Some(Instant::now() + SUCCESSOR_WAIT));
                }
                spool.leave(
                    &mut cx,
                    &d.remote,
                    &format!("was dropped by the directory ({})", d.reason),
                )
            },
            InspectSpool as _ => { let _ = cx.reply(spool.status()); },
            Stop as _ => return spool.stop(&mut cx).await,
            request => spool.request(&mut cx, request),
        })
    }
}

impl Spool {
    /// Starts every spawned worker.
    fn start_workers(&mut self, cx: &mut Context) {
        if let Source::Spawned { count, make, .. } = &self.source {
            let (count, make) = (*count, Arc::clone(make));
            for slot in 0..count {
                let worker = make(cx, slot);
                cx.watch(&worker);
                self.pool.add(worker.clone());
                self.slots.push(Some(worker));
            }
        }
    }

    /// Whether a worker may yet come: a spawned one standing down, or the
    /// successor of an external one that retired a moment ago.
    fn has_prospect(&self) -> bool {
        match self.source {
            Source::Spawned { .. } => {
                self.options.stand_down.is_some() || !self.retiring.is_empty()
            }
            Source::External => {
                self.successors.0 > 0
                    && self
                        .successors
                        .1
                        .is_some_and(|until| Instant::now() < until)
            }
        }
    }

    /// A new request.
    fn request(&mut self, cx: &mut Context, request: Payload) {
        let path = cx.return_path();
        if let Some(threshold) = self.options.responsiveness
            && let Some(average) = self.window.average()
            && average >= threshold
        {
            self.shedding += 1;
            if !self
                .shedding
                .is_multiple_of(u64::from(self.options.busy_pass_rate))
            {
                self.status.busy += 1;
                let _ = path.reply(Faulted::busy(format!(
                    "message rejected by spool (average response time {:.2}s)",
                    average.as_secs_f64()
                )));
                return;
            }
        }
        if self.pool.is_empty() && !self.has_prospect() {
            self.status.unavailable += 1;
            let _ = path.reply(Faulted::temporarily_unavailable(
                "no worker and no immediate prospect of one",
            ));
            return;
        }
        let held = Held {
            request,
            path,
            meta: cx.meta_shared(),
            arrived: Instant::now(),
            retried: false,
        };
        if self.queue.is_empty()
            && let Some(worker) = self.pool.pick()
        {
            self.dispatch(cx, held, worker);
            return;
        }
        if self.queue.len() >= self.options.size_of_queue {
            self.status.overloaded += 1;
            let _ = held.path.reply(Faulted::overloaded(format!(
                "message rejected by spool (overloaded, {} pending)",
                self.queue.len()
            )));
            return;
        }
        self.queue.push_back(held);
    }

    /// Sends `held` to `worker`, which [`Pool::pick`] has charged with it.
    ///
    /// From here the request is the worker's until it answers or is known
    /// to be gone (see [`gone`](Spool::gone)): whatever else happens — the
    /// worker leaves the rotation, the request times out — it is never sent
    /// to a second worker while the first may still be working on it.
    fn dispatch(&mut self, cx: &mut Context, held: Held, worker: Address) {
        let spare = if self.options.retry && !held.retried {
            match held.request.try_copy() {
                Ok(copy) => Some(copy),
                Err(e) => {
                    tracing::debug!(
                        "spool cannot keep a copy of {} for a retry: {e}",
                        held.request.signature()
                    );
                    None
                }
            }
        } else {
            None
        };
        match cx.request_payload_with(held.request, &worker, held.meta.clone()) {
            Ok(id) => {
                self.in_flight.insert(
                    id,
                    Sent {
                        worker,
                        caller: Some(Caller {
                            spare,
                            path: held.path,
                            meta: held.meta,
                            arrived: held.arrived,
                            retried: held.retried,
                        }),
                        sent: Instant::now(),
                        overdue_since: None,
                    },
                );
            }
            Err(SendError::Closed(request)) => {
                // It ended just now, before it could take this request (not
                // a retry: it never had it). What it holds is not retried
                // yet: answers it sent before it ended may be waiting here,
                // and a request it answered must not run twice. It gets
                // nothing new; its `Ended` (or `Returned`), which comes
                // after those answers and after the `Lost` it leaves for
                // each request it never took, settles the rest.
                self.pool.done(&worker);
                self.queue.push_front(Held { request, ..held });
                // Not `leave`: that pumps, and this runs inside a pump.
                self.out_of_rotation(cx, &worker, "ended");
            }
            Err(SendError::NoAddress(request) | SendError::Unreachable(request, _)) => {
                // An address that never led anywhere: no answer and no
                // `Ended` will come from it.
                self.pool.done(&worker);
                self.gone(cx, &worker, "cannot be reached");
                self.queue.push_front(Held { request, ..held });
            }
            Err(SendError::Full(request)) => {
                self.pool.done(&worker);
                self.status.overloaded += 1;
                let _ = held.path.reply(Faulted::overloaded(format!(
                    "the worker's mailbox is full ({})",
                    request.signature()
                )));
            }
            Err(SendError::Unencodable(request)) => {
                self.pool.done(&worker);
                let _ = held
                    .path
                    .reply(
                        Faulted::new("cannot send the request").with_explanation(format!(
                            "{} cannot be encoded for a worker in another process",
                            request.signature()
                        )),
                    );
            }
        }
    }

    /// Sends queued requests to workers with room. With no worker and no
    /// prospect of one, what is queued is answered `TemporarilyUnavailable`.
    fn pump(&mut self, cx: &mut Context) {
        while !self.queue.is_empty() {
            let Some(worker) = self.pool.pick() else {
                break;
            };
            let Some(held) = self.queue.pop_front() else {
                break;
            };
            self.dispatch(cx, held, worker);
        }
        if self.pool.is_empty() && !self.has_prospect() {
            for held in self.queue.drain(..) {
                self.status.unavailable += 1;
                let _ = held.path.reply(Faulted::temporarily_unavailable(
                    "the last worker left and there is no prospect of another",
                ));
            }
        }
    }

    /// A worker's answer to request `id`.
    ///
    /// A `Lost` fault is the worker's own answer, passed back like any
    /// other, unless it is the runtime's: the worker has ended, or the
    /// answer comes from an actor or connection that ended with the
    /// request (the sender is closed, or null — a connection that closed
    /// answers for the requests it carried). Then the request is retried,
    /// and the worker that lost it gets no more.
    fn answered(&mut self, cx: &mut Context, id: RequestId, answer: Payload) {
        let Some(sent) = self.in_flight.remove(&id) else {
            // Given up on with its worker.
            self.status.late += 1;
            return;
        };
        let worker = sent.worker.clone();
        self.pool.done(&worker);
        let Some(caller) = sent.caller else {
            // Answered `TimedOut` already; the worker's slot is free now.
            self.status.late += 1;
            self.release_if_done(cx, &worker);
            self.pump(cx);
            return;
        };
        if answer.is::<super::Passed>() {
            // Passed on to the next stage of a pipeline, which answers the
            // caller through the request's ingress: the worker is free.
            self.window.record(sent.sent.elapsed());
            self.status.answered += 1;
            self.release_if_done(cx, &worker);
            self.pump(cx);
            return;
        }
        let lost = answer
            .downcast_ref::<Faulted>()
            .is_some_and(|f| f.kind == FaultKind::Lost);
        if lost && worker.is_closed() {
            // The worker has ended: this request and all it holds go again.
            self.retry_or_fail(caller);
            self.gone(cx, &worker, "ended");
        } else if lost && cx.return_address().is_closed() {
            // The runtime's answer from somewhere between the spool and the
            // worker that ended with the request (a connection, a process
            // proxy's child): that request goes again; the worker finishes
            // what else it holds but gets nothing new.
            self.retry_or_fail(caller);
            self.leave(cx, &worker, "lost a request on the way");
        } else {
            self.window.record(sent.sent.elapsed());
            self.status.answered += 1;
            let _ = caller.path.reply_payload(answer);
            self.release_if_done(cx, &worker);
        }
        self.pump(cx);
    }

    /// Queues a request whose worker is gone for a second try, or answers
    /// it `Lost` when it has had one (or no copy could be kept).
    fn retry_or_fail(&mut self, caller: Caller) {
        match caller.spare {
            Some(request) if !caller.retried => {
                self.status.retried += 1;
                // Older than anything queued: it goes first.
                self.queue.push_front(Held {
                    request,
                    path: caller.path,
                    meta: caller.meta,
                    arrived: caller.arrived,
                    retried: true,
                });
            }
            _ => {
                self.status.lost += 1;
                let _ = caller.path.reply(Faulted::lost(
                    "not answered",
                    if caller.retried {
                        "a second worker ended before answering the request".to_owned()
                    } else {
                        "the worker ended before answering the request".to_owned()
                    },
                ));
            }
        }
    }

    /// `worker` is known to be gone: it ended (`Returned`, `Ended`, a
    /// closed address), its connection closed, or it overran. It is
    /// forgotten, and the requests it held whose callers still wait are
    /// retried (or answered `Lost`). A spawned worker is also sent `Stop`,
    /// so that its slot is started afresh.
    fn gone(&mut self, cx: &mut Context, worker: &Address, why: &str) {
        if !self.pool.remove(worker) {
            return;
        }
        tracing::info!("spool: worker {worker} {why}; {} left", self.pool.len());
        self.forget_held(worker, true);
        if self.slots.iter().flatten().any(|w| w == worker) {
            let _ = cx.send(Stop, worker);
        }
    }

    /// Takes out of `in_flight` what `worker` holds, retrying (`retry`) or
    /// dropping the requests whose callers still wait.
    fn forget_held(&mut self, worker: &Address, retry: bool) {
        let held: Vec<RequestId> = self
            .in_flight
            .iter()
            .filter(|(_, sent)| sent.worker == *worker)
            .map(|(id, _)| *id)
            .collect();
        for id in held {
            if let Some(Sent {
                caller: Some(caller),
                ..
            }) = self.in_flight.remove(&id)
                && retry
            {
                self.retry_or_fail(caller);
            }
        }
    }

    /// A worker out of rotation that no longer holds a request anyone waits
    /// for is let go: forgotten (a late answer to a timed-out request is
    /// then discarded as late), and if it is a spawned one, stopped so that
    /// its slot starts afresh.
    fn release_if_done(&mut self, cx: &mut Context, worker: &Address) {
        if !self.pool.is_leaving(worker)
            || self
                .in_flight
                .values()
                .any(|sent| sent.worker == *worker && sent.caller.is_some())
        {
            return;
        }
        self.forget_held(worker, false);
        self.pool.remove(worker);
        tracing::debug!("spool: worker {worker} let go; it holds nothing anyone waits for");
        // A retiring worker exits by itself once it has been sent nothing
        // for a moment; stopping it would make its exit a fault.
        if !self.retiring.contains(worker) && self.slots.iter().flatten().any(|w| w == worker) {
            let _ = cx.send(Stop, worker);
        }
    }

    /// A spawned worker process is retiring: it gets nothing new from now
    /// on, answers what it holds and exits with `Retired` by itself.
    fn retiring(&mut self, cx: &mut Context, worker: &Address, reason: &str) {
        if !self.slots.iter().flatten().any(|w| w == worker) || self.retiring.contains(worker) {
            return;
        }
        self.retiring.push(worker.clone());
        self.leave(cx, worker, &format!("is retiring ({reason})"));
    }

    /// A spawned worker ended: forgotten, and back after standing down —
    /// or at once if it `retired` (it returned
    /// [`Retired`](crate::process::Retired)).
    fn returned(&mut self, cx: &mut Context, worker: &Address, retired: bool) {
        self.retiring.retain(|w| w != worker);
        self.gone(cx, worker, "ended");
        let Some(slot) = self.slots.iter().position(|w| w.as_ref() == Some(worker)) else {
            return;
        };
        self.slots[slot] = None;
        if retired {
            tracing::info!("spool: worker {worker} retired; starting a fresh one");
            self.status.recycled += 1;
            self.restart(cx, slot);
            return;
        }
        if let Some(delay) = self.options.stand_down {
            let delay = delay.mul_f64(rand::random_range(0.75..=1.25));
            let me = cx.address().clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = me.send(Restart { slot });
            });
        }
        self.pump(cx);
    }

    /// Starts worker `slot` again.
    fn restart(&mut self, cx: &mut Context, slot: usize) {
        let Source::Spawned { make, .. } = &self.source else {
            return;
        };
        if !matches!(self.slots.get(slot), Some(None)) {
            return;
        }
        let make = Arc::clone(make);
        let worker = make(cx, slot);
        cx.watch(&worker);
        self.pool.add(worker.clone());
        self.slots[slot] = Some(worker);
        self.status.restarted += 1;
        self.pump(cx);
    }

    /// An external worker joins (or comes back into rotation). A local one
    /// is watched, so that the spool hears at once if it ends.
    fn join(&mut self, cx: &mut Context, worker: Address) {
        if worker.is_closed() {
            tracing::debug!("spool: worker {worker} has ended; it cannot join");
            return;
        }
        let known = self.pool.contains(&worker);
        if self.pool.add(worker.clone()) {
            if !known {
                cx.watch(&worker);
                self.successors.0 = self.successors.0.saturating_sub(1);
            }
            tracing::info!("spool: a worker joined; {} in all", self.pool.len());
        }
        self.pump(cx);
    }

    /// A worker leaves the rotation (`LeaveSpool`, or its directory route
    /// ended — which also happens to a live worker when a nearer route
    /// replaces it). It may still be working: it keeps what it holds, and
    /// its answers still reach their callers; it just gets nothing new.
    fn leave(&mut self, cx: &mut Context, worker: &Address, why: &str) {
        self.out_of_rotation(cx, worker, why);
        self.pump(cx);
    }

    /// Takes `worker` out of the rotation; it is let go once it holds
    /// nothing anyone waits for.
    fn out_of_rotation(&mut self, cx: &mut Context, worker: &Address, why: &str) {
        if self.pool.leave(worker) {
            tracing::info!(
                "spool: worker {worker} {why}; it gets no new requests; {} in rotation",
                self.pool.len()
            );
        }
        self.release_if_done(cx, worker);
    }

    /// Answers `TimedOut` for every request past its deadline, and for
    /// every request whose caller cancelled it (the HTTP client went away,
    /// or was answered 504 first; a queued one is dropped). A worker in
    /// another process holding a request that timed out is told it is
    /// cancelled; one the caller cancelled, the worker knows of already. A
    /// request a worker holds keeps that worker's slot: the worker may
    /// still be busy with it, and handing it another request would
    /// overload it. A worker that can be stopped ([`Workers::processes`])
    /// still holding such a request `overrun_grace` later is stopped and
    /// replaced, and that request is not retried.
    fn expire(&mut self, cx: &mut Context) {
        let timeout = self.options.request_timeout;
        let now = Instant::now();
        let late = |arrived: Instant| now.duration_since(arrived) >= timeout;
        let explanation = || format!("no answer within {:.3}s", timeout.as_secs_f64());
        let cancelled =
            |meta: &Option<Arc<Carried>>| meta.as_ref().is_some_and(|m| m.is_cancelled());
        let status = &mut self.status;
        self.queue.retain(|held| {
            let fault = if cancelled(&held.meta) {
                status.cancelled += 1;
                Faulted::timed_out("cancelled by its caller while queued")
            } else if late(held.arrived) {
                status.timed_out += 1;
                Faulted::timed_out(explanation())
            } else {
                return true;
            };
            let _ = held.path.reply(fault);
            false
        });
        let mut relieved = Vec::new();
        let mut overran = Vec::new();
        let grace = self
            .options
            .overrun_grace
            .filter(|_| self.stops_overrunning());
        for (id, sent) in self.in_flight.iter_mut() {
            let Some(caller) = &sent.caller else {
                if let (Some(since), Some(grace)) = (sent.overdue_since, grace)
                    && now.duration_since(since) >= grace
                {
                    overran.push(sent.worker.clone());
                }
                continue;
            };
            if cancelled(&caller.meta) {
                // Its worker has been told (the cancellation went wherever
                // the request did).
                self.status.cancelled += 1;
                let _ = caller
                    .path
                    .reply(Faulted::timed_out("cancelled by its caller"));
            } else if late(caller.arrived) {
                self.status.timed_out += 1;
                let _ = caller.path.reply(Faulted::timed_out(explanation()));
                // Nobody will use the answer: a worker in another process
                // may stop. (Only this request: its context here may be
                // shared with others the caller sent, which go on.)
                sent.worker.cancel_request(cx.address(), *id);
            } else {
                continue;
            }
            sent.caller = None;
            sent.overdue_since = Some(now);
            relieved.push(sent.worker.clone());
        }
        for worker in relieved {
            self.release_if_done(cx, &worker);
        }
        for worker in overran {
            self.overran(cx, &worker);
        }
        self.pump(cx);
    }

    /// Whether this spool's workers end when stopped, even in the middle of
    /// a request (child processes).
    fn stops_overrunning(&self) -> bool {
        matches!(
            self.source,
            Source::Spawned {
                stop_overrunning: true,
                ..
            }
        )
    }

    /// `worker` still holds a request `overrun_grace` after its caller was
    /// answered: it is stopped (a process: SIGINT, then SIGKILL after its
    /// stop grace) and started afresh after the stand-down. That request
    /// is not sent to another worker (it may be what stalls workers); any
    /// other it holds whose caller still waits is, once.
    fn overran(&mut self, cx: &mut Context, worker: &Address) {
        if !self.pool.contains(worker) {
            return;
        }
        self.status.stopped_overrunning += 1;
        tracing::warn!(
            "spool: worker {worker} still holds a request {:?} after it was answered; stopping it",
            self.options.overrun_grace.unwrap_or_default()
        );
        self.gone(cx, worker, "was stopped for overrunning a request");
    }

    fn status(&self) -> SpoolStatus {
        SpoolStatus {
            workers: self.pool.len(),
            idle: self.pool.idle(),
            queued: self.queue.len(),
            in_flight: self
                .in_flight
                .values()
                .filter(|s| s.caller.is_some())
                .count(),
            overdue: self
                .in_flight
                .values()
                .filter(|s| s.caller.is_none())
                .count(),
            leaving: self.pool.leaving(),
            responsiveness: self.window.average(),
            ..self.status.clone()
        }
    }

    /// Answers everything held with `Aborted`, stops the workers and waits
    /// for them.
    async fn stop(mut self, cx: &mut Context) -> Result<(), Faulted> {
        let aborted = || Faulted::aborted().with_explanation("the spool stopped");
        for held in self.queue.drain(..) {
            self.status.aborted += 1;
            let _ = held.path.reply(aborted());
        }
        for caller in self.in_flight.drain().filter_map(|(_, sent)| sent.caller) {
            self.status.aborted += 1;
            let _ = caller.path.reply(aborted());
        }
        // No more ticks: a stop that waits for slow workers (processes
        // given a grace to end) would otherwise see them come in.
        cx.cancel_timer::<Tick>();
        cx.abort();
        let deadline = Instant::now() + STOP_GRACE;
        while cx.working() > 0 {
            let message = tokio::select! {
                message = cx.input() => message,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("spool: {} workers did not stop within {STOP_GRACE:?}", cx.working());
                    break;
                }
            };
            if cx.answers().is_some() || message.is_control() || cx.request_id().is_none() {
                // Only a request is answered: replying to anything else (a
                // timer's tick comes from the spool itself) could start a
                // spool talking to itself.
                continue;
            }
            // A request that came while stopping.
            self.status.aborted += 1;
            let _ = cx.reply(aborted());
        }
        Err(Faulted::aborted())
    }
}
