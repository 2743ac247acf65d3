//! Links that leave the host: encrypted and mutually authenticated with the
//! LAN key before the link reads a single frame.
//!
//! **Why Noise with a pre-shared key.** The hosts of a LAN share one secret
//! ([`LanKey`]); what a link needs is proof that the peer holds it, secrecy
//! and integrity of the bytes, and forward secrecy. `Noise_NNpsk0_25519_
//! AESGCM_BLAKE2s` (the `snow` crate) gives exactly that in one round
//! trip: each side makes an ephemeral X25519 key (forward secrecy: a key
//! that leaks later does not open recorded traffic), the PSK is mixed into
//! the very first message (the responder knows at once whether the initiator
//! holds the key, and the initiator knows the responder does when the reply
//! decrypts), and there are no certificates, authorities or expiry dates to
//! manage. TLS 1.3 with an external PSK would do the same, but rustls does
//! not offer external PSKs to TLS 1.3 clients, and TLS with certificates
//! means running a small PKI for every LAN. AES-GCM rather than
//! ChaChaPoly: with the CPU's AES instructions (x86-64 AES-NI, ARMv8 crypto
//! extensions, both detected at run time by the RustCrypto crates) a small
//! message costs far less — measured in `benches/secure.rs`, a sequential
//! ask over a ChaChaPoly link took 1.6–1.7 × the plain one, over AES-GCM
//! 1.2 × — and the software fallback is constant-time.
//!
//! **On the wire.** The handshake is two messages of 48 bytes (an ephemeral
//! public key and the tag of an empty payload), each behind a 2-byte
//! big-endian length; anything else (a plaintext native Hello, whose first
//! two bytes are the top of a 4-byte length, random bytes, a peer with
//! another key) is refused and the connection closed before the link exists.
//! Then each direction is a sequence of Noise transport messages of at most
//! 65 535 bytes, each behind a 2-byte length, carrying the link's byte stream
//! (a large write is split). The two directions use explicit nonces
//! (`StatelessTransportState`), so the reader and the writer run in separate
//! tasks without sharing a lock.
//!
//! **Who uses it.** Both ends decide the same way: the link is secured when
//! the peer's address is not a loopback address (or when
//! [`LinkOptions::secure_loopback`] says so, for tests and benchmarks), unless
//! both ends opted into [`LinkOptions::insecure_plaintext_off_host`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use snow::StatelessTransportState;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::io::StreamReader;

use super::stream::Halves;
use crate::net::{LanKey, LinkOptions};

/// The Noise protocol name (and so the suite) of a secured link.
pub(crate) const PATTERN: &str = "Noise_NNpsk0_25519_AESGCM_BLAKE2s";
/// Bound into the handshake hash: a key used for something else, or another
/// version of this framing, cannot complete a handshake with this one.
const PROLOGUE: &[u8] = b"layer-cake LAN link v1";
/// The largest Noise message.
const MAX_MESSAGE: usize = 65_535;
/// The AES-GCM tag.
const TAG: usize = 16;
/// The largest plaintext one message carries.
const MAX_PLAIN: usize = MAX_MESSAGE - TAG;
/// Both handshake messages: an X25519 public key and the tag of an empty
/// payload.
const HANDSHAKE_MESSAGE: usize = 32 + TAG;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Connected: speaks first.
    Initiator,
    /// Accepted.
    Responder,
}

/// Why a connection could not be secured.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecureError {
    /// The peer is off-host and this process has no LAN key.
    #[error(
        "no LAN key, and \"{peer}\" is off this host: create one with `layer-cake lan-key create` and copy it to every host of the LAN (looked for it at {looked_at})"
    )]
    NoKey { peer: SocketAddr, looked_at: String },
    /// The handshake did not finish in time.
    #[error("the LAN handshake with \"{peer}\" took longer than {limit:?}")]
    Timeout { peer: SocketAddr, limit: Duration },
    /// The peer closed the connection during the handshake.
    #[error(
        "\"{peer}\" closed the connection during the LAN handshake (it may not hold this LAN key, or may not expect an encrypted link)"
    )]
    Closed { peer: SocketAddr },
    /// A handshake message of the wrong size: not a layer-cake peer that
    /// secures the link.
    #[error(
        "\"{peer}\" sent a handshake message of {got} bytes instead of {HANDSHAKE_MESSAGE}: not a layer-cake peer with the LAN key (a plaintext link, or garbage)"
    )]
    Size { peer: SocketAddr, got: usize },
    /// The handshake did not verify: the peer holds another key.
    #[error("\"{peer}\" failed the LAN handshake (it does not hold this LAN key): {why}")]
    Refused { peer: SocketAddr, why: String },
    /// The socket failed.
    #[error("the socket to \"{peer}\" failed during the LAN handshake: {source}")]
    Io { peer: SocketAddr, source: io::Error },
}

