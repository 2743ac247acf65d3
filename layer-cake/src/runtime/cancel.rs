//! Request cancellation: a signal that travels with a request's [`Meta`].
//!
//! The request context an envelope carries is shared by reference count
//! between every message sent while handling the request (`forward`, `send`,
//! `request`, a spool's dispatch): one [`Carried`] per request, made where
//! the request context is set (the HTTP front sets one per request). Its
//! cancellation flag is therefore seen by every actor of this process that
//! holds the request, whatever path it took, at the cost of an atomic load.
//! Nothing is allocated and no message is sent for a request that is not
//! cancelled.
//!
//! Across a connection the peer decodes a context of its own; the link that
//! carried the request registers a *hop* here, and cancelling sends one
//! `Cancel` frame over each hop, which cancels the peer's copy — and so on
//! down a pipeline of processes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use super::address::Address;
use super::envelope::Meta;
use super::transport::Channel;

/// A request context as envelopes carry it: the [`Meta`] and the request's
/// cancellation state, behind one shared pointer.
pub(crate) struct Carried {
    meta: Meta,
    cancelled: AtomicBool,
    /// Wakes the tasks awaiting [`Cancellation::cancelled`].
    notify: Notify,
    /// The connections the request went over, to cancel on the far side.
    hops: Mutex<Hops>,
}

/// The most hops one context remembers. A request crosses a link or two;
/// a context an actor sets once and then sends thousands of requests under
/// would otherwise keep one entry per request for as long as it lives.
const MAX_HOPS: usize = 1024;

/// A connection a request went over: who asked, and the request id.
struct Hop {
    channel: Weak<dyn Channel>,
    asker: Address,
    id: u64,
}

/// The hops of one request: most requests take one (no allocation for it).
#[derive(Default)]
struct Hops {
    first: Option<Hop>,
    more: Vec<Hop>,
}

impl std::ops::Deref for Carried {
    type Target = Meta;

    fn deref(&self) -> &Meta {
        &self.meta
    }
}

impl std::fmt::Debug for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carried")
            .field("meta", &self.meta)
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Carried {
    /// A fresh, uncancelled context.
    pub(crate) fn new(meta: Meta) -> Self {
        Carried {
            meta,
            cancelled: AtomicBool::new(false),
            notify: Notify::const_new(),
            hops: Mutex::new(Hops::default()),
        }
    }

    /// Whether the request has been cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Cancels the request: wakes whoever awaits it here, and tells every
    /// connection it went over. Once; later calls do nothing.
    pub(crate) fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.notify.notify_waiters();
        let hops = std::mem::take(&mut *self.hops.lock().unwrap_or_else(|e| e.into_inner()));
        for hop in hops.first.into_iter().chain(hops.more) {
            hop.cancel();
        }
    }

    /// The request went over `channel` as request `id` of `asker`: a
    /// cancellation is passed on there (at once, if it has come already).
    pub(crate) fn went_over(&self, channel: Weak<dyn Channel>, asker: &Address, id: u64) {
        let hop = Hop {
            channel,
            asker: asker.clone(),
            id,
        };
        {
            // Checked under the lock that `cancel` takes the hops under:
            // either `cancel` finds this hop, or this finds the flag set.
            let mut hops = self.hops.lock().unwrap_or_else(|e| e.into_inner());
            if !self.is_cancelled() {
                if hops.first.is_none() {
                    hops.first = Some(hop);
                } else if hops.more.len() < MAX_HOPS {
                    hops.more.push(hop);
                }
                // Past the cap the hop is not kept: its far side is not
                // told of a cancellation (its own deadline still holds).
                return;
            }
        }
        hop.cancel();
    }
}

impl Hop {
    fn cancel(self) {
        if let Some(channel) = self.channel.upgrade() {
            channel.cancel(&self.asker, self.id);
        }
    }
}

/// The cancellation signal of a request: set when whoever waits for its
/// answer has given up — the HTTP client went away, or the HTTP front
/// answered 504 — or when anyone holding it calls [`cancel`].
///
/// Get it with [`Context::cancellation`] (the request being handled) or
/// [`ReturnPath::cancellation`]. Every actor that holds the request sees
/// the same signal: the request context it travels with is shared by
/// `forward`, `send` and `request` while the request is handled, by a
/// spool's dispatch, and a cancellation crosses connections to worker
/// processes. A message without a request context (not from an HTTP front,
/// no [`Context::set_meta`]) has a signal that never fires.
///
/// Cheap to clone; checking it is one atomic load.
///
/// ```
/// use layer_cake::runtime::{Cancellation, Context, Meta};
///
/// # #[tokio::main] async fn main() {
/// let mut cx = Context::detached("front");
/// assert!(!cx.cancellation().is_cancelled());
/// cx.set_meta(Meta::default());
/// let signal = cx.cancellation();
/// signal.cancel();
/// assert!(cx.is_cancelled());
/// signal.cancelled().await; // at once: it has fired
/// # }
/// ```
///
/// [`cancel`]: Cancellation::cancel
/// [`Context::cancellation`]: crate::runtime::Context::cancellation
/// [`Context::set_meta`]: crate::runtime::Context::set_meta
/// [`ReturnPath::cancellation`]: crate::runtime::ReturnPath::cancellation
#[derive(Clone, Default, Debug)]
pub struct Cancellation(pub(crate) Option<Arc<Carried>>);

impl Cancellation {
    /// Whether the request has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.is_cancelled())
    }

    /// Completes once the request is cancelled (never, for a message
    /// without a request context). Cancel safe: select on it beside the
    /// work, and drop it when the work is done.
    pub async fn cancelled(&self) {
        let Some(carried) = &self.0 else {
            return std::future::pending().await;
        };
        let notified = carried.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so that a cancellation
        // between the two is not missed.
        notified.as_mut().enable();
        if carried.is_cancelled() {
            return;
        }
        notified.await;
    }

    /// Cancels the request for everyone who holds it, here and in the
    /// processes it went to. The answer is still owed: cancelling says that
    /// nobody will use it.
    pub fn cancel(&self) {
        if let Some(carried) = &self.0 {
            carried.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn awaiting_sees_a_cancellation_from_another_task() {
        let signal = Cancellation(Some(Arc::new(Carried::new(Meta::default()))));
        let waiter = {
            let signal = signal.clone();
            tokio::spawn(async move { signal.cancelled().await })
        };
        tokio::task::yield_now().await;
        assert!(!signal.is_cancelled());
        signal.cancel();
        signal.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(signal.is_cancelled());
    }

    #[test]
    fn no_context_never_cancels() {
        let none = Cancellation::default();
        none.cancel();
        assert!(!none.is_cancelled());
    }
}
