//! The subscriber's home: of the routes offered for a (subscription, name),
//! opening the nearest, with fallback and upgrade — and keeping a session
//! whose direct link lives through the loss of a directory link, until the
//! tree re-confirms it (or the grace runs out).

use std::time::Instant;

use uuid::Uuid;

use super::super::protocol::{
    OpenSession, Publication, Reconfirm, RouteOffer, RouteWithdrawn, SessionClosed,
};
use super::super::{Available, Delivered, Dropped, Scope};
use super::Node;
use super::store::Source;
use crate::message::Faulted;
use crate::net::{ConnectOptions, HostPort};
use crate::runtime::{Address, Context, RequestId};

/// What a subscriber's home knows about one name a subscription matched:
/// every route offered to a publication of that name, and the one open.
/// A name may be published at several scopes (one instance at each); the
/// nearest route wins.
pub(super) struct Routing {
    pub(super) subscriber: Address,
    /// Offered routes, in the order they came.
    pub(super) candidates: Vec<(Scope, Publication)>,
    pub(super) active: Option<Active>,
    /// A session being opened: its route, and its request once sent.
    pub(super) opening: Option<(Scope, Uuid, Option<RequestId>)>,
}

pub(super) struct Active {
    pub(super) level: Scope,
    pub(super) publication: Uuid,
    pub(super) publisher: Address,
    /// The connection to the publisher's process (None: in this process).
    pub(super) peer: Option<HostPort>,
    /// The publisher process's start, as the route that opened it said: a
    /// route offered again re-confirms the session only for the same
    /// publication of the same incarnation.
    pub(super) incarnation: u128,
    /// Since when the tree no longer offers this session's route while its
    /// direct link lives (a directory link was lost on the way). None: the
    /// route is offered.
    pub(super) unconfirmed: Option<Instant>,
}

/// A home's routing key: the subscription and the name.
pub(super) type RouteKey = (Uuid, String);

/// The nearest of the offered routes: the narrowest level, the first
/// offered among equals.
pub(super) fn nearest(candidates: &[(Scope, Publication)]) -> Option<(Scope, Uuid)> {
    candidates
        .iter()
        .min_by_key(|(level, _)| *level)
        .map(|(level, p)| (*level, p.id))
}

/// What a home does with one (subscription, name) when `best` is the
/// nearest route offered and `current` the one open or being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Choice {
    /// The route in use is still the nearest.
    Keep,
    /// Leave the current route (if any) and open `to` (if any). `upgrade`
    /// when the new route is nearer than the one left.
    Switch {
        to: Option<(Scope, Uuid)>,
        upgrade: bool,
    },
}

/// The route choice: keep the nearest route, upgrade to a nearer one,
/// fall back to a wider one, or open none.
pub(super) fn choose(best: Option<(Scope, Uuid)>, current: Option<(Scope, Uuid)>) -> Choice {
    if best == current {
        return Choice::Keep;
    }
    let upgrade = matches!((best, current), (Some((b, _)), Some((c, _))) if b < c);
    Choice::Switch { to: best, upgrade }
}

impl Routing {
    /// The nearest route offered; among equals, the one in use (or being
    /// opened) stays, so that a route offered again never moves a session
    /// to another publisher at the same level.
    pub(super) fn best(&self) -> Option<(Scope, Uuid)> {
        let best = nearest(&self.candidates)?;
        match self.current() {
            Some(current)
                if current.0 == best.0 && self.candidate(current.0, current.1).is_some() =>
            {
                Some(current)
            }
            _ => Some(best),
        }
    }

    pub(super) fn current(&self) -> Option<(Scope, Uuid)> {
        self.active
            .as_ref()
            .map(|a| (a.level, a.publication))
            .or(self.opening.as_ref().map(|(l, p, _)| (*l, *p)))
    }

    pub(super) fn candidate(&self, level: Scope, publication: Uuid) -> Option<&Publication> {
        self.candidates
            .iter()
            .find(|(l, p)| *l == level && p.id == publication)
            .map(|(_, p)| p)
    }
}

pub(super) enum Peer {
    Connecting(Vec<RouteKey>),
    Up(Address),
}

impl Node {
    // ---- the home: choosing and opening routes --------------------------

