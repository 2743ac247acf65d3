//! The spool actor: requests in, workers' answers out.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::load::{Pool, Window};
use super::{InspectSpool, JoinSpool, LeaveSpool, Source, SpoolOptions, SpoolStatus, Workers};
use crate::directory::{Available, Dropped};
use crate::message::{FaultKind, Faulted, Message, Payload, Returned, Stop};
use crate::runtime::{Address, Context, Meta, RequestId, ReturnPath, SendError};

/// How long a stopping spool waits for its workers to return.
const STOP_GRACE: Duration = Duration::from_secs(10);

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
    meta: Option<Arc<Meta>>,
    arrived: Instant,
    /// Whether it has already been sent to a worker that died with it.
    retried: bool,
}

/// A request a worker holds.
#[derive(Debug)]
struct Sent {
    worker: Address,
    /// A copy to send again if the worker dies with it.
    spare: Option<Payload>,
    path: ReturnPath,
    meta: Option<Arc<Meta>>,
    arrived: Instant,
    sent: Instant,
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
            Returned as _ => {
                let worker = cx.return_address().clone();
                spool.returned(&mut cx, &worker);
            },
            Restart as r => spool.restart(&mut cx, r.slot),
            JoinSpool as j => spool.join(&mut cx, j.worker),
            Available as a => spool.join(&mut cx, a.publisher),
            LeaveSpool as l => spool.leave(&mut cx, &l.worker, "left the spool"),
            Dropped as d => spool.leave(&mut cx, &d.remote, "dropped by the directory"),
            InspectSpool as _ => { let _ = cx.reply(spool.status()); },
            Stop as _ => return spool.stop(&mut cx).await,
            request => spool.request(&mut cx, request),
        })
    }
}

impl Spool {
    /// Starts every spawned worker.
    fn start_workers(&mut self, cx: &mut Context) {
        if let Source::Spawned { count, make } = &self.source {
            let (count, make) = (*count, Arc::clone(make));
            for slot in 0..count {
                let worker = make(cx, slot);
                self.pool.add(worker.clone());
                self.slots.push(Some(worker));
            }
        }
    }

