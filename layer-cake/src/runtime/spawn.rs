//! Starting actors, and what happens when they end.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::address::{ActorId, Address};
use super::context::Context;
use super::envelope::Tag;
use super::mailbox::Mailbox;
use crate::message::{Faulted, Message, Payload, Returned};

/// How many user messages a mailbox holds unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 1024;

pub(crate) fn next_id() -> ActorId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    ActorId(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What an actor's function may return: a message (its value), or a
/// `Result` whose error becomes a [`Faulted`].
pub trait IntoReturn: Send + 'static {
    /// The type of the value.
    type Value: Message;
    /// The value, or the fault.
    fn into_return(self) -> Result<Self::Value, Faulted>;

    /// The value as a [`Payload`], or the fault. Overridden by the runtime
    /// for actors that end with a value whose type is only known at run time
    /// (a child process's proxy); not meant to be overridden elsewhere.
    #[doc(hidden)]
    fn into_payload(self) -> Result<Payload, Faulted>
    where
        Self: Sized,
    {
        self.into_return().map(Payload::new)
    }
}

impl<T: Message> IntoReturn for T {
    type Value = T;
    fn into_return(self) -> Result<T, Faulted> {
        Ok(self)
    }
}

impl<T: Message, E: Into<Faulted> + Send + 'static> IntoReturn for Result<T, E> {
    type Value = T;
    fn into_return(self) -> Result<T, Faulted> {
        self.map_err(Into::into)
    }
}

/// The end of an actor whose value's type is known only at run time — a
/// value decoded from a child process's output, a role's result passed on.
/// Its parent's [`Returned`](crate::Returned) holds the payload as it is.
#[derive(Debug)]
pub struct AnyReturn(pub Result<Payload, Faulted>);

impl IntoReturn for AnyReturn {
    type Value = ();

    fn into_return(self) -> Result<(), Faulted> {
        self.0.map(drop)
    }

    fn into_payload(self) -> Result<Payload, Faulted> {
        self.0
    }
}

/// Options for spawning an actor.
///
/// ```
/// use layer_cake::runtime::SpawnOptions;
/// let options = SpawnOptions::new().name("worker-1").capacity(64);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) capacity: Option<usize>,
}

impl SpawnOptions {
    /// Default options: the name from the function or type, a mailbox of
    /// [`DEFAULT_CAPACITY`] user messages.
    pub fn new() -> Self {
        SpawnOptions::default()
    }

    /// The name shown in logs.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many user messages the mailbox holds before refusing more.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    pub(crate) fn name_or(&self, default: &'static str) -> Cow<'static, str> {
        self.name.clone().unwrap_or(Cow::Borrowed(default))
    }
}

/// `my_crate::module::worker` → `worker`; closures are named after the
/// function they are written in.
pub(crate) fn short_name(type_name: &'static str) -> &'static str {
    let base = type_name.split('<').next().unwrap_or(type_name);
    base.split("::")
        .filter(|segment| !segment.is_empty() && !segment.starts_with("{{"))
        .last()
        .unwrap_or(base)
}

/// Where an actor's value goes when it ends.
pub(crate) enum OnEnd {
    /// `Returned` to the parent address.
    Parent,
    /// To the handle of a top-level actor.
    Handle(oneshot::Sender<Result<Payload, Faulted>>),
}

/// Turns what an actor's function ended with into its value or fault.
fn outcome<O: IntoReturn>(output: O) -> Result<Payload, Faulted> {
    let payload = output.into_payload()?;
    // A returned fault is a fault, however it was returned.
    match payload.downcast::<Faulted>() {
        Ok(fault) => Err(fault),
        Err(payload) => Ok(payload),
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> Faulted {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_string());
    Faulted::new("actor panicked").with_explanation(text)
}

pin_project_lite::pin_project! {
    /// An actor's function, run to its end: a panic or an error becomes a
    /// fault. Written by hand rather than as an `async` block because nested
    /// async blocks store their captures more than once, and an idle actor
    /// must stay small.
    pub(crate) struct Catch<Fut> {
        #[pin]
        future: Option<Fut>,
    }
}

impl<Fut> Catch<Fut> {
    /// Calls `actor(cx)`, catching a panic in the call itself too.
    pub(crate) fn new<F: FnOnce(Context) -> Fut>(actor: F, cx: Context) -> Result<Self, Faulted> {
        match std::panic::catch_unwind(AssertUnwindSafe(move || actor(cx))) {
            Ok(future) => Ok(Catch {
                future: Some(future),
            }),
            Err(panic) => Err(panicked(panic)),
        }
    }
}

impl<Fut> Future for Catch<Fut>
where
    Fut: Future,
    Fut::Output: IntoReturn,
{
    type Output = Result<Payload, Faulted>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Faulted::new("actor polled after it ended")));
        };
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(task)));
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => outcome(output),
            Err(panic) => Err(panicked(panic)),
        };
        // Drop the actor's state (and so its context) before reporting.
        this.future.set(None);
        Poll::Ready(result)
    }
}

pin_project_lite::pin_project! {
    /// A spawned actor's task: runs the actor, then delivers its value.
    struct ActorTask<Fut> {
        #[pin]
        run: Catch<Fut>,
        me: Address,
        parent: Address,
        on_end: Option<OnEnd>,
    }
}

impl<Fut> Future for ActorTask<Fut>
where
    Fut: Future,
    Fut::Output: IntoReturn,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.project();
        let result = std::task::ready!(this.run.poll(task));
        if let Some(on_end) = this.on_end.take() {
            deliver(result, this.me, this.parent, on_end);
        }
        Poll::Ready(())
    }
}

