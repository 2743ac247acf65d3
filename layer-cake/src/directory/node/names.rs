//! One instance of a name per scope.
//!
//! A node holds at most one publication of a name at a scope. Two listings
//! of the same name and scope that meet at a node are in the same domain of
//! that scope (the same process, composite, host or LAN: a node is under
//! exactly one node of each wider level), so the second is a clash wherever
//! it is seen — at the publisher's own process node when both are in one
//! process, else at the first node above where both arrive, at the latest
//! the node that owns the scope. The same name at *different* scopes is no
//! clash: the nearest route wins (`routes.rs`).
//!
//! A clash in the publisher's own process is refused at once with
//! `NotPublished`. A clash found above is refused there (counted as a
//! refusal, not listed, not passed further up) and an [`Advisory`] goes
//! back down the link the publication came over; each node below passes it
//! on the same way to the publisher's process node, which logs
//! `Cannot publish <name> at <scope>: …`, sends the publisher `NotPublished`
//! and withdraws the publication. The publication listed first is never
//! touched. The same publication listed again (a snapshot after a
//! reconnect: the same id) is not a clash.

use uuid::Uuid;

use super::super::protocol::{Advisory, Publication};
use super::super::{NotPublished, Scope};
use super::Node;
use super::parent::Parent;
use super::store::Source;
use crate::runtime::{Address, Context};

/// How much of a name a peer sent goes into a log line.
const LOGGED_NAME: usize = 128;

/// Why a publication of `name` at `scope` is refused: another publication
/// has that name at that scope.
pub(super) fn already_published(name: &str, scope: Scope) -> String {
    format!("{name} is already published at {scope} by another publisher")
}

/// At most [`LOGGED_NAME`] bytes of `name` (cut at a character boundary),
/// for a log line about something a peer sent.
fn bounded(name: &str) -> String {
    if name.len() <= LOGGED_NAME {
        return name.to_owned();
    }
    let mut end = LOGGED_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &name[..end], name.len())
}

impl Node {
    /// Whether a publication other than `id` holds `name` at `scope` here,
    /// listed or (at a process node) waiting for its session listen.
    pub(super) fn name_taken(&self, name: &str, scope: Scope, id: Option<Uuid>) -> bool {
        let listed = self.publications.values().any(|h| {
            h.listing.name == name && h.listing.scope == scope && Some(h.listing.id) != id
        });
        listed
            || self
                .waiting
                .iter()
                .any(|(p, _, waiting)| p.name == name && p.scope == scope && Some(*waiting) != id)
    }

    /// A publication listed over the link of `child` clashes with one held
    /// here: it is refused (counted, not listed, not passed up) and the
    /// child is told with an [`Advisory`], down that link alone.
    pub(super) fn refuse_clash(
        &mut self,
        cx: &mut Context,
        publication: &Publication,
        child: &Address,
    ) {
        self.refusals.refuse(
            self.level(),
            "a publication of a name already published at its scope",
            &format!("{} at {}", publication.name, publication.scope),
        );
        let advisory = Advisory {
            publication: publication.id,
            name: publication.name.clone(),
            scope: publication.scope,
            level: self.level(),
        };
        let _ = cx.send(advisory, child);
    }

    /// An [`Advisory`] from above. Believed only over the parent link, for
    /// a publication this node holds and passed up that link, with its own
    /// name and scope, from a level between this node's and the
    /// publication's scope. A relaying node passes it on down the link the
    /// publication came over; the publisher's process node logs it, tells
    /// the publisher and withdraws the publication. Anything else is
    /// counted and logged as a refusal (with at most [`LOGGED_NAME`] bytes
    /// of the name it carried); one for a publication no longer held (it
    /// went while the advisory was on its way) is only logged at debug
    /// level.
    pub(super) fn advised(&mut self, cx: &mut Context, a: Advisory) {
        let from = cx.return_address().clone();
        let over = from.link_id();
        let from_parent =
            over.is_some() && matches!(&self.parent, Parent::Up(p) if p.link_id() == over);
        let level = self.level();
        if !from_parent {
            self.refusals.refuse(
                level,
                "an Advisory not from the parent",
                &format!("for {} at {} from {from}", bounded(&a.name), a.scope),
            );
            return;
        }
        let Some(held) = self.publications.get(&a.publication) else {
            tracing::debug!(
                %level,
                "an Advisory for {} at {}, no longer listed here",
                bounded(&a.name),
                a.scope
            );
            return;
        };
        let listing = &held.listing;
        let fits = listing.name == a.name
            && listing.scope == a.scope
            && listing.scope > level
            && a.level > level
            && a.level <= listing.scope;
        if !fits {
            self.refusals.refuse(
                level,
                "an Advisory that does not fit what was passed up",
                &format!(
                    "for {} at {} (from the {} level)",
                    bounded(&a.name),
                    a.scope,
                    a.level
                ),
            );
            return;
        }
        let (id, name, scope) = (listing.id, listing.name.clone(), listing.scope);
        match held.from.clone() {
            Source::Link(link) => {
                let child = self
                    .accepted
                    .keys()
                    .find(|proxy| proxy.link_id() == Some(link))
                    .cloned();
                if let Some(child) = child {
                    let _ = cx.send(a, &child);
                }
            }
            Source::Local(publisher) => {
                let reason = format!(
                    "{} (refused by the {} directory)",
                    already_published(&name, scope),
                    a.level
                );
                tracing::warn!(%level, "Cannot publish {name} at {scope}: {reason}");
                let _ = cx.send(
                    NotPublished {
                        name,
                        scope,
                        reason: reason.clone(),
                    },
                    &publisher,
                );
                self.withdraw_publication(cx, id, &reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_name_is_bounded() {
        assert_eq!(bounded("svc"), "svc");
        let long = "é".repeat(200);
        let shown = bounded(&long);
        assert!(shown.len() < 160, "{shown}");
        assert!(shown.ends_with("(400 bytes)"), "{shown}");
    }
}