impl SecureError {
    fn peer(&self) -> SocketAddr {
        match self {
            SecureError::NoKey { peer, .. }
            | SecureError::Timeout { peer, .. }
            | SecureError::Closed { peer }
            | SecureError::Size { peer, .. }
            | SecureError::Refused { peer, .. }
            | SecureError::Io { peer, .. } => *peer,
        }
    }
}

/// Whether a link to `peer` must be secured under `options`.
pub(crate) fn must_secure(peer: &SocketAddr, options: &LinkOptions) -> bool {
    let off_host = !peer.ip().to_canonical().is_loopback() || options.secure_loopback;
    off_host && !options.insecure_plaintext_off_host
}

/// **The hook** between the socket and the link: turns a connected (`side`
/// [`Initiator`](Side::Initiator)) or accepted ([`Responder`](Side::Responder))
/// TCP stream into the link's byte stream, running the LAN handshake first
/// when the peer is off-host (see the [module](self) doc).
///
/// `Err` carries the reason; the connection is then closed and no frame was
/// read. On the accepting side the refusal is also logged, at most once per
/// source address per minute.
pub(crate) async fn wrap(
    stream: TcpStream,
    side: Side,
    options: &LinkOptions,
) -> Result<Halves, String> {
    let peer = match stream.peer_addr() {
        Ok(peer) => peer,
        // Already gone; the link would fail on its first read anyway.
        Err(e) => return Err(format!("the connection is gone: {e}")),
    };
    if !must_secure(&peer, options) {
        if options.insecure_plaintext_off_host && !peer.ip().to_canonical().is_loopback() {
            tracing::warn!(
                "the link with \"{peer}\" leaves the host UNENCRYPTED and UNAUTHENTICATED (insecure_plaintext_off_host)"
            );
        }
        return Ok(stream.into());
    }
    match secure(stream, side, peer, options).await {
        Ok(halves) => Ok(halves),
        Err(e) => {
            if side == Side::Responder {
                log_refusal(&e);
            }
            Err(e.to_string())
        }
    }
}

/// The handshake (bounded in time and size), then the transport.
pub(crate) async fn secure(
    mut stream: TcpStream,
    side: Side,
    peer: SocketAddr,
    options: &LinkOptions,
) -> Result<Halves, SecureError> {
    let Some(key) = options.lan_key.as_ref() else {
        return Err(SecureError::NoKey {
            peer,
            looked_at: match LanKey::locate(None) {
                Ok(path) => path.display().to_string(),
                Err(e) => e.to_string(),
            },
        });
    };
    let _ = stream.set_nodelay(true);
    let limit = options.handshake_timeout;
    let state = tokio::time::timeout(limit, handshake(&mut stream, side, peer, key))
        .await
        .map_err(|_| SecureError::Timeout { peer, limit })??;
    Ok(transport(stream, Arc::new(state)))
}

async fn handshake(
    stream: &mut TcpStream,
    side: Side,
    peer: SocketAddr,
    key: &LanKey,
) -> Result<StatelessTransportState, SecureError> {
    let refused = |e: snow::Error| SecureError::Refused {
        peer,
        why: e.to_string(),
    };
    let io = |source: io::Error| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            SecureError::Closed { peer }
        } else {
            SecureError::Io { peer, source }
        }
    };
    let params = PATTERN.parse().map_err(refused)?;
    let builder = snow::Builder::new(params)
        .prologue(PROLOGUE)
        .map_err(refused)?
        .psk(0, key.bytes())
        .map_err(refused)?;
    let mut noise = match side {
        Side::Initiator => builder.build_initiator(),
        Side::Responder => builder.build_responder(),
    }
    .map_err(refused)?;
    let mut message = [0u8; 2 + HANDSHAKE_MESSAGE];
    let mut nothing = [0u8; HANDSHAKE_MESSAGE];
    // NNpsk0 has two messages: initiator → responder, responder → initiator.
    for turn in [Side::Initiator, Side::Responder] {
        if turn == side {
            let n = noise
                .write_message(&[], &mut message[2..])
                .map_err(refused)?;
            debug_assert_eq!(n, HANDSHAKE_MESSAGE);
            message[..2].copy_from_slice(&(n as u16).to_be_bytes());
            stream.write_all(&message[..2 + n]).await.map_err(io)?;
        } else {
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).await.map_err(io)?;
            let got = u16::from_be_bytes(length) as usize;
            if got != HANDSHAKE_MESSAGE {
                return Err(SecureError::Size { peer, got });
            }
            stream
                .read_exact(&mut message[2..2 + got])
                .await
                .map_err(io)?;
            noise
                .read_message(&message[2..2 + got], &mut nothing)
                .map_err(refused)?;
        }
    }
    noise.into_stateless_transport_mode().map_err(refused)
}

