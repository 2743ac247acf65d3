//! The link to the parent directory: connecting, the snapshot on every
//! (re)connect, and what a lost link voids.

use std::time::Duration;

use uuid::Uuid;

use super::super::protocol::{Listings, LostAbove, Reconnect};
use super::super::{NotPublished, Scope};
use super::Node;
use super::routes::{Peer, RouteKey};
use super::store::Source;
use crate::net::{
    Close, Closed, ConnectOptions, Connected, HostPort, Listening, NotConnected, NotListening,
};
use crate::runtime::{Address, Context};

pub(super) enum Parent {
    /// No parent configured.
    None,
    /// Not connected; a listing that needs to go up starts a connect.
    Idle,
    Connecting,
    /// Waiting to retry.
    Waiting,
    Up(Address),
}

impl Node {
    // ---- the tree ------------------------------------------------------

    /// Whether a message for a subscriber's home came from above: over the
    /// parent link, to a process node (the only kind of home). Counted and
    /// logged when not.
    pub(super) fn came_from_above(&mut self, cx: &Context, what: &'static str) -> bool {
        let over = cx.return_address().link_id();
        let parent = match &self.parent {
            Parent::Up(proxy) => proxy.link_id(),
            _ => None,
        };
        if self.level() == Scope::Process && over.is_some() && over == parent {
            return true;
        }
        let from = cx.return_address().clone();
        self.refusals.refuse(
            self.options.level,
            what,
            &format!("from {from}, not over the parent link of a process node"),
        );
        false
    }

    pub(super) fn send_up<M: crate::Message>(&mut self, cx: &mut Context, message: M) {
        match &self.parent {
            Parent::Up(proxy) => {
                let _ = cx.send(message, proxy);
            }
            // The snapshot on connect will carry it.
            Parent::Idle => self.connect_parent(cx),
            Parent::None | Parent::Connecting | Parent::Waiting => {}
        }
    }

    pub(super) fn connect_parent(&mut self, cx: &mut Context) {
        if let (Some(at), Parent::Idle | Parent::Waiting) =
            (self.options.parent.clone(), &self.parent)
        {
            self.parent = Parent::Connecting;
            tracing::debug!(level = %self.level(), "Connecting to the parent directory at {at}");
            cx.connect(
                at,
                ConnectOptions::native()
                    .link(self.options.link.clone())
                    .timeout(Duration::from_secs(3)),
            );
        }
    }

    pub(super) fn snapshot(&self) -> Listings {
        let level = self.level();
        Listings {
            full: true,
            secret: Some(self.secret),
            publications: self
                .publications
                .values()
                .map(|h| h.listing.clone())
                .filter(|l| l.scope > level)
                .collect(),
            subscriptions: self
                .subscriptions
                .values()
                .map(|h| h.listing.clone())
                .filter(|l| l.scope > level)
                .collect(),
        }
    }

    pub(super) fn connected(&mut self, cx: &mut Context, c: Connected) {
        if matches!(self.parent, Parent::Connecting)
            && Some(&c.requested) == self.options.parent.as_ref()
        {
            tracing::debug!(level = %self.level(), "Connected to the parent directory at {}", c.requested);
            self.parent = Parent::Up(c.proxy.clone());
            self.backoff = self.options.reconnect_first;
            let snapshot = self.snapshot();
            let _ = cx.send(snapshot, &c.proxy);
            self.climbs_parent_up(cx);
            return;
        }
        // A connection to a publisher's process.
        if let Some(Peer::Connecting(queued)) = self.peers.remove(&c.requested) {
            self.peers
                .insert(c.requested.clone(), Peer::Up(c.proxy.clone()));
            for key in queued {
                self.request_session(cx, key);
            }
        }
    }

    pub(super) fn not_connected(&mut self, cx: &mut Context, n: NotConnected) {
        if matches!(self.parent, Parent::Connecting)
            && Some(&n.requested) == self.options.parent.as_ref()
        {
            tracing::debug!(level = %self.level(), "Cannot connect to the parent directory at {}: {}", n.requested, n.reason);
            self.climbs_parent_unreachable(cx, &n.reason);
            self.retry_parent(cx);
            return;
        }
        if let Some(Peer::Connecting(queued)) = self.peers.remove(&n.requested) {
            for key in queued {
                self.route_failed(
                    cx,
                    key,
                    &format!("cannot reach the publisher: {}", n.reason),
                );
            }
        }
    }

    pub(super) fn retry_parent(&mut self, cx: &mut Context) {
        self.parent = Parent::Waiting;
        let jitter = 0.9 + rand::random::<f64>() * 0.2;
        cx.start_timer(Reconnect, self.backoff.mul_f64(jitter));
        self.backoff = (self.backoff * 2).min(self.options.reconnect_max);
    }

