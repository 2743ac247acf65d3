//! Counting the requests an actor takes and answers, for a worker that
//! retires after a number of them (`--max-requests`, see
//! `process::retire`).
//!
//! The runtime counts; what to do once the count is reached (withdraw the
//! worker's publications, wait until it holds nothing, stop it) is the
//! process layer's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

/// The requests one actor has taken and answered.
///
/// A *request* is a user message that arrived with a request id (an `ask`,
/// a spool's or an HTTP front's request, a forward of one); it is
/// *answered* when the actor replies to it ([`Context::reply`],
/// a [`ReturnPath`](super::ReturnPath)'s reply) or forwards it on (the
/// answer then comes from elsewhere).
///
/// [`Context::reply`]: super::Context::reply
#[derive(Debug)]
pub(crate) struct Tally {
    /// After this many requests taken, [`spent`](Tally::spent) is woken.
    limit: Option<u64>,
    taken: AtomicU64,
    answered: AtomicU64,
    /// When the tally began.
    began: Instant,
    /// When the last request was taken: microseconds after `began`, plus
    /// one (0: none yet).
    last: AtomicU64,
    spent: Notify,
}

impl Tally {
    /// A tally that wakes [`spent`](Tally::spent) once `limit` requests
    /// have been taken (`None`: never).
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Tally {
            limit,
            taken: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            began: Instant::now(),
            last: AtomicU64::new(0),
            spent: Notify::new(),
        }
    }

    /// A request was taken.
    pub(crate) fn took(&self) {
        let taken = self.taken.fetch_add(1, Ordering::AcqRel) + 1;
        let micros = u64::try_from(self.began.elapsed().as_micros()).unwrap_or(u64::MAX - 1);
        self.last.store(micros + 1, Ordering::Release);
        if self.limit == Some(taken) {
            // Stored: the waiter may not be waiting yet.
            self.spent.notify_one();
        }
    }

    /// A request was answered (or forwarded on).
    pub(crate) fn answered(&self) {
        self.answered.fetch_add(1, Ordering::AcqRel);
    }

    /// Requests taken so far.
    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }

    /// Requests taken and not answered yet.
    pub(crate) fn held(&self) -> u64 {
        self.taken()
            .saturating_sub(self.answered.load(Ordering::Acquire))
    }

    /// When the last request was taken, if one was.
    pub(crate) fn last_taken(&self) -> Option<Instant> {
        match self.last.load(Ordering::Acquire) {
            0 => None,
            micros => Some(self.began + std::time::Duration::from_micros(micros - 1)),
        }
    }

    /// Returns once the limit has been reached (never without one).
    pub(crate) async fn spent(&self) {
        match self.limit {
            Some(limit) if self.taken() >= limit => {}
            Some(_) => self.spent.notified().await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{self, Context};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn an_actor_counts_what_it_takes_and_answers() {
        let tally = Arc::new(Tally::new(None));
        let counted = Arc::clone(&tally);
        let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
        let worker = runtime::spawn(move |mut cx: Context| async move {
            cx.count_requests(counted);
            loop {
                let Ok(n) = cx.input().await.downcast::<i64>() else {
                    return;
                };
                if n == 1 {
                    let _ = cx.reply(n);
                } else {
                    // Answered later, from elsewhere.
                    let _ = held_tx.send(cx.return_path());
                }
            }
        });
        let patience = Duration::from_secs(5);
        let one: i64 = runtime::ask(1_i64, worker.address(), patience)
            .await
            .unwrap();
        assert_eq!(one, 1);
        assert_eq!((tally.taken(), tally.held()), (1, 0));
        let address = worker.address().clone();
        let two =
            tokio::spawn(async move { runtime::ask::<i64, _>(2_i64, &address, patience).await });
        let path = held_rx.recv().await.unwrap();
        assert_eq!((tally.taken(), tally.held()), (2, 1));
        path.reply(2_i64).unwrap();
        assert_eq!(two.await.unwrap().unwrap(), 2);
        assert_eq!(tally.held(), 0);
        // A plain send is not a request.
        worker.address().send(3_i64).unwrap();
        let one: i64 = runtime::ask(1_i64, worker.address(), patience)
            .await
            .unwrap();
        assert_eq!(one, 1);
        assert_eq!((tally.taken(), tally.held()), (3, 0));
    }

    #[tokio::test]
    async fn counts_and_wakes_at_the_limit() {
        let tally = Tally::new(Some(2));
        tally.took();
        assert_eq!((tally.taken(), tally.held()), (1, 1));
        tally.answered();
        assert_eq!(tally.held(), 0);
        tally.took();
        // Reached before anyone waited: still seen.
        tokio::time::timeout(std::time::Duration::from_secs(5), tally.spent())
            .await
            .unwrap();
        assert!(tally.last_taken().is_some());
        let never = Tally::new(None);
        never.took();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), never.spent())
                .await
                .is_err()
        );
    }
}
