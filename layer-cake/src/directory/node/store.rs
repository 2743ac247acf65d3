//! The listing store: what a node holds, where each listing came from, and
//! matching subscriptions to publications.

use std::collections::HashSet;

use regex::Regex;
use uuid::Uuid;

use super::super::protocol::{
    Listings, Publication, PublishAs, RouteOffer, RouteWithdrawn, SubscribeTo, Subscription,
    Withdrawn,
};
use super::super::{NotPublished, NotSubscribed, Published, Scope, Subscribed};
use super::Node;
use super::routes::RouteKey;
use crate::net::{HostPort, ListenOptions};
use crate::runtime::{Address, Context};

/// Where a listing came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// An actor of this process (process nodes only).
    Local(Address),
    /// A child node, by its proxy.
    Child(Address),
}

pub(super) struct HeldPublication {
    pub(super) listing: Publication,
    pub(super) from: Source,
}

pub(super) struct HeldSubscription {
    pub(super) listing: Subscription,
    pub(super) regex: Regex,
    pub(super) from: Source,
}

pub(super) fn full_match(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

impl Node {
    // ---- listings ------------------------------------------------------

    pub(super) fn publish(&mut self, cx: &mut Context, p: PublishAs) {
        let refuse = |cx: &mut Context, reason: &str| {
            let _ = cx.reply(NotPublished {
                name: p.name.clone(),
                scope: p.scope,
                reason: reason.into(),
            });
        };
        if p.name.is_empty() {
            return refuse(cx, "an empty name");
        }
        if self.level() != Scope::Process {
            return refuse(cx, "publish through a process's own directory");
        }
        let duplicate = self
            .publications
            .values()
            .any(|h| h.listing.name == p.name && h.from == Source::Local(p.publisher.clone()));
        if duplicate {
            return refuse(cx, "already published");
        }
        let id = Uuid::new_v4();
        if p.scope > Scope::Process {
            let have = if p.scope == Scope::Lan {
                self.any.is_some()
            } else {
                self.loopback.is_some()
            };
            if !have {
                // List it once the peer listen is up.
                let first = !self
                    .waiting
                    .iter()
                    .any(|(w, ..)| (w.scope == Scope::Lan) == (p.scope == Scope::Lan));
                if first {
                    let at = if p.scope == Scope::Lan {
                        "0.0.0.0"
                    } else {
                        "127.0.0.1"
                    };
                    cx.listen(HostPort::new(at, 0), ListenOptions::native());
                }
                self.waiting.push((p, cx.return_path(), id));
                return;
            }
        }
        let path = cx.return_path();
        self.list_publication(cx, p, path, id);
    }

    pub(super) fn list_publication(
        &mut self,
        cx: &mut Context,
        p: PublishAs,
        path: crate::runtime::ReturnPath,
        id: Uuid,
    ) {
        let listening = match p.scope {
            Scope::Process => None,
            Scope::Lan => self.any.clone(),
            _ => self.loopback.clone(),
        };
        let listing = Publication {
            id,
            name: p.name.clone(),
            scope: p.scope,
            listening,
            publisher: p.publisher.clone(),
            incarnation: crate::process::incarnation(),
        };
        if self.watched.insert(p.publisher.clone()) {
            cx.watch(&p.publisher);
        }
        let _ = path.reply(Published {
            name: p.name,
            scope: p.scope,
            id,
        });
        self.add_publication(cx, listing, Source::Local(p.publisher));
    }

    pub(super) fn subscribe(&mut self, cx: &mut Context, s: SubscribeTo) {
        let refuse = |cx: &mut Context, reason: String| {
            let _ = cx.reply(NotSubscribed {
                pattern: s.pattern.clone(),
                scope: s.scope,
                reason,
            });
        };
        if self.level() != Scope::Process {
            return refuse(cx, "subscribe through a process's own directory".into());
        }
        let regex = match full_match(&s.pattern) {
            Ok(regex) => regex,
            Err(e) => return refuse(cx, format!("not a regular expression: {e}")),
        };
        let duplicate = self.subscriptions.values().any(|h| {
            h.listing.pattern == s.pattern && h.from == Source::Local(s.subscriber.clone())
        });
        if duplicate {
            return refuse(cx, "already subscribed".into());
        }
        let id = Uuid::new_v4();
        let listing = Subscription {
            id,
            pattern: s.pattern.clone(),
            scope: s.scope,
            home: self.me.clone(),
        };
        if self.watched.insert(s.subscriber.clone()) {
            cx.watch(&s.subscriber);
        }
        let _ = cx.reply(Subscribed {
            pattern: s.pattern,
            scope: s.scope,
            id,
        });
        self.add_subscription(cx, listing, regex, Source::Local(s.subscriber));
    }

    pub(super) fn add_publication(&mut self, cx: &mut Context, listing: Publication, from: Source) {
        let matches: Vec<Subscription> = self
            .subscriptions
            .values()
            .filter(|s| s.regex.is_match(&listing.name))
            .map(|s| s.listing.clone())
            .collect();
        for subscription in matches {
            self.offer(cx, &subscription, &listing);
        }
        if listing.scope > self.level() {
            self.send_up(
                cx,
                Listings {
                    full: false,
                    publications: vec![listing.clone()],
                    subscriptions: vec![],
                },
            );
        }
        self.publications
            .insert(listing.id, HeldPublication { listing, from });
    }

    pub(super) fn add_subscription(
        &mut self,
        cx: &mut Context,
        listing: Subscription,
        regex: Regex,
        from: Source,
    ) {
        let matches: Vec<Publication> = self
            .publications
            .values()
            .filter(|p| regex.is_match(&p.listing.name))
            .map(|p| p.listing.clone())
            .collect();
        // Held before offering: a match made here is offered to this very
        // node when it is the subscriber's home.
        self.subscriptions.insert(
            listing.id,
            HeldSubscription {
                listing: listing.clone(),
                regex,
                from,
            },
        );
        for publication in &matches {
            self.offer(cx, &listing, publication);
        }
        if listing.scope > self.level() {
            self.send_up(
                cx,
                Listings {
                    full: false,
                    publications: vec![],
                    subscriptions: vec![listing],
                },
            );
        }
    }

    /// Offers a match found here to the subscriber's home.
    pub(super) fn offer(
        &mut self,
        cx: &mut Context,
        subscription: &Subscription,
        publication: &Publication,
    ) {
        let offer = RouteOffer {
            subscription: subscription.id,
            publication: publication.clone(),
            level: self.level(),
        };
        if subscription.home == self.me {
            self.offered(cx, offer);
        } else {
            let _ = cx.send(offer, &subscription.home);
        }
    }

    pub(super) fn withdraw_publication(
        &mut self,
        cx: &mut Context,
        id: Uuid,
        reason: &str,
    ) -> bool {
        let Some(held) = self.publications.remove(&id) else {
            return false;
        };
        let listing = held.listing;
        let homes: Vec<Subscription> = self
            .subscriptions
            .values()
            .filter(|s| s.regex.is_match(&listing.name))
            .map(|s| s.listing.clone())
            .collect();
        for subscription in homes {
            let withdrawn = RouteWithdrawn {
                subscription: subscription.id,
                publication: id,
                level: self.level(),
            };
            if subscription.home == self.me {
                self.route_withdrawn(cx, withdrawn);
            } else {
                let _ = cx.send(withdrawn, &subscription.home);
            }
        }
        // Sessions this process serves for it end now.
        let keys: Vec<(Uuid, Uuid)> = self.serving.keys().filter(|k| k.1 == id).cloned().collect();
        for key in keys {
            self.end_serving(cx, key, reason, true);
        }
        if listing.scope > self.level() {
            self.send_up(
                cx,
                Withdrawn {
                    publications: vec![id],
                    subscriptions: vec![],
                },
            );
        }
        true
    }

    pub(super) fn withdraw_subscription(
        &mut self,
        cx: &mut Context,
        id: Uuid,
        reason: &str,
    ) -> bool {
        let Some(held) = self.subscriptions.remove(&id) else {
            return false;
        };
        let keys: Vec<RouteKey> = self.routing.keys().filter(|k| k.0 == id).cloned().collect();
        for key in keys {
            if let Some(mut routing) = self.routing.remove(&key) {
                self.end_active(cx, &key, &mut routing, reason);
            }
        }
        if held.listing.scope > self.level() {
            self.send_up(
                cx,
                Withdrawn {
                    publications: vec![],
                    subscriptions: vec![id],
                },
            );
        }
        true
    }

    /// The ids of what `source` listed here.
    pub(super) fn listed_by(&self, source: &Source) -> (Vec<Uuid>, Vec<Uuid>) {
        let publications = self
            .publications
            .iter()
            .filter(|(_, h)| h.from == *source)
            .map(|(id, _)| *id)
            .collect();
        let subscriptions = self
            .subscriptions
            .iter()
            .filter(|(_, h)| h.from == *source)
            .map(|(id, _)| *id)
            .collect();
        (publications, subscriptions)
    }

    /// Withdraws everything `source` listed here.
    pub(super) fn withdraw_all(
        &mut self,
        cx: &mut Context,
        source: &Source,
        publications_why: &str,
        subscriptions_why: &str,
    ) {
        let (publications, subscriptions) = self.listed_by(source);
        for id in publications {
            self.withdraw_publication(cx, id, publications_why);
        }
        for id in subscriptions {
            self.withdraw_subscription(cx, id, subscriptions_why);
        }
    }

    /// An actor with listings here has ended: everything it listed goes.
    pub(super) fn ended(&mut self, cx: &mut Context, actor: &Address) {
        self.watched.remove(actor);
        let source = Source::Local(actor.clone());
        self.withdraw_all(
            cx,
            &source,
            "the publisher has ended",
            "the subscriber has ended",
        );
    }

    pub(super) fn listings(&mut self, cx: &mut Context, l: Listings) {
        let child = cx.return_address().clone();
        let level = self.level();
        if l.full {
            // Replace what this child told us before.
            let from = Source::Child(child.clone());
            let (old_publications, old_subscriptions) = self.listed_by(&from);
            let keep_p: HashSet<Uuid> = l.publications.iter().map(|p| p.id).collect();
            let keep_s: HashSet<Uuid> = l.subscriptions.iter().map(|s| s.id).collect();
            for id in old_publications
                .into_iter()
                .filter(|id| !keep_p.contains(id))
            {
                self.withdraw_publication(cx, id, "withdrawn below");
            }
            for id in old_subscriptions
                .into_iter()
                .filter(|id| !keep_s.contains(id))
            {
                self.withdraw_subscription(cx, id, "withdrawn below");
            }
        }
        if let Some(remote) = self.accepted.get(&child) {
            self.children.insert(child.clone(), remote.clone());
        }
        let remote_host = self.children.get(&child).map(|r| r.host.clone());
        for mut publication in l.publications {
            if publication.scope < level || self.publications.contains_key(&publication.id) {
                continue;
            }
            // The address a subscriber will use, as reachable from here.
            if let Some(at) = publication.listening.as_mut() {
                match level {
                    Scope::Lan => {
                        if let Some(host) = &remote_host {
                            at.host = host.clone();
                        }
                    }
                    _ => at.host = "127.0.0.1".into(),
                }
            }
            self.add_publication(cx, publication, Source::Child(child.clone()));
        }
        for subscription in l.subscriptions {
            if subscription.scope < level || self.subscriptions.contains_key(&subscription.id) {
                continue;
            }
            let Ok(regex) = full_match(&subscription.pattern) else {
                continue;
            };
            self.add_subscription(cx, subscription, regex, Source::Child(child.clone()));
        }
    }

    pub(super) fn withdrawn(&mut self, cx: &mut Context, w: Withdrawn) {
        for id in w.publications {
            self.withdraw_publication(cx, id, "withdrawn below");
        }
        for id in w.subscriptions {
            self.withdraw_subscription(cx, id, "withdrawn below");
        }
    }
}
