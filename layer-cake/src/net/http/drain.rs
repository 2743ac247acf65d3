//! Draining the HTTP fronts of this process: on the first SIGTERM or SIGINT
//! the process entry point calls [`drain`]; every front closes its listen
//! (a new connection is refused by the kernel), tells its connections to
//! close once the request in flight is answered (idle ones at once), and
//! [`drained`] resolves when no front connection is left open.
//!
//! The state is process-wide on purpose: signals are, and a draining
//! process is about to exit. Only the accept loops (one per listen) and
//! the entry point wait on it; a connection learns of the drain from its
//! listen (a `oneshot` per connection), so the hot path of a request
//! takes no lock shared by all connections.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Whether the process drains.
static DRAINING: AtomicBool = AtomicBool::new(false);
/// Woken once when draining begins.
static BEGUN: Notify = Notify::const_new();
/// Front connections open in this process.
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// Woken when the last front connection closes while draining.
static ALL_CLOSED: Notify = Notify::const_new();

/// Starts draining every HTTP front of the process (idempotent).
pub(crate) fn drain() {
    if !DRAINING.swap(true, Ordering::SeqCst) {
        BEGUN.notify_waiters();
        if OPEN.load(Ordering::SeqCst) == 0 {
            ALL_CLOSED.notify_waiters();
        }
    }
}

/// Ends a drain: fronts started afterwards serve again. For
/// [`run`](crate::process::run) called more than once in one process
/// (tests).
pub(crate) fn end_drain() {
    DRAINING.store(false, Ordering::SeqCst);
}

/// Whether the process drains now.
pub(crate) fn draining() -> bool {
    DRAINING.load(Ordering::SeqCst)
}

/// Resolves once draining has begun (at once if it has).
pub(crate) async fn begun() {
    wait_until(&BEGUN, draining).await;
}

/// Resolves once the process drains and no front connection is open.
pub(crate) async fn drained() {
    wait_until(&ALL_CLOSED, || {
        draining() && OPEN.load(Ordering::SeqCst) == 0
    })
    .await;
}

/// Resolves once `done()` holds, checked whenever `notify` wakes (the
/// waiter is registered before each check, so no wake-up is missed).
async fn wait_until(notify: &Notify, done: impl Fn() -> bool) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return;
        }
        notified.await;
    }
}

/// One open front connection, counted until dropped.
pub(crate) struct Counted(());

impl Counted {
    /// Counts a connection just accepted.
    pub(crate) fn new() -> Self {
        OPEN.fetch_add(1, Ordering::SeqCst);
        Counted(())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if OPEN.fetch_sub(1, Ordering::SeqCst) == 1 && draining() {
            ALL_CLOSED.notify_waiters();
        }
    }
}
