//! What a peer can reach over one link: the addresses this side wrote on it.
//!
//! Each time an address is written on a link (a message's sender, an address
//! inside a body, the controller named in the hello), the link records it
//! under a fresh random id — unguessable, never 0 — and writes that id. A
//! frame from the peer naming `Yours(id)` is looked up in this link's table
//! only: an id the link never gave out is refused and counted, whatever its
//! number, and never looked up anywhere else. Entries hold weak references
//! (an ended actor is not kept alive by having been named) and the whole
//! table goes with the link.
//!
//! A relayed route — an address learned over link A and written on link B —
//! gets an id in B's table that points at (A, the id A's peer gave it); the
//! entry goes when A or B closes (A tells every link that relays through it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::link::Link;
use crate::runtime::transport::unguessable_id;
use crate::runtime::{ActorId, Address, Mailbox};

/// How often refusals are logged, per link.
const WARN_EVERY: Duration = Duration::from_secs(60);

enum Target {
    Local(Weak<Mailbox>),
    /// Relayed: the actor known as `id` over `via`.
    Relay {
        via: Weak<Link>,
        id: u64,
    },
}

impl Target {
    fn address(&self) -> Option<Address> {
        match self {
            Target::Local(mailbox) => mailbox
                .upgrade()
                .filter(|m| !m.is_closed())
                .map(Address::local),
            Target::Relay { via, id } => via
                .upgrade()
                .filter(|link| !link.is_closed())
                .map(|link| Address::remote(link, *id)),
        }
    }
}

#[derive(Default)]
struct Table {
    by_id: HashMap<u64, Target>,
    /// The id given to each local actor, so that it keeps one on this link.
    actors: HashMap<ActorId, u64>,
    /// The id given to each relayed route, by (link, id there).
    relays: HashMap<(u64, u64), u64>,
    /// Links whose tables hold routes relayed over this one, by id.
    relayed_by: HashMap<u64, Weak<Link>>,
    /// Sizes after the last sweeps.
    swept: usize,
    relayers_swept: usize,
}

impl Table {
    fn insert(&mut self, target: Target) -> u64 {
        if self.by_id.len() >= 2 * self.swept + 64 {
            // Amortized: the table stays within twice what is alive.
            self.by_id.retain(|_, target| target.address().is_some());
            let by_id = &self.by_id;
            self.actors.retain(|_, id| by_id.contains_key(id));
            self.relays.retain(|_, id| by_id.contains_key(id));
            self.swept = self.by_id.len();
        }
        let id = unguessable_id(|id| self.by_id.contains_key(&id));
        self.by_id.insert(id, target);
        id
    }

    fn forget(&mut self, id: u64) {
        match self.by_id.remove(&id) {
            Some(Target::Local(_)) => self.actors.retain(|_, given| *given != id),
            Some(Target::Relay { .. }) => self.relays.retain(|_, given| *given != id),
            None => {}
        }
    }
}

/// One link's table of reachable ids, and its count of refusals.
#[derive(Default)]
pub(crate) struct Reach {
    table: Mutex<Table>,
    refused: AtomicU64,
    warned_at: Mutex<Option<Instant>>,
}

/// Why an id from the peer names nothing here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// It was given out, but the actor (or the relayed link) has gone.
    Ended,
    /// This link never gave it out (or it went long ago).
    NotGiven,
}

impl Reach {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id under which `mailbox`'s actor is reachable over this link.
    pub(crate) fn give_local(&self, mailbox: &Arc<Mailbox>) -> u64 {
        let mut table = self.table();
        if let Some(id) = table.actors.get(&mailbox.id) {
            return *id;
        }
        let id = table.insert(Target::Local(Arc::downgrade(mailbox)));
        table.actors.insert(mailbox.id, id);
        id
    }

    /// The id under which the actor known as `id` over `via` is reachable
    /// over this link (`me`), relayed.
    pub(crate) fn give_relay(&self, me: &Weak<Link>, my_id: u64, via: &Arc<Link>, id: u64) -> u64 {
        let given = {
            let mut table = self.table();
            if let Some(given) = table.relays.get(&(via.id, id)) {
                return *given;
            }
            let given = table.insert(Target::Relay {
                via: Arc::downgrade(via),
                id,
            });
            table.relays.insert((via.id, id), given);
            given
        };
        via.reach.relayed_by(my_id, me);
        given
    }

    /// Records that link `id` holds routes relayed over this link.
    fn relayed_by(&self, id: u64, link: &Weak<Link>) {
        let mut table = self.table();
        if table.relayed_by.contains_key(&id) {
            return;
        }
        if table.relayed_by.len() >= 2 * table.relayers_swept + 16 {
            table
                .relayed_by
                .retain(|_, link| link.upgrade().is_some_and(|l| !l.is_closed()));
            table.relayers_swept = table.relayed_by.len();
        }
        table.relayed_by.insert(id, link.clone());
    }

    /// What `id` names here; a miss forgets it.
    pub(crate) fn lookup(&self, id: u64) -> Result<Address, Miss> {
        let mut table = self.table();
        let Some(target) = table.by_id.get(&id) else {
            return Err(Miss::NotGiven);
        };
        match target.address() {
            Some(address) => Ok(address),
            None => {
                table.forget(id);
                Err(Miss::Ended)
            }
        }
    }

    /// Link `via` closed: the routes relayed over it are gone.
    fn drop_relays_via(&self, via: u64) {
        let mut table = self.table();
        let gone: Vec<u64> = table
            .relays
            .iter()
            .filter(|((link, _), _)| *link == via)
            .map(|(_, given)| *given)
            .collect();
        for id in gone {
            table.forget(id);
        }
    }

    /// This link closed (`me` is its id): its table goes, and so do the
    /// routes other links relay over it.
    pub(crate) fn close(&self, me: u64) {
        let relayers = {
            let mut table = self.table();
            let relayers = std::mem::take(&mut table.relayed_by);
            *table = Table::default();
            relayers
        };
        for link in relayers.values().filter_map(Weak::upgrade) {
            link.reach.drop_relays_via(me);
        }
    }

    /// How many ids were refused on this link.
    pub(crate) fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts a refusal; logs it at most once a minute per link, with the
    /// count so far.
    pub(crate) fn refuse(&self, link: u64, remote: &dyn std::fmt::Display, what: &str) {
        let count = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let mut warned = self.warned_at.lock().unwrap_or_else(|e| e.into_inner());
        if warned.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
            *warned = Some(now);
            tracing::warn!(
                link,
                refused = count,
                "refused {what} from \"{remote}\": not reachable over this link \
                 ({count} refused on it so far; logged at most once a minute)"
            );
        }
    }
}
