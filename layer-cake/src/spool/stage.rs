//! Pipelines: spools in a row, each stage's workers passing work on to the
//! next stage or answering the original requester at once.
//!
//! A **stage** is a spool over the workers that publish `<stage>:<anything>`
//! ([`Context::spawn_stage`]); the stage itself is published as `<stage>`,
//! so that the workers of the stage before find it by name
//! ([`NextStage`]). A stage worker handles each request in one of two ways:
//!
//! - it **answers** — a result, or an error such as a 400 for a bad
//!   request — with a plain `cx.reply(..)`: its spool passes the answer to
//!   the stage's caller, which is the original requester (for the first
//!   stage) or the request's *ingress* (for the stages after it), and the
//!   remaining stages are skipped;
//! - it **passes** an intermediate result on to the next stage with
//!   [`pass`] (or [`NextStage::pass`]): the next stage gets the result with
//!   the ingress as its return address and the request's [`Meta`](crate::runtime::Meta)
//!   (trace, caller, ingress), and the worker answers its own spool with
//!   [`Passed`], which frees the worker for the next request without
//!   answering anyone — the final answer reaches the requester through the
//!   ingress.
//!
//! Each stage is its own spool, with its own queue, deadlines and workers:
//! a slow stage can have more workers than a fast one. `docs/pipelines.md`
//! walks through the prime-number demo built this way.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{SpoolError, SpoolOptions, Workers};
use crate::directory::{
    Available, Delivered, Dropped, NotPublished, NotSubscribed, Published, Scope, Subscribed,
};
use crate::message::{Faulted, Message, Returned, Stop};
use crate::runtime::{Address, Context, SendError};

/// A stage worker's answer to its spool: "this request went on to the next
/// stage, whose answer reaches the requester through the ingress". The
/// spool frees the worker and answers nobody.
///
/// Only a spool understands it: a stage worker must sit behind a spool (a
/// [`Context::spawn_stage`] or any other), never be asked directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(name = "layer_cake.spool.Passed")]
pub struct Passed;

/// Passes `message` on to the next stage at `next`, for the request being
/// handled: `next` gets it with the request's ingress as the return address
/// (and the request's [`Meta`](crate::runtime::Meta)), and the request is
/// answered [`Passed`] so that this worker's spool frees it.
///
/// # Errors
///
/// When the request names no ingress (nothing would take the final
/// answer) or `next` cannot be reached, the request is answered with a
/// fault saying so (`TemporarilyUnavailable`, `Overloaded` for a full
/// mailbox, or a 500), which is also returned.
pub fn pass<M: Message>(cx: &Context, message: M, next: &Address) -> Result<(), Faulted> {
    let Some(ingress) = cx.meta().and_then(|m| m.ingress.clone()) else {
        return Err(refuse(
            cx,
            Faulted::new("no ingress")
                .with_explanation(
                    "a pipeline stage passes work on only for a request that names the \
                     ingress taking the final answer (an HTTP front sets it)",
                )
                .with_error_code(500),
        ));
    };
    match cx.forward_from(message, next, &ingress) {
        Ok(()) => {
            let _ = cx.reply(Passed);
            Ok(())
        }
        Err(SendError::Full(_)) => Err(refuse(
            cx,
            Faulted::overloaded(format!("the next stage's mailbox is full ({next})")),
        )),
        Err(e) => Err(refuse(
            cx,
            Faulted::temporarily_unavailable(format!("the next stage at {next}: {e}")),
        )),
    }
}

/// Answers the request being handled with `fault`, and gives it back.
fn refuse(cx: &Context, fault: Faulted) -> Faulted {
    let _ = cx.reply(fault.clone());
    fault
}

/// Where a stage worker passes its work: the stage published under a name,
/// found through the directory.
///
/// [`find`](NextStage::find) subscribes to the name; hand it the worker's
/// `Available` and `Dropped` messages ([`available`](NextStage::available),
/// [`dropped`](NextStage::dropped)) and [`pass`](NextStage::pass) work on.
///
/// ```rust,ignore
/// let mut next = NextStage::find(&mut cx, "prime:compute", Scope::Host);
/// loop {
///     on!(cx.input().await, {
///         Available as a => { next.available(&a); },
///         Dropped as d => { next.dropped(&d); },
///         HttpRequest as r => match parse(&r) {
///             Ok(n) => { let _ = next.pass(&cx, PossiblePrime { n }); },
///             Err(bad) => { let _ = cx.reply(HttpResponse::text(400, bad)); },
///         },
///         // …
///     })
/// }
/// ```
#[derive(Debug, Clone)]
pub struct NextStage {
    name: String,
    at: Option<Address>,
}

