//! Mailboxes: two lanes behind one lock.
//!
//! The *user* lane is bounded: a send to a full lane is refused and the
//! message handed back (or, with `send_wait`, the sender waits for room). The
//! *control* lane — lifecycle messages, timers, answers to requests — is never
//! refused for lack of room and is read first.
//!
//! Why not a tokio channel: an idle actor must cost well under 1 KiB, and
//! tokio's mpsc allocates a block of 32 slots per channel up front; we also
//! need two lanes with one waker. The receiver swaps the whole shared queue
//! into a private buffer in one lock, so under load a lock is taken once per
//! batch, not once per message.
//!
//! A mailbox can also *redirect* its user lane to another address (see
//! [`Mailbox::redirect`]): a stand-in actor that would only pass messages on
//! (a process proxy) leaves their path, and each sender delivers to the
//! target itself.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, Waker};

use super::address::ActorId;
use super::envelope::{Envelope, Lane};

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
    NoAddress,
    /// The message cannot be encoded for the wire.
    Unencodable,
    /// The address leads nowhere this process can reach; why.
    Unreachable(Box<str>),
}

impl PushError {
    /// Whether the receiver is gone for good (ended, or never reachable),
    /// rather than busy or unable to take this message: what a redirected
    /// message falls back to the redirecting mailbox on.
    pub(crate) fn means_gone(&self) -> bool {
        matches!(
            self,
            PushError::Closed | PushError::NoAddress | PushError::Unreachable(_)
        )
    }
}

pub(crate) struct Mailbox {
    pub(crate) id: ActorId,
    pub(crate) name: Cow<'static, str>,
    capacity: usize,
    /// User messages queued and not yet taken by the actor (shared + private).
    pending: AtomicUsize,
    control_ready: AtomicBool,
    senders_waiting: AtomicBool,
    closed: AtomicBool,
    exported: AtomicBool,
    /// Set once user messages go straight on to `Rare::redirect`.
    redirected: AtomicBool,
    inner: Mutex<Inner>,
}

/// What a push did with an envelope it did not refuse.
pub(crate) enum Pushed {
    /// Queued here.
    Queued,
    /// Not queued: this mailbox redirects user messages to the address
    /// given, and the sender takes it there (see [`Mailbox::redirect`]).
    Redirect(Envelope, super::address::Address),
}

#[derive(Default)]
struct Inner {
    user: VecDeque<Envelope>,
    control: VecDeque<Envelope>,
    receiver: Option<Waker>,
    /// Rarely needed, so out of line: an idle actor's mailbox stays small.
    rare: Option<Box<Rare>>,
}

#[derive(Default)]
struct Rare {
    /// Senders waiting for room.
    senders: Vec<Waker>,
    /// Told when this mailbox closes.
    watchers: Vec<Watcher>,
    /// The length at which `watchers` is next cleaned of finished ones.
    clean_at: usize,
    /// Where user messages go instead of this mailbox, once set.
    redirect: Option<super::address::Address>,
}

/// Who is told when a mailbox closes.
pub(crate) enum Watcher {
    /// An actor, with `Ended`.
    Actor(super::address::Address),
    /// A token cancelled (ends the connections and listens an actor owns).
    Token(tokio_util::sync::CancellationToken),
}

impl Watcher {
    /// Whether telling this watcher would do nothing: the actor has ended,
    /// the token is already cancelled.
    fn is_finished(&self) -> bool {
        match self {
            Watcher::Actor(address) => address.is_closed(),
            Watcher::Token(token) => token.is_cancelled(),
        }
    }
}

