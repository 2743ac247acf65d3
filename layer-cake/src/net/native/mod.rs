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
pub(crate) mod local;
mod quiet;
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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::listen::host_port;
use super::{Accepted, Connected, HostPort, LinkOptions, NotConnected, Transport};
use crate::runtime::Address;

/// Which side of a connection this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// It accepted the connection.
    Accepted,
    /// It made the connection.
    Connected,
}

/// Where a TCP peer is, which decides the proof it must give before a frame
/// is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whereabouts {
    /// On loopback: this host. Its owner is checked in the socket table.
    Local,
    /// Anywhere else: it must pass the off-host handshake.
    OffHost,
}

/// Where the TCP peer at `peer` is: loopback (IPv4, IPv6 or IPv4-mapped) is
/// this host, whatever else is off-host.
pub(crate) fn whereabouts(peer: SocketAddr) -> Whereabouts {
    if peer.ip().to_canonical().is_loopback() {
        Whereabouts::Local
    } else {
        Whereabouts::OffHost
    }
}

/// Why a connection did not become a link.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotAdmitted {
    /// A local peer of the wrong user.
    #[error(transparent)]
    Refused(#[from] local::Refused),
    /// An off-host peer that failed the LAN handshake (already logged,
    /// rate-limited, by the handshake).
    #[error("{0}")]
    Handshake(String),
    /// Anything else (an I/O error).
    #[error("{0}")]
    Failed(String),
}

/// The seam between a TCP socket and the link: a connection this process
/// accepted (`side`) or made becomes the link's byte stream here, after its
/// peer has given the proof its [`Whereabouts`] require. Nothing of the
/// peer's is read before this returns `Ok`.
pub(crate) async fn admit_tcp(
    stream: TcpStream,
    side: Side,
    options: &LinkOptions,
) -> Result<stream::Halves, NotAdmitted> {
    let io = |what: &str, e: std::io::Error| NotAdmitted::Failed(format!("{what}: {e}"));
    let peer = stream.peer_addr().map_err(|e| io("no peer address", e))?;
    match whereabouts(peer) {
        // Loopback links secured on request (tests, benchmarks) take the
        // off-host path instead.
        Whereabouts::Local if !options.secure_loopback => {
            let ours = stream.local_addr().map_err(|e| io("no local address", e))?;
            let owner = match side {
                Side::Accepted => local::tcp_peer(ours, peer)?,
                Side::Connected => local::tcp_listener(peer)?,
            };
            local::Admission::new(options.allowed_group).check(owner, "loopback TCP")?;
            Ok(stream.into())
        }
        _ => off_host(stream, side, options).await,
    }
}

/// The off-host path: a peer that is not on this host must complete the
/// LAN's encrypted, mutually authenticated handshake (`secure`) before a
/// frame is read.
async fn off_host(
    stream: TcpStream,
    side: Side,
    options: &LinkOptions,
) -> Result<stream::Halves, NotAdmitted> {
    let side = match side {
        Side::Accepted => secure::Side::Responder,
        Side::Connected => secure::Side::Initiator,
    };
    secure::wrap(stream, side, options)
        .await
        .map_err(NotAdmitted::Handshake)
}

/// The seam for a Unix-socket link: the peer's `SO_PEERCRED` must pass the
/// rule before a frame is read.
pub(crate) fn admit_unix(
    stream: UnixStream,
    options: &LinkOptions,
) -> Result<stream::Halves, NotAdmitted> {
    let peer = local::unix_peer(&stream)?;
    local::Admission::new(options.allowed_group).check(peer, "SO_PEERCRED")?;
    quiet::halves(stream)
        .map_err(|e| NotAdmitted::Failed(format!("cannot register the Unix socket: {e}")))
}

/// Binds the abstract Unix sockets beside the TCP `listener` (for a
/// loopback or unspecified address, unless `options` say not to), before
/// the listen is reported: a peer that connects as soon as it hears of the
/// listen must find them. One that cannot be bound is logged, and local
/// peers use TCP there.
pub(crate) fn bind_beside(
    listener: &TcpListener,
    listening: &HostPort,
    options: &LinkOptions,
) -> Vec<(UnixListener, HostPort)> {
    let mut bound = Vec::new();
    if options.unix_socket
        && !options.secure_loopback
        && let Ok(at) = listener.local_addr()
    {
        for name in local::unix_names(at) {
            match local::bind(&name) {
                Ok(l) => {
                    tracing::debug!(
                        "Listening on \"\\0{}\" beside \"{listening}\"",
                        local::socket_name(&name)
                    );
                    bound.push((l, name));
                }
                Err(e) => tracing::warn!(
                    "cannot listen on the abstract socket {:?} beside \"{listening}\" (local peers use TCP): {e}",
                    local::socket_name(&name)
                ),
            }
        }
    }
    bound
}

/// Accepts native connections on `listener` and on the abstract Unix
/// sockets [`bind_beside`] bound for it (`unix`), for `owner`, until
/// aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    unix: Vec<(UnixListener, HostPort)>,
    owner: Address,
    listening: HostPort,
    options: LinkOptions,
) {
    let refusals = Arc::new(local::RefusalLog::default());
    let unix: Vec<_> = unix
        .into_iter()
        .map(|(l, name)| {
            serve_unix(
                l,
                name,
                owner.clone(),
                listening.clone(),
                options.clone(),
                refusals.clone(),
            )
        })
        .collect();
    let tcp = serve_tcp(listener, owner, listening, options, refusals);
    futures_util::future::join(tcp, futures_util::future::join_all(unix)).await;
}

