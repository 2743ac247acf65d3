//! `Inspect`: a node describing itself, and passing an inspection on to a
//! child so that an asker walks the tree without holding child addresses.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::super::protocol::{DirectoryListing, Inspect, InspectSweep};
use super::Node;
use super::parent::Parent;
use crate::message::Faulted;
use crate::runtime::{Context, ReturnPath};

pub(super) use super::super::protocol::InspectSweep as Sweep;

/// How long a node waits for a child to answer an `Inspect` it passed on;
/// then the asker gets a fault saying the child did not answer.
pub const INSPECT_PATIENCE: Duration = Duration::from_secs(10);

/// The most `Inspect`s a node passes on and waits for at once; past that
/// one is answered with a fault at once.
pub const MAX_PENDING_INSPECTIONS: usize = 64;

/// How often waiting inspections are checked against [`INSPECT_PATIENCE`].
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// An inspection passed on to a child.
pub(super) struct Pending {
    asker: ReturnPath,
    since: Instant,
}

impl Node {
    pub(super) fn inspect(&mut self, cx: &mut Context, i: Inspect) {
        let Some((step, rest)) = i.below.split_first() else {
            let remote = cx.return_address().is_remote();
            let _ = cx.reply(self.describe(remote));
            return;
        };
        let child = self
            .children
            .iter()
            .find(|(_, at)| *at == step)
            .map(|(proxy, _)| proxy.clone());
        let Some(child) = child else {
            let _ = cx.reply(
                Faulted::new("no such child directory")
                    .with_explanation(format!("no child directory connects from {step}")),
            );
            return;
        };
        if self.inspecting.len() >= MAX_PENDING_INSPECTIONS {
            let _ = cx.reply(Faulted::overloaded(format!(
                "{MAX_PENDING_INSPECTIONS} inspections are waiting for child directories"
            )));
            return;
        }
        let asker = cx.return_path();
        match cx.request(
            Inspect {
                below: rest.to_vec(),
            },
            &child,
        ) {
            Ok(request) => {
                if self.inspecting.is_empty() {
                    cx.start_timer(InspectSweep, SWEEP_EVERY);
                }
                self.inspecting.insert(
                    request,
                    Pending {
                        asker,
                        since: Instant::now(),
                    },
                );
            }
            Err(e) => {
                let _ = asker.reply(
                    Faulted::new("cannot reach the child directory")
                        .with_explanation(e.to_string()),
                );
            }
        }
    }

    /// A child's answer to an inspection passed on.
    pub(super) fn inspected(&mut self, cx: &mut Context, listing: DirectoryListing) {
        let Some(request) = cx.answers() else { return };
        if let Some(pending) = self.inspecting.remove(&request) {
            let _ = pending.asker.reply(listing);
        }
    }

    /// A fault answering an inspection passed on; false if it was not one.
    pub(super) fn inspect_failed(&mut self, cx: &mut Context, f: &Faulted) -> bool {
        let Some(request) = cx.answers() else {
            return false;
        };
        match self.inspecting.remove(&request) {
            Some(pending) => {
                let _ = pending.asker.reply(f.clone());
                true
            }
            None => false,
        }
    }

    pub(super) fn sweep_inspections(&mut self, cx: &mut Context) {
        let now = Instant::now();
        let expired: Vec<_> = self
            .inspecting
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= INSPECT_PATIENCE)
            .map(|(r, _)| *r)
            .collect();
        for request in expired {
            if let Some(pending) = self.inspecting.remove(&request) {
                let _ = pending
                    .asker
                    .reply(Faulted::new("no answer").with_explanation(format!(
                        "the child directory did not answer within {INSPECT_PATIENCE:?}"
                    )));
            }
        }
        if !self.inspecting.is_empty() {
            cx.start_timer(InspectSweep, SWEEP_EVERY);
        }
    }

    /// This node's description; for a `remote` asker without ids.
    pub(super) fn describe(&self, remote: bool) -> DirectoryListing {
        let shown = |id: Uuid| if remote { Uuid::nil() } else { id };
        let mut published: Vec<_> = self
            .publications
            .values()
            .map(|h| {
                (
                    h.listing.name.clone(),
                    h.listing.scope,
                    shown(h.listing.id),
                    h.listing.listening.clone(),
                )
            })
            .collect();
        published.sort();
        let mut subscribed: Vec<_> = self
            .subscriptions
            .values()
            .map(|h| {
                (
                    h.listing.pattern.clone(),
                    h.listing.scope,
                    shown(h.listing.id),
                )
            })
            .collect();
        subscribed.sort();
        let mut connected: Vec<_> = self
            .routing
            .iter()
            .filter_map(|(key, r)| {
                r.active
                    .as_ref()
                    .map(|a| (key.1.clone(), a.level, shown(a.publication), a.peer.clone()))
            })
            .collect();
        connected.sort();
        let executable = std::env::args()
            .next()
            .and_then(|p| {
                std::path::Path::new(&p)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let mut children: Vec<_> = self.children.values().cloned().collect();
        children.sort_by_key(|at| at.to_string());
        DirectoryListing {
            id: self.id,
            level: self.level(),
            executable,
            accepting: self.accepting.clone(),
            parent: self.options.parent.clone(),
            parent_connected: matches!(self.parent, Parent::Up(_)),
            published,
            subscribed,
            connected,
            children,
            refused: self.refusals.counts(),
        }
    }
}