/// The secured byte stream over `stream`.
fn transport(stream: TcpStream, state: Arc<StatelessTransportState>) -> Halves {
    let (read, write) = stream.into_split();
    let messages = LengthDelimitedCodec::builder()
        .length_field_length(2)
        .max_frame_length(MAX_MESSAGE)
        .new_read(read);
    Halves {
        read: Box::new(StreamReader::new(Open {
            messages,
            state: state.clone(),
            nonce: 0,
        })),
        write: Box::new(Seal {
            inner: write,
            state,
            nonce: 0,
            pending: Vec::with_capacity(2 + MAX_MESSAGE),
            written: 0,
            accepted: 0,
        }),
    }
}

/// The receiving direction: Noise messages in, plaintext chunks out.
struct Open {
    messages: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    state: Arc<StatelessTransportState>,
    nonce: u64,
}

impl Stream for Open {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let message: BytesMut = match ready!(self.messages.poll_next_unpin(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            Some(Ok(message)) => message,
        };
        if message.len() < TAG {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an encrypted message shorter than its tag",
            ))));
        }
        let mut plain = vec![0u8; message.len() - TAG];
        let nonce = self.nonce;
        let opened = self.state.read_message(nonce, &message, &mut plain);
        match opened {
            Ok(n) => {
                plain.truncate(n);
                self.nonce += 1;
                Poll::Ready(Some(Ok(Bytes::from(plain))))
            }
            Err(e) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "an encrypted message that does not decrypt ({e}): tampered or out of order"
                ),
            )))),
        }
    }
}

/// The sending direction: plaintext in, Noise messages out.
///
/// A write encrypts up to one message's worth of the bytes and returns only
/// once that message is entirely in the socket, so nothing waits in here for
/// a flush that the link's writer never calls. As with any stream that
/// transforms bytes, a write that returned `Pending` must be retried with
/// the same bytes (as `write_all` does).
struct Seal {
    inner: OwnedWriteHalf,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    /// The message being written: length prefix and ciphertext.
    pending: Vec<u8>,
    /// How much of `pending` is in the socket.
    written: usize,
    /// How many plaintext bytes `pending` carries.
    accepted: usize,
}

impl Seal {
    fn seal(&mut self, plain: &[u8]) -> io::Result<()> {
        let n = plain.len().min(MAX_PLAIN);
        self.pending.clear();
        self.pending.resize(2 + n + TAG, 0);
        let sealed = self
            .state
            .write_message(self.nonce, &plain[..n], &mut self.pending[2..])
            .map_err(|e| io::Error::other(format!("cannot encrypt: {e}")))?;
        self.pending[..2].copy_from_slice(&(sealed as u16).to_be_bytes());
        self.pending.truncate(2 + sealed);
        self.nonce += 1;
        self.written = 0;
        self.accepted = n;
        Ok(())
    }

    /// Writes what is pending; Ready(Ok) when it is all in the socket.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Seal {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() && self.pending.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.pending.is_empty() {
            self.seal(buf)?;
        }
        ready!(self.drain(cx))?;
        self.pending.clear();
        Poll::Ready(Ok(self.accepted))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How long a source address stays quiet in the log after a refusal.
const QUIET_FOR: Duration = Duration::from_secs(60);
/// How many source addresses the refusal log remembers.
const REMEMBERED: usize = 1024;

/// When each source address was last logged as refused.
///
/// Process-wide on purpose: "at most once per address per minute" is a
/// promise about this process's log, whichever listener refused.
#[derive(Default)]
struct Refusals {
    logged: HashMap<IpAddr, Instant>,
    /// When "too many addresses" was last said.
    crowded: Option<Instant>,
}

impl Refusals {
    /// Whether to log a refusal of `ip` now.
    fn should_log(&mut self, ip: IpAddr, now: Instant) -> Option<bool> {
        if let Some(at) = self.logged.get(&ip) {
            if now.duration_since(*at) < QUIET_FOR {
                return Some(false);
            }
            self.logged.insert(ip, now);
            return Some(true);
        }
        if self.logged.len() >= REMEMBERED {
            self.logged
                .retain(|_, at| now.duration_since(*at) < QUIET_FOR);
        }
        if self.logged.len() >= REMEMBERED {
            // Full of fresh entries: one line for the crowd, then silence.
            return None;
        }
        self.logged.insert(ip, now);
        Some(true)
    }
}

fn log_refusal(e: &SecureError) {
    static REFUSALS: OnceLock<Mutex<Refusals>> = OnceLock::new();
    let ip = e.peer().ip();
    let now = Instant::now();
    let mut refusals = REFUSALS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match refusals.should_log(ip, now) {
        Some(true) => tracing::warn!(
            "refused a LAN connection: {e} (further refusals of {ip} are not logged for {}s)",
            QUIET_FOR.as_secs()
        ),
        Some(false) => {}
        None => {
            if refusals
                .crowded
                .is_none_or(|at| now.duration_since(at) >= QUIET_FOR)
            {
                refusals.crowded = Some(now);
                tracing::warn!(
                    "refusing LAN connections from more than {REMEMBERED} addresses; not logging each"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