async fn serve_tcp(
    listener: TcpListener,
    owner: Address,
    listening: HostPort,
    options: LinkOptions,
    refusals: Arc<local::RefusalLog>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let owner = owner.clone();
                let listening = listening.clone();
                let options = options.clone();
                let refusals = refusals.clone();
                tokio::spawn(async move {
                    let remote = host_port(peer);
                    match admit_tcp(stream, Side::Accepted, &options).await {
                        Ok(halves) => {
                            accepted(halves, Transport::Tcp, owner, listening, remote, options)
                                .await
                        }
                        Err(NotAdmitted::Refused(why)) => {
                            let _ = refusals.refused(&listening, Transport::Tcp, &why);
                        }
                        // Logged by the handshake, at most once a minute
                        // per source address.
                        Err(NotAdmitted::Handshake(_)) => {}
                        Err(why) => tracing::warn!("refused a connection from \"{remote}\": {why}"),
                    }
                });
            }
            Err(e) => breathe(&listening, e).await,
        }
    }
}

async fn serve_unix(
    listener: UnixListener,
    name: HostPort,
    owner: Address,
    listening: HostPort,
    options: LinkOptions,
    refusals: Arc<local::RefusalLog>,
) {
    let mut connections: u16 = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let owner = owner.clone();
                let listening = listening.clone();
                let options = options.clone();
                let refusals = refusals.clone();
                // A Unix peer has no address: it is named by the loopback
                // host it came in beside and, as its port, the number of its
                // connection on this listener (1, 2, …), so that two peers
                // of one listener never share a name (the directory tells
                // its children apart by it).
                connections = connections.checked_add(1).unwrap_or(1);
                let remote = HostPort::new(name.host.clone(), connections);
                tokio::spawn(async move {
                    match admit_unix(stream, &options) {
                        Ok(halves) => {
                            accepted(halves, Transport::Unix, owner, listening, remote, options)
                                .await
                        }
                        Err(NotAdmitted::Refused(why)) => {
                            let _ = refusals.refused(&listening, Transport::Unix, &why);
                        }
                        Err(why) => tracing::warn!("refused a local connection: {why}"),
                    }
                });
            }
            Err(e) => breathe(&listening, e).await,
        }
    }
}

/// Out of file descriptors and the like: say so, breathe, go on.
async fn breathe(listening: &HostPort, e: std::io::Error) {
    tracing::warn!("cannot accept on \"{listening}\": {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Runs the link of an admitted, accepted connection.
async fn accepted(
    stream: stream::Halves,
    transport: Transport,
    owner: Address,
    listening: HostPort,
    remote: HostPort,
    options: LinkOptions,
) {
    let announce = {
        let owner = owner.clone();
        let remote = remote.clone();
        move |proxy: Address| {
            tracing::debug!(target: "layer_cake::object", tag = "(", "Accepted \"{remote}\" over {transport:?}, listening \"{listening}\"");
            let _ = owner.send(Accepted {
                listening,
                remote,
                proxy,
                opened_at: link::now(),
                transport,
            });
        }
    };
    if let Err(why) = establish(stream, owner, remote.clone(), options, announce).await {
        tracing::warn!("refused a connection from \"{remote}\": {why}");
    }
}

/// A native connect to `to`: over the abstract Unix socket when `to` is a
/// loopback address with a listener beside it, else over TCP; then the peer
/// check, then the link. The outcome goes to `owner`.
pub(crate) async fn connect(owner: Address, to: HostPort, options: LinkOptions, timeout: Duration) {
    let attempt = async {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((to.host.as_str(), to.port))
            .await?
            .collect();
        if options.unix_socket && !options.secure_loopback {
            for address in addresses
                .iter()
                .filter(|a| whereabouts(**a) == Whereabouts::Local)
            {
                let name = host_port(SocketAddr::new(address.ip().to_canonical(), address.port()));
                match local::connect(&name).await {
                    Ok(stream) => return Ok(Stream::Unix(stream, name)),
                    // Nobody listens there: TCP it is.
                    Err(e) => tracing::trace!("no abstract socket beside \"{name}\": {e}"),
                }
            }
        }
        TcpStream::connect(&addresses[..]).await.map(Stream::Tcp)
    };
    let outcome = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {timeout:?}")),
    };
    let admitted = match outcome {
        Ok(Stream::Unix(stream, name)) => admit_unix(stream, &options)
            .map(|halves| (halves, Transport::Unix, name))
            .map_err(|e| e.to_string()),
        Ok(Stream::Tcp(stream)) => {
            let remote = stream
                .peer_addr()
                .map(host_port)
                .unwrap_or_else(|_| to.clone());
            admit_tcp(stream, Side::Connected, &options)
                .await
                .map(|halves| (halves, Transport::Tcp, remote))
                .map_err(|e| e.to_string())
        }
        Err(why) => Err(why),
    };
    match admitted {
        Ok((halves, transport, remote)) => {
            connected(halves, transport, owner, to, remote, options).await
        }
        Err(reason) => {
            let _ = owner.send(NotConnected {
                requested: to,
                reason,
            });
        }
    }
}

/// A connected socket, before the peer check.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream, HostPort),
}

/// Runs a native link over an admitted, connected `stream` for `owner`.
async fn connected(
    stream: stream::Halves,
    transport: Transport,
    owner: Address,
    requested: HostPort,
    remote: HostPort,
    options: LinkOptions,
) {
    let announce = {
        let owner = owner.clone();
        let requested = requested.clone();
        let remote = remote.clone();
        move |proxy: Address| {
            tracing::debug!(target: "layer_cake::object", tag = "(", "Connected to \"{remote}\" over {transport:?}");
            let _ = owner.send(Connected {
                requested,
                remote,
                proxy,
                opened_at: link::now(),
                transport,
            });
        }
    };
    if let Err(why) = establish(stream, owner.clone(), remote, options, announce).await {
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
mod same_host_tests;
#[cfg(test)]
mod tests;
