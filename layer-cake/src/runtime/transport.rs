//! What the runtime needs from a transport, without naming one.
//!
//! The runtime sits below the networking layer: an [`Address`] of an actor in
//! another process holds a [`Channel`] (a connection, implemented by the
//! native link in `net`) and the id the peer gave that actor on it. Inside a
//! frame being encoded or decoded for a connection, addresses are written
//! through an [`AddressCodec`] the transport installs for the duration of
//! the frame ([`encoding`], [`decoding`]); everywhere else they take their
//! process-wide JSON form (see [`Address`]'s `Serialize`).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::address::Address;
use super::envelope::Envelope;
use super::mailbox::PushError;

/// A future returned by [`Channel::send_waiting`].
pub(crate) type Sending<'a> =
    Pin<Box<dyn Future<Output = Result<(), (Envelope, PushError)>> + Send + 'a>>;

/// A connection to another process that envelopes can be sent over.
pub(crate) trait Channel: Send + Sync + fmt::Debug + 'static {
    /// Encodes and queues `envelope` for the actor the peer knows as `to`,
    /// without waiting; on failure the envelope is handed back.
    fn send(&self, envelope: Envelope, to: u64) -> Result<(), (Envelope, PushError)>;

    /// [`send`](Channel::send), waiting while the connection's queue is full.
    fn send_waiting(&self, envelope: Envelope, to: u64) -> Sending<'_>;

    /// Whether the connection has ended (every send is then refused).
    fn is_closed(&self) -> bool;

    /// Process-unique: two addresses over the same connection with the same
    /// id are the same address.
    fn channel_id(&self) -> u64;

    /// The concrete transport, for the layer that implemented it.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// `asker` gave up waiting for the answer to its request `id` sent over
    /// this channel: stop owing it a fault when the channel ends.
    fn abandon(&self, asker: &Address, id: u64);

    /// `asker`'s request `id`, sent over this channel, is cancelled: tell
    /// the peer, which cancels its copy of the request's context.
    fn cancel(&self, asker: &Address, id: u64);
}

/// Writes and reads addresses inside one frame, relative to the connection
/// the frame goes over or came from. Installed by the transport with
/// [`encoding`] or [`decoding`].
pub(crate) trait AddressCodec: Any {
    /// The index under which the frame records `address`.
    fn encode(&mut self, address: &Address) -> Result<u32, String>;
    /// The address the frame records at `index`.
    fn decode(&mut self, index: u32) -> Result<Address, String>;
}

thread_local! {
    static ENCODER: RefCell<Option<Box<dyn AddressCodec>>> = const { RefCell::new(None) };
    static DECODER: RefCell<Option<Box<dyn AddressCodec>>> = const { RefCell::new(None) };
}

type Slot = std::thread::LocalKey<RefCell<Option<Box<dyn AddressCodec>>>>;

fn with_codec<C: AddressCodec, R>(
    slot: &'static Slot,
    codec: Box<C>,
    f: impl FnOnce() -> R,
) -> (R, Box<C>) {
    let previous = slot.with(|s| s.replace(Some(codec)));
    let result = f();
    let mine = slot.with(|s| s.replace(previous));
    let codec = mine
        .and_then(|b| (b as Box<dyn Any>).downcast::<C>().ok())
        .unwrap_or_else(|| unreachable!("the codec installed for this frame is still there"));
    (result, codec)
}

/// Runs `f` (which encodes a frame's body) with `codec` writing its
/// addresses; returns what `f` returned and the codec. The codec is boxed
/// by the caller, so that a transport can keep one box per thread rather
/// than allocate one per frame.
pub(crate) fn encoding<C: AddressCodec, R>(codec: Box<C>, f: impl FnOnce() -> R) -> (R, Box<C>) {
    with_codec(&ENCODER, codec, f)
}

/// Runs `f` (which decodes a frame's body) with `codec` reading its
/// addresses; returns what `f` returned and the codec.
pub(crate) fn decoding<C: AddressCodec, R>(codec: Box<C>, f: impl FnOnce() -> R) -> (R, Box<C>) {
    with_codec(&DECODER, codec, f)
}

/// In a frame being encoded on this thread: the index of `address`.
pub(super) fn encode_in_frame(address: &Address) -> Option<Result<u32, String>> {
    ENCODER.with(|s| s.borrow_mut().as_mut().map(|c| c.encode(address)))
}

/// Whether a frame is being decoded on this thread.
pub(super) fn decoding_frame() -> bool {
    DECODER.with(|s| s.borrow().is_some())
}

/// In a frame being decoded on this thread: the address at `index`.
pub(super) fn decode_in_frame(index: u32) -> Result<Address, String> {
    DECODER.with(|s| match s.borrow_mut().as_mut() {
        Some(codec) => codec.decode(index),
        None => Err("no frame is being decoded".to_string()),
    })
}

/// Identifies this start of this process: random, fixed for its lifetime.
/// Directory entries, link handshakes and addresses written as JSON carry it
/// so that a restarted process never collides with what its previous run
/// left behind, and an address from another process is never taken for one
/// of this process's actors.
pub fn incarnation() -> u128 {
    static INCARNATION: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *INCARNATION.get_or_init(|| uuid::Uuid::new_v4().as_u128())
}

/// A fresh id nobody can guess: random, never 0, and not one `taken`
/// already holds.
pub(crate) fn unguessable_id(taken: impl Fn(u64) -> bool) -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 && !taken(id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(u32);

    impl AddressCodec for Counting {
        fn encode(&mut self, _: &Address) -> Result<u32, String> {
            self.0 += 1;
            Ok(self.0)
        }
        fn decode(&mut self, index: u32) -> Result<Address, String> {
            Err(format!("nothing at {index}"))
        }
    }

    #[test]
    fn a_codec_is_installed_for_the_frame_only_and_handed_back() {
        assert!(encode_in_frame(&Address::NULL).is_none());
        let ((), codec) = encoding(Box::new(Counting(0)), || {
            assert_eq!(encode_in_frame(&Address::NULL), Some(Ok(1)));
            // A frame inside a frame (never done, but harmless).
            let ((), inner) = encoding(Box::new(Counting(10)), || {
                assert_eq!(encode_in_frame(&Address::NULL), Some(Ok(11)));
            });
            assert_eq!(inner.0, 11);
            assert_eq!(encode_in_frame(&Address::NULL), Some(Ok(2)));
        });
        assert_eq!(codec.0, 2);
        assert!(encode_in_frame(&Address::NULL).is_none());
        assert!(!decoding_frame());
        let (err, _) = decoding(Box::new(Counting(0)), || decode_in_frame(3));
        assert_eq!(err.unwrap_err(), "nothing at 3");
    }

    #[test]
    fn unguessable_ids_are_never_zero_nor_taken() {
        let first = unguessable_id(|_| false);
        let second = unguessable_id(|id| id == first);
        assert_ne!(first, 0);
        assert_ne!(first, second);
    }
}