    /// Whether a worker may yet come: a spawned one standing down.
    fn has_prospect(&self) -> bool {
        match self.source {
            Source::Spawned { .. } => self.options.stand_down.is_some(),
            Source::External => false,
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
                        spare,
                        path: held.path,
                        meta: held.meta,
                        arrived: held.arrived,
                        sent: Instant::now(),
                        retried: held.retried,
                    },
                );
            }
            Err(
                SendError::Closed(request)
                | SendError::NoAddress(request)
                | SendError::Unreachable(request, _),
            ) => {
                // Gone before it could take the request: not a retry, since
                // the worker never had it.
                self.retire(cx, &worker, "ended");
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
    fn answered(&mut self, cx: &mut Context, id: RequestId, answer: Payload) {
        let Some(sent) = self.in_flight.remove(&id) else {
            // Given up on: timed out, or its worker was retired.
            self.status.late += 1;
            return;
        };
        self.pool.done(&sent.worker);
        if answer
            .downcast_ref::<Faulted>()
            .is_some_and(|f| f.kind == FaultKind::Lost)
        {
            // The runtime's answer: the worker, or the connection to it,
            // ended with this request. Nothing more will come from it.
            let worker = sent.worker.clone();
            self.retry_or_fail(sent);
            self.retire(cx, &worker, "lost a request");
        } else {
            self.window.record(sent.sent.elapsed());
            self.status.answered += 1;
            let _ = sent.path.reply_payload(answer);
        }
        self.pump(cx);
    }

    /// Queues a request whose worker died for a second try, or answers it
    /// `Lost` when it has had one (or no copy could be kept).
    fn retry_or_fail(&mut self, sent: Sent) {
        match sent.spare {
            Some(request) if !sent.retried => {
                self.status.retried += 1;
                // Older than anything queued: it goes first.
                self.queue.push_front(Held {
                    request,
                    path: sent.path,
                    meta: sent.meta,
                    arrived: sent.arrived,
                    retried: true,
                });
            }
            _ => {
                self.status.lost += 1;
                let _ = sent.path.reply(Faulted::lost(
                    "not answered",
                    if sent.retried {
                        "a second worker ended before answering the request".to_owned()
                    } else {
                        "the worker ended before answering the request".to_owned()
                    },
                ));
            }
        }
    }

    /// Takes `worker` out of rotation for good; the requests it holds are
    /// retried (or answered `Lost`). A spawned worker is also asked to stop,
    /// so that its slot is started afresh.
    fn retire(&mut self, cx: &mut Context, worker: &Address, why: &str) {
        if !self.pool.remove(worker) {
            return;
        }
        tracing::info!("spool: worker {worker} {why}; {} left", self.pool.len());
        let held: Vec<RequestId> = self
            .in_flight
            .iter()
            .filter(|(_, sent)| sent.worker == *worker)
            .map(|(id, _)| *id)
            .collect();
        for id in held {
            if let Some(sent) = self.in_flight.remove(&id) {
                self.retry_or_fail(sent);
            }
        }
        if self.slots.iter().flatten().any(|w| w == worker) {
            let _ = cx.send(Stop, worker);
        }
    }

    /// A spawned worker ended: out of rotation, and back after standing down.
    fn returned(&mut self, cx: &mut Context, worker: &Address) {
        self.retire(cx, worker, "ended");
        let Some(slot) = self.slots.iter().position(|w| w.as_ref() == Some(worker)) else {
            return;
        };
        self.slots[slot] = None;
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
        self.pool.add(worker.clone());
        self.slots[slot] = Some(worker);
        self.status.restarted += 1;
        self.pump(cx);
    }

    /// An external worker joins.
    fn join(&mut self, cx: &mut Context, worker: Address) {
        if self.pool.add(worker) {
            tracing::info!("spool: a worker joined; {} in all", self.pool.len());
        }
        self.pump(cx);
    }

    /// A worker leaves (or its directory route ended).
    fn leave(&mut self, cx: &mut Context, worker: &Address, why: &str) {
        self.retire(cx, worker, why);
        self.pump(cx);
    }

    /// Answers `TimedOut` for every request past its deadline, then gives
    /// the room that frees to what is queued.
    fn expire(&mut self, cx: &mut Context) {
        let timeout = self.options.request_timeout;
        let now = Instant::now();
        let late = |arrived: Instant| now.duration_since(arrived) >= timeout;
        let explanation = || format!("no answer within {:.3}s", timeout.as_secs_f64());
        while self.queue.front().is_some_and(|held| late(held.arrived)) {
            if let Some(held) = self.queue.pop_front() {
                self.status.timed_out += 1;
                let _ = held.path.reply(Faulted::timed_out(explanation()));
            }
        }
        let expired: Vec<RequestId> = self
            .in_flight
            .iter()
            .filter(|(_, sent)| late(sent.arrived))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(sent) = self.in_flight.remove(&id) {
                self.pool.done(&sent.worker);
                self.status.timed_out += 1;
                let _ = sent.path.reply(Faulted::timed_out(explanation()));
            }
        }
        self.pump(cx);
    }

    fn status(&self) -> SpoolStatus {
        SpoolStatus {
            workers: self.pool.len(),
            idle: self.pool.idle(),
            queued: self.queue.len(),
            in_flight: self.in_flight.len(),
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
        for (_, sent) in self.in_flight.drain() {
            self.status.aborted += 1;
            let _ = sent.path.reply(aborted());
        }
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
            if cx.answers().is_some() || message.is_control() {
                continue;
            }
            // A request that came while stopping.
            self.status.aborted += 1;
            let _ = cx.reply(aborted());
        }
        Err(Faulted::aborted())
    }
}
