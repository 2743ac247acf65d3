//! One native connection between two processes.
//!
//! Sending encodes the frame in the sender's own task (a remote send
//! serializes once) and queues the bytes; a writer task drains the queue into
//! the socket in batches. The reader decodes each frame and delivers it to the
//! actor it names — or relays it undecoded over another link. Whatever ends
//! the link, the controlling actor hears about it once, in [`Closed`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::book;
use super::reach::{Miss, Reach};
use super::stream::{ReadHalf, WriteHalf};
use super::wire::{self, Header, Kind, MessageHeader, VERSION, WireAddr};
use crate::message::{Faulted, Payload};
use crate::net::{Close, Closed, EndOfTransport, HostPort, LinkOptions};
use crate::runtime::transport::{Channel, Sending};
use crate::runtime::{Address, Envelope, Meta, PushError, RequestId, Tag, TraceContext};

/// Bytes queued for the writer.
enum Out {
    Frame {
        bytes: Vec<u8>,
        counted: bool,
    },
    /// Write what is queued, then shut the socket down.
    Shutdown,
}

/// A native connection.
pub(crate) struct Link {
    /// Process-unique; names the link in logs and in relay tables.
    pub(crate) id: u64,
    /// This link, for sending through the runtime's `Channel` (which has
    /// only `&self`).
    me: Weak<Link>,
    /// What the peer can reach: the addresses written on this link.
    pub(crate) reach: Reach,
    remote: HostPort,
    owner: Address,
    options: LinkOptions,
    peer_controller: OnceLock<u64>,
    out: mpsc::UnboundedSender<Out>,
    /// User frames queued and not yet written.
    queued: AtomicUsize,
    room: Notify,
    closed: AtomicBool,
    cancel: CancellationToken,
    /// What ended the link, for the one `Closed`.
    ending: Mutex<Option<(EndOfTransport, String)>>,
    /// Requests sent (or relayed) over this link and not yet answered, by
    /// who asked and the request id: if the link ends first, each asker gets
    /// a fault at once rather than waiting out its deadline.
    outstanding: Mutex<std::collections::HashSet<(Address, u64)>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.id)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

fn next_link_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How a link ends, as decided by the reader.
struct Ending(EndOfTransport, String);

