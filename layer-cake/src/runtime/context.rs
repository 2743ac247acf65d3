//! The context an actor runs with: its mailbox, its children, its timers, and
//! everything it can do — receive, send, reply, forward, ask, spawn.

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;

use super::address::{ActorId, Address, typed_back};
use super::cancel::{Cancellation, Carried};
use super::envelope::{Envelope, Meta, RequestId, Tag};
use super::error::{AskError, SendError};
use super::mailbox::{Mailbox, PushError, Receiver};
use crate::message::{Faulted, Message, Payload, Returned, Stop};

/// Logs an object event (OBJECT level) for the actor owning `$cx`.
macro_rules! object_log {
    ($cx:expr, $tag:literal, $($fmt:tt)+) => {
        tracing::debug!(
            target: "layer_cake::object",
            actor = $cx.id().0,
            name = &*$cx.name(),
            state = $cx.core.state_label.as_deref(),
            tag = $tag,
            $($fmt)+
        )
    };
}
#[allow(unused_imports)]
pub(crate) use object_log;

/// What an actor works with: its own mailbox and address, the message it is
/// handling, its children and its timers.
///
/// A function actor gets a `Context` by value and loops on
/// [`input`](Context::input); a [`Machine`](crate::runtime::Machine) gets
/// `&mut Context` in each handler.
///
/// ```
/// use layer_cake::runtime::{self, Context};
/// use layer_cake::{Faulted, Stop, on};
///
/// /// Doubles every number it is sent, until stopped.
/// async fn doubler(mut cx: Context) -> Result<(), Faulted> {
///     loop {
///         let message = cx.input().await;
///         on!(message, {
///             i64 as n => { let _ = cx.reply(n * 2); },
///             Stop as _ => return Err(Faulted::aborted()),
///             other => tracing::warn!("unexpected {}", other.signature()),
///         })
///     }
/// }
///
/// # #[tokio::main] async fn main() {
/// let worker = runtime::spawn(doubler);
/// let answer: i64 = runtime::ask(21_i64, worker.address(), std::time::Duration::from_secs(5)).await.unwrap();
/// assert_eq!(answer, 42);
/// worker.address().send(Stop).unwrap();
/// assert!(worker.join().await.is_err());
/// # }
/// ```
pub struct Context {
    // One pointer: an `async fn actor(mut cx: Context)` stores its argument
    // twice (rust-lang/rust#62958), and an idle actor must stay small.
    core: Box<Core>,
}

struct Core {
    me: Address,
    rx: Receiver,
    parent: Address,
    current: Current,
    next_request: u64,
    supervised: bool,
    state_label: Option<String>,
    extras: Option<Box<Extras>>,
}

/// The message being handled: who sent it, and as what.
#[derive(Default)]
struct Current {
    from: Address,
    tag: Option<Tag>,
    meta: Option<Arc<Carried>>,
}

/// How many abandoned requests an actor remembers, to discard their late
/// answers.
const MAX_ABANDONED: usize = 4096;

/// Rarely-used state, allocated on first use so an idle actor stays small.
#[derive(Default)]
pub(crate) struct Extras {
    /// Children still running, by id.
    children: HashMap<ActorId, Address>,
    /// Timers by message type.
    pub(crate) timers: HashMap<TypeId, TimerSlot>,
    pub(crate) timer_generation: u64,
    /// Messages that arrived while an `ask` waited, not yet looked at.
    deferred: VecDeque<Envelope>,
    /// Messages set aside with `save`, in order.
    saved: Vec<Envelope>,
    /// Saved messages restored for delivery, already looked at.
    replay: VecDeque<Envelope>,
    /// Requests whose ask gave up; their late answers are discarded. At
    /// most [`MAX_ABANDONED`], the oldest forgotten first (ids only grow).
    abandoned: std::collections::BTreeSet<RequestId>,
    /// Counts the requests this actor takes and answers (a worker that
    /// retires after `--max-requests`).
    pub(crate) tally: Option<Arc<super::tally::Tally>>,
}

pub(crate) struct TimerSlot {
    pub(crate) generation: u64,
    pub(crate) repeating: bool,
    pub(crate) task: AbortHandle,
}

