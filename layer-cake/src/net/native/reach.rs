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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::link::Link;
pub(crate) use crate::runtime::ids::Miss;
use crate::runtime::ids::{IdMap, IdTable};
use crate::runtime::transport::Channel;
use crate::runtime::{Address, Mailbox};

/// How often refusals are logged, per link.
const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Table {
    ids: IdTable,
    /// Links whose tables hold routes relayed over this one, by id.
    relayed_by: IdMap<u64, Weak<Link>>,
    /// Size of `relayed_by` after its last sweep.
    relayers_swept: usize,
}

/// One link's table of reachable ids, and its count of refusals.
#[derive(Default)]
pub(crate) struct Reach {
    table: Mutex<Table>,
    refused: AtomicU64,
    warned_at: Mutex<Option<Instant>>,
}

impl Reach {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id under which `mailbox`'s actor is reachable over this link.
    pub(crate) fn give_local(&self, mailbox: &Arc<Mailbox>) -> u64 {
        self.table().ids.give_local(mailbox)
    }

    /// The id under which the actor known as `id` over `via` is reachable
    /// over this link (`me`), relayed; `None` when this link already holds
    /// `max` relayed routes over open links.
    pub(crate) fn give_relay(
        &self,
        me: &Weak<Link>,
        my_id: u64,
        via: &Arc<Link>,
        id: u64,
        max: usize,
    ) -> Option<u64> {
        let channel: Arc<dyn Channel> = via.clone();
        let given = self.table().ids.give_remote_within(&channel, id, max)?;
        via.reach.relayed_by(my_id, me);
        Some(given)
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
        self.table().ids.lookup(id)
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
            link.reach.table().ids.forget_routes_via(me);
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