impl Link {
    /// A link over a connected socket, with its writer running. The reader is
    /// [`Link::run`].
    pub(crate) fn open(
        write: WriteHalf,
        remote: HostPort,
        owner: Address,
        options: LinkOptions,
    ) -> Arc<Link> {
        let (out, queue) = mpsc::unbounded_channel();
        let link = Arc::new_cyclic(|me| Link {
            id: next_link_id(),
            me: me.clone(),
            reach: Reach::default(),
            remote,
            owner,
            options,
            peer_controller: OnceLock::new(),
            out,
            queued: AtomicUsize::new(0),
            room: Notify::new(),
            closed: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            ending: Mutex::new(None),
            outstanding: Mutex::new(Default::default()),
        });
        let heartbeat = link.heartbeats().then_some(link.options.heartbeat_every);
        tokio::spawn(writer(write, queue, link.clone(), heartbeat));
        // A connection belongs to the actor that listened or connected: it
        // ends when that actor does.
        let owned = link
            .owner
            .mailbox()
            .is_some_and(|m| m.watch(crate::runtime::Watcher::Token(link.cancel.clone())));
        if !owned {
            link.cancel.cancel();
        }
        link
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Makes `owner` (the actor that listened or connected) reachable over
    /// this link and names it in the hello: the one id a peer is given
    /// without being sent an address.
    pub(crate) fn offer(&self, owner: &Address) -> Result<(), String> {
        let Some(mailbox) = owner.mailbox() else {
            return Err("only a local actor can own a connection".into());
        };
        let controller = self.reach.give_local(mailbox);
        self.hello(controller).map_err(|e| format!("{e:?}"))
    }

    /// The peer's controlling actor, once the handshake is done.
    pub(crate) fn proxy(self: &Arc<Self>) -> Address {
        match self.peer_controller.get() {
            Some(id) => Address::remote(self.clone(), *id),
            None => Address::NULL,
        }
    }

    fn queue(&self, bytes: Vec<u8>, counted: bool) -> Result<(), PushError> {
        if counted {
            self.queued.fetch_add(1, Ordering::AcqRel);
        }
        self.out
            .send(Out::Frame { bytes, counted })
            .map_err(|_| PushError::Closed)
    }

    /// Sends the frame announcing this side's controlling actor.
    pub(crate) fn hello(&self, controller: u64) -> Result<(), PushError> {
        let header = Header {
            version: VERSION,
            kind: Kind::Hello {
                controller,
                incarnation: crate::runtime::incarnation(),
            },
        };
        let mut bytes = Vec::new();
        wire::frame(&mut bytes, &header, &[]).map_err(|_| PushError::Closed)?;
        self.queue(bytes, false)
    }

    /// How an address is written on this link: writing it makes it
    /// reachable over the link (see `reach`).
    pub(crate) fn wire_of(&self, address: &Address) -> WireAddr {
        match address.route() {
            RouteRef::Null | RouteRef::Unreachable => WireAddr::Null,
            RouteRef::Local(m) => WireAddr::Mine(self.reach.give_local(m)),
            RouteRef::Remote(channel, id) if channel.channel_id() == self.id => WireAddr::Yours(id),
            RouteRef::Remote(channel, id) => match channel.clone().into_any().downcast::<Link>() {
                Ok(via) => WireAddr::Mine(self.reach.give_relay(&self.me, self.id, &via, id)),
                Err(_) => WireAddr::Null,
            },
        }
    }

    /// What an address written on this link names here. `Yours` is looked
    /// up in this link's table only; an id it never gave out (or whose actor
    /// has ended) reads as an address that refuses every send, and is
    /// counted.
    pub(crate) fn address_of(self: &Arc<Self>, wire: WireAddr) -> Result<Address, String> {
        match wire {
            WireAddr::Null => Ok(Address::NULL),
            WireAddr::Mine(id) => Ok(Address::remote(self.clone(), id)),
            WireAddr::Yours(id) => Ok(self.reach.lookup(id).unwrap_or_else(|miss| {
                if miss == Miss::NotGiven {
                    self.reach.refuse(self.id, &self.remote, "an address");
                }
                Address::unreachable(unreachable_reason(id, miss))
            })),
        }
    }

    /// Encodes and queues `envelope` for the actor `to` on the other side.
    pub(crate) fn send(
        self: &Arc<Self>,
        envelope: Envelope,
        to: u64,
    ) -> Result<(), (Envelope, PushError)> {
        if self.is_closed() {
            return Err((envelope, PushError::Closed));
        }
        if envelope.payload.is::<Close>() && self.peer_controller.get() == Some(&to) {
            let note = envelope
                .payload
                .downcast_ref::<Close>()
                .and_then(|c| c.note.clone())
                .unwrap_or_else(|| "closed on request".into());
            self.close(EndOfTransport::OnRequest, note);
            return Ok(());
        }
        let counted =
            matches!(envelope.tag, Tag::None | Tag::Request(_)) && !envelope.payload.is_control();
        if counted && self.queued.load(Ordering::Acquire) >= self.options.send_queue {
            return Err((envelope, PushError::Full));
        }
        let bytes = match self.encode(&envelope, to) {
            Ok(bytes) => bytes,
            Err(reason) => {
                tracing::warn!(
                    link = self.id,
                    "cannot send {} over the network: {reason}",
                    envelope.payload.signature()
                );
                return Err((envelope, PushError::Unencodable));
            }
        };
        if let Tag::Request(RequestId(id)) = envelope.tag {
            self.expect_answer(envelope.from.clone(), id);
        }
        self.queue(bytes, counted).map_err(|why| (envelope, why))
    }

    /// [`send`](Link::send), waiting while the send queue is full.
    pub(crate) async fn send_waiting(
        self: &Arc<Self>,
        mut envelope: Envelope,
        to: u64,
    ) -> Result<(), (Envelope, PushError)> {
        loop {
            // Registered before trying, so a wake-up between the two is kept.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.send(envelope, to) {
                Err((back, PushError::Full)) => {
                    envelope = back;
                    tokio::select! {
                        () = room => {}
                        () = self.cancel.cancelled() => return Err((envelope, PushError::Closed)),
                    }
                }
                other => return other,
            }
        }
    }

    fn expect_answer(&self, asker: Address, id: u64) {
        if !asker.is_null() {
            self.outstanding
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((asker, id));
        }
    }

