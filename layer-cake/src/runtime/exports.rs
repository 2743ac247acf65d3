//! The ids this process has given out on the wire: its actors whose
//! addresses were serialized, and the routes it relays (an address learned
//! over one link, passed on over another). A frame addressed to one of these
//! ids finds its target here. Purely local actors never pay for it: only
//! addresses that are actually encoded land in the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::address::{ActorId, Address};
use super::mailbox::Mailbox;
use crate::net::native::Link;

const SHARDS: usize = 16;

enum Target {
    Local(Weak<Mailbox>),
    Relay { link: Weak<Link>, id: u64 },
}

type Shard = Mutex<HashMap<u64, Target>>;

fn shards() -> &'static [Shard; SHARDS] {
    static TABLE: OnceLock<[Shard; SHARDS]> = OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|_| Mutex::new(HashMap::new())))
}

fn shard(id: u64) -> std::sync::MutexGuard<'static, HashMap<u64, Target>> {
    shards()[(id as usize) % SHARDS]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Relay ids by (link, id on that link), and by link for cleaning up.
#[derive(Default)]
struct Relays {
    by_route: HashMap<(u64, u64), u64>,
    by_link: HashMap<u64, Vec<u64>>,
}

fn relays() -> std::sync::MutexGuard<'static, Relays> {
    static RELAYS: OnceLock<Mutex<Relays>> = OnceLock::new();
    RELAYS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The wire id of a local actor (its actor id), exported on first use.
pub(crate) fn export(mailbox: &Arc<Mailbox>) -> u64 {
    if mailbox.mark_exported() {
        shard(mailbox.id.0).insert(mailbox.id.0, Target::Local(Arc::downgrade(mailbox)));
    }
    mailbox.id.0
}

/// The wire id under which this process relays to `id` over `link`; the same
/// route always gets the same id.
pub(crate) fn export_relay(link: &Arc<Link>, id: u64) -> u64 {
    let mut relays = relays();
    if let Some(relay) = relays.by_route.get(&(link.id, id)) {
        return *relay;
    }
    let relay = super::next_id().0;
    shard(relay).insert(
        relay,
        Target::Relay {
            link: Arc::downgrade(link),
            id,
        },
    );
    relays.by_route.insert((link.id, id), relay);
    relays.by_link.entry(link.id).or_default().push(relay);
    relay
}

/// The address a wire id names here, if it is still alive.
pub(crate) fn lookup(id: ActorId) -> Option<Address> {
    match shard(id.0).get(&id.0)? {
        Target::Local(mailbox) => mailbox.upgrade().map(Address::local),
        Target::Relay { link, id } => link.upgrade().map(|link| Address::remote(link, *id)),
    }
}

/// An actor ended: its id names nothing any more.
pub(crate) fn forget(id: ActorId) {
    shard(id.0).remove(&id.0);
}

/// A link closed: every route relayed over it is gone.
pub(crate) fn forget_link(link_id: u64) {
    let gone = {
        let mut relays = relays();
        let gone = relays.by_link.remove(&link_id).unwrap_or_default();
        relays.by_route.retain(|(link, _), _| *link != link_id);
        gone
    };
    for relay in gone {
        shard(relay).remove(&relay);
    }
}
