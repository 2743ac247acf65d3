//! Many requests at once: [`Context::concurrently`] sends them all and
//! collects every answer under one deadline; [`Context::sequentially`] asks
//! them one after another and stops at the first fault.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::address::Address;
use super::context::Context;
use super::envelope::RequestId;
use super::error::AskError;
use crate::message::{Faulted, Message, Payload};

impl Context {
    /// Sends every request at once and waits, all under one `deadline`, for
    /// their answers, which come back **in the order of `requests`**
    /// whatever order they arrive in:
    ///
    /// - `Ok(answer)` for an answer;
    /// - `Err(fault)` when the answer is itself a [`Faulted`] (an actor that
    ///   ends before answering answers "not answered");
    /// - `Err` with a [`FaultKind::TimedOut`](crate::FaultKind::TimedOut)
    ///   fault when no answer arrives before the deadline;
    /// - `Err` saying why when the request could not be sent: the receiver
    ///   has ended, its mailbox is full (requests are not waited on: a full
    ///   mailbox is refused at once), the address is null, or it is this
    ///   actor's own address (which could only deadlock, as with
    ///   [`ask`](Context::ask)).
    ///
    /// The call returns as soon as every request is settled, or at the
    /// deadline. Other messages arriving meanwhile are kept, in order, for
    /// later [`input`](Context::input)s, and the message being handled (and
    /// so [`reply`](Context::reply)) is not changed. Answers that come after
    /// the deadline are discarded, like those of an ask that gave up.
    ///
    /// ```
    /// use layer_cake::{Context, Payload, runtime};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main] async fn main() {
    /// let square = runtime::spawn(|mut cx: Context| async move {
    ///     loop {
    ///         let Ok(n) = cx.input().await.downcast::<i64>() else { return };
    ///         let _ = cx.reply(n * n);
    ///     }
    /// });
    /// let mut me = Context::detached("main");
    /// let requests = (1..=3_i64)
    ///     .map(|n| (Payload::new(n), square.address().clone()))
    ///     .collect();
    /// let answers = me.concurrently(requests, Duration::from_secs(5)).await;
    /// let squares: Vec<i64> = answers
    ///     .into_iter()
    ///     .map(|a| a.unwrap().downcast::<i64>().unwrap())
    ///     .collect();
    /// assert_eq!(squares, [1, 4, 9]);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the requests have been
    /// sent; answers already collected are lost with the future, and the
    /// others are delivered later as ordinary messages (with
    /// [`answers`](Context::answers) giving their request ids).
    pub async fn concurrently(
        &mut self,
        requests: Vec<(Payload, Address)>,
        deadline: Duration,
    ) -> Vec<Result<Payload, Faulted>> {
        let deadline = Instant::now() + deadline;
        let mut results: Vec<Option<Result<Payload, Faulted>>> = Vec::with_capacity(requests.len());
        // Request id -> index in `requests`.
        let mut slots = HashMap::new();
        let mut targets = Vec::with_capacity(requests.len());
        for (index, (message, to)) in requests.into_iter().enumerate() {
            let sent = if to == *self.address() {
                Err(AskError::AskedSelf(message))
            } else {
                self.request_payload(message, &to).map_err(AskError::Send)
            };
            match sent {
                Ok(id) => {
                    slots.insert(id, index);
                    results.push(None);
                }
                Err(why) => results.push(Some(Err(why.into_fault()))),
            }
            targets.push(to);
        }
        let mut pending: HashSet<_> = slots.keys().copied().collect();
        while !pending.is_empty() {
            let accepts = |id: RequestId, from: &Address| {
                pending.contains(&id)
                    && slots
                        .get(&id)
                        .is_some_and(|i: &usize| super::context::may_answer(&targets[*i], from))
            };
            let Some((id, answer)) = self.next_answer(accepts, deadline).await else {
                break;
            };
            pending.remove(&id);
            results[slots[&id]] = Some(answer.downcast::<Faulted>().map_or_else(Ok, Err));
        }
        for id in pending {
            let index = slots[&id];
            self.abandon(id, &targets[index]);
            results[index] = Some(Err(no_answer(&targets[index])));
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| unreachable!("every request is settled")))
            .collect()
    }

    /// [`concurrently`](Context::concurrently), with every answer expected to
    /// be an `R`: an answer of another type is an `Err` naming its type.
    ///
    /// # Cancel safety
    ///
    /// As for [`concurrently`](Context::concurrently).
    pub async fn concurrently_as<R: Message>(
        &mut self,
        requests: Vec<(Payload, Address)>,
        deadline: Duration,
    ) -> Vec<Result<R, Faulted>> {
        if requests.iter().any(|(_, to)| to.is_remote()) {
            // The answers will arrive as bytes: make sure they can be decoded.
            crate::message::registry::register::<R>();
        }
        self.concurrently(requests, deadline)
            .await
            .into_iter()
            .map(|answer| {
                answer?
                    .downcast::<R>()
                    .map_err(|other| AskError::<Payload>::Unexpected(other).into_fault())
            })
            .collect()
    }

    /// Asks the requests one after another (each waits for its answer
    /// before the next is sent), all under one `deadline`, and returns the
    /// answers in order — or stops at the first fault and returns its index
    /// with the fault, leaving the later requests unsent.
    ///
    /// A fault is a [`Faulted`] answer, a request that could not be sent
    /// (as with [`ask`](Context::ask), a full mailbox is waited on within the
    /// deadline), or the deadline passing, which gives a
    /// [`FaultKind::TimedOut`](crate::FaultKind::TimedOut) fault.
    ///
    /// ```
    /// use layer_cake::{Context, Payload, runtime};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main] async fn main() {
    /// let halve = runtime::spawn(|mut cx: Context| async move {
    ///     loop {
    ///         let Ok(n) = cx.input().await.downcast::<i64>() else { return };
    ///         if n % 2 == 0 {
    ///             let _ = cx.reply(n / 2);
    ///         } else {
    ///             let _ = cx.reply(layer_cake::Faulted::new("odd"));
    ///         }
    ///     }
    /// });
    /// let mut me = Context::detached("main");
    /// let requests = [4_i64, 3, 8]
    ///     .into_iter()
    ///     .map(|n| (Payload::new(n), halve.address().clone()))
    ///     .collect();
    /// let (index, fault) = me.sequentially(requests, Duration::from_secs(5)).await.unwrap_err();
    /// assert_eq!(index, 1);
    /// assert_eq!(fault.condition, "odd");
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped while waiting, the answer to the request in
    /// flight is delivered later as an ordinary message, the answers already
    /// collected are lost, and the later requests are not sent.
    pub async fn sequentially(
        &mut self,
        requests: Vec<(Payload, Address)>,
        deadline: Duration,
    ) -> Result<Vec<Payload>, (usize, Faulted)> {
        let deadline = Instant::now() + deadline;
        let mut answers = Vec::with_capacity(requests.len());
        for (index, (message, to)) in requests.into_iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err((index, no_answer(&to)));
            }
            match self.ask_payload(message, &to, left).await {
                Ok(answer) => match answer.downcast::<Faulted>() {
                    Ok(fault) => return Err((index, fault)),
                    Err(answer) => answers.push(answer),
                },
                Err(AskError::TimedOut) => return Err((index, no_answer(&to))),
                Err(why) => return Err((index, why.into_fault())),
            }
        }
        Ok(answers)
    }
}

/// The fault for a request whose answer did not come in time.
fn no_answer(to: &Address) -> Faulted {
    Faulted::timed_out(format!("no answer from {to} before the deadline"))
}