    pub(super) fn listening(&mut self, cx: &mut Context, l: Listening) {
        if Some(&l.requested) == self.options.accept_at.as_ref() {
            self.accepting = Some(l.listening.clone());
            let _ = cx.send(l, &self.report_to.clone());
            return;
        }
        if l.requested.host == "0.0.0.0" {
            self.any = Some(l.listening);
        } else {
            self.loopback = Some(l.listening);
        }
        let lan = l.requested.host == "0.0.0.0";
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(p, ..)| (p.scope == Scope::Lan) == lan);
        self.waiting = still;
        for (p, path, id) in ready {
            self.list_publication(cx, p, path, id);
        }
    }

    /// A peer listen failed: the publications waiting for it are refused.
    pub(super) fn not_listening(&mut self, cx: &mut Context, n: NotListening) {
        if Some(&n.requested) == self.options.accept_at.as_ref() {
            tracing::warn!(level = %self.level(), "directory cannot listen at {}: {}", n.requested, n.reason);
            let _ = cx.send(n, &self.report_to.clone());
            return;
        }
        let lan = n.requested.host == "0.0.0.0";
        let (failed, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(p, ..)| (p.scope == Scope::Lan) == lan);
        self.waiting = still;
        for (p, path, _) in failed {
            let _ = path.reply(NotPublished {
                name: p.name,
                scope: p.scope,
                reason: format!("cannot take sessions: {}", n.reason),
            });
        }
    }

    pub(super) fn closed(&mut self, cx: &mut Context, c: Closed) {
        // Only the network layer says a connection closed, and only when it
        // has: a `Closed` for a live connection is not believed.
        let Some(link) = c.proxy.link_id().filter(|_| c.proxy.is_closed()) else {
            self.refusals.refuse(
                self.options.level,
                "a Closed for a connection that is not closed",
                &c.proxy,
            );
            return;
        };
        if matches!(&self.parent, Parent::Up(proxy) if *proxy == c.proxy) {
            tracing::warn!(level = %self.level(), "lost the parent directory ({:?}: {})", c.reason, c.note);
            self.lost_above(cx, self.level(), "lost the parent directory");
            self.parent = Parent::Waiting;
            self.backoff = self.options.reconnect_first;
            self.retry_parent(cx);
            return;
        }
        // A child: everything learned through it goes (unless it went
        // already, when the child reconnected over another link).
        self.child_gone(cx, &c.proxy, link, "lost the directory below");
        // Sessions this process served over that connection.
        let keys: Vec<(Uuid, Uuid)> = self
            .serving
            .iter()
            .filter(|(_, s)| s.link == link)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.end_serving(cx, key, "the subscriber's process went away", false);
        }
        // A publisher's process we had sessions with.
        let lost: Vec<HostPort> = self
            .peers
            .iter()
            .filter(|(_, p)| matches!(p, Peer::Up(proxy) if *proxy == c.proxy))
            .map(|(at, _)| at.clone())
            .collect();
        for at in lost {
            self.peers.remove(&at);
            let keys: Vec<RouteKey> = self
                .routing
                .iter()
                .filter(|(_, r)| {
                    // A session held unconfirmed has no route offered any
                    // more, only its direct link: it ends with that link.
                    r.active
                        .as_ref()
                        .is_some_and(|a| a.peer.as_ref() == Some(&at))
                        || r.candidates
                            .iter()
                            .any(|(_, p)| p.listening.as_ref() == Some(&at))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                self.peer_lost(
                    cx,
                    key,
                    &at,
                    &format!("lost the publisher's process ({:?})", c.reason),
                );
            }
        }
    }

    /// A child directory's link is gone, or stale: everything listed over
    /// it, whoever its messages named as their sender, is withdrawn.
    pub(super) fn child_gone(&mut self, cx: &mut Context, proxy: &Address, link: u64, why: &str) {
        self.accepted.remove(proxy);
        self.children.remove(proxy);
        self.withdraw_all(cx, &Source::Link(link), why, why);
    }

    /// A child's full snapshot presented `secret` over the link `proxy`.
    /// An earlier link that presented the same secret is the same child
    /// node, which has reconnected before this node saw that link close:
    /// the earlier link is stale. What it listed goes now, as if it had
    /// closed (and it is closed), so that the snapshot that follows is held
    /// as the new link's instead of refused as another's. Only the child
    /// and this node know the secret, so no other link can take a child's
    /// listings this way.
    pub(super) fn child_reconnected(&mut self, cx: &mut Context, proxy: &Address, secret: Uuid) {
        let Some(accepted) = self.accepted.get_mut(proxy) else {
            return;
        };
        match accepted.secret {
            Some(known) if known == secret => return,
            Some(_) => {
                // A child's secret never changes over its node's life.
                self.refusals.refuse(
                    self.options.level,
                    "a snapshot with another secret than its link's first",
                    proxy,
                );
                return;
            }
            None => accepted.secret = Some(secret),
        }
        let earlier: Vec<Address> = self
            .accepted
            .iter()
            .filter(|(p, a)| *p != proxy && a.secret == Some(secret))
            .map(|(p, _)| p.clone())
            .collect();
        for old in earlier {
            let remote = |p: &Address| self.accepted.get(p).map(|a| a.remote.to_string());
            let (now, before) = (remote(proxy), remote(&old));
            tracing::info!(
                level = %self.level(),
                "a child directory reconnected from {} before its link from {} closed",
                now.unwrap_or_default(),
                before.unwrap_or_default()
            );
            if let Some(link) = old.link_id() {
                self.child_gone(cx, &old, link, "the directory below reconnected");
            }
            let _ = cx.send(
                Close {
                    note: Some("the child directory reconnected over another link".into()),
                },
                &old,
            );
        }
    }

    /// Routes offered from above `level` are void. Sessions opened over
    /// them whose direct link lives are held unconfirmed until the tree
    /// offers them again (see `Node::reselect`).
    pub(super) fn lost_above(&mut self, cx: &mut Context, level: Scope, why: &str) {
        for child in self.children.keys() {
            let _ = cx.send(LostAbove { level }, child);
        }
        let keys: Vec<RouteKey> = self.routing.keys().cloned().collect();
        for key in keys {
            if let Some(routing) = self.routing.get_mut(&key) {
                routing.candidates.retain(|(l, _)| *l <= level);
            }
            self.reselect(cx, key, why);
        }
    }
}