/// Where the answer to one message goes: captured by
/// [`Context::return_path`], used once or many times.
///
/// ```
/// use layer_cake::{Context, runtime};
/// use std::time::Duration;
///
/// # #[tokio::main] async fn main() {
/// // Answers each question from a separate task, after a delay.
/// let slow = runtime::spawn(|mut cx: Context| async move {
///     loop {
///         let Ok(n) = cx.input().await.downcast::<i64>() else { return };
///         let answer = cx.return_path();
///         tokio::spawn(async move {
///             tokio::time::sleep(Duration::from_millis(10)).await;
///             let _ = answer.reply(n + 1);
///         });
///     }
/// });
/// let n: i64 = runtime::ask(1_i64, slow.address(), Duration::from_secs(5)).await.unwrap();
/// assert_eq!(n, 2);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReturnPath {
    to: Address,
    from: Address,
    tag: Tag,
    meta: Option<Arc<Carried>>,
    /// The answering actor's tally, if it counts its requests.
    tally: Option<Arc<super::tally::Tally>>,
}

impl ReturnPath {
    /// Where answers go.
    pub fn address(&self) -> &Address {
        &self.to
    }

    /// The cancellation signal of the request this path answers (see
    /// [`Context::cancellation`]): a task working on it away from the
    /// actor checks it between steps.
    pub fn cancellation(&self) -> Cancellation {
        Cancellation(self.meta.clone())
    }

    /// Sends the answer.
    pub fn reply<M: Message>(&self, message: M) -> Result<(), SendError<M>> {
        self.reply_payload(Payload::new(message))
            .map_err(|e| e.map(typed_back))
    }

    /// Sends an answer of any type.
    pub fn reply_payload(&self, message: Payload) -> Result<(), SendError<Payload>> {
        if let (Some(tally), Tag::Response(_)) = (&self.tally, self.tag) {
            tally.answered();
        }
        self.to
            .post_payload(message, self.from.clone(), self.tag, self.meta.clone())
    }
}

/// The future returned by [`Context::input`]: the next message.
///
/// Written by hand so that an actor waiting for input costs one pointer of
/// future state.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Input<'a> {
    cx: &'a mut Context,
}

