//! The listing store: what a node holds, where each listing came from, and
//! matching subscriptions to publications.

use std::collections::HashSet;
use std::sync::Arc;

use regex::Regex;
use uuid::Uuid;

use super::super::protocol::{
    Listings, Publication, PublishAs, RouteOffer, RouteWithdrawn, SubscribeTo, Subscription,
    Withdrawn,
};
use super::super::{
    NotPublished, NotSubscribed, Published, PublishedCleared, Scope, Subscribed, SubscribedCleared,
};
use super::Node;
use super::matching::{
    MAX_PUBLICATIONS_PER_ACTOR, MAX_PUBLICATIONS_PER_LINK, MAX_SUBSCRIPTIONS_PER_ACTOR,
    MAX_SUBSCRIPTIONS_PER_LINK, check_name, matching,
};
use super::names::already_published;
use super::routes::RouteKey;
use crate::net::{HostPort, ListenOptions};
use crate::runtime::{Address, Context};

/// Where a listing came from: who alone may replace or withdraw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Source {
    /// An actor of this process (process nodes only).
    Local(Address),
    /// A child directory, by the id of the link it arrived over. Whatever
    /// the messages on that link claimed as their sender, only that link can
    /// replace or withdraw these listings, and they go when it closes.
    Link(u64),
}

pub(super) struct HeldPublication {
    pub(super) listing: Publication,
    pub(super) from: Source,
}

