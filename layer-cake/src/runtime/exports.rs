//! The ids this process has given addresses written as JSON (for the HTTP
//! front, stdout, a child's result): decoding such an address in this
//! process finds the actor again through this table. Ids are random and
//! unguessable; entries hold weak references, so an ended actor (or a closed
//! connection) is not kept alive by having been written once.
//!
//! Connections keep tables of their own (what a peer can reach is what was
//! sent to it); nothing read from a connection is ever looked up here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::address::{ActorId, Address};
use super::mailbox::Mailbox;
use super::transport::{Channel, unguessable_id};

enum Target {
    Local(Weak<Mailbox>),
    Remote { channel: Weak<dyn Channel>, id: u64 },
}

impl Target {
    fn address(&self) -> Option<Address> {
        match self {
            Target::Local(mailbox) => mailbox
                .upgrade()
                .filter(|m| !m.is_closed())
                .map(Address::local),
            Target::Remote { channel, id } => channel
                .upgrade()
                .filter(|c| !c.is_closed())
                .map(|c| Address::remote(c, *id)),
        }
    }
}

#[derive(Default)]
struct Table {
    by_id: HashMap<u64, Target>,
    /// The JSON id of each local actor written, so that it keeps one.
    actors: HashMap<ActorId, u64>,
    /// The JSON id of each remote route written, by (connection, id there).
    routes: HashMap<(u64, u64), u64>,
    /// Size after the last sweep of dead entries.
    swept: usize,
}

impl Table {
    fn insert(&mut self, target: Target) -> u64 {
        self.sweep_now_and_then();
        let id = unguessable_id(|id| self.by_id.contains_key(&id));
        self.by_id.insert(id, target);
        id
    }

    /// Drops entries whose actor or connection has gone, whenever the table
    /// has doubled since the last sweep: amortized, and bounded by twice
    /// what is alive.
    fn sweep_now_and_then(&mut self) {
        if self.by_id.len() < 2 * self.swept + 64 {
            return;
        }
        self.by_id.retain(|_, target| target.address().is_some());
        let by_id = &self.by_id;
        self.actors.retain(|_, id| by_id.contains_key(id));
        self.routes.retain(|_, id| by_id.contains_key(id));
        self.swept = self.by_id.len();
    }
}

fn table() -> std::sync::MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The JSON id of a local actor, given on first use.
pub(crate) fn export(mailbox: &Arc<Mailbox>) -> u64 {
    let mut table = table();
    if let Some(id) = table.actors.get(&mailbox.id) {
        return *id;
    }
    mailbox.mark_exported();
    let id = table.insert(Target::Local(Arc::downgrade(mailbox)));
    table.actors.insert(mailbox.id, id);
    id
}

/// The JSON id of the actor known as `id` over `channel`.
pub(crate) fn export_remote(channel: &Arc<dyn Channel>, id: u64) -> u64 {
    let key = (channel.channel_id(), id);
    let mut table = table();
    if let Some(json) = table.routes.get(&key) {
        return *json;
    }
    let json = table.insert(Target::Remote {
        channel: Arc::downgrade(channel),
        id,
    });
    table.routes.insert(key, json);
    json
}

/// The address a JSON id names here, if it is still alive.
pub(crate) fn lookup(id: u64) -> Option<Address> {
    let mut table = table();
    let found = table.by_id.get(&id)?.address();
    if found.is_none() {
        table.by_id.remove(&id);
    }
    found
}

/// An actor whose address was written as JSON ended: its id names nothing
/// any more.
pub(crate) fn forget(actor: ActorId) {
    let mut table = table();
    if let Some(id) = table.actors.remove(&actor) {
        table.by_id.remove(&id);
    }
}
