//! Tables of given ids: the one shape behind every place an address leaves
//! this process as a number — the ids a connection gives its peer (what the
//! peer can reach over it) and the ids of addresses written as JSON.
//!
//! Each address written gets a fresh random id — unguessable, never 0 —
//! and keeps it for as long as the table lives: a local actor by its
//! mailbox, a remote one by its channel and the id the peer gave it there.
//! Entries hold weak references, so an ended actor (or a closed channel) is
//! not kept alive by having been named, and they are swept, amortized, when
//! the table has doubled since the last sweep: a table holds at most about
//! twice what is alive.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Weak};

use super::address::{ActorId, Address};
use super::mailbox::Mailbox;
use super::transport::{Channel, unguessable_id};

/// A hasher for keys that are already well spread (random ids) or that
/// this process chose itself (actor ids, channel ids): one multiplication
/// per word instead of SipHash's rounds. Not for keys a peer chooses.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        // FxHash's step: rotate, mix in, multiply by a large odd constant.
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

/// A map keyed by ids this process chose (see [`IdHasher`]).
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Why an id names nothing in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// It was given, but its actor (or the channel it leads over) has gone.
    Ended,
    /// The table never gave it (or forgot it long ago).
    NotGiven,
}

enum Target {
    Local {
        mailbox: Weak<Mailbox>,
        actor: ActorId,
    },
    /// The actor known as `id` over `channel` (whose `channel_id` is
    /// kept, so that the entry can be found by it without the channel).
    Remote {
        channel: Weak<dyn Channel>,
        channel_id: u64,
        id: u64,
    },
}

impl Target {
    fn address(&self) -> Option<Address> {
        match self {
            Target::Local { mailbox, .. } => mailbox
                .upgrade()
                .filter(|m| !m.is_closed())
                .map(Address::local),
            Target::Remote { channel, id, .. } => channel
                .upgrade()
                .filter(|c| !c.is_closed())
                .map(|c| Address::remote(c, *id)),
        }
    }
}

/// Given ids and what each names.
#[derive(Default)]
pub(crate) struct IdTable {
    by_id: IdMap<u64, Target>,
    /// The id given to each local actor, so that it keeps one.
    actors: IdMap<ActorId, u64>,
    /// The id given to each remote route, by (channel, id there).
    routes: IdMap<(u64, u64), u64>,
    /// Size after the last sweep.
    swept: usize,
}

impl IdTable {
    /// Drops the entries whose actor or channel has gone.
    fn sweep(&mut self) {
        self.by_id.retain(|_, target| target.address().is_some());
        let by_id = &self.by_id;
        self.actors.retain(|_, id| by_id.contains_key(id));
        self.routes.retain(|_, id| by_id.contains_key(id));
        self.swept = self.by_id.len();
    }

    fn insert(&mut self, target: Target) -> u64 {
        if self.by_id.len() >= 2 * self.swept + 64 {
            self.sweep();
        }
        let id = unguessable_id(|id| self.by_id.contains_key(&id));
        self.by_id.insert(id, target);
        id
    }

    /// The id of `mailbox`'s actor, given on first use.
    pub(crate) fn give_local(&mut self, mailbox: &Arc<Mailbox>) -> u64 {
        if let Some(id) = self.actors.get(&mailbox.id) {
            return *id;
        }
        let id = self.insert(Target::Local {
            mailbox: Arc::downgrade(mailbox),
            actor: mailbox.id,
        });
        self.actors.insert(mailbox.id, id);
        id
    }

    /// The id of the actor known as `id` over `channel`, given on first use.
    pub(crate) fn give_remote(&mut self, channel: &Arc<dyn Channel>, id: u64) -> u64 {
        self.give_remote_within(channel, id, usize::MAX)
            .unwrap_or_else(|| unreachable!("no table holds usize::MAX routes"))
    }

    /// [`give_remote`](IdTable::give_remote), holding at most `max` remote
    /// routes whose channels are open: past it, `None`.
    pub(crate) fn give_remote_within(
        &mut self,
        channel: &Arc<dyn Channel>,
        id: u64,
        max: usize,
    ) -> Option<u64> {
        let key = (channel.channel_id(), id);
        if let Some(given) = self.routes.get(&key) {
            return Some(*given);
        }
        if self.routes.len() >= max {
            self.sweep();
            if self.routes.len() >= max {
                return None;
            }
        }
        let given = self.insert(Target::Remote {
            channel: Arc::downgrade(channel),
            channel_id: key.0,
            id,
        });
        self.routes.insert(key, given);
        Some(given)
    }