    /// Whether `asker`'s request `id` went out over this link and is not
    /// yet answered: only then may an answer to it come back this way.
    fn owes(&self, asker: &Address, id: u64) -> bool {
        self.outstanding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(asker.clone(), id))
    }

    /// An answer came back over this link: its request is no longer owed.
    /// False when it was not owed (the answer is then refused).
    fn answered(&self, asker: &Address, id: u64) -> bool {
        self.outstanding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(asker.clone(), id))
    }

    /// The link ended: every request it carried that has not been answered
    /// gets a fault as its answer.
    // An Address hashes and compares by ids that never change, whatever
    // the mailbox behind it does.
    #[allow(clippy::mutable_key_type)]
    fn fault_outstanding(&self, reason: EndOfTransport, note: &str) {
        let owed = std::mem::take(&mut *self.outstanding.lock().unwrap_or_else(|e| e.into_inner()));
        for (asker, id) in owed {
            let fault = Faulted::lost(
                "connection lost",
                format!(
                    "the connection to \"{}\" ended ({reason:?}: {note}) before the request was answered",
                    self.remote
                ),
            );
            let _ = asker.push(Envelope {
                from: Address::NULL,
                payload: Payload::new(fault),
                tag: Tag::Response(RequestId(id)),
                meta: None,
            });
        }
    }

    fn encode(self: &Arc<Self>, envelope: &Envelope, to: u64) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        let (encoded, book) = book::encoding(self, || envelope.payload.encode_binary(&mut body));
        encoded.map_err(|e| e.to_string())?;
        let (tag, request) = match envelope.tag {
            Tag::Request(RequestId(id)) => (1, id),
            Tag::Response(RequestId(id)) => (2, id),
            Tag::None | Tag::Timer(_) => (0, 0),
        };
        let meta = envelope.meta.as_deref();
        let header = Header {
            version: VERSION,
            kind: Kind::Message(MessageHeader {
                to: WireAddr::Yours(to),
                from: self.wire_of(&envelope.from),
                signature: envelope.payload.signature(),
                tag,
                request,
                // Each hop is a span of its own.
                trace: meta
                    .and_then(|m| m.trace)
                    .map(|t| t.child())
                    .map(|t| (t.trace_id, t.span_id, t.flags)),
                caller: meta.and_then(|m| m.caller.clone()),
                ingress: meta
                    .and_then(|m| m.ingress.as_ref())
                    .map_or(WireAddr::Null, |a| self.wire_of(a)),
                book,
            }),
        };
        let mut bytes = Vec::with_capacity(body.len() + 64);
        wire::frame(&mut bytes, &header, &body).map_err(|e| e.to_string())?;
        if bytes.len() - 4 > self.options.max_frame {
            return Err(format!(
                "a frame of {} bytes exceeds the limit of {} bytes",
                bytes.len() - 4,
                self.options.max_frame
            ));
        }
        Ok(bytes)
    }

    /// Ends the link (once): tells the peer when it can, stops the reader,
    /// withdraws every route relayed over it and tells the owner.
    pub(crate) fn close(self: &Arc<Self>, reason: EndOfTransport, note: String) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Recorded before anything is sent: once the peer sees the Close
        // frame it may hang up, and the reader reporting that must already
        // find why this side closed.
        *self.ending.lock().unwrap_or_else(|e| e.into_inner()) = Some((reason, note.clone()));
        if reason == EndOfTransport::OnRequest {
            let mut bytes = Vec::new();
            let header = Header {
                version: VERSION,
                kind: Kind::Close { note },
            };
            if wire::frame(&mut bytes, &header, &[]).is_ok() {
                let _ = self.out.send(Out::Frame {
                    bytes,
                    counted: false,
                });
            }
        }
        let _ = self.out.send(Out::Shutdown);
        self.cancel.cancel();
        self.room.notify_waiters();
    }

    /// Called by the reader when it stops: the owner's one `Closed`.
    fn closed(self: &Arc<Self>) {
        self.reach.close(self.id);
        let refused = self.reach.refusals();
        if refused > 0 {
            tracing::warn!(
                link = self.id,
                refused,
                "\"{}\" was refused {refused} message(s) or address(es) not reachable over the link",
                self.remote
            );
        }
        let (reason, note) = self
            .ending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or((EndOfTransport::AbandonedByRemote, "connection ended".into()));
        self.fault_outstanding(reason, &note);
        match reason {
            EndOfTransport::OnRequest | EndOfTransport::AbandonedByRemote => {
                tracing::debug!(target: "layer_cake::object", tag = ")", link = self.id, "Closed \"{}\" ({reason:?}: {note})", self.remote)
            }
            _ => tracing::warn!(
                link = self.id,
                "closed \"{}\" ({reason:?}: {note})",
                self.remote
            ),
        }
        if self.peer_controller.get().is_some() {
            let _ = self.owner.send(Closed {
                remote: self.remote.clone(),
                proxy: self.proxy(),
                reason,
                note,
            });
        }
    }

    /// Links that leave the host exchange heartbeats (and go stale when
    /// silent); loopback links only when asked to.
    fn heartbeats(&self) -> bool {
        let loopback = self
            .remote
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        !loopback || self.options.heartbeat_on_loopback
    }

    /// Reads the peer's hello; then the owner learns of the link through
    /// `announce` and the reader runs until the link ends.
    pub(crate) async fn run(
        self: Arc<Self>,
        read: ReadHalf,
        announce: impl FnOnce(Address),
    ) -> Result<(), String> {
        let codec = LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .max_frame_length(self.options.max_frame)
            .new_codec();
        let mut frames = FramedRead::new(read, codec);
        let hello = tokio::time::timeout(
            self.options.stale_after.max(Duration::from_secs(1)),
            frames.next(),
        )
        .await;
        let controller = match hello {
            Ok(Some(Ok(bytes))) => match wire::split(&bytes) {
                Ok((
                    Header {
                        kind: Kind::Hello { controller, .. },
                        ..
                    },
                    _,
                )) => controller,
                Ok(_) => return self.refuse("the peer did not start with a hello"),
                Err(e) => return self.refuse(&e.to_string()),
            },
            Ok(Some(Err(e))) => return self.refuse(&e.to_string()),
            Ok(None) => return self.refuse("the peer closed the connection during the handshake"),
            Err(_) => return self.refuse("no hello from the peer in time"),
        };
        let _ = self.peer_controller.set(controller);
        announce(self.proxy());
        let heartbeats = self.heartbeats();
        let ending = loop {
            // Without heartbeats a quiet link is fine; with them, silence
            // past the bound means the peer is gone.
            let quiet = if heartbeats {
                self.options.stale_after
            } else {
                Duration::MAX
            };
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    if self.is_closed() {
                        break None;
                    }
                    break Some(Ending(EndOfTransport::OnRequest, "the actor that owned it has ended".into()));
                }
                next = tokio::time::timeout(quiet, frames.next()) => match next {
                    Ok(next) => next,
                    Err(_) => break Some(Ending(
                        EndOfTransport::WentStale,
                        format!("nothing heard for {:?}", self.options.stale_after),
                    )),
                },
            };
            match next {
                None => {
                    break Some(Ending(
                        EndOfTransport::AbandonedByRemote,
                        "the peer closed the connection".into(),
                    ));
                }
                Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    break Some(Ending(
                        EndOfTransport::InboundStreaming,
                        format!("bad frame: {e}"),
                    ));
                }
                Some(Err(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof
                        || e.to_string().contains("bytes remaining") =>
                {
                    break Some(Ending(
                        EndOfTransport::AbandonedByRemote,
                        "the connection ended in the middle of a frame".into(),
                    ));
                }
                Some(Err(e)) => {
                    break Some(Ending(EndOfTransport::AbandonedByRemote, e.to_string()));
                }
                Some(Ok(bytes)) => {
                    if let Err(ending) = self.received(&bytes).await {
                        break Some(ending);
                    }
                }
            }
        };
        if let Some(Ending(reason, note)) = ending {
            self.close(reason, note);
        }
        self.closed();
        Ok(())
    }

    fn refuse(self: &Arc<Self>, why: &str) -> Result<(), String> {
        self.close(EndOfTransport::InboundStreaming, why.to_string());
        self.closed();
        Err(why.to_string())
    }

    /// Handles one frame.
    async fn received(self: &Arc<Self>, bytes: &[u8]) -> Result<(), Ending> {
        let bad = |why: String| Ending(EndOfTransport::InboundStreaming, why);
        let (header, body) = wire::split(bytes).map_err(|e| bad(e.to_string()))?;
        match header.kind {
            Kind::Heartbeat => Ok(()),
            Kind::Close { note } => Err(Ending(
                EndOfTransport::AbandonedByRemote,
                format!("closed by the peer: {note}"),
            )),
            Kind::Hello { .. } => Err(bad("a second hello".into())),
            Kind::Message(message) => self.deliver(message, body).await,
        }
    }

    async fn deliver(self: &Arc<Self>, header: MessageHeader, body: &[u8]) -> Result<(), Ending> {
        let bad = |why: String| Ending(EndOfTransport::InboundStreaming, why);
        let WireAddr::Yours(target_id) = header.to else {
            return Err(bad(format!(
                "a message addressed to {:?}, not to an id here",
                header.to
            )));
        };
        let from = self.address_of(header.from).map_err(bad)?;
        let tag = match header.tag {
            0 => Tag::None,
            1 => Tag::Request(RequestId(header.request)),
            2 => Tag::Response(RequestId(header.request)),
            other => return Err(bad(format!("unknown message tag {other}"))),
        };
        let target = match self.reach.lookup(target_id) {
            Ok(target) => target,
            Err(miss) => {
                // Never looked up anywhere but in this link's table; a
                // request still gets an answer.
                if miss == Miss::NotGiven {
                    self.reach.refuse(self.id, &self.remote, &header.signature);
                } else {
                    tracing::warn!(
                        link = self.id,
                        "{} for <{target_id:08x}>, which is no more",
                        header.signature
                    );
                }
                if let Tag::Request(id) = tag {
                    let fault = Faulted::new("not delivered")
                        .with_explanation(unreachable_reason(target_id, miss));
                    let _ = from.push(Envelope {
                        from: Address::NULL,
                        payload: Payload::new(fault),
                        tag: Tag::Response(id),
                        meta: None,
                    });
                }
                return Ok(());
            }
        };
        // An answer comes back only over the link its request went out on.
        if let Tag::Response(RequestId(id)) = tag
            && !self.owes(&target, id)
        {
            self.reach.refuse(
                self.id,
                &self.remote,
                "an answer to a request it was never sent",
            );
            return Ok(());
        }
        if let RouteRef::Remote(next, next_id) = target.route() {
            if let Tag::Response(RequestId(id)) = tag {
                self.answered(&target, id);
            }
            let Ok(next) = next.clone().into_any().downcast::<Link>() else {
                return Ok(());
            };
            return self.relay(next, next_id, header, body, tag, from);
        }
        let entries = header.book.clone();
        let payload = book::decoding(self, entries, || {
            crate::message::codec::binary::decode_payload(&header.signature, body)
        })
        .map_err(|e| bad(e.to_string()))?;
        // Only a decoded answer settles its request: one that cannot be
        // decoded closes the link, and the asker hears why.
        if let Tag::Response(RequestId(id)) = tag {
            self.answered(&target, id);
        }
        let ingress = self.address_of(header.ingress).map_err(bad)?;
        let meta =
            (header.trace.is_some() || header.caller.is_some() || !ingress.is_null()).then(|| {
                Arc::new(Meta {
                    trace: header.trace.map(|(trace_id, span_id, flags)| TraceContext {
                        trace_id,
                        span_id,
                        flags,
                    }),
                    caller: header.caller,
                    ingress: (!ingress.is_null()).then_some(ingress),
                })
            });
        let mut slot = Some(Envelope {
            from,
            payload,
            tag,
            meta,
        });
        // Wait for room rather than drop: the connection slows down instead.
        let wait = self.options.stale_after;
        let pushed = tokio::time::timeout(wait, target.push_waiting(&mut slot)).await;
        if let Ok(Ok(())) = pushed {
            return Ok(());
        }
        let Some(envelope) = slot else { return Ok(()) };
        let why = match pushed {
            Ok(Err(PushError::Closed)) | Ok(Err(PushError::NoAddress)) => "it has ended",
            _ => "its mailbox stayed full",
        };
        tracing::warn!(
            link = self.id,
            "{} for {target} not delivered: {why}",
            envelope.payload.signature()
        );
        if let Tag::Request(id) = envelope.tag {
            let fault = Faulted::overloaded(format!("{target} could not take the request: {why}"));
            let _ = envelope.from.push(Envelope {
                from: target.clone(),
                payload: Payload::new(fault),
                tag: Tag::Response(id),
                meta: None,
            });
        }
        Ok(())
    }

    /// Passes a frame on over `next` without decoding its body: only the
    /// addresses in the header and book are rewritten.
    fn relay(
        self: &Arc<Self>,
        next: Arc<Link>,
        to: u64,
        mut header: MessageHeader,
        body: &[u8],
        tag: Tag,
        asker: Address,
    ) -> Result<(), Ending> {
        let bad = |why: String| Ending(EndOfTransport::InboundStreaming, why);
        let rewrite = |wire: WireAddr| -> Result<WireAddr, Ending> {
            Ok(next.wire_of(&self.address_of(wire).map_err(bad)?))
        };
        header.to = WireAddr::Yours(to);
        header.from = rewrite(header.from)?;
        header.ingress = rewrite(header.ingress)?;
        for entry in header.book.iter_mut() {
            *entry = rewrite(*entry)?;
        }
        let frame = Header {
            version: VERSION,
            kind: Kind::Message(header),
        };
        let mut bytes = Vec::with_capacity(body.len() + 64);
        if wire::frame(&mut bytes, &frame, body).is_err() {
            return Err(bad("cannot re-frame a relayed message".into()));
        }
        let counted = !matches!(tag, Tag::Response(_));
        if let Tag::Request(RequestId(id)) = tag {
            next.expect_answer(asker, id);
        }
        if let Err(why) = next.queue(bytes, counted) {
            tracing::warn!(
                link = self.id,
                "cannot relay over link {}: {why:?}",
                next.id
            );
        }
        Ok(())
    }
}