impl Future for Input<'_> {
    type Output = Payload;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Payload> {
        self.get_mut().cx.poll_input(task)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("address", &self.core.me)
            .field("name", &self.name())
            .field("parent", &self.core.parent)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(mailbox: Arc<Mailbox>, parent: Address, supervised: bool) -> Self {
        Context {
            core: Box::new(Core {
                me: Address::local(mailbox.clone()),
                rx: Receiver::new(mailbox),
                parent,
                current: Current::default(),
                next_request: 0,
                supervised,
                state_label: None,
                extras: None,
            }),
        }
    }

    /// A context that is not an actor's: a mailbox and an address for
    /// ordinary async code (a test, `main`) to talk to actors with, ask them
    /// questions and spawn children that report back to it.
    pub fn detached(name: impl Into<Cow<'static, str>>) -> Self {
        let mailbox = Arc::new(Mailbox::new(
            super::next_id(),
            name.into(),
            super::DEFAULT_CAPACITY,
        ));
        Context::new(mailbox, Address::NULL, false)
    }

    pub(crate) fn extras(&mut self) -> &mut Extras {
        self.core.extras.get_or_insert_with(Default::default)
    }

    /// This actor's address.
    pub fn address(&self) -> &Address {
        &self.core.me
    }

    /// This actor's id.
    pub fn id(&self) -> ActorId {
        self.core.rx.mailbox().id
    }

    /// This actor's name (from the function or type it was spawned from, or
    /// as given in [`SpawnOptions`](crate::runtime::SpawnOptions)).
    pub fn name(&self) -> &str {
        &self.core.rx.mailbox().name
    }

    /// The address of the actor that spawned this one (null for top-level
    /// actors).
    pub fn parent(&self) -> &Address {
        &self.core.parent
    }

    /// Who sent the message being handled (its return address).
    pub fn return_address(&self) -> &Address {
        &self.core.current.from
    }

    /// The request id of the message being handled, if it is a request (sent
    /// with [`ask`](Context::ask) or [`request`](Context::request)).
    pub fn request_id(&self) -> Option<RequestId> {
        match self.core.current.tag {
            Some(Tag::Request(id)) => Some(id),
            _ => None,
        }
    }

    /// For an answer to a [`request`](Context::request), the id it answers.
    pub fn answers(&self) -> Option<RequestId> {
        match self.core.current.tag {
            Some(Tag::Response(id)) => Some(id),
            _ => None,
        }
    }

    /// The request context (trace, caller, ingress) of the message being
    /// handled; inherited by everything sent while handling it.
    pub fn meta(&self) -> Option<&Meta> {
        self.core.current.meta.as_deref().map(|c| &**c)
    }

    /// Replaces the request context carried by the messages this actor sends
    /// from now on (until the next message is received). The new context
    /// has a [`Cancellation`] of its own, not yet cancelled.
    pub fn set_meta(&mut self, meta: Meta) {
        self.core.current.meta = Some(Arc::new(Carried::new(meta)));
    }

    /// The cancellation signal of the request being handled: set when
    /// whoever waits for its answer has given up (the HTTP client went
    /// away, or was answered 504). Work that takes a while checks it
    /// between steps, or selects on [`Cancellation::cancelled`], and stops
    /// (`docs/http.md`, "Cancellation"). A message without a request
    /// context has a signal that never fires.
    pub fn cancellation(&self) -> Cancellation {
        Cancellation(self.core.current.meta.clone())
    }

    /// Whether the request being handled has been cancelled (see
    /// [`cancellation`](Context::cancellation)): one atomic load.
    pub fn is_cancelled(&self) -> bool {
        self.core
            .current
            .meta
            .as_ref()
            .is_some_and(|c| c.is_cancelled())
    }

    /// Waits for the next message.
    ///
    /// Control messages (`Stop`, `Returned`, timers) come before queued user
    /// messages; otherwise messages arrive in the order they were sent by any
    /// one sender. Messages set aside by an earlier [`ask`](Context::ask) come
    /// first, and restored [`save`](Context::save)d ones before those.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, no message
    /// has been taken.
    pub fn input(&mut self) -> Input<'_> {
        Input { cx: self }
    }

    /// One step of [`input`](Context::input): a message if one is ready.
    fn poll_input(&mut self, task: &mut std::task::Context<'_>) -> std::task::Poll<Payload> {
        loop {
            if let Some(extras) = self.core.extras.as_mut() {
                if let Some(envelope) = extras.replay.pop_front() {
                    return std::task::Poll::Ready(self.handle(envelope));
                }
                if let Some(envelope) = extras.deferred.pop_front() {
                    if let Some(payload) = self.accept(envelope) {
                        return std::task::Poll::Ready(payload);
                    }
                    continue;
                }
            }
            let envelope = std::task::ready!(self.core.rx.poll_recv(task));
            if let Some(payload) = self.accept(envelope) {
                return std::task::Poll::Ready(payload);
            }
        }
    }

    /// Runtime bookkeeping for a message about to be handed to the actor;
    /// `None` when the runtime consumed it (a stale timer, a late answer).
    fn accept(&mut self, envelope: Envelope) -> Option<Payload> {
        match envelope.tag {
            Tag::Timer(generation) => {
                let type_id = envelope.payload.type_id();
                let timers = &mut self.extras().timers;
                match timers.get(&type_id) {
                    Some(slot) if slot.generation == generation => {
                        if !slot.repeating {
                            timers.remove(&type_id);
                        }
                    }
                    // Cancelled or restarted since it was sent.
                    _ => return None,
                }
            }
            Tag::Response(id) => {
                if let Some(extras) = self.core.extras.as_mut()
                    && extras.abandoned.remove(&id)
                {
                    object_log!(
                        self,
                        "<",
                        "Discarded late answer {} from {}",
                        envelope.payload.signature(),
                        envelope.from
                    );
                    return None;
                }
            }
            _ => {}
        }
        if envelope.payload.is::<Returned>()
            && let (Some(extras), Some(id)) = (self.core.extras.as_mut(), envelope.from.id())
        {
            extras.children.remove(&id);
        }
        // Counted once, here: a saved message restored later is not taken
        // again.
        if let Tag::Request(_) = envelope.tag
            && let Some(tally) = self.tally()
            && !envelope.payload.is_control()
        {
            tally.took();
        }
        Some(self.handle(envelope))
    }

    /// Makes `envelope` the message being handled and returns its payload.
    fn handle(&mut self, envelope: Envelope) -> Payload {
        object_log!(
            self,
            "<",
            "Received {} from {}",
            envelope.payload.signature(),
            envelope.from
        );
        self.core.current = Current {
            from: envelope.from,
            tag: Some(envelope.tag),
            meta: envelope.meta,
        };
        envelope.payload
    }

    /// Sends `message` to `to`, with this actor as the return address.
    ///
    /// Never waits: a full mailbox refuses the message with
    /// [`SendError::Full`], handing it back (see [`send_wait`](Context::send_wait)).
    pub fn send<M: Message>(&self, message: M, to: &Address) -> Result<(), SendError<M>> {
        self.send_payload(Payload::new(message), to)
            .map_err(|e| e.map(typed_back))
    }

    /// [`send`](Context::send) for a message of any type.
    pub fn send_payload(&self, message: Payload, to: &Address) -> Result<(), SendError<Payload>> {
        object_log!(self, ">", "Sent {} to {}", message.signature(), to);
        let meta = self.core.current.meta.clone();
        to.post_payload(message, self.core.me.clone(), Tag::None, meta)
    }

    /// Sends `message` to `to`, waiting while `to`'s mailbox is full.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped while waiting for room, the
    /// message is dropped with it.
    pub fn send_wait<'a, M: Message>(
        &self,
        message: M,
        to: &'a Address,
    ) -> impl Future<Output = Result<(), SendError<M>>> + Send + 'a {
        let payload = Payload::new(message);
        object_log!(self, ">", "Sent {} to {}", payload.signature(), to);
        let envelope = Envelope {
            from: self.core.me.clone(),
            payload,
            tag: Tag::None,
            meta: self.core.current.meta.clone(),
        };
        async move {
            let mut slot = Some(envelope);
            to.push_waiting(&mut slot)
                .await
                .map_err(|why| refused(slot, why).map(typed_back))
        }
    }

    /// Sends `message` to whoever sent the message being handled. When that
    /// message was a request, this is its answer.
    pub fn reply<M: Message>(&self, message: M) -> Result<(), SendError<M>> {
        self.reply_payload(Payload::new(message))
            .map_err(|e| e.map(typed_back))
    }

    /// [`reply`](Context::reply) with a message of any type.
    pub fn reply_payload(&self, message: Payload) -> Result<(), SendError<Payload>> {
        let current = &self.core.current;
        let tag = self.answer_tag();
        object_log!(
            self,
            ">",
            "Sent {} to {}",
            message.signature(),
            current.from
        );
        let from = self.core.me.clone();
        if let (Some(tally), Tag::Response(_)) = (self.tally(), tag) {
            tally.answered();
        }
        current
            .from
            .post_payload(message, from, tag, current.meta.clone())
    }

    /// A handle for answering the message being handled later — after other
    /// messages, from a callback, from another task. Answers sent through it
    /// go where [`reply`](Context::reply) would have sent them, with the same
    /// request id and request context.
    pub fn return_path(&self) -> ReturnPath {
        let current = &self.core.current;
        ReturnPath {
            to: current.from.clone(),
            from: self.core.me.clone(),
            tag: self.answer_tag(),
            meta: current.meta.clone(),
            tally: self.tally().cloned(),
        }
    }

    /// The tally of requests this actor counts, if it counts them.
    fn tally(&self) -> Option<&Arc<super::tally::Tally>> {
        self.core.extras.as_ref()?.tally.as_ref()
    }

    /// Counts the requests this actor takes and answers from now on in
    /// `tally` (the main actor of a process with `--max-requests`).
    pub(crate) fn count_requests(&mut self, tally: Arc<super::tally::Tally>) {
        self.extras().tally = Some(tally);
    }

    /// What an answer to the message being handled carries: its request id
    /// when it was a request.
    fn answer_tag(&self) -> Tag {
        match self.core.current.tag {
            Some(Tag::Request(id)) => Tag::Response(id),
            _ => Tag::None,
        }
    }

    /// Passes `message` on to `to` keeping the original return address (and
    /// request id), which takes this actor out of the conversation: `to`'s
    /// reply goes straight back to the original sender.
    pub fn forward<M: Message>(&self, message: M, to: &Address) -> Result<(), SendError<M>> {
        self.forward_payload(Payload::new(message), to)
            .map_err(|e| e.map(typed_back))
    }

    /// [`forward`](Context::forward) for a message of any type.
    pub fn forward_payload(
        &self,
        message: Payload,
        to: &Address,
    ) -> Result<(), SendError<Payload>> {
        let current = &self.core.current;
        let tag = match current.tag {
            Some(Tag::Request(id)) => {
                // Handed on: the answer comes from elsewhere.
                if let Some(tally) = self.tally() {
                    tally.answered();
                }
                Tag::Request(id)
            }
            _ => Tag::None,
        };
        object_log!(
            self,
            ">",
            "Forward {} to {} (from {})",
            message.signature(),
            to,
            current.from
        );
        to.post_payload(message, current.from.clone(), tag, current.meta.clone())
    }

    /// Sends `message` to `to` with `return_address` as its sender.
    pub fn forward_from<M: Message>(
        &self,
        message: M,
        to: &Address,
        return_address: &Address,
    ) -> Result<(), SendError<M>> {
        object_log!(
            self,
            ">",
            "Forward {} to {} (from {})",
            crate::message::signature_of::<M>(),
            to,
            return_address
        );
        to.post(
            message,
            return_address.clone(),
            Tag::None,
            self.core.current.meta.clone(),
        )
    }

    /// Request ids start at a random number in each actor (drawn on its
    /// first request) rather than at 1: an answer is matched by its id, and
    /// ids nobody can predict are one more thing a forger would have to
    /// guess (connections also refuse answers to requests they never
    /// carried; see `docs/wire-protocol.md`).
    fn next_request_id(&mut self) -> RequestId {
        if self.core.next_request == 0 {
            self.core.next_request = rand::random::<u64>() >> 1;
        }
        self.core.next_request = self.core.next_request.wrapping_add(1).max(1);
        RequestId(self.core.next_request)
    }

    /// Sends `message` as a request and returns its id without waiting; the
    /// answer arrives later as an ordinary message, with
    /// [`answers`](Context::answers) giving this id. This is how a state
    /// machine asks.
    pub fn request<M: Message>(
        &mut self,
        message: M,
        to: &Address,
    ) -> Result<RequestId, SendError<M>> {
        let id = self.next_request_id();
        object_log!(
            self,
            ">",
            "Sent {} to {}",
            crate::message::signature_of::<M>(),
            to
        );
        let meta = self.core.current.meta.clone();
        to.post(message, self.core.me.clone(), Tag::Request(id), meta)?;
        Ok(id)
    }

    /// [`request`](Context::request) for a message of any type.
    pub fn request_payload(
        &mut self,
        message: Payload,
        to: &Address,
    ) -> Result<RequestId, SendError<Payload>> {
        let id = self.next_request_id();
        object_log!(self, ">", "Sent {} to {}", message.signature(), to);
        let meta = self.core.current.meta.clone();
        to.post_payload(message, self.core.me.clone(), Tag::Request(id), meta)?;
        Ok(id)
    }

    /// [`request_payload`](Context::request_payload) carrying `meta` rather
    /// than the handled message's: for a request held and sent later on
    /// behalf of another message (a spool's queue).
    pub(crate) fn request_payload_with(
        &mut self,
        message: Payload,
        to: &Address,
        meta: Option<Arc<Carried>>,
    ) -> Result<RequestId, SendError<Payload>> {
        let id = self.next_request_id();
        object_log!(self, ">", "Sent {} to {}", message.signature(), to);
        to.post_payload(message, self.core.me.clone(), Tag::Request(id), meta)?;
        Ok(id)
    }

    /// The request context of the handled message, shared.
    pub(crate) fn meta_shared(&self) -> Option<Arc<Carried>> {
        self.core.current.meta.clone()
    }

    /// Waits until `deadline` for the answer to one of the `pending` requests,
    /// keeping every other message, in order, for later
    /// [`input`](Context::input)s; `None` at the deadline. Cancel safe.
    pub(crate) async fn next_answer(
        &mut self,
        pending: impl Fn(RequestId, &Address) -> bool,
        deadline: tokio::time::Instant,
    ) -> Option<(RequestId, Payload)> {
        // One timer for the whole wait.
        let expiry = tokio::time::sleep_until(deadline);
        tokio::pin!(expiry);
        self.next_answer_until(pending, expiry).await
    }

    /// [`next_answer`](Context::next_answer) until `expiry` elapses.
    async fn next_answer_until(
        &mut self,
        pending: impl Fn(RequestId, &Address) -> bool,
        mut expiry: Pin<&mut tokio::time::Sleep>,
    ) -> Option<(RequestId, Payload)> {
        loop {
            let rx = &mut self.core.rx;
            let envelope = tokio::select! {
                biased;
                envelope = poll_fn(|task| rx.poll_recv(task)) => envelope,
                () = expiry.as_mut() => return None,
            };
            if let Tag::Response(id) = envelope.tag
                && pending(id, &envelope.from)
            {
                object_log!(
                    self,
                    "<",
                    "Received {} from {}",
                    envelope.payload.signature(),
                    envelope.from
                );
                return Some((id, envelope.payload));
            }
            self.extras().deferred.push_back(envelope);
        }
    }

    /// Gives up on request `id`: its late answer will be discarded.
    /// The transport that carried the request to `to` forgets it too.
    pub(crate) fn abandon(&mut self, id: RequestId, to: &Address) {
        to.abandon_request(&self.core.me, id);
        let abandoned = &mut self.extras().abandoned;
        abandoned.insert(id);
        // An answer that never comes must not hold an entry for the life of
        // the actor: past the cap, the oldest is forgotten (should its answer
        // still come, it is delivered as an ordinary message).
        while abandoned.len() > MAX_ABANDONED {
            abandoned.pop_first();
        }
    }

    /// Sends `message` to `to` and waits up to `timeout` for the answer, which
    /// must be an `R` (a [`Faulted`] answer gives [`AskError::Faulted`]).
    ///
    /// When `to`'s mailbox is full, the ask waits for room within the same
    /// deadline; if none comes, the message is handed back in
    /// [`SendError::Full`]. Other messages arriving meanwhile are kept, in
    /// order, for later [`input`](Context::input)s; the message being handled
    /// (and so [`reply`](Context::reply)) is not changed by the ask. Asking
    /// one's own address is refused at once with [`AskError::AskedSelf`].
    /// Asking across the network registers `R`, so that its answer can be
    /// decoded here.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before the answer arrives, the answer is
    /// delivered later as an ordinary message.
    pub async fn ask<R: Message, M: Message>(
        &mut self,
        message: M,
        to: &Address,
        timeout: Duration,
    ) -> Result<R, AskError<M>> {
        if to.is_remote() {
            // The answer will arrive as bytes: make sure it can be decoded.
            crate::message::registry::register::<R>();
        }
        let answer = self
            .ask_payload(Payload::new(message), to, timeout)
            .await
            .map_err(|e| e.map(typed_back))?;
        match answer.downcast::<R>() {
            Ok(r) => Ok(r),
            Err(other) => match other.downcast::<Faulted>() {
                Ok(fault) => Err(AskError::Faulted(fault)),
                Err(other) => Err(AskError::Unexpected(other)),
            },
        }
    }

    /// [`ask`](Context::ask) with a message of any type, accepting an answer
    /// of any type.
    pub async fn ask_payload(
        &mut self,
        message: Payload,
        to: &Address,
        timeout: Duration,
    ) -> Result<Payload, AskError<Payload>> {
        // One timer for the whole ask, registered only if it has to wait.
        let expiry = tokio::time::sleep(timeout);
        tokio::pin!(expiry);
        self.ask_payload_until(message, to, expiry).await
    }

    /// [`ask_payload`](Context::ask_payload) until `expiry` elapses, with a
    /// timer the caller keeps: one that asks again and again (the HTTP front,
    /// once per request of a connection) moves one timer forward instead of
    /// registering and removing a new one for each ask.
    pub(crate) async fn ask_payload_until(
        &mut self,
        message: Payload,
        to: &Address,
        mut expiry: Pin<&mut tokio::time::Sleep>,
    ) -> Result<Payload, AskError<Payload>> {
        if *to == self.core.me {
            tracing::warn!(
                actor = self.id().0,
                name = self.name(),
                "refused an ask to itself"
            );
            return Err(AskError::AskedSelf(message));
        }
        let id = self.next_request_id();
        object_log!(self, ">", "Sent {} to {}", message.signature(), to);
        let mut slot = Some(Envelope {
            from: self.core.me.clone(),
            payload: message,
            tag: Tag::Request(id),
            meta: self.core.current.meta.clone(),
        });
        let pushed = match slot.take().map(|envelope| to.push(envelope)) {
            Some(Err((envelope, PushError::Full))) => {
                // Wait for room in the receiver's mailbox within the same
                // deadline.
                slot = Some(envelope);
                tokio::select! {
                    biased;
                    pushed = to.push_waiting(&mut slot) => pushed,
                    () = expiry.as_mut() => Err(PushError::Full),
                }
            }
            Some(Err((envelope, why))) => {
                slot = Some(envelope);
                Err(why)
            }
            Some(Ok(())) | None => Ok(()),
        };
        if let Err(why) = pushed {
            return Err(AskError::Send(refused(slot, why)));
        }
        match self
            .next_answer_until(
                |answered, from| answered == id && may_answer(to, from),
                expiry,
            )
            .await
        {
            Some((_, answer)) => Ok(answer),
            None => {
                self.abandon(id, to);
                Err(AskError::TimedOut)
            }
        }
    }

    /// Sets the message being handled aside until [`restore_saved`]
    /// (a state machine's state change does that).
    ///
    /// [`restore_saved`]: Context::restore_saved
    pub fn save(&mut self, message: Payload) {
        let envelope = Envelope {
            from: std::mem::take(&mut self.core.current.from),
            payload: message,
            tag: self.core.current.tag.unwrap_or(Tag::None),
            meta: self.core.current.meta.take(),
        };
        self.extras().saved.push(envelope);
    }

    /// Makes the saved messages the next ones [`input`](Context::input)
    /// returns, in the order they were saved.
    pub fn restore_saved(&mut self) {
        if let Some(extras) = self.core.extras.as_mut()
            && !extras.saved.is_empty()
        {
            let saved: Vec<Envelope> = std::mem::take(&mut extras.saved);
            for envelope in saved.into_iter().rev() {
                extras.replay.push_front(envelope);
            }
        }
    }

    /// From now on, user messages sent to this actor go straight on to
    /// `to`, pushed by their senders, keeping their return address, request
    /// id and `Meta`; control messages (`Stop`, timers, answers) still come
    /// here. A message `to` refuses because it has gone comes here instead,
    /// for this actor to deal with. A stand-in that would only pass
    /// messages on (a process proxy) leaves their path this way.
    ///
    /// Refused (false, nothing changed) while any user message waits here
    /// (queued, saved or set aside), so that none sent earlier can arrive
    /// after one sent later; try again once they are handled.
    pub(crate) fn redirect_user_messages(&mut self, to: &Address) -> bool {
        if let Some(extras) = &self.core.extras
            && !(extras.saved.is_empty() && extras.replay.is_empty() && extras.deferred.is_empty())
        {
            return false;
        }
        self.core.rx.mailbox().redirect(to.clone())
    }

    /// Spawns a child actor from an async function taking its [`Context`].
    /// When the child ends, this actor receives [`Returned`] with its value.
    pub fn spawn<F, Fut>(&mut self, actor: F) -> Address
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: super::IntoReturn,
    {
        self.spawn_with(super::SpawnOptions::default(), actor)
    }

    /// [`spawn`](Context::spawn) with a name or mailbox capacity.
    pub fn spawn_with<F, Fut>(&mut self, options: super::SpawnOptions, actor: F) -> Address
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: super::IntoReturn,
    {
        let name = options.name_or(super::spawn::short_name(std::any::type_name::<F>()));
        let address = super::spawn::start(
            name,
            options.capacity,
            self.core.me.clone(),
            actor,
            super::spawn::OnEnd::Parent,
        );
        self.adopt(&address);
        address
    }

    /// Spawns a [`Machine`](super::Machine) as a child.
    pub fn spawn_machine<M: super::Machine>(&mut self, machine: M) -> Address {
        let name = super::spawn::short_name(std::any::type_name::<M>());
        let options = super::SpawnOptions::new().name(name);
        self.spawn_with(options, move |cx| super::machine::run(cx, machine))
    }

    pub(crate) fn adopt(&mut self, child: &Address) {
        if let Some(id) = child.id() {
            self.extras().children.insert(id, child.clone());
        }
    }

    /// Asks to be told when the actor at `address` ends: this actor then
    /// receives [`Ended`](super::Ended) with that address, once. Returns false
    /// (and nothing will come) if it has already ended or is not in this
    /// process.
    pub fn watch(&self, address: &Address) -> bool {
        match address.mailbox() {
            Some(mailbox) => mailbox.watch(super::mailbox::Watcher::Actor(self.core.me.clone())),
            None => false,
        }
    }

    /// How many children have not yet been seen to return.
    pub fn working(&self) -> usize {
        self.core.extras.as_ref().map_or(0, |x| x.children.len())
    }

    /// The addresses of the children still working.
    pub fn children(&self) -> Vec<Address> {
        self.core
            .extras
            .as_ref()
            .map_or_else(Vec::new, |x| x.children.values().cloned().collect())
    }

    /// Sends [`Stop`] to every child still working and returns how many were
    /// asked; each will still report with [`Returned`].
    pub fn abort(&self) -> usize {
        let children = self.children();
        for child in &children {
            let _ = self.send(Stop, child);
        }
        children.len()
    }

    /// Asks `address` to stop and waits up to `timeout` for the child's
    /// [`Returned`]. Other messages arriving meanwhile are kept for later.
    pub async fn stop(
        &mut self,
        address: &Address,
        timeout: Duration,
    ) -> Result<Returned, Faulted> {
        self.send(Stop, address)
            .map_err(|e| Faulted::new("cannot stop").with_explanation(e.to_string()))?;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let rx = &mut self.core.rx;
            let envelope = tokio::select! {
                biased;
                envelope = poll_fn(|task| rx.poll_recv(task)) => envelope,
                () = &mut deadline => return Err(Faulted::timed_out(format!("{address} did not stop"))),
            };
            if envelope.from == *address && envelope.payload.is::<Returned>() {
                let Some(payload) = self.accept(envelope) else {
                    continue;
                };
                return Ok(payload
                    .downcast::<Returned>()
                    .unwrap_or_else(|_| unreachable!()));
            }
            self.extras().deferred.push_back(envelope);
        }
    }

    /// Sets the state name shown in log lines (`Name[STATE]`).
    pub fn set_state_label(&mut self, state: &dyn fmt::Debug) {
        if tracing::enabled!(target: "layer_cake::object", tracing::Level::DEBUG) {
            self.core.state_label = Some(format!("{state:?}"));
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // Most contexts (a short-lived detached one above all) never needed
        // their extras: nothing to build and walk then.
        let untaken: VecDeque<Envelope> = match self.core.extras.take() {
            Some(extras) => {
                let extras = *extras;
                for slot in extras.timers.values() {
                    slot.task.abort();
                }
                for child in extras.children.values() {
                    let _ = child.post(Stop, self.core.me.clone(), Tag::None, None);
                }
                let mut untaken = extras.replay;
                untaken.extend(extras.saved);
                untaken.extend(extras.deferred);
                untaken
            }
            None => VecDeque::new(),
        };
        if self.core.supervised {
            self.core.rx.requeue(untaken);
            return;
        }
        let mut left: Vec<Envelope> = untaken.into();
        let (queued, watchers) = self.core.rx.close();
        left.extend(queued);
        super::mailbox::tell_watchers(watchers, &self.core.me);
        let mut dropped = 0usize;
        for envelope in left {
            if let Tag::Request(id) = envelope.tag {
                // Every request gets an answer, even from an actor that ended.
                let fault = Faulted::lost(
                    "not answered",
                    format!(
                        "{} ended before answering {}",
                        self.core.me,
                        envelope.payload.signature()
                    ),
                );
                let _ = envelope.from.post(
                    fault,
                    self.core.me.clone(),
                    Tag::Response(id),
                    envelope.meta,
                );
            } else if !envelope.payload.is::<Stop>()
                && !envelope.payload.is::<Returned>()
                && !matches!(envelope.tag, Tag::Timer(_))
            {
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::warn!(
                actor = self.id().0,
                name = self.name(),
                dropped,
                "ended with messages still queued"
            );
        }
        if self.core.rx.mailbox().was_exported() {
            super::exports::forget(self.id());
        }
    }
}

/// Whether an answer from `from` may be the answer to a request sent to
/// `asked`. An actor in another process can only be answered for over the
/// connection the request went out on (by it, by whoever it forwarded the
/// request to over there, or by the connection itself with a fault); the
/// connection has already checked that it carried the request. A local
/// actor may have forwarded the request anywhere (a spool hands it to a
/// worker, whose answer comes straight back), so any answer that got here
/// is accepted: from a local actor, or over a connection the request was
/// forwarded on, which checked it.
pub(crate) fn may_answer(asked: &Address, from: &Address) -> bool {
    match asked.link_id() {
        Some(link) => from == asked || from.is_null() || from.link_id() == Some(link),
        None => true,
    }
}

/// The error for a message that could not be queued, handing it back.
fn refused(slot: Option<Envelope>, why: PushError) -> SendError<Payload> {
    match slot {
        Some(envelope) => SendError::from_push(envelope.payload, why),
        None => unreachable!("a refused envelope stays in its slot"),
    }
}