    /// What `id` names, if it is still alive; an id whose actor or channel
    /// has gone is forgotten.
    pub(crate) fn lookup(&mut self, id: u64) -> Result<Address, Miss> {
        let Some(target) = self.by_id.get(&id) else {
            return Err(Miss::NotGiven);
        };
        match target.address() {
            Some(address) => Ok(address),
            None => {
                self.forget(id);
                Err(Miss::Ended)
            }
        }
    }

    fn forget(&mut self, id: u64) {
        match self.by_id.remove(&id) {
            Some(Target::Local { actor, .. }) => {
                self.actors.remove(&actor);
            }
            Some(Target::Remote { channel_id, id, .. }) => {
                self.routes.remove(&(channel_id, id));
            }
            None => {}
        }
    }

    /// `actor` ended: its id names nothing any more.
    pub(crate) fn forget_actor(&mut self, actor: ActorId) {
        if let Some(id) = self.actors.remove(&actor) {
            self.by_id.remove(&id);
        }
    }

    /// Channel `channel` closed: the routes over it are gone.
    pub(crate) fn forget_routes_via(&mut self, channel: u64) {
        let by_id = &mut self.by_id;
        self.routes.retain(|(via, _), given| {
            let keep = *via != channel;
            if !keep {
                by_id.remove(given);
            }
            keep
        });
    }

    /// How many ids are held (live or not yet swept).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Context;

    #[tokio::test]
    async fn ids_are_kept_per_actor_and_swept_when_it_ends() {
        let mut table = IdTable::default();
        let cx = Context::detached("named");
        let mailbox = cx.address().mailbox().unwrap().clone();
        let id = table.give_local(&mailbox);
        assert_ne!(id, 0);
        assert_eq!(table.give_local(&mailbox), id);
        assert_eq!(table.lookup(id).unwrap(), *cx.address());
        assert_eq!(table.lookup(id ^ 1).unwrap_err(), Miss::NotGiven);
        drop(cx);
        drop(mailbox);
        assert_eq!(table.lookup(id).unwrap_err(), Miss::Ended);
        assert_eq!(table.lookup(id).unwrap_err(), Miss::NotGiven);

        // Ended actors go in the sweeps: the table stays near what lives.
        for _ in 0..10_000 {
            let cx = Context::detached("brief");
            table.give_local(cx.address().mailbox().unwrap());
        }
        assert!(table.len() <= 2 * 64 + 64, "{} ids held", table.len());
    }

    #[derive(Debug)]
    struct Open(u64);

    impl Channel for Open {
        fn send(
            &self,
            envelope: crate::runtime::Envelope,
            _: u64,
        ) -> Result<(), (crate::runtime::Envelope, crate::runtime::PushError)> {
            Err((envelope, crate::runtime::PushError::Closed))
        }
        fn send_waiting(
            &self,
            envelope: crate::runtime::Envelope,
            _: u64,
        ) -> crate::runtime::transport::Sending<'_> {
            Box::pin(async move { Err((envelope, crate::runtime::PushError::Closed)) })
        }
        fn is_closed(&self) -> bool {
            false
        }
        fn channel_id(&self) -> u64 {
            self.0
        }
        fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
            self
        }
        fn abandon(&self, _: &Address, _: u64) {}
        fn cancel(&self, _: &Address, _: u64) {}
    }

    #[test]
    fn remote_routes_are_capped_while_their_channels_are_open() {
        let mut table = IdTable::default();
        let first: Arc<dyn Channel> = Arc::new(Open(1));
        for id in 0..100 {
            assert!(table.give_remote_within(&first, id, 100).is_some());
        }
        // Known routes keep their ids; a new one is refused at the cap.
        let known = table.give_remote_within(&first, 7, 100);
        assert_eq!(known, table.give_remote_within(&first, 7, 100));
        assert_eq!(table.give_remote_within(&first, 100, 100), None);
        // Routes over a channel that has gone make room again.
        drop(first);
        let second: Arc<dyn Channel> = Arc::new(Open(2));
        assert!(table.give_remote_within(&second, 100, 100).is_some());
        assert_eq!(table.routes.len(), 1);
    }

    #[test]
    fn the_id_hasher_spreads_sequential_keys() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<IdHasher>::default();
        // The map picks a bucket by the hash's low bits: 1024 sequential
        // keys land in 1024 different buckets of 1024.
        let buckets: std::collections::HashSet<u64> = (0..1024u64)
            .map(|k| build.hash_one(ActorId(k)) & 1023)
            .collect();
        assert_eq!(buckets.len(), 1024);
    }
}