    /// A route offered from above (over the parent link): only for a
    /// subscription of this process that could have matched it there.
    pub(super) fn route_offered(&mut self, cx: &mut Context, o: RouteOffer) {
        let why = match self.subscriptions.get(&o.subscription) {
            None => None, // withdrawn meanwhile
            Some(held) if !matches!(held.from, Source::Local(_)) => {
                Some("not a subscription of this process")
            }
            Some(held) if o.level <= Scope::Process || o.level > held.listing.scope => {
                Some("a level the subscription does not reach")
            }
            Some(held) if !held.regex.is_match(&o.publication.name) => {
                Some("a name the subscription does not match")
            }
            Some(_) => {
                self.offered(cx, o);
                return;
            }
        };
        if let Some(why) = why {
            self.refusals.refuse(
                self.options.level,
                "a route offer",
                &format!("{why} ({} for {})", o.publication.name, o.subscription),
            );
        }
    }

    pub(super) fn offered(&mut self, cx: &mut Context, o: RouteOffer) {
        let Some(subscription) = self.subscriptions.get(&o.subscription) else {
            return;
        };
        let Source::Local(subscriber) = subscription.from.clone() else {
            return;
        };
        let key = (o.subscription, o.publication.name.clone());
        let routing = self.routing.entry(key.clone()).or_insert_with(|| Routing {
            subscriber,
            candidates: Vec::new(),
            active: None,
            opening: None,
        });
        // The same route again replaces the old offer.
        routing
            .candidates
            .retain(|(l, p)| !(*l == o.level && p.id == o.publication.id));
        routing.candidates.push((o.level, o.publication));
        self.reselect(cx, key, "route replaced");
    }

