//! Frames as a peer writes them, byte for byte: for benches, fuzzing and
//! hostile-peer tests that speak the native protocol over a raw socket.
//! Not part of the API.

use super::wire::{self, Header, Kind, MessageHeader, VERSION, WireAddr};
use crate::message::Message;
use crate::message::codec::{CodecError, binary};

/// A whole hello frame (length prefix included) naming `controller` as the
/// sender's controlling actor.
pub fn hello(controller: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let header = Header {
        version: VERSION,
        kind: Kind::Hello {
            controller,
            incarnation: 0,
        },
    };
    wire::frame(&mut bytes, &header, &[]);
    bytes
}

/// A whole frame carrying request `request` of type `M` from the sender's
/// actor `from` to the receiver's actor `to`.
pub fn request<M: Message>(
    to: u64,
    from: u64,
    request: u64,
    message: &M,
) -> Result<Vec<u8>, CodecError> {
    let mut body = Vec::new();
    binary::encode(message, &mut body)?;
    let header = Header {
        version: VERSION,
        kind: Kind::Message(MessageHeader {
            to: WireAddr::Yours(to),
            from: WireAddr::Mine(from),
            signature: crate::message::signature::static_signature::<M>(),
            tag: 1,
            request,
            trace: None,
            caller: None,
            trace_state: None,
            ingress: WireAddr::Null,
            book: Vec::new(),
        }),
    };
    let mut bytes = Vec::with_capacity(body.len() + 32);
    wire::frame(&mut bytes, &header, &body);
    Ok(bytes)
}

/// The controlling actor named by a hello frame (without its length
/// prefix), if that is what the frame is.
pub fn hello_controller(frame: &[u8]) -> Option<u64> {
    match wire::split(frame) {
        Ok((
            Header {
                kind: Kind::Hello { controller, .. },
                ..
            },
            _,
        )) => Some(controller),
        _ => None,
    }
}
