//! The publisher's side of a session: taking opens from subscribers' homes
//! and ending the sessions this process serves.

use uuid::Uuid;

use super::super::protocol::{OpenSession, SessionClosed, SessionOpened};
use super::super::{Delivered, Dropped, Scope};
use super::Node;
use super::routes::{Peer, RouteKey};
use super::store::Source;
use crate::message::Faulted;
use crate::net::HostPort;
use crate::runtime::{Address, Context};

/// A session as the publisher's node sees it.
pub(super) struct Serving {
    pub(super) publisher: Address,
    pub(super) subscriber: Address,
    /// The subscriber's home node (the connection's proxy).
    pub(super) home: Address,
    /// The link the session was opened over: only it can close the session.
    pub(super) link: u64,
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
        if let Err(why) = self.may_open(cx, &o, held.listing.scope, &name) {
            self.refusals.refuse(
                self.options.level,
                "a session open",
                &format!("{why} ({name})"),
            );
            let _ = cx.reply(Faulted::new("session refused").with_explanation(why));
            return;
        }
        let Some(link) = cx.return_address().link_id() else {
            return;
        };
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
                link,
                name,
                level: o.level,
            },
        );
        let _ = cx.reply(SessionOpened { publisher });
    }

    /// Whether the peer that sent `o` may open a session with a publication
    /// of `scope` named `name` held here: a subscriber's home connected to
    /// this process's session listener, naming a subscriber behind that
    /// same connection, whose pattern matches the name, at a level the
    /// publication reaches (and from another host only for a LAN listing).
    fn may_open(
        &mut self,
        cx: &Context,
        o: &OpenSession,
        scope: Scope,
        name: &str,
    ) -> Result<(), String> {
        let from = cx.return_address();
        let link = from.link_id().ok_or("not from another process")?;
        let accepted = self
            .accepted
            .get(from)
            .filter(|a| !a.child)
            .ok_or("not over a session connection to this process")?;
        let local_peer = accepted
            .remote
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if o.subscriber.link_id() != Some(link) {
            return Err("the subscriber is not behind the connection that asked".into());
        }
        if o.level <= Scope::Process || o.level > scope {
            return Err(format!(
                "a level ({}) the publication does not reach",
                o.level
            ));
        }
        if scope < Scope::Lan && !local_peer {
            return Err(format!(
                "a {scope} publication, asked for from another host"
            ));
        }
        let regex = self.patterns.get(&o.pattern)?;
        if !regex.is_match(name) {
            return Err("the subscription does not match the name".into());
        }
        if let Some(serving) = self.serving.get(&(o.subscription, o.publication))
            && serving.link != link
        {
            return Err("that session is another connection's".into());
        }
        Ok(())
    }

    pub(super) fn session_closed(&mut self, cx: &mut Context, c: SessionClosed) {
        let served = (c.subscription, c.publication);
        let over = cx.return_address().link_id();
        if let Some(serving) = self.serving.get(&served) {
            if over != Some(serving.link) {
                let from = cx.return_address().clone();
                self.refusals.refuse(
                    self.options.level,
                    "a session close not from the connection that opened it",
                    &from,
                );
                return;
            }
            // The subscriber's home closed it.
            self.end_serving(cx, served, &c.reason, false);
            return;
        }
        // The publisher's node closed it: the publication is gone, so every
        // route to it goes and the next best (if any) is opened.
        // Only over the connection to the publisher's process.
        let peer_link = |at: &Option<HostPort>| match at.as_ref().and_then(|at| self.peers.get(at))
        {
            Some(Peer::Up(proxy)) => proxy.link_id(),
            _ => None,
        };
        let mut refused = false;
        let keys: Vec<RouteKey> = self
            .routing
            .iter()
            .filter(|(k, r)| {
                let Some(active) = r.active.as_ref() else {
                    return false;
                };
                if k.0 != c.subscription || active.publication != c.publication {
                    return false;
                }
                let ours = over.is_some() && peer_link(&active.peer) == over;
                refused |= !ours;
                ours
            })
            .map(|(k, _)| k.clone())
            .collect();
        if refused {
            let from = cx.return_address().clone();
            self.refusals.refuse(
                self.options.level,
                "a session close not from the publisher's connection",
                &from,
            );
        }
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