pub(super) struct HeldSubscription {
    pub(super) listing: Subscription,
    pub(super) regex: Arc<Regex>,
    pub(super) from: Source,
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
        if self.level() != Scope::Process {
            return refuse(cx, "publish through a process's own directory");
        }
        if let Err(why) = self.local_sender(cx, &p.publisher) {
            self.refusals.refuse(
                self.options.level,
                "a publish not from an actor of this process",
                &why,
            );
            return refuse(cx, &why);
        }
        if let Err(why) = check_name(&p.name) {
            return refuse(cx, &why);
        }
        let source = Source::Local(p.publisher.clone());
        if self.held_by(&source).0 >= MAX_PUBLICATIONS_PER_ACTOR {
            return refuse(
                cx,
                &format!(
                    "too many publications (the limit is {MAX_PUBLICATIONS_PER_ACTOR} per actor)"
                ),
            );
        }
        let duplicate = self
            .publications
            .values()
            .any(|h| h.listing.name == p.name && h.from == Source::Local(p.publisher.clone()));
        if duplicate {
            return refuse(cx, "already published");
        }
        // Another actor of this process has the name at this scope: this
        // process is inside every domain of that scope it is in.
        if self.name_taken(&p.name, p.scope, None) {
            let reason = already_published(&p.name, p.scope);
            tracing::warn!(level = %self.level(), "Cannot publish {} at {}: {reason}", p.name, p.scope);
            return refuse(cx, &reason);
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
                    cx.listen(
                        HostPort::new(at, 0),
                        ListenOptions::native().link(self.options.link.clone()),
                    );
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
            incarnation: crate::runtime::incarnation(),
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
        if let Err(why) = self.local_sender(cx, &s.subscriber) {
            self.refusals.refuse(
                self.options.level,
                "a subscribe not from an actor of this process",
                &why,
            );
            return refuse(cx, why);
        }
        let source = Source::Local(s.subscriber.clone());
        if self.held_by(&source).1 >= MAX_SUBSCRIPTIONS_PER_ACTOR {
            return refuse(
                cx,
                format!(
                    "too many subscriptions (the limit is {MAX_SUBSCRIPTIONS_PER_ACTOR} per actor)"
                ),
            );
        }
        let regex = match self.patterns.get(&s.pattern) {
            Ok(regex) => regex,
            Err(why) => return refuse(cx, why),
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
        let matches: Vec<Subscription> = matching(
            &listing.name,
            self.subscriptions.values().map(|s| (&*s.regex, &s.listing)),
        )
        .into_iter()
        .cloned()
        .collect();
        for subscription in matches {
            self.offer(cx, &subscription, &listing);
        }
        if listing.scope > self.level() {
            self.send_up(
                cx,
                Listings {
                    full: false,
                    secret: None,
                    publications: vec![listing.clone()],
                    subscriptions: vec![],
                },
            );
        }
        self.count(&from, 1, 0);
        self.publications
            .insert(listing.id, HeldPublication { listing, from });
    }

    pub(super) fn add_subscription(
        &mut self,
        cx: &mut Context,
        listing: Subscription,
        regex: Arc<Regex>,
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
        self.count(&from, 0, 1);
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
                    secret: None,
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
        self.count(&held.from, -1, 0);
        let homes: Vec<Subscription> = matching(
            &listing.name,
            self.subscriptions.values().map(|s| (&*s.regex, &s.listing)),
        )
        .into_iter()
        .cloned()
        .collect();
        for subscription in homes {
            let withdrawn = RouteWithdrawn {
                subscription: subscription.id,
                publication: id,
                level: self.level(),
            };
            if subscription.home == self.me {
                // A subscriber of this process hears why, as one in
                // another process does from the session's close.
                self.route_withdrawn(cx, withdrawn, reason);
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
        self.count(&held.from, 0, -1);
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
        if actor.is_remote() || !actor.is_closed() {
            // Only the runtime says an actor ended, and only when it has.
            self.refusals.refuse(
                self.options.level,
                "an Ended for an actor that has not",
                actor,
            );
            return;
        }
        self.watched.remove(actor);
        let source = Source::Local(actor.clone());
        self.withdraw_all(
            cx,
            &source,
            "the publisher has ended",
            "the subscriber has ended",
        );
    }

    /// Checks that a publish or subscribe comes from the actor it lists,
    /// an actor of this process: a peer never lists through a process node.
    pub(super) fn local_sender(&self, cx: &Context, named: &Address) -> Result<(), String> {
        let from = cx.return_address();
        if from.is_remote() {
            return Err("only actors of this process list through its directory".into());
        }
        if from != named {
            return Err("an actor lists only for itself".into());
        }
        Ok(())
    }

    /// How many publications and subscriptions `source` holds here.
    pub(super) fn held_by(&self, source: &Source) -> (usize, usize) {
        self.held.get(source).copied().unwrap_or((0, 0))
    }

    fn count(&mut self, source: &Source, publications: isize, subscriptions: isize) {
        let entry = self.held.entry(source.clone()).or_insert((0, 0));
        entry.0 = entry.0.saturating_add_signed(publications);
        entry.1 = entry.1.saturating_add_signed(subscriptions);
        if *entry == (0, 0) {
            self.held.remove(source);
        }
    }

    /// The link a message from a child directory arrived over: its sender
    /// must be the peer of a connection accepted as a child directory.
    pub(super) fn child_link(&mut self, cx: &Context, what: &'static str) -> Option<u64> {
        let from = cx.return_address();
        let link = from.link_id();
        let accepted = self.accepted.get(from).is_some_and(|a| a.child);
        match link {
            Some(link) if accepted => Some(link),
            _ => {
                self.refusals.refuse(
                    self.options.level,
                    what,
                    &format!("from {from}, not a child directory's link"),
                );
                None
            }
        }
    }

    /// A child's listings: a `full` snapshot replaces what that link listed
    /// before; otherwise these are additions. Each is held as that link's.
    pub(super) fn listings(&mut self, cx: &mut Context, l: Listings) {
        let Some(link) = self.child_link(cx, "listings") else {
            return;
        };
        let child = cx.return_address().clone();
        if l.full
            && let Some(secret) = l.secret
        {
            self.child_reconnected(cx, &child, secret);
        }
        let from = Source::Link(link);
        let level = self.level();
        if l.full {
            // Replace what this link told us before (and only that).
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
        if let Some(accepted) = self.accepted.get(&child) {
            self.children.insert(child.clone(), accepted.remote.clone());
        }
        let remote_host = self.children.get(&child).map(|r| r.host.clone());
        for mut publication in l.publications {
            if publication.scope < level {
                continue;
            }
            if let Some(held) = self.publications.get(&publication.id) {
                if held.from != from {
                    self.refusals.refuse(
                        level,
                        "a publication already listed by another source",
                        &format!("{} ({})", publication.name, publication.id),
                    );
                }
                continue;
            }
            let why = if let Err(why) = check_name(&publication.name) {
                Some(why)
            } else if publication.publisher.link_id().is_some_and(|l| l != link) {
                Some("its publisher is not behind the link that listed it".into())
            } else if self.held_by(&from).0 >= MAX_PUBLICATIONS_PER_LINK {
                Some(format!(
                    "too many publications (the limit is {MAX_PUBLICATIONS_PER_LINK} per link)"
                ))
            } else {
                None
            };
            if let Some(why) = why {
                self.refusals
                    .refuse(level, "a publication from a link", &why);
                continue;
            }
            // One instance of a name per scope: the first listed keeps it.
            if self.name_taken(&publication.name, publication.scope, Some(publication.id)) {
                self.refuse_clash(cx, &publication, &child);
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
            self.add_publication(cx, publication, from.clone());
        }
        for subscription in l.subscriptions {
            if subscription.scope < level {
                continue;
            }
            if let Some(held) = self.subscriptions.get(&subscription.id) {
                if held.from != from {
                    self.refusals.refuse(
                        level,
                        "a subscription already listed by another source",
                        &subscription.id,
                    );
                }
                continue;
            }
            // Routes are offered to the subscriber's home: it must be behind
            // the link that listed the subscription.
            let regex = if subscription.home.link_id() != Some(link) {
                Err("its home is not behind the link that listed it".into())
            } else if self.held_by(&from).1 >= MAX_SUBSCRIPTIONS_PER_LINK {
                Err(format!(
                    "too many subscriptions (the limit is {MAX_SUBSCRIPTIONS_PER_LINK} per link)"
                ))
            } else {
                self.patterns.get(&subscription.pattern)
            };
            match regex {
                Ok(regex) => self.add_subscription(cx, subscription, regex, from.clone()),
                Err(why) => self
                    .refusals
                    .refuse(level, "a subscription from a link", &why),
            }
        }
    }

    /// A child's withdrawals: only what that same link listed.
    pub(super) fn withdrawn(&mut self, cx: &mut Context, w: Withdrawn) {
        let Some(link) = self.child_link(cx, "a withdrawal") else {
            return;
        };
        let from = Source::Link(link);
        for id in w.publications {
            match self.publications.get(&id) {
                Some(held) if held.from == from => {
                    self.withdraw_publication(cx, id, "withdrawn below");
                }
                Some(_) => self.refusals.refuse(
                    self.options.level,
                    "a withdrawal of another source's publication",
                    &id,
                ),
                None => {}
            }
        }
        for id in w.subscriptions {
            match self.subscriptions.get(&id) {
                Some(held) if held.from == from => {
                    self.withdraw_subscription(cx, id, "withdrawn below");
                }
                Some(_) => self.refusals.refuse(
                    self.options.level,
                    "a withdrawal of another source's subscription",
                    &id,
                ),
                None => {}
            }
        }
    }

    /// An application's `ClearPublished`: only from the actor that
    /// published it, in this process.
    pub(super) fn clear_published(&mut self, cx: &mut Context, id: Uuid) {
        let from = cx.return_address().clone();
        match self.publications.get(&id) {
            Some(held) if held.from == Source::Local(from.clone()) && !from.is_remote() => {
                let _ = cx.reply(PublishedCleared { id });
                self.withdraw_publication(cx, id, "publication cleared");
            }
            Some(_) => self.refusals.refuse(
                self.options.level,
                "a clear of a publication the sender did not make",
                &format!("{id} from {from}"),
            ),
            None => {}
        }
    }

    /// The process's `RetirePublisher`: every publication of an actor of
    /// this process is withdrawn, its sessions dropped (only from inside
    /// this process).
    pub(super) fn retire_publisher(&mut self, cx: &mut Context, publisher: &Address) {
        let from = cx.return_address().clone();
        if from.is_remote() || publisher.is_remote() {
            self.refusals.refuse(
                self.options.level,
                "a publisher's retirement from another process",
                &from,
            );
            return;
        }
        let source = Source::Local(publisher.clone());
        let ids: Vec<Uuid> = self
            .publications
            .iter()
            .filter(|(_, held)| held.from == source)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.withdraw_publication(cx, id, super::super::RETIRED);
        }
    }

    /// An application's `ClearSubscribed`: only from the actor that
    /// subscribed, in this process.
    pub(super) fn clear_subscribed(&mut self, cx: &mut Context, id: Uuid) {
        let from = cx.return_address().clone();
        match self.subscriptions.get(&id) {
            Some(held) if held.from == Source::Local(from.clone()) && !from.is_remote() => {
                let _ = cx.reply(SubscribedCleared { id });
                self.withdraw_subscription(cx, id, "subscription cleared");
            }
            Some(_) => self.refusals.refuse(
                self.options.level,
                "a clear of a subscription the sender did not make",
                &format!("{id} from {from}"),
            ),
            None => {}
        }
    }
}