impl NextStage {
    /// Subscribes to the stage published as `name` (exactly) at `scope`.
    /// The answer to the subscription ([`Subscribed`] or [`NotSubscribed`])
    /// comes to the actor as usual.
    pub fn find(cx: &mut Context, name: impl Into<String>, scope: Scope) -> Self {
        let name = name.into();
        cx.subscribe(regex::escape(&name), scope);
        NextStage { name, at: None }
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stage's address, once the directory has introduced it.
    pub fn address(&self) -> Option<&Address> {
        self.at.as_ref()
    }

    /// Takes an `Available`; whether it was this stage's.
    pub fn available(&mut self, a: &Available) -> bool {
        let ours = a.name == self.name;
        if ours {
            self.at = Some(a.publisher.clone());
        }
        ours
    }

    /// Takes a `Dropped`; whether it was this stage's.
    pub fn dropped(&mut self, d: &Dropped) -> bool {
        let ours = d.name == self.name;
        if ours && self.at.as_ref() == Some(&d.remote) {
            self.at = None;
        }
        ours
    }

    /// [`pass`] to this stage; while it is not available, the request is
    /// answered `TemporarilyUnavailable` (a 503 over HTTP).
    ///
    /// # Errors
    ///
    /// The fault the request was answered with, as for [`pass`].
    pub fn pass<M: Message>(&self, cx: &Context, message: M) -> Result<(), Faulted> {
        match &self.at {
            Some(next) => pass(cx, message, next),
            None => Err(refuse(
                cx,
                Faulted::temporarily_unavailable(format!(
                    "the next stage {:?} is not available",
                    self.name
                )),
            )),
        }
    }
}

/// How long a stopping stage waits for its spool.
const STOP_GRACE: Duration = Duration::from_secs(15);

impl Context {
    /// Starts a pipeline stage as a child of this actor and returns its
    /// address: a spool (with `options`) over the workers that publish
    /// `<name>:<anything>` at `scope`, itself published as `name` at `scope`
    /// so that the workers of the stage before find it ([`NextStage`]).
    ///
    /// Requests sent (or forwarded) to the returned address go to the spool.
    /// `Stop` stops the spool (which answers what it holds `Aborted`) and
    /// then the stage. The stage ends with a fault if its name cannot be
    /// published or subscribed to, or if its spool ends.
    ///
    /// # Errors
    ///
    /// [`SpoolError::BadOption`] when an option is out of range.
    pub fn spawn_stage(
        &mut self,
        name: impl Into<String>,
        scope: Scope,
        options: SpoolOptions,
    ) -> Result<Address, SpoolError> {
        options.validate(&Workers::external())?;
        let name = name.into();
        Ok(self.spawn(move |cx| stage(cx, name, scope, options)))
    }
}

/// The stage actor: publishes the stage, feeds its spool from the
/// directory and passes every request to the spool.
async fn stage(
    mut cx: Context,
    name: String,
    scope: Scope,
    options: SpoolOptions,
) -> Result<(), Faulted> {
    let spool = cx.spawn_spool(Workers::external(), options)?;
    cx.publish(name.clone(), scope);
    cx.subscribe(format!("{}:.+", regex::escape(&name)), scope);
    loop {
        let message = cx.input().await;
        crate::on!(message, {
            // A worker of this stage: `Available` comes only for the
            // subscription; `Dropped` also ends a session of the stage's
            // own publication (a stage before it went), which is not a
            // worker.
            Available as a => { let _ = cx.send(a, &spool); },
            Dropped as d => {
                if d.name != name {
                    let _ = cx.send(d, &spool);
                }
            },
            Published as _ => {},
            Subscribed as _ => {},
            Delivered as _ => {},
            NotPublished as n => {
                return Err(Faulted::new(format!("cannot publish the stage {}", n.name)).with_explanation(n.reason));
            },
            NotSubscribed as n => {
                return Err(Faulted::new(format!("cannot find the workers of the stage {name}")).with_explanation(n.reason));
            },
            Returned as _ => {
                return Err(Faulted::new(format!("the spool of the stage {name} ended")));
            },
            Stop as _ => {
                let _ = cx.stop(&spool, STOP_GRACE).await;
                return Err(Faulted::aborted());
            },
            request => {
                if let Err(e) = cx.forward_payload(request, &spool) {
                    let _ = cx.reply(Faulted::out_of_service(format!("the stage {name} has no spool: {e}")));
                }
            },
        })
    }
}