pub(crate) fn actor_span(id: ActorId, name: &str) -> tracing::Span {
    tracing::info_span!(target: "layer_cake::actor", "actor", id = id.0, name = name, state = tracing::field::Empty)
}

/// Creates the mailbox, spawns the task, returns the address.
pub(crate) fn start<F, Fut>(
    name: Cow<'static, str>,
    capacity: Option<usize>,
    parent: Address,
    actor: F,
    on_end: OnEnd,
) -> Address
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoReturn,
{
    let mailbox = Arc::new(Mailbox::new(
        next_id(),
        name,
        capacity.unwrap_or(DEFAULT_CAPACITY),
    ));
    let me = Address::local(mailbox.clone());
    let span = actor_span(mailbox.id, &mailbox.name);
    created(&mailbox, &parent);
    let cx = Context::new(mailbox, parent.clone(), false);
    match Catch::new(actor, cx) {
        Ok(run) => {
            let task = ActorTask {
                run,
                me: me.clone(),
                parent,
                on_end: Some(on_end),
            };
            // Only pay for the span when something will log under it.
            if span.is_disabled() {
                tokio::spawn(task);
            } else {
                tokio::spawn(task.instrument(span));
            }
        }
        Err(fault) => deliver(Err(fault), &me, &parent, on_end),
    }
    me
}

/// Logs a new actor's first line, before it can run.
pub(crate) fn created(mailbox: &Mailbox, parent: &Address) {
    tracing::debug!(
        target: "layer_cake::object",
        actor = mailbox.id.0,
        name = &*mailbox.name,
        tag = "+",
        "Created by {parent}"
    );
}

pub(crate) fn deliver(
    result: Result<Payload, Faulted>,
    me: &Address,
    parent: &Address,
    on_end: OnEnd,
) {
    if let Some(mailbox) = me.mailbox() {
        let ending = match &result {
            Ok(value) => format!("returned {}", value.signature()),
            Err(fault) => format!("faulted: {fault}"),
        };
        tracing::debug!(
            target: "layer_cake::object",
            actor = mailbox.id.0,
            name = &*mailbox.name,
            tag = "X",
            "Destroyed ({ending})"
        );
    }
    match on_end {
        OnEnd::Parent => {
            let value = result.unwrap_or_else(Payload::new);
            let _ = parent.post(Returned::new(value), me.clone(), Tag::None, None);
        }
        OnEnd::Handle(sender) => {
            let _ = sender.send(result);
        }
    }
}

/// A top-level actor: its address, and a way to wait for its value.
///
/// Dropping the handle does not stop the actor.
pub struct ActorHandle<T> {
    address: Address,
    ended: oneshot::Receiver<Result<Payload, Faulted>>,
    _value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ActorHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorHandle")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl<T> ActorHandle<T> {
    /// The actor's address.
    pub fn address(&self) -> &Address {
        &self.address
    }
}

impl<T: Message> ActorHandle<T> {
    /// Waits for the actor to end and returns its value or its fault.
    pub async fn join(self) -> Result<T, Faulted> {
        Returned::new(self.join_payload().await?).into_result::<T>()
    }

    /// Waits for the actor to end and returns its value untyped.
    pub async fn join_payload(self) -> Result<Payload, Faulted> {
        match self.ended.await {
            Ok(result) => result,
            Err(_) => Err(Faulted::new("actor lost")
                .with_explanation("its task was cancelled before it returned")),
        }
    }
}

/// Spawns a top-level actor (one with no parent) on the current tokio
/// runtime.
///
/// # Panics
///
/// Panics when called outside a tokio runtime.
pub fn spawn<F, Fut>(actor: F) -> ActorHandle<<Fut::Output as IntoReturn>::Value>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoReturn,
{
    spawn_with(SpawnOptions::default(), actor)
}

/// [`spawn`] with options.
pub fn spawn_with<F, Fut>(
    options: SpawnOptions,
    actor: F,
) -> ActorHandle<<Fut::Output as IntoReturn>::Value>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoReturn,
{
    let (sender, ended) = oneshot::channel();
    let name = options.name_or(short_name(std::any::type_name::<F>()));
    let address = start(
        name,
        options.capacity,
        Address::NULL,
        actor,
        OnEnd::Handle(sender),
    );
    ActorHandle {
        address,
        ended,
        _value: PhantomData,
    }
}

/// Spawns a [`Machine`](super::Machine) as a top-level actor.
pub fn spawn_machine<M: super::Machine>(
    machine: M,
) -> ActorHandle<<M::Output as IntoReturn>::Value> {
    let options = SpawnOptions::new().name(short_name(std::any::type_name::<M>()));
    spawn_with(options, move |cx| super::machine::run(cx, machine))
}

/// Asks an actor from outside any actor: sends `message` and waits up to
/// `timeout` for an answer of type `R`.
pub async fn ask<R: Message, M: Message>(
    message: M,
    to: &Address,
    timeout: std::time::Duration,
) -> Result<R, super::AskError<M>> {
    Context::detached("ask").ask(message, to, timeout).await
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn short_names() {
        assert_eq!(short_name("demo::worker"), "worker");
        assert_eq!(short_name("demo::main::{{closure}}"), "main");
        assert_eq!(
            short_name("layer_cake::runtime::tests::Counter<u8>"),
            "Counter"
        );
        assert_eq!(short_name("plain"), "plain");
    }
}