impl Mailbox {
    pub(crate) fn new(id: ActorId, name: Cow<'static, str>, capacity: usize) -> Self {
        Mailbox {
            id,
            name,
            capacity: capacity.max(1),
            pending: AtomicUsize::new(0),
            control_ready: AtomicBool::new(false),
            senders_waiting: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            exported: AtomicBool::new(false),
            redirected: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding this lock, but stay usable if it ever did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Records that this mailbox's address was serialized; true the first time.
    pub(crate) fn mark_exported(&self) -> bool {
        !self.exported.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn was_exported(&self) -> bool {
        self.exported.load(Ordering::Acquire)
    }

    /// Queues an envelope, or hands it back with the reason; a user message
    /// for a mailbox that redirects comes back as [`Pushed::Redirect`].
    pub(crate) fn push(
        &self,
        envelope: Envelope,
        lane: Lane,
    ) -> Result<Pushed, (Envelope, PushError)> {
        self.push_to(envelope, lane, true)
    }

    /// Queues a user message here even if this mailbox redirects: one its
    /// redirect target refused because it has gone, for the actor itself to
    /// deal with.
    pub(crate) fn push_here(&self, envelope: Envelope) -> Result<(), (Envelope, PushError)> {
        self.push_to(envelope, Lane::User, false).map(|_| ())
    }

    fn push_to(
        &self,
        envelope: Envelope,
        lane: Lane,
        follow: bool,
    ) -> Result<Pushed, (Envelope, PushError)> {
        let waker = {
            let mut inner = self.lock();
            if self.is_closed() {
                return Err((envelope, PushError::Closed));
            }
            match lane {
                Lane::User => {
                    if follow
                        && self.redirected.load(Ordering::Relaxed)
                        && let Some(to) = inner.rare.as_ref().and_then(|r| r.redirect.clone())
                    {
                        return Ok(Pushed::Redirect(envelope, to));
                    }
                    if self.pending.load(Ordering::SeqCst) >= self.capacity {
                        return Err((envelope, PushError::Full));
                    }
                    self.pending.fetch_add(1, Ordering::SeqCst);
                    inner.user.push_back(envelope);
                }
                Lane::Control => {
                    inner.control.push_back(envelope);
                    self.control_ready.store(true, Ordering::Release);
                }
            }
            inner.receiver.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(Pushed::Queued)
    }

    /// From now on, user messages sent here go straight on to `to`, pushed
    /// by their sender; control messages (`Stop`, timers, answers) still
    /// come here. A stand-in actor (a process proxy) uses this to leave the
    /// path of the messages it would only pass on.
    ///
    /// Done only while no user message waits here, so that none sent
    /// earlier can arrive after one sent later: false (nothing changed) if
    /// one does, or if the mailbox has closed or already redirects. Once
    /// set, it holds until the mailbox closes.
    pub(crate) fn redirect(&self, to: super::address::Address) -> bool {
        let mut inner = self.lock();
        if self.is_closed()
            || self.redirected.load(Ordering::Relaxed)
            || self.pending.load(Ordering::SeqCst) != 0
        {
            return false;
        }
        inner.rare.get_or_insert_with(Default::default).redirect = Some(to);
        self.redirected.store(true, Ordering::Relaxed);
        true
    }

    /// Where user messages are redirected, if they are.
    pub(crate) fn redirect_target(&self) -> Option<super::address::Address> {
        if !self.redirected.load(Ordering::Relaxed) {
            return None;
        }
        self.lock().rare.as_ref().and_then(|r| r.redirect.clone())
    }

    /// Queues a user message, waiting for room; `slot` holds the envelope
    /// until it is queued. A mailbox that redirects hands it back as
    /// [`Pushed::Redirect`].
    pub(crate) fn poll_push(
        &self,
        slot: &mut Option<Envelope>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<Pushed, (Envelope, PushError)>> {
        let Some(envelope) = slot.take() else {
            return Poll::Ready(Ok(Pushed::Queued));
        };
        let waker = {
            let mut inner = self.lock();
            if self.is_closed() {
                return Poll::Ready(Err((envelope, PushError::Closed)));
            }
            if self.redirected.load(Ordering::Relaxed)
                && let Some(to) = inner.rare.as_ref().and_then(|r| r.redirect.clone())
            {
                return Poll::Ready(Ok(Pushed::Redirect(envelope, to)));
            }
            if self.pending.load(Ordering::SeqCst) >= self.capacity {
                inner
                    .rare
                    .get_or_insert_with(Default::default)
                    .senders
                    .push(cx.waker().clone());
                self.senders_waiting.store(true, Ordering::SeqCst);
                // The receiver may have made room between our check and the
                // flag becoming visible; look again before sleeping.
                if self.pending.load(Ordering::SeqCst) >= self.capacity {
                    *slot = Some(envelope);
                    return Poll::Pending;
                }
            }
            self.pending.fetch_add(1, Ordering::SeqCst);
            inner.user.push_back(envelope);
            inner.receiver.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(Ok(Pushed::Queued))
    }

    /// Adds a watcher, told with [`Ended`](crate::runtime::Ended) when this
    /// mailbox closes; false if it already has (then nothing is recorded).
    ///
    /// The list does not grow with watchers that have finished: an actor
    /// watching twice is recorded once, and watchers that no longer need
    /// telling (an ended actor, a cancelled token: a connection or listen
    /// that closed) are dropped whenever the list has doubled since it was
    /// last cleaned, and when a connection closes
    /// ([`forget_finished_watchers`](Mailbox::forget_finished_watchers)).
    pub(crate) fn watch(&self, watcher: Watcher) -> bool {
        let mut inner = self.lock();
        if self.is_closed() {
            return false;
        }
        let rare = inner.rare.get_or_insert_with(Default::default);
        if let Watcher::Actor(new) = &watcher
            && rare
                .watchers
                .iter()
                .any(|w| matches!(w, Watcher::Actor(old) if old == new))
        {
            return true;
        }
        if rare.watchers.len() >= rare.clean_at {
            rare.watchers.retain(|w| !w.is_finished());
            rare.clean_at = (rare.watchers.len() * 2).max(8);
        }
        rare.watchers.push(watcher);
        true
    }

    /// Drops the watchers that no longer need telling (see
    /// [`watch`](Mailbox::watch)).
    pub(crate) fn forget_finished_watchers(&self) {
        let mut inner = self.lock();
        if let Some(rare) = inner.rare.as_mut() {
            rare.watchers.retain(|w| !w.is_finished());
            rare.clean_at = (rare.watchers.len() * 2).max(8);
        }
    }

    /// How many control messages wait to be read. The control lane never
    /// refuses a message, so whoever feeds it from outside the process (a
    /// link's reader) looks at this to slow the peer down.
    pub(crate) fn control_backlog(&self) -> usize {
        self.lock().control.len()
    }

    /// How many watchers are recorded (for tests of the bounds).
    #[cfg(test)]
    pub(crate) fn watcher_count(&self) -> usize {
        self.lock().rare.as_ref().map_or(0, |r| r.watchers.len())
    }

    fn wake_senders(&self) {
        let senders = {
            let mut inner = self.lock();
            self.senders_waiting.store(false, Ordering::SeqCst);
            inner
                .rare
                .as_mut()
                .map(|r| std::mem::take(&mut r.senders))
                .unwrap_or_default()
        };
        for waker in senders {
            waker.wake();
        }
    }
}

/// The receiving end of a mailbox, owned by the actor's context.
pub(crate) struct Receiver {
    mailbox: Arc<Mailbox>,
    batch: VecDeque<Envelope>,
}

impl Receiver {
    pub(crate) fn new(mailbox: Arc<Mailbox>) -> Self {
        Receiver {
            mailbox,
            batch: VecDeque::new(),
        }
    }

    pub(crate) fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    fn took_user(&self) {
        let before = self.mailbox.pending.fetch_sub(1, Ordering::SeqCst);
        if self.mailbox.senders_waiting.load(Ordering::SeqCst)
            && before <= self.mailbox.capacity / 2 + 1
        {
            self.mailbox.wake_senders();
        }
    }

    /// The next envelope: control lane first, then user messages in order.
    pub(crate) fn poll_recv(&mut self, cx: &mut TaskContext<'_>) -> Poll<Envelope> {
        let mailbox = &*self.mailbox;
        if !mailbox.control_ready.load(Ordering::Acquire)
            && let Some(envelope) = self.batch.pop_front()
        {
            self.took_user();
            return Poll::Ready(envelope);
        }
        let mut inner = mailbox.lock();
        if let Some(envelope) = inner.control.pop_front() {
            if inner.control.is_empty() {
                mailbox.control_ready.store(false, Ordering::Release);
            }
            return Poll::Ready(envelope);
        }
        if self.batch.is_empty() {
            std::mem::swap(&mut inner.user, &mut self.batch);
        }
        if let Some(envelope) = self.batch.pop_front() {
            drop(inner);
            self.took_user();
            return Poll::Ready(envelope);
        }
        match &inner.receiver {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.receiver = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Ready when a `Stop` is waiting on the control lane (which it removes);
    /// used while a supervisor waits to restart its child.
    pub(crate) fn poll_stop(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut inner = self.mailbox.lock();
        if let Some(at) = inner
            .control
            .iter()
            .position(|e| e.payload.is::<crate::Stop>())
        {
            inner.control.remove(at);
            if inner.control.is_empty() {
                self.mailbox.control_ready.store(false, Ordering::Release);
            }
            return Poll::Ready(());
        }
        inner.receiver = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Puts messages the actor took but did not handle back at the front of
    /// the mailbox, for the next run of a restarted actor.
    pub(crate) fn requeue(&mut self, mut untaken: VecDeque<Envelope>) {
        let mut inner = self.mailbox.lock();
        // Messages still in the private batch are already counted as pending.
        self.mailbox
            .pending
            .fetch_add(untaken.len(), Ordering::SeqCst);
        untaken.append(&mut self.batch);
        untaken.append(&mut inner.user);
        inner.user = untaken;
    }

    /// Closes the mailbox and returns whatever was still queued, and who is
    /// watching it.
    pub(crate) fn close(&mut self) -> (Vec<Envelope>, Vec<Watcher>) {
        let mut left: Vec<Envelope> = Vec::new();
        let watchers;
        let senders = {
            let mut inner = self.mailbox.lock();
            self.mailbox.closed.store(true, Ordering::Release);
            left.extend(inner.control.drain(..));
            left.extend(self.batch.drain(..));
            left.extend(inner.user.drain(..));
            self.mailbox.pending.store(0, Ordering::SeqCst);
            inner.receiver = None;
            let rare = inner.rare.take().map(|r| *r).unwrap_or_default();
            watchers = rare.watchers;
            rare.senders
        };
        for waker in senders {
            waker.wake();
        }
        (left, watchers)
    }
}

/// Tells a closed mailbox's watchers that `ended` has ended.
pub(crate) fn tell_watchers(watchers: Vec<Watcher>, ended: &super::address::Address) {
    for watcher in watchers {
        match watcher {
            Watcher::Actor(address) => {
                let _ = address.send(super::Ended {
                    address: ended.clone(),
                });
            }
            Watcher::Token(token) => token.cancel(),
        }
    }
}

#[cfg(test)]
mod redirect_tests {
    use std::time::Duration;

    use crate::runtime::{self, Address, Context};
    use crate::{Stop, on};

    const WAIT: Duration = Duration::from_secs(10);

    /// Answers every `i64` with itself plus `add`.
    async fn adder(mut cx: Context, add: i64) {
        loop {
            let message = cx.input().await;
            on!(message, {
                i64 as n => { let _ = cx.reply(n + add); },
                Stop as _ => return,
                _other => {},
            })
        }
    }

    /// A stand-in: redirects its user messages to `target` at once, and
    /// tells `observer` that it did, that it was stopped, and of every
    /// `i64` it still receives (answering a question with -1).
    async fn stand_in(mut cx: Context, target: Address, observer: Address) {
        let mut redirected = false;
        loop {
            if !redirected {
                redirected = cx.redirect_user_messages(&target);
                let _ = observer.send(redirected);
            }
            let message = cx.input().await;
            on!(message, {
                Stop as _ => { let _ = observer.send(String::from("stop")); return; },
                i64 as n => {
                    let _ = observer.send(format!("held {n}"));
                    if cx.request_id().is_some() {
                        let _ = cx.reply(-1_i64);
                    }
                },
                _other => {},
            })
        }
    }

    /// An observer, a target adding 100, and a stand-in for it that has
    /// redirected its user messages there.
    async fn redirected_stand_in() -> (Context, runtime::ActorHandle<()>, runtime::ActorHandle<()>)
    {
        let mut observer = Context::detached("observer");
        let target = runtime::spawn(|cx| adder(cx, 100));
        let (t, o) = (target.address().clone(), observer.address().clone());
        let proxy = runtime::spawn(move |cx| stand_in(cx, t, o));
        let redirected = tokio::time::timeout(WAIT, observer.input()).await.unwrap();
        assert_eq!(redirected.downcast::<bool>().ok(), Some(true));
        (observer, target, proxy)
    }

    #[tokio::test]
    async fn user_messages_go_straight_to_the_target_and_control_ones_stay() {
        let (mut observer, target, proxy) = redirected_stand_in().await;

        // A question to the stand-in is answered by the target, as the
        // target: the return address and request id went with it.
        let answer: i64 = runtime::ask(1_i64, proxy.address(), WAIT).await.unwrap();
        assert_eq!(answer, 101);
        let mut cx = Context::detached("asker");
        for n in 0..100_i64 {
            assert_eq!(
                cx.ask::<i64, _>(n, proxy.address(), WAIT).await.unwrap(),
                n + 100
            );
        }

        // A send that would wait for room goes the same way: the target
        // answers the sender.
        cx.send_wait(5_i64, proxy.address()).await.unwrap();
        let answer = tokio::time::timeout(WAIT, cx.input()).await.unwrap();
        assert_eq!(answer.downcast::<i64>().ok(), Some(105));

        // `Stop` is a control message: it still reaches the stand-in.
        proxy.address().send(Stop).unwrap();
        let stopped = tokio::time::timeout(WAIT, observer.input()).await.unwrap();
        assert_eq!(stopped.downcast::<String>().ok().as_deref(), Some("stop"));
        target.address().send(Stop).unwrap();
    }

    #[tokio::test]
    async fn what_the_target_refuses_because_it_has_gone_comes_back_here() {
        let (mut observer, target, proxy) = redirected_stand_in().await;

        target.address().send(Stop).unwrap();
        let _ = target.join().await;
        let answer: i64 = runtime::ask(7_i64, proxy.address(), WAIT).await.unwrap();
        assert_eq!(answer, -1, "the stand-in answers what it was handed back");
        let held = tokio::time::timeout(WAIT, observer.input()).await.unwrap();
        assert_eq!(held.downcast::<String>().ok().as_deref(), Some("held 7"));
        proxy.address().send(Stop).unwrap();
    }

    #[tokio::test]
    async fn no_redirect_while_a_user_message_waits() {
        let mailbox = super::Mailbox::new(super::super::next_id(), "waiting".into(), 8);
        let target = runtime::spawn(|cx| adder(cx, 1));
        let envelope = super::Envelope {
            from: Address::NULL,
            payload: crate::Payload::new(1_i64),
            tag: super::super::envelope::Tag::None,
            meta: None,
        };
        assert!(matches!(
            mailbox.push(envelope, super::Lane::User),
            Ok(super::Pushed::Queued)
        ));
        assert!(!mailbox.redirect(target.address().clone()));
        assert!(mailbox.redirect_target().is_none());
        target.address().send(Stop).unwrap();
    }
}
