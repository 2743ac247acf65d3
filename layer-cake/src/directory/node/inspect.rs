//! `Inspect`: a node describing itself, and passing an inspection on to a
//! child so that an asker walks the tree without holding child addresses;
//! `Climb`: passing an inspection up to the top of the tree first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::super::protocol::{Climb, DirectoryListing, Inspect, InspectSweep, MAX_CLIMB};
use super::Node;
use super::matching::matching;
use super::parent::Parent;
use crate::message::{Faulted, Message};
use crate::net::HostPort;
use crate::runtime::{Address, Context, RequestId, ReturnPath};

pub(super) use super::super::protocol::InspectSweep as Sweep;

/// How long a node waits for a child (or its parent) to answer an
/// inspection it passed on; then the asker gets a fault saying it did not
/// answer.
pub const INSPECT_PATIENCE: Duration = Duration::from_secs(10);

/// The most inspections a node passes on and waits for at once (climbs
/// waiting for the parent link included); past that one is answered with a
/// fault at once.
pub const MAX_PENDING_INSPECTIONS: usize = 64;

/// The most publications, subscriptions, sessions and routes one
/// [`DirectoryListing`] names in all; the rest are counted in `omitted`.
pub const MAX_INSPECT_ENTRIES: usize = 2000;

/// The most bytes of names and patterns one [`DirectoryListing`] carries
/// (each entry counts its text and 64 bytes besides); the rest are counted
/// in `omitted`. Well under the native links' largest frame.
pub const MAX_INSPECT_BYTES: usize = 256 * 1024;

/// The most children one [`DirectoryListing`] names; the rest are counted
/// in `omitted` (and cannot be walked to).
pub const MAX_INSPECT_CHILDREN: usize = 1024;

// The most an answer to a remote asker carries is well under the native
// links' largest frame (1 MiB by default).
const _: () = assert!(MAX_INSPECT_BYTES + MAX_INSPECT_CHILDREN * 64 < 1 << 20);

/// The most (subscription, publication) pairs a node checks to list its
/// routes for one inspection; publications not reached are counted in
/// `omitted`.
const MAX_ROUTE_CHECKS: usize = 1_000_000;

/// How often waiting inspections are checked against [`INSPECT_PATIENCE`].
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Who asked, and since when.
pub(super) struct Pending {
    asker: ReturnPath,
    /// The asker is in another process: it gets tags, not ids.
    remote: bool,
    since: Instant,
}

/// The inspections a node is waiting on.
#[derive(Default)]
pub(super) struct Inspections {
    /// Passed on to a child or the parent, by request.
    passed: HashMap<RequestId, Pending>,
    /// Climbs waiting for the parent link to come up.
    queued: Vec<(Climb, Pending)>,
    /// The sweep timer is running.
    sweeping: bool,
}

impl Inspections {
    fn len(&self) -> usize {
        self.passed.len() + self.queued.len()
    }
}

