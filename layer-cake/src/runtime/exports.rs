//! Actors whose addresses have been serialized, by id, so that an address
//! decoded in this process finds its actor again. Only addresses that are
//! actually encoded land here; purely local actors never pay for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::address::ActorId;
use super::mailbox::Mailbox;

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<ActorId, Weak<Mailbox>>>;

fn shards() -> &'static [Shard; SHARDS] {
    static TABLE: OnceLock<[Shard; SHARDS]> = OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|_| Mutex::new(HashMap::new())))
}

fn shard(id: ActorId) -> &'static Shard {
    &shards()[(id.0 as usize) % SHARDS]
}

pub(crate) fn export(mailbox: &Arc<Mailbox>) {
    if mailbox.mark_exported() {
        shard(mailbox.id)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(mailbox.id, Arc::downgrade(mailbox));
    }
}

pub(crate) fn lookup(id: ActorId) -> Option<Arc<Mailbox>> {
    shard(id)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .and_then(Weak::upgrade)
}

pub(crate) fn forget(id: ActorId) {
    shard(id)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}
