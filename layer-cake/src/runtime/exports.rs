//! The ids this process has given addresses written as JSON (for the HTTP
//! front, stdout, a child's result): decoding such an address in this
//! process finds the actor again through this table (an [`IdTable`]:
//! random, unguessable ids held by weak reference).
//!
//! Connections keep tables of their own (what a peer can reach is what was
//! sent to it); nothing read from a connection is ever looked up here.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::address::{ActorId, Address};
use super::ids::IdTable;
use super::mailbox::Mailbox;
use super::transport::Channel;

fn table() -> MutexGuard<'static, IdTable> {
    static TABLE: OnceLock<Mutex<IdTable>> = OnceLock::new();
    TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The JSON id of a local actor, given on first use.
pub(crate) fn export(mailbox: &Arc<Mailbox>) -> u64 {
    mailbox.mark_exported();
    table().give_local(mailbox)
}

/// The JSON id of the actor known as `id` over `channel`.
pub(crate) fn export_remote(channel: &Arc<dyn Channel>, id: u64) -> u64 {
    table().give_remote(channel, id)
}

/// The address a JSON id names here, if it is still alive.
pub(crate) fn lookup(id: u64) -> Option<Address> {
    table().lookup(id).ok()
}

/// An actor whose address was written as JSON ended: its id names nothing
/// any more.
pub(crate) fn forget(actor: ActorId) {
    table().forget_actor(actor);
}
