//! The publisher's side of a session: taking opens from subscribers' homes
//! and ending the sessions this process serves.

use uuid::Uuid;

use super::super::protocol::{OpenSession, SessionClosed, SessionOpened};
use super::super::{Delivered, Dropped, Scope};
use super::Node;
use super::routes::RouteKey;
use super::store::Source;
use crate::message::Faulted;
use crate::runtime::{Address, Context};

/// A session as the publisher's node sees it.
pub(super) struct Serving {
    pub(super) publisher: Address,
    pub(super) subscriber: Address,
    /// The subscriber's home node (the connection's proxy).
    pub(super) home: Address,
    pub(super) name: String,
    pub(super) level: Scope,
}

impl Node {
    // ---- the publisher's side --------------------------------------------

    pub(super) fn open_session(&mut self, cx: &mut Context, o: OpenSession) {
        let key = (o.subscription, o.publication);
        let Some(held) = self.publications.get(&o.publication) else {
            let _ = cx.reply(
                Faulted::new("no such publication").with_explanation("it has been withdrawn"),
            );
            return;
        };
        let Source::Local(publisher) = held.from.clone() else {
            let _ = cx.reply(
                Faulted::new("no such publication")
                    .with_explanation("not published in this process"),
            );
            return;
        };
        let name = held.listing.name.clone();
        let _ = cx.forward_from(
            Delivered {
                name: name.clone(),
                scope: o.level,
                subscription: key.0,
                publication: key.1,
                subscriber: o.subscriber.clone(),
            },
            &publisher,
            &o.subscriber,
        );
        self.serving.insert(
            key,
            Serving {
                publisher: publisher.clone(),
                subscriber: o.subscriber,
                home: cx.return_address().clone(),
                name,
                level: o.level,
            },
        );
        let _ = cx.reply(SessionOpened { publisher });
    }

    pub(super) fn session_closed(&mut self, cx: &mut Context, c: SessionClosed) {
        let served = (c.subscription, c.publication);
        if self.serving.contains_key(&served) {
            // The subscriber's home closed it.
            self.end_serving(cx, served, &c.reason, false);
            return;
        }
        // The publisher's node closed it: the publication is gone, so every
        // route to it goes and the next best (if any) is opened.
        let keys: Vec<RouteKey> = self
            .routing
            .iter()
            .filter(|(k, r)| {
                k.0 == c.subscription
                    && r.active
                        .as_ref()
                        .is_some_and(|a| a.publication == c.publication)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(mut routing) = self.routing.remove(&key) else {
                continue;
            };
            if let Some(active) = routing.active.take() {
                self.tell_dropped(cx, &key, &routing, &active, &c.reason);
            }
            routing.candidates.retain(|(_, p)| p.id != c.publication);
            self.routing.insert(key.clone(), routing);
            self.reselect(cx, key, &c.reason);
        }
    }

    /// Ends a session this process serves; `tell_home` when the end comes
    /// from this side.
    pub(super) fn end_serving(
        &mut self,
        cx: &mut Context,
        key: (Uuid, Uuid),
        why: &str,
        tell_home: bool,
    ) {
        let Some(serving) = self.serving.remove(&key) else {
            return;
        };
        let _ = cx.forward_from(
            Dropped {
                name: serving.name.clone(),
                scope: serving.level,
                subscription: key.0,
                publication: key.1,
                remote: serving.subscriber.clone(),
                reason: why.into(),
            },
            &serving.publisher,
            &serving.subscriber,
        );
        if tell_home {
            let _ = cx.send(
                SessionClosed {
                    subscription: key.0,
                    publication: key.1,
                    reason: why.into(),
                },
                &serving.home,
            );
        }
    }
}