/// What a remote asker sees in place of a listing id: a one-way hash of
/// it, the same at every node.
pub(super) fn tag(id: Uuid) -> Uuid {
    use blake2::{Blake2s256, Digest};
    let mut hash = Blake2s256::new();
    hash.update(b"layer-cake listing tag\0");
    hash.update(id.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// What is left of a [`DirectoryListing`]'s room.
struct Budget {
    entries: usize,
    bytes: usize,
    omitted: u64,
}

impl Budget {
    /// Takes room for an entry with `text` in it; false (and counted as
    /// omitted) when there is none.
    fn take(&mut self, text: &str) -> bool {
        let cost = text.len() + 64;
        if self.entries == 0 || self.bytes < cost {
            self.omitted += 1;
            return false;
        }
        self.entries -= 1;
        self.bytes -= cost;
        true
    }
}

impl Node {
    fn pending(cx: &Context) -> Pending {
        Pending {
            asker: cx.return_path(),
            remote: cx.return_address().is_remote(),
            since: Instant::now(),
        }
    }

    pub(super) fn inspect(&mut self, cx: &mut Context, i: Inspect) {
        let asker = Self::pending(cx);
        self.descend(cx, asker, i.below);
    }

    /// Answers `asker` with this node's description, or passes the
    /// inspection on to the child that `below` starts with.
    fn descend(&mut self, cx: &mut Context, asker: Pending, below: Vec<HostPort>) {
        let Some((step, rest)) = below.split_first() else {
            let _ = asker.asker.reply(self.describe(asker.remote));
            return;
        };
        let child = self
            .children
            .iter()
            .find(|(_, at)| *at == step)
            .map(|(proxy, _)| proxy.clone());
        let Some(child) = child else {
            let _ = asker.asker.reply(
                Faulted::new("no such child directory")
                    .with_explanation(format!("no child directory connects from {step}")),
            );
            return;
        };
        if self.too_many(&asker) {
            return;
        }
        let inspect = Inspect {
            below: rest.to_vec(),
        };
        self.pass_on(
            cx,
            inspect,
            &child,
            asker,
            "cannot reach the child directory",
        );
    }

    /// Answers `asker` with a fault when the node waits on too many
    /// inspections already.
    fn too_many(&self, asker: &Pending) -> bool {
        if self.inspecting.len() < MAX_PENDING_INSPECTIONS {
            return false;
        }
        let _ = asker.asker.reply(Faulted::overloaded(format!(
            "{MAX_PENDING_INSPECTIONS} inspections are waiting for other directories"
        )));
        true
    }

    fn pass_on<M: Message>(
        &mut self,
        cx: &mut Context,
        message: M,
        to: &Address,
        asker: Pending,
        cannot: &str,
    ) {
        match cx.request(message, to) {
            Ok(request) => {
                self.inspecting.passed.insert(request, asker);
                self.sweep_soon(cx);
            }
            Err(e) => {
                let _ = asker
                    .asker
                    .reply(Faulted::new(cannot).with_explanation(e.to_string()));
            }
        }
    }

    fn sweep_soon(&mut self, cx: &mut Context) {
        if !self.inspecting.sweeping {
            self.inspecting.sweeping = true;
            cx.start_timer(InspectSweep, SWEEP_EVERY);
        }
    }

    /// A climb: up to the parent while this node is narrower than asked,
    /// else inspect from here.
    pub(super) fn climb(&mut self, cx: &mut Context, c: Climb) {
        let asker = Self::pending(cx);
        if self.level() >= c.up_to || c.climbed >= MAX_CLIMB {
            return self.descend(cx, asker, c.below);
        }
        match &self.parent {
            Parent::None => self.descend(cx, asker, c.below),
            Parent::Up(proxy) => {
                let proxy = proxy.clone();
                if !self.too_many(&asker) {
                    self.climb_on(cx, c, &proxy, asker);
                }
            }
            Parent::Idle | Parent::Connecting => {
                if !self.too_many(&asker) {
                    self.inspecting.queued.push((c, asker));
                    self.sweep_soon(cx);
                    self.connect_parent(cx);
                }
            }
            Parent::Waiting => self.cannot_climb(cx, c, asker, "not connected (retrying)"),
        }
    }

    fn climb_on(&mut self, cx: &mut Context, c: Climb, parent: &Address, asker: Pending) {
        let climb = Climb {
            climbed: c.climbed.saturating_add(1),
            ..c
        };
        self.pass_on(
            cx,
            climb,
            parent,
            asker,
            "cannot reach the parent directory",
        );
    }

    /// The parent cannot be reached: the node asked first says so, a node
    /// above it is the top.
    fn cannot_climb(&mut self, cx: &mut Context, c: Climb, asker: Pending, why: &str) {
        if c.climbed > 0 {
            return self.descend(cx, asker, c.below);
        }
        let at = self
            .options
            .parent
            .as_ref()
            .map_or_else(String::new, HostPort::to_string);
        let _ = asker.asker.reply(Faulted::new(format!(
            "cannot reach the directory at {at}: {why}"
        )));
    }

    /// The parent link is up: the climbs waiting for it go on.
    pub(super) fn climbs_parent_up(&mut self, cx: &mut Context) {
        let Parent::Up(proxy) = &self.parent else {
            return;
        };
        let proxy = proxy.clone();
        for (c, asker) in std::mem::take(&mut self.inspecting.queued) {
            self.climb_on(cx, c, &proxy, asker);
        }
    }

    /// The parent link could not be made, for `reason`.
    pub(super) fn climbs_parent_unreachable(&mut self, cx: &mut Context, reason: &str) {
        for (c, asker) in std::mem::take(&mut self.inspecting.queued) {
            self.cannot_climb(cx, c, asker, reason);
        }
    }

    /// An answer to an inspection passed on.
    pub(super) fn inspected(&mut self, cx: &mut Context, listing: DirectoryListing) {
        let Some(request) = cx.answers() else { return };
        if let Some(pending) = self.inspecting.passed.remove(&request) {
            let _ = pending.asker.reply(listing);
        }
    }

    /// A fault answering an inspection passed on; false if it was not one.
    pub(super) fn inspect_failed(&mut self, cx: &mut Context, f: &Faulted) -> bool {
        let Some(request) = cx.answers() else {
            return false;
        };
        match self.inspecting.passed.remove(&request) {
            Some(pending) => {
                let _ = pending.asker.reply(f.clone());
                true
            }
            None => false,
        }
    }

    pub(super) fn sweep_inspections(&mut self, cx: &mut Context) {
        let now = Instant::now();
        let late = |p: &Pending| now.duration_since(p.since) >= INSPECT_PATIENCE;
        let expired: Vec<_> = self
            .inspecting
            .passed
            .iter()
            .filter(|(_, p)| late(p))
            .map(|(r, _)| *r)
            .collect();
        for request in expired {
            if let Some(pending) = self.inspecting.passed.remove(&request) {
                let _ = pending
                    .asker
                    .reply(Faulted::new("no answer").with_explanation(format!(
                        "the directory it was passed to did not answer within {INSPECT_PATIENCE:?}"
                    )));
            }
        }
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.inspecting.queued)
            .into_iter()
            .partition(|(_, p)| late(p));
        self.inspecting.queued = waiting;
        for (_, pending) in expired {
            let _ = pending
                .asker
                .reply(Faulted::new("no answer").with_explanation(format!(
                    "the parent directory was not reached within {INSPECT_PATIENCE:?}"
                )));
        }
        self.inspecting.sweeping = false;
        if self.inspecting.len() > 0 {
            self.sweep_soon(cx);
        }
    }

    /// This node's description. A `remote` asker gets tags in place of
    /// ids, and an answer bounded by [`MAX_INSPECT_ENTRIES`] and the
    /// others (it crosses a link); an actor of this process gets it all.
    pub(super) fn describe(&self, remote: bool) -> DirectoryListing {
        let shown = |id: Uuid| if remote { tag(id) } else { id };
        let mut budget = if remote {
            Budget {
                entries: MAX_INSPECT_ENTRIES,
                bytes: MAX_INSPECT_BYTES,
                omitted: 0,
            }
        } else {
            Budget {
                entries: usize::MAX,
                bytes: usize::MAX,
                omitted: 0,
            }
        };
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
        published.retain(|p| budget.take(&p.0));
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
        subscribed.retain(|s| budget.take(&s.0));
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
        connected.retain(|c| budget.take(&c.0));
        let mut routed: Vec<_> = self
            .routes(&mut budget)
            .into_iter()
            .map(|(name, s, p)| (name, shown(s), shown(p)))
            .collect();
        routed.sort();
        routed.retain(|r| budget.take(&r.0));
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
        if remote && children.len() > MAX_INSPECT_CHILDREN {
            budget.omitted += (children.len() - MAX_INSPECT_CHILDREN) as u64;
            children.truncate(MAX_INSPECT_CHILDREN);
        }
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
            routed,
            children,
            omitted: budget.omitted,
            refused: self.refusals.counts(),
        }
    }

    /// The matches this node holds: every (publication name, subscription
    /// id, publication id) whose pattern matches the name — each a route
    /// the node offered. At most [`MAX_ROUTE_CHECKS`] pairs are checked;
    /// the publications not reached count in the budget's `omitted`.
    fn routes(&self, budget: &mut Budget) -> Vec<(String, Uuid, Uuid)> {
        let mut publications: Vec<_> = self.publications.values().map(|h| &h.listing).collect();
        publications.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        let per = self.subscriptions.len().max(1);
        let mut routes = Vec::new();
        for (i, publication) in publications.iter().enumerate() {
            if (i + 1) * per > MAX_ROUTE_CHECKS {
                budget.omitted += (publications.len() - i) as u64;
                break;
            }
            let found = matching(
                &publication.name,
                self.subscriptions
                    .values()
                    .map(|s| (&*s.regex, s.listing.id)),
            );
            routes.extend(
                found
                    .into_iter()
                    .map(|s| (publication.name.clone(), s, publication.id)),
            );
            if routes.len() > budget.entries.min(MAX_ROUTE_CHECKS) {
                // More than can be shown: the rest are not looked for.
                budget.omitted += (publications.len() - i - 1) as u64;
                break;
            }
        }
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_stable_and_is_not_the_id() {
        let id = Uuid::new_v4();
        assert_eq!(tag(id), tag(id));
        assert_ne!(tag(id), id);
        assert_ne!(tag(id), tag(Uuid::new_v4()));
    }

    #[test]
    fn the_budget_counts_what_it_leaves_out() {
        let mut budget = Budget {
            entries: 2,
            bytes: MAX_INSPECT_BYTES,
            omitted: 0,
        };
        assert!(budget.take("a"));
        assert!(budget.take("b"));
        assert!(!budget.take("c"));
        assert_eq!(budget.omitted, 1);
        let mut budget = Budget {
            entries: MAX_INSPECT_ENTRIES,
            bytes: 1000,
            omitted: 0,
        };
        assert!(!budget.take(&"n".repeat(1000)));
        assert!(budget.take("short"));
        assert_eq!(budget.omitted, 1);
    }
}
