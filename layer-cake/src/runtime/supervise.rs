//! Supervision: restarting a child from a factory when it faults, under a
//! retry policy — the same policy shape `group-cake` uses for processes.

use std::future::poll_fn;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::address::Address;
use super::context::Context;
use super::envelope::Tag;
use super::mailbox::{Mailbox, Receiver};
use super::spawn::{Catch, IntoReturn, OnEnd, SpawnOptions, deliver, next_id, short_name};
use crate::message::{FaultKind, Faulted, Restarted};

/// When to try again after a failure: first the `first_steps` delays, then
/// `regular_steps` repeatedly, for at most `step_limit` attempts in all; each
/// delay stretched by a random amount up to `randomized` seconds (capped at
/// `truncated` × the delay).
///
/// As JSON this is the original's `RetryIntervals`, e.g.
/// `{"regular_steps": 30.0}` or `{"first_steps": [0.5, 1, 2], "regular_steps": 4, "step_limit": 10}`.
///
/// ```
/// use layer_cake::runtime::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy { first_steps: vec![0.1, 0.5], regular_steps: Some(2.0), step_limit: Some(4), ..Default::default() };
/// let delays: Vec<Duration> = policy.delays().collect();
/// assert_eq!(delays, [0.1, 0.5, 2.0, 2.0].map(Duration::from_secs_f64));
/// assert_eq!(RetryPolicy::default().delays().count(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// The first delays, in seconds, in order.
    pub first_steps: Vec<f64>,
    /// The delay after the first steps, in seconds, repeated.
    pub regular_steps: Option<f64>,
    /// The most attempts in all (none: no limit when `regular_steps` is set).
    pub step_limit: Option<u32>,
    /// Up to this many seconds are added at random to each delay.
    pub randomized: Option<f64>,
    /// The random addition is at most this fraction of the delay.
    pub truncated: Option<f64>,
}

impl RetryPolicy {
    /// The delays this policy allows, in order.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + 'static {
        let policy = self.clone();
        let regular = policy.regular_steps;
        let limit = policy.step_limit.map(|n| n as usize).unwrap_or(usize::MAX);
        policy
            .first_steps
            .clone()
            .into_iter()
            .chain(
                std::iter::repeat_n((), if regular.is_some() { usize::MAX } else { 0 })
                    .map(move |()| regular.unwrap_or(0.0)),
            )
            .take(limit)
            .map(move |seconds| Duration::from_secs_f64(policy.cook(seconds)))
    }

    fn cook(&self, seconds: f64) -> f64 {
        let seconds = seconds.max(0.0);
        match self.randomized {
            Some(r) if r > 0.0 => {
                let cap = self.truncated.map_or(r, |t| (seconds * t).min(r));
                seconds + rand::random::<f64>() * cap.max(0.0)
            }
            _ => seconds,
        }
    }
}

impl Context {
    /// Spawns a child that is restarted from `factory` whenever it faults
    /// (returns an error or panics), as long as `policy` allows. The address
    /// stays the same across restarts and queued messages are kept. Before
    /// each restart this actor receives [`Restarted`]; when the child finally
    /// ends — with a value, with [`Aborted`](FaultKind::Aborted) after a
    /// `Stop`, or with a fault once the policy is spent — it receives
    /// `Returned` as usual. A `Stop` during the wait before a restart ends the
    /// child with `Aborted`.
    pub fn spawn_supervised<F, Fut>(
        &mut self,
        options: SpawnOptions,
        policy: RetryPolicy,
        factory: F,
    ) -> Address
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoReturn,
    {
        let name = options.name_or(short_name(std::any::type_name::<F>()));
        let capacity = options.capacity.unwrap_or(super::DEFAULT_CAPACITY);
        let mailbox = std::sync::Arc::new(Mailbox::new(next_id(), name, capacity));
        let address = Address::local(mailbox.clone());
        let parent = self.address().clone();
        let span = super::spawn::actor_span(mailbox.id, &mailbox.name);
        super::spawn::created(&mailbox, &parent);
        let me = address.clone();
        tokio::spawn(
            async move {
                let mut delays = policy.delays();
                let mut attempt = 0u32;
                let result = loop {
                    let cx = Context::new(mailbox.clone(), parent.clone(), true);
                    let run = match Catch::new(&factory, cx) {
                        Ok(run) => run.await,
                        Err(fault) => Err(fault),
                    };
                    let fault = match run {
                        Ok(value) => break Ok(value),
                        Err(fault) if fault.kind == FaultKind::Aborted => break Err(fault),
                        Err(fault) => fault,
                    };
                    let Some(delay) = delays.next() else {
                        break Err(fault);
                    };
                    attempt += 1;
                    tracing::warn!(attempt, ?delay, "restarting after fault: {fault}");
                    let restarted = Restarted {
                        address: me.clone(),
                        attempt,
                        fault,
                        delay,
                    };
                    let _ = parent.post(restarted, me.clone(), Tag::None, None);
                    let mut rx = Receiver::new(mailbox.clone());
                    let stopped = tokio::select! {
                        () = tokio::time::sleep(delay) => false,
                        () = poll_fn(|task| rx.poll_stop(task)) => true,
                    };
                    rx.requeue(Default::default());
                    if stopped {
                        break Err(Faulted::aborted());
                    }
                };
                // The last run's context left the mailbox open for a restart.
                let mut rx = Receiver::new(mailbox);
                let (_, watchers) = rx.close();
                super::mailbox::tell_watchers(watchers, &me);
                deliver(result, &me, &parent, OnEnd::Parent);
            }
            .instrument(span),
        );
        self.adopt(&address);
        address
    }
}