    /// A publication is gone from some level: every route to it is
    /// forgotten at once, so a withdrawal travelling up the tree level by
    /// level does not make the session hop from route to route. A session
    /// to it over a live direct link is held unconfirmed rather than dropped
    /// ([`hold_unconfirmed`](Self::hold_unconfirmed)): the withdrawal may be
    /// a lost directory link's, and a publication really withdrawn is
    /// closed by its publisher's own node over that link.
    /// `why` is what the subscriber's `Dropped` says.
    pub(super) fn route_withdrawn(&mut self, cx: &mut Context, w: RouteWithdrawn, why: &str) {
        let keys: Vec<RouteKey> = self
            .routing
            .iter()
            .filter(|(k, r)| {
                k.0 == w.subscription && r.candidates.iter().any(|(_, p)| p.id == w.publication)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(routing) = self.routing.get_mut(&key) {
                routing.candidates.retain(|(_, p)| p.id != w.publication);
            }
            self.reselect(cx, key, why);
        }
    }

    /// Opens the nearest offered route if it is not the one open (or being
    /// opened): an upgrade, a fallback, or the first session.
    pub(super) fn reselect(&mut self, cx: &mut Context, key: RouteKey, why: &str) {
        let Some(mut routing) = self.routing.remove(&key) else {
            return;
        };
        let choice = match self.hold_unconfirmed(cx, &key, &mut routing, why) {
            // A session held over its direct link gives way only to a
            // nearer route (an upgrade); its own route may come back.
            Some(held) => match routing.best() {
                Some(best) if best.0 < held => Choice::Switch {
                    to: Some(best),
                    upgrade: true,
                },
                _ => Choice::Keep,
            },
            None => choose(routing.best(), routing.current()),
        };
        if let Choice::Switch { to, upgrade } = choice {
            if routing.active.is_some() {
                let why = if upgrade { "a nearer route" } else { why };
                self.end_active(cx, &key, &mut routing, why);
            }
            if let Some((_, _, Some(request))) = routing.opening.take() {
                self.opening.remove(&request);
            }
            if let Some((level, publication)) = to {
                self.open(cx, &key, &mut routing, level, publication);
            }
        }
        if routing.candidates.is_empty() && routing.active.is_none() && routing.opening.is_none() {
            return;
        }
        self.routing.insert(key, routing);
    }

    /// Whether the open session of `routing` is held although the tree no
    /// longer offers its route: its publication is at the other end of a
    /// live direct link, and the route went because a directory link was
    /// lost on the way (a publication really withdrawn is closed by the
    /// publisher's own node over that link, a dead publisher closes the
    /// link). The session stays, *unconfirmed*, until the same route is
    /// offered again — the tree has healed: silently re-confirmed — or
    /// [`NodeOptions::reconfirm_within`](super::NodeOptions) passes: dropped.
    /// Returns the held session's level; None when it is not held (no
    /// session, its route is offered, or it has no live direct link).
    fn hold_unconfirmed(
        &mut self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &mut Routing,
        why: &str,
    ) -> Option<Scope> {
        let active = routing.active.as_mut()?;
        let offered = routing.candidates.iter().any(|(level, p)| {
            *level == active.level
                && p.id == active.publication
                && p.incarnation == active.incarnation
        });
        if offered {
            if let Some(since) = active.unconfirmed.take() {
                tracing::info!(
                    level = %self.options.level,
                    "session to \"{}\" re-confirmed after {:.2} s",
                    key.1,
                    since.elapsed().as_secs_f64()
                );
            }
            return None;
        }
        let alive = active
            .peer
            .as_ref()
            .and_then(|at| self.peers.get(at))
            .is_some_and(|p| matches!(p, Peer::Up(proxy) if !proxy.is_closed()));
        if !alive {
            return None;
        }
        if active.unconfirmed.is_none() {
            active.unconfirmed = Some(Instant::now());
            tracing::info!(
                level = %self.options.level,
                "session to \"{}\" kept over its direct link until the directory re-confirms it ({why})",
                key.1
            );
            let level = active.level;
            self.arm_reconfirm(cx);
            return Some(level);
        }
        Some(active.level)
    }

    /// Starts the grace timer for unconfirmed sessions, unless it runs.
    fn arm_reconfirm(&mut self, cx: &mut Context) {
        if !self.reconfirm_armed {
            self.reconfirm_armed = true;
            cx.start_timer(Reconfirm, self.options.reconfirm_within);
        }
    }

    /// The grace timer: every session unconfirmed for `reconfirm_within`
    /// is dropped (on both sides), and the next best route, if any, opened.
    pub(super) fn reconfirm_due(&mut self, cx: &mut Context) {
        self.reconfirm_armed = false;
        let grace = self.options.reconfirm_within;
        let now = Instant::now();
        let due: Vec<RouteKey> = self
            .routing
            .iter()
            .filter(|(_, r)| {
                r.active
                    .as_ref()
                    .and_then(|a| a.unconfirmed)
                    .is_some_and(|since| now.duration_since(since) >= grace)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let why = format!(
            "not re-confirmed by the directory within {} s of losing a link",
            grace.as_secs_f64()
        );
        for key in due {
            let Some(mut routing) = self.routing.remove(&key) else {
                continue;
            };
            tracing::warn!(level = %self.options.level, "session to \"{}\" dropped: {why}", key.1);
            self.end_active(cx, &key, &mut routing, &why);
            self.routing.insert(key.clone(), routing);
            self.reselect(cx, key, &why);
        }
        let earliest = self
            .routing
            .values()
            .filter_map(|r| r.active.as_ref()?.unconfirmed)
            .min();
        if let Some(earliest) = earliest {
            self.reconfirm_armed = true;
            cx.start_timer(Reconfirm, (earliest + grace).saturating_duration_since(now));
        }
    }

    pub(super) fn open(
        &mut self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &mut Routing,
        level: Scope,
        id: Uuid,
    ) {
        let Some(publication) = routing.candidate(level, id).cloned() else {
            return;
        };
        if level == Scope::Process {
            // Both sides in this process: introduce them directly.
            let publisher = publication.publisher.clone();
            routing.active = Some(Active {
                level,
                publication: id,
                publisher: publisher.clone(),
                peer: None,
                incarnation: publication.incarnation,
                unconfirmed: None,
            });
            self.introduce(cx, key, routing, &publication, level, &publisher);
            let _ = cx.forward_from(
                Delivered {
                    name: key.1.clone(),
                    scope: level,
                    subscription: key.0,
                    publication: id,
                    subscriber: routing.subscriber.clone(),
                },
                &publisher,
                &routing.subscriber,
            );
            return;
        }
        let Some(at) = publication.listening.clone() else {
            return;
        };
        routing.opening = Some((level, id, None));
        match self.peers.get_mut(&at) {
            Some(Peer::Up(_)) => {
                let request = self.send_open(cx, key, routing, level, id, &at);
                routing.opening = Some((level, id, request));
            }
            Some(Peer::Connecting(queued)) => queued.push(key.clone()),
            None => {
                self.peers
                    .insert(at.clone(), Peer::Connecting(vec![key.clone()]));
                cx.connect(at, ConnectOptions::native().link(self.options.link.clone()));
            }
        }
    }

    pub(super) fn introduce(
        &self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &Routing,
        publication: &Publication,
        level: Scope,
        publisher: &Address,
    ) {
        let _ = cx.forward_from(
            Available {
                name: key.1.clone(),
                scope: level,
                subscription: key.0,
                publication: publication.id,
                publisher: publisher.clone(),
            },
            &routing.subscriber,
            publisher,
        );
    }

    pub(super) fn send_open(
        &mut self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &Routing,
        level: Scope,
        publication: Uuid,
        at: &HostPort,
    ) -> Option<RequestId> {
        let Some(Peer::Up(proxy)) = self.peers.get(at) else {
            return None;
        };
        let pattern = self
            .subscriptions
            .get(&key.0)
            .map(|s| s.listing.pattern.clone())?;
        let open = OpenSession {
            subscription: key.0,
            pattern,
            publication,
            subscriber: routing.subscriber.clone(),
            level,
        };
        let proxy = proxy.clone();
        match cx.request(open, &proxy) {
            Ok(request) => {
                self.opening.insert(request, key.clone());
                Some(request)
            }
            Err(_) => None,
        }
    }

    /// A queued open whose connection is now up.
    pub(super) fn request_session(&mut self, cx: &mut Context, key: RouteKey) {
        let Some(mut routing) = self.routing.remove(&key) else {
            return;
        };
        if let Some((level, id, None)) = routing.opening {
            let at = routing
                .candidate(level, id)
                .and_then(|p| p.listening.clone());
            if let Some(at) = at {
                let request = self.send_open(cx, &key, &routing, level, id, &at);
                routing.opening = Some((level, id, request));
            }
        }
        self.routing.insert(key, routing);
    }

    pub(super) fn session_opened(&mut self, cx: &mut Context, publisher: Address) {
        let Some(request) = cx.answers() else { return };
        let Some(key) = self.opening.get(&request).cloned() else {
            return;
        };
        // Only the publisher's node, over the connection the open went on,
        // answers it.
        let over = cx.return_address().link_id();
        let at = self.routing.get(&key).and_then(|r| {
            let (level, id, _) = r.opening.as_ref()?;
            r.candidate(*level, *id)?.listening.clone()
        });
        let expected_link = at.and_then(|at| match self.peers.get(&at) {
            Some(Peer::Up(proxy)) => proxy.link_id(),
            _ => None,
        });
        if over.is_none() || over != expected_link {
            let from = cx.return_address().clone();
            self.refusals
                .refuse(self.options.level, "a session opened from elsewhere", &from);
            return;
        }
        self.opening.remove(&request);
        let Some(mut routing) = self.routing.remove(&key) else {
            return;
        };
        if let Some((level, id, Some(expected))) = routing.opening
            && expected == request
        {
            routing.opening = None;
            let peer = routing
                .candidate(level, id)
                .and_then(|p| p.listening.clone());
            if let Some(publication) = routing.candidate(level, id).cloned() {
                routing.active = Some(Active {
                    level,
                    publication: id,
                    publisher: publisher.clone(),
                    peer,
                    incarnation: publication.incarnation,
                    unconfirmed: None,
                });
                self.introduce(cx, &key, &routing, &publication, level, &publisher);
            }
        }
        self.routing.insert(key, routing);
    }

    /// An open that was refused, or whose connection was lost.
    pub(super) fn answer_failed(&mut self, cx: &mut Context, f: Faulted) {
        let Some(request) = cx.answers() else {
            tracing::warn!(level = %self.level(), "directory: {f}");
            return;
        };
        let Some(key) = self.opening.remove(&request) else {
            return;
        };
        self.route_failed(cx, key, &f.to_string());
    }

    /// The route being opened cannot be: forget it and try the next.
    pub(super) fn route_failed(&mut self, cx: &mut Context, key: RouteKey, why: &str) {
        let Some(routing) = self.routing.get_mut(&key) else {
            return;
        };
        if let Some((level, id, _)) = routing.opening.take() {
            tracing::warn!("route to \"{}\" at {level} failed: {why}", key.1);
            routing
                .candidates
                .retain(|(l, p)| !(*l == level && p.id == id));
        }
        self.reselect(cx, key, why);
    }

    /// The connection to a publisher's process is gone: sessions over it
    /// end, and routes through it are unusable.
    pub(super) fn peer_lost(&mut self, cx: &mut Context, key: RouteKey, at: &HostPort, why: &str) {
        let Some(mut routing) = self.routing.remove(&key) else {
            return;
        };
        if routing
            .active
            .as_ref()
            .is_some_and(|a| a.peer.as_ref() == Some(at))
            && let Some(active) = routing.active.take()
        {
            self.tell_dropped(cx, &key, &routing, &active, why);
        }
        routing
            .candidates
            .retain(|(_, p)| p.listening.as_ref() != Some(at));
        self.routing.insert(key.clone(), routing);
        self.reselect(cx, key, why);
    }

    /// Ends the open session of `routing`, telling both sides.
    pub(super) fn end_active(
        &mut self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &mut Routing,
        why: &str,
    ) {
        let Some(active) = routing.active.take() else {
            return;
        };
        self.tell_dropped(cx, key, routing, &active, why);
        match &active.peer {
            None => {
                let _ = cx.forward_from(
                    Dropped {
                        name: key.1.clone(),
                        scope: active.level,
                        subscription: key.0,
                        publication: active.publication,
                        remote: routing.subscriber.clone(),
                        reason: why.into(),
                    },
                    &active.publisher,
                    &routing.subscriber,
                );
            }
            Some(at) => {
                if let Some(Peer::Up(proxy)) = self.peers.get(at) {
                    let _ = cx.send(
                        SessionClosed {
                            subscription: key.0,
                            publication: active.publication,
                            reason: why.into(),
                        },
                        proxy,
                    );
                }
            }
        }
    }

    pub(super) fn tell_dropped(
        &self,
        cx: &mut Context,
        key: &RouteKey,
        routing: &Routing,
        active: &Active,
        why: &str,
    ) {
        let _ = cx.forward_from(
            Dropped {
                name: key.1.clone(),
                scope: active.level,
                subscription: key.0,
                publication: active.publication,
                remote: active.publisher.clone(),
                reason: why.into(),
            },
            &routing.subscriber,
            &active.publisher,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::protocol::Publication;

    fn offer(level: Scope, n: u128) -> (Scope, Publication) {
        (
            level,
            Publication {
                id: Uuid::from_u128(n),
                name: "svc".into(),
                scope: Scope::Lan,
                listening: None,
                publisher: Address::NULL,
                incarnation: 0,
            },
        )
    }

    #[test]
    fn the_nearest_route_wins_the_first_among_equals() {
        assert_eq!(nearest(&[]), None);
        let offers = [
            offer(Scope::Lan, 1),
            offer(Scope::Host, 2),
            offer(Scope::Host, 3),
        ];
        assert_eq!(nearest(&offers), Some((Scope::Host, Uuid::from_u128(2))));
        let offers = [offer(Scope::Host, 2), offer(Scope::Process, 4)];
        assert_eq!(nearest(&offers), Some((Scope::Process, Uuid::from_u128(4))));
    }

    #[test]
    fn among_equals_the_route_in_use_stays() {
        let mut routing = Routing {
            subscriber: Address::NULL,
            candidates: vec![offer(Scope::Host, 1), offer(Scope::Host, 2)],
            active: Some(Active {
                level: Scope::Host,
                publication: Uuid::from_u128(2),
                publisher: Address::NULL,
                peer: None,
                incarnation: 0,
                unconfirmed: None,
            }),
            opening: None,
        };
        // Offered again after the first: still the one in use.
        assert_eq!(routing.best(), Some((Scope::Host, Uuid::from_u128(2))));
        // A nearer one wins.
        routing.candidates.push(offer(Scope::Group, 3));
        assert_eq!(routing.best(), Some((Scope::Group, Uuid::from_u128(3))));
        // Not offered any more: the first among the rest.
        routing.candidates.retain(|(l, _)| *l == Scope::Host);
        routing
            .candidates
            .retain(|(_, p)| p.id != Uuid::from_u128(2));
        assert_eq!(routing.best(), Some((Scope::Host, Uuid::from_u128(1))));
    }

    #[test]
    fn keep_upgrade_fall_back_or_close() {
        let host = Some((Scope::Host, Uuid::from_u128(1)));
        let process = Some((Scope::Process, Uuid::from_u128(2)));
        let lan = Some((Scope::Lan, Uuid::from_u128(3)));
        assert_eq!(choose(host, host), Choice::Keep);
        assert_eq!(choose(None, None), Choice::Keep);
        assert_eq!(
            choose(process, host),
            Choice::Switch {
                to: process,
                upgrade: true
            }
        );
        assert_eq!(
            choose(lan, host),
            Choice::Switch {
                to: lan,
                upgrade: false
            }
        );
        assert_eq!(
            choose(host, None),
            Choice::Switch {
                to: host,
                upgrade: false
            }
        );
        assert_eq!(
            choose(None, host),
            Choice::Switch {
                to: None,
                upgrade: false
            }
        );
        // Same level, another publication: a switch, not an upgrade.
        let other = Some((Scope::Host, Uuid::from_u128(9)));
        assert_eq!(
            choose(other, host),
            Choice::Switch {
                to: other,
                upgrade: false
            }
        );
    }
}
