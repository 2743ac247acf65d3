//! The native transport: layer-cake frames between processes.
//!
//! After a connect or an accept, the ordinary `send`, `reply`, `forward` and
//! `ask` work across the connection: the peer is reached through the
//! `proxy` address, every message from the peer carries a return address
//! that routes back over the same connection, and addresses inside messages
//! stay usable — across several hops, since a process relays frames for the
//! routes it passes on. One connection carries any number of conversations.

pub(crate) mod book;
mod link;
#[doc(hidden)]
pub mod raw;
mod reach;
pub(crate) mod secure;
pub(crate) mod stream;
pub(crate) mod wire;

#[doc(hidden)]
pub use link::read_stream_for_fuzzing;
#[doc(hidden)]
pub use wire::decode_frame_for_fuzzing;

pub(crate) use link::Link;

use tokio::net::{TcpListener, TcpStream};

use super::listen::host_port;
use super::{Accepted, Connected, HostPort, LinkOptions, NotConnected};
use crate::runtime::Address;

/// Accepts native connections on `listener` for `owner`, until aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    owner: Address,
    listening: HostPort,
    options: LinkOptions,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let owner = owner.clone();
                let listening = listening.clone();
                let options = options.clone();
                tokio::spawn(async move {
                    let remote = host_port(peer);
                    let announce = {
                        let owner = owner.clone();
                        let remote = remote.clone();
                        move |proxy: Address| {
                            tracing::debug!(target: "layer_cake::object", tag = "(", "Accepted \"{remote}\", listening \"{listening}\"");
                            let _ = owner.send(Accepted {
                                listening,
                                remote,
                                proxy,
                                opened_at: link::now(),
                            });
                        }
                    };
                    // Off-host: the LAN handshake; a refusal is logged there.
                    let Ok(stream) = secure::wrap(stream, secure::Side::Responder, &options).await
                    else {
                        return;
                    };
                    if let Err(why) =
                        establish(stream, owner, remote.clone(), options, announce).await
                    {
                        tracing::warn!("refused a connection from \"{remote}\": {why}");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: say so, breathe, go on.
                tracing::warn!("cannot accept on \"{listening}\": {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Runs a native link over a connected `stream` for `owner`.
pub(crate) async fn connected(
    stream: TcpStream,
    owner: Address,
    requested: HostPort,
    options: LinkOptions,
) {
    let remote = stream
        .peer_addr()
        .map(host_port)
        .unwrap_or_else(|_| requested.clone());
    let announce = {
        let owner = owner.clone();
        let requested = requested.clone();
        let remote = remote.clone();
        move |proxy: Address| {
            tracing::debug!(target: "layer_cake::object", tag = "(", "Connected to \"{remote}\"");
            let _ = owner.send(Connected {
                requested,
                remote,
                proxy,
                opened_at: link::now(),
            });
        }
    };
    // Off-host: the LAN handshake first.
    let established = match secure::wrap(stream, secure::Side::Initiator, &options).await {
        Ok(stream) => establish(stream, owner.clone(), remote, options, announce).await,
        Err(why) => Err(why),
    };
    if let Err(why) = established {
        let _ = owner.send(NotConnected {
            requested,
            reason: why,
        });
    }
}

/// The handshake, then the reader until the link ends. `Err` when the link
/// never came up.
async fn establish(
    stream: stream::Halves,
    owner: Address,
    remote: HostPort,
    options: LinkOptions,
    announce: impl FnOnce(Address),
) -> Result<(), String> {
    if owner.mailbox().is_none() {
        return Err("only a local actor can own a connection".into());
    }
    let stream::Halves { read, write } = stream;
    let link = Link::open(write, remote, owner.clone(), options);
    link.offer(&owner)?;
    link.run(read, announce).await
}

#[cfg(test)]
mod tests;
