//! Timers: a message an actor sends itself later, once or repeatedly.
//!
//! Timers are keyed by the message's type: starting a timer of a type that
//! is already pending restarts it. A cancelled or restarted timer never
//! delivers a stale message, even one already queued. Resolution is tokio's
//! (one millisecond).

use std::any::TypeId;
use std::time::Duration;

use super::context::{Context, TimerSlot};
use super::envelope::{Envelope, Tag};
use crate::message::{Message, Payload};

impl Context {
    /// Delivers `timer` to this actor once, after `after`. Restarts a pending
    /// timer of the same type.
    pub fn start_timer<T: Message + Clone>(&mut self, timer: T, after: Duration) {
        self.arm(timer, after, false);
    }

    /// Delivers `timer` to this actor every `every`, until cancelled.
    /// Restarts a pending timer of the same type.
    pub fn start_repeating_timer<T: Message + Clone>(&mut self, timer: T, every: Duration) {
        self.arm(timer, every, true);
    }

    /// Cancels the pending timer of type `T`; true if there was one. No `T`
    /// from that timer is delivered afterwards.
    pub fn cancel_timer<T: Message>(&mut self) -> bool {
        match self.extras().timers.remove(&TypeId::of::<T>()) {
            Some(slot) => {
                slot.task.abort();
                true
            }
            None => false,
        }
    }

    fn arm<T: Message + Clone>(&mut self, timer: T, period: Duration, repeating: bool) {
        let me = self.address().clone();
        let extras = self.extras();
        extras.timer_generation += 1;
        let generation = extras.timer_generation;
        let task = tokio::spawn(async move {
            let mut next = tokio::time::Instant::now() + period;
            loop {
                tokio::time::sleep_until(next).await;
                let envelope = Envelope {
                    from: me.clone(),
                    payload: Payload::new(timer.clone()),
                    tag: Tag::Timer(generation),
                    meta: None,
                };
                if me.push(envelope).is_err() || !repeating {
                    return;
                }
                next += period;
            }
        })
        .abort_handle();
        let slot = TimerSlot {
            generation,
            repeating,
            task,
        };
        if let Some(old) = extras.timers.insert(TypeId::of::<T>(), slot) {
            old.task.abort();
        }
    }
}