use crate::runtime::RouteRef;

/// Why an id from the peer names nothing here, for the fault it is
/// answered with.
fn unreachable_reason(id: u64, miss: Miss) -> String {
    match miss {
        Miss::Ended => format!("<{id:08x}> has ended"),
        Miss::NotGiven => format!("<{id:08x}> is not reachable over this link"),
    }
}

impl Channel for Link {
    fn send(&self, envelope: Envelope, to: u64) -> Result<(), (Envelope, PushError)> {
        match self.me.upgrade() {
            Some(me) => Link::send(&me, envelope, to),
            None => Err((envelope, PushError::Closed)),
        }
    }

    fn send_waiting(&self, envelope: Envelope, to: u64) -> Sending<'_> {
        Box::pin(async move {
            match self.me.upgrade() {
                Some(me) => Link::send_waiting(&me, envelope, to).await,
                None => Err((envelope, PushError::Closed)),
            }
        })
    }

    fn is_closed(&self) -> bool {
        Link::is_closed(self)
    }

    fn channel_id(&self) -> u64 {
        self.id
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

async fn writer(
    mut write: WriteHalf,
    mut queue: mpsc::UnboundedReceiver<Out>,
    link: Arc<Link>,
    heartbeat: Option<Duration>,
) {
    const BATCH: usize = 256 * 1024;
    let mut buffer: Vec<u8> = Vec::with_capacity(BATCH);
    let mut ticker = heartbeat.map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut wrote_since_tick = false;
    let heartbeat_frame = {
        let mut bytes = Vec::new();
        let _ = wire::frame(
            &mut bytes,
            &Header {
                version: VERSION,
                kind: Kind::Heartbeat,
            },
            &[],
        );
        bytes
    };
    loop {
        let first = tokio::select! {
            out = queue.recv() => out,
            _ = async { ticker.as_mut().expect("guarded").tick().await }, if ticker.is_some() => {
                if wrote_since_tick {
                    wrote_since_tick = false;
                    continue;
                }
                Some(Out::Frame { bytes: heartbeat_frame.clone(), counted: false })
            }
        };
        let mut shutdown = false;
        let mut counted = 0usize;
        let mut next = first;
        loop {
            match next {
                None | Some(Out::Shutdown) => {
                    shutdown = true;
                    break;
                }
                Some(Out::Frame { bytes, counted: c }) => {
                    buffer.extend_from_slice(&bytes);
                    counted += c as usize;
                }
            }
            if buffer.len() >= BATCH {
                break;
            }
            next = match queue.try_recv() {
                Ok(out) => Some(out),
                Err(_) => break,
            };
        }
        if !buffer.is_empty() {
            if let Err(e) = write.write_all(&buffer).await {
                link.close(EndOfTransport::OutboundStreaming, e.to_string());
                return;
            }
            buffer.clear();
            wrote_since_tick = true;
        }
        if counted > 0 {
            let before = link.queued.fetch_sub(counted, Ordering::AcqRel);
            if before >= link.options.send_queue / 2 {
                link.room.notify_waiters();
            }
        }
        if shutdown {
            let _ = write.shutdown().await;
            return;
        }
    }
}

/// When the link was opened, for `Connected` and `Accepted`.
pub(crate) fn now() -> chrono::DateTime<Utc> {
    Utc::now()
}
