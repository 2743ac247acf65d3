//! One native connection between two processes.
//!
//! Sending encodes the frame in the sender's own task (a remote send
//! serializes once) and appends the bytes to the link's queue; a writer task
//! drains the queue into the socket in batches. A request or an answer is
//! written by its sender directly when the link is idle (nothing queued,
//! nobody writing), saving the writer's wake-up on the round trip; frames
//! always leave whole and in order. The reader decodes each frame
//! and delivers it to the actor it names — or relays it undecoded over
//! another link. Whatever ends the link, the controlling actor hears about it
//! once, in [`Closed`].
//!
//! Everything a peer controls is bounded here: the queue counts the bytes of
//! every frame (user messages, answers, control messages, relays,
//! heartbeats); user messages are refused at the soft bound, the rest may go
//! past it up to the hard bound; a peer that keeps the queue over the soft
//! bound for longer than `stale_after`, or pushes it past the hard bound, is
//! disconnected and the queue freed. A body that does not decode faults that
//! one message. The table of requests awaiting an answer is swept and capped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::book;
use super::reach::{Miss, Reach};
use super::stream::{ReadHalf, WriteHalf};
use super::wire::{self, Header, Kind, MessageHeader, VERSION, WireAddr};
use crate::message::{Faulted, Payload};
use crate::net::{Close, Closed, EndOfTransport, HostPort, LinkOptions};
use crate::runtime::transport::{Channel, Sending};
use crate::runtime::{
    Address, Carried, Envelope, Meta, PushError, RequestId, Tag, TraceContext, TraceState,
};

/// Whole frames waiting for the writer, in order, in chunks of at most
/// about [`CHUNK`] bytes: the queue's memory follows what it holds (a
/// chunk grows up to `CHUNK`, then a new one starts, so nothing is copied
/// past that size), and goes back chunk by chunk as the writer gets through
/// it. One small written chunk is kept for reuse, so that a link sending a
/// frame at a time allocates nothing per frame.
#[derive(Default)]
struct Queue {
    chunks: std::collections::VecDeque<Vec<u8>>,
    /// An empty chunk of at most [`SPARE_KEPT`] bytes' capacity.
    spare: Option<Vec<u8>>,
    /// Someone is writing to the socket: the writer task with a batch, or a
    /// sender writing its frame directly. Only one writes at a time, and
    /// nothing is written directly while anything is queued, so frames
    /// leave in order and whole.
    busy: bool,
    /// Write what is queued, then shut the socket down.
    shutdown: bool,
}

/// How a frame may be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A user message: refused with `Full` at the soft bound.
    User,
    /// An answer, a control message, a relayed frame, a hello or a close:
    /// refusing it would lose something nobody can resend, so it may go past
    /// the soft bound — up to the hard one, which closes the link.
    Must,
}

/// The requests sent (or relayed) over a link and not yet answered.
#[derive(Default)]
struct Outstanding {
    /// When each was sent, by who asked and the request id.
    since: HashMap<(Address, u64), Instant>,
    last_sweep: Option<Instant>,
    /// Whether the cap was reported for local asks (once per link).
    warned: bool,
}

/// Why a request could not be recorded as awaiting its answer.
enum NotRecorded {
    /// The table is at its cap.
    Full,
}

/// How many requests from the peer a link keeps cancellable at once (see
/// `Link::cancellable`); past it, a request is delivered but a `Cancel`
/// for it is not passed on.
const MAX_CANCELLABLE: usize = 16 * 1024;

/// How many control messages a link's reader lets wait in an actor's
/// mailbox before it waits for the actor (and so stops reading the peer).
const MAX_CONTROL_BACKLOG: usize = 1024;

/// How often, at most, a link logs bodies it could not decode.
const DECODE_LOG_EVERY: Duration = Duration::from_secs(1);

/// The size of a chunk of the send queue (a frame larger than this has one
/// of its own).
const CHUNK: usize = 64 * 1024;

/// The capacity a new chunk of the send queue starts with (it grows up to
/// [`CHUNK`]).
const FIRST_CHUNK: usize = 4 * 1024;

/// The largest written chunk a link keeps for its next frames.
const SPARE_KEPT: usize = 16 * 1024;

/// The largest encoding buffer a thread keeps between sends.
const SCRATCH_KEPT: usize = 64 * 1024;

/// Where a sender encodes a frame: its body first (the header's address
/// book is known only then), then the whole frame.
#[derive(Default)]
struct Scratch {
    body: Vec<u8>,
    frame: Vec<u8>,
}

thread_local! {
    /// Each thread's [`Scratch`], kept between sends so that a send
    /// allocates nothing of its own.
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch { body: Vec::new(), frame: Vec::new() })
    };
}

/// Why a frame was not queued.
enum Unsent {
    /// The message could not be encoded.
    Unencodable(String),
    /// The queue refused it.
    Push(PushError),
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
    queue: Mutex<Queue>,
    /// The sending direction of the socket. Locked only for one poll at a
    /// time: by the writer task, or by a sender writing directly.
    write: Mutex<WriteHalf>,
    /// A sender wrote directly since the writer last looked (so the link
    /// is not idle: no heartbeat is due).
    wrote_directly: AtomicBool,
    /// Told when bytes are queued (or the link shuts down).
    wake_writer: Notify,
    /// Bytes queued and not yet written (in the queue or being written).
    queued: AtomicUsize,
    /// Since when the queue has been over its soft bound.
    over_since: Mutex<Option<Instant>>,
    /// Told when the queue drains below its soft bound.
    room: Notify,
    closed: AtomicBool,
    cancel: CancellationToken,
    /// Cancelled when the queue is to be dropped unwritten (the peer broke
    /// a bound): the writer stops at once and its buffers are freed.
    discard: CancellationToken,
    /// What ended the link, for the one `Closed`.
    ending: Mutex<Option<(EndOfTransport, String)>>,
    /// Requests sent (or relayed) over this link and not yet answered: if
    /// the link ends first, each asker gets a fault at once rather than
    /// waiting out its deadline. Removed when answered, when a local ask
    /// gives up, and after `LinkOptions::outstanding_for`.
    outstanding: Mutex<Outstanding>,
    /// Bodies that did not decode since the last log line, and when that was.
    undecodable: Mutex<(u64, Option<Instant>)>,
    /// Requests from the peer that carry a request context, by the id of
    /// their sender on this link and their request id, until answered: a
    /// `Cancel` frame from the peer cancels the context here. At most
    /// [`MAX_CANCELLABLE`]; entries whose context is gone are swept then.
    cancellable: Mutex<HashMap<(u64, u64), Weak<Carried>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        let link = Arc::new_cyclic(|me| Link {
            id: next_link_id(),
            me: me.clone(),
            reach: Reach::default(),
            remote,
            owner,
            options,
            peer_controller: OnceLock::new(),
            queue: Mutex::new(Queue::default()),
            write: Mutex::new(write),
            wrote_directly: AtomicBool::new(false),
            wake_writer: Notify::new(),
            queued: AtomicUsize::new(0),
            over_since: Mutex::new(None),
            room: Notify::new(),
            closed: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            discard: CancellationToken::new(),
            ending: Mutex::new(None),
            outstanding: Mutex::new(Outstanding::default()),
            undecodable: Mutex::new((0, None)),
            cancellable: Mutex::new(HashMap::new()),
        });
        let heartbeat = link.heartbeats().then_some(link.options.heartbeat_every);
        tokio::spawn(writer(link.clone(), heartbeat));
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
    pub(crate) fn offer(self: &Arc<Self>, owner: &Address) -> Result<(), String> {
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

    /// Appends a whole frame to the queue.
    fn queue(self: &Arc<Self>, frame: &[u8], class: Class) -> Result<(), PushError> {
        self.queue_frame(frame, class, false)
    }

    /// Sends a whole frame: appends it to the queue for the writer task or,
    /// when `direct` and nothing is queued or being written, writes it to
    /// the socket from this task (what the socket does not take at once is
    /// queued, first). A user frame is refused with `Full` at the soft
    /// bound; any frame that would take the queue past the hard bound
    /// closes the link (the peer is not reading).
    fn queue_frame(
        self: &Arc<Self>,
        frame: &[u8],
        class: Class,
        direct: bool,
    ) -> Result<(), PushError> {
        let soft = self.options.send_queue_bytes;
        let hard = self.options.send_queue_hard_bytes.max(soft);
        let len = frame.len();
        let now = {
            let mut queue = lock(&self.queue);
            if queue.shutdown {
                return Err(PushError::Closed);
            }
            let queued = self.queued.load(Ordering::Acquire);
            if class == Class::User && (queued >= soft || queued + len > hard) {
                return Err(PushError::Full);
            }
            if queued + len > hard {
                drop(queue);
                self.overflowed(format!(
                    "the peer is not reading: {} bytes waiting to be sent would pass the hard bound of {hard} bytes",
                    queued + len
                ));
                return Err(PushError::Closed);
            }
            if direct && !queue.busy && queue.chunks.is_empty() {
                queue.busy = true;
                drop(queue);
                return self.write_directly(frame);
            }
            let queue = &mut *queue;
            let chunk = match queue.chunks.back_mut() {
                Some(last) if last.len() + len <= CHUNK => last,
                _ => {
                    let fresh = queue
                        .spare
                        .take()
                        .unwrap_or_else(|| Vec::with_capacity(len.max(FIRST_CHUNK)));
                    queue.chunks.push_back(fresh);
                    queue.chunks.back_mut().expect("just pushed")
                }
            };
            chunk.extend_from_slice(frame);
            self.queued.fetch_add(len, Ordering::AcqRel) + len
        };
        if now > soft {
            lock(&self.over_since).get_or_insert_with(Instant::now);
        }
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Writes `frame` to the socket without waiting, holding the queue's
    /// `busy` token: one write system call and no task to wake, for a frame
    /// someone is waiting on. What the socket does not take at once goes to
    /// the front of the queue for the writer task.
    fn write_directly(self: &Arc<Self>, frame: &[u8]) -> Result<(), PushError> {
        let mut done = 0;
        let outcome = {
            let mut write = lock(&self.write);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            loop {
                if done == frame.len() {
                    break Ok(());
                }
                match std::pin::Pin::new(&mut **write).poll_write(&mut cx, &frame[done..]) {
                    std::task::Poll::Ready(Ok(0)) => {
                        break Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    }
                    std::task::Poll::Ready(Ok(n)) => done += n,
                    std::task::Poll::Ready(Err(e)) => break Err(e),
                    // The rest goes through the writer task, which waits
                    // for the socket properly.
                    std::task::Poll::Pending => break Ok(()),
                }
            }
        };
        self.wrote_directly.store(true, Ordering::Relaxed);
        let wake = {
            let mut queue = lock(&self.queue);
            queue.busy = false;
            if outcome.is_ok() && done < frame.len() {
                // Before anything queued meanwhile: frames leave in order.
                queue.chunks.push_front(frame[done..].to_vec());
                self.queued.fetch_add(frame.len() - done, Ordering::AcqRel);
            }
            !queue.chunks.is_empty() || queue.shutdown
        };
        if wake {
            self.wake_writer.notify_one();
        }
        outcome.map_err(|e| {
            self.close(EndOfTransport::OutboundStreaming, e.to_string());
            PushError::Closed
        })
    }

    /// The peer broke a bound of the send queue: the link is closed with
    /// the reason and whatever it queued is dropped unwritten.
    fn overflowed(self: &Arc<Self>, why: String) {
        self.close(EndOfTransport::OutboundStreaming, why);
        self.discard.cancel();
        let dropped = std::mem::take(&mut lock(&self.queue).chunks);
        let bytes = dropped.iter().map(Vec::len).sum();
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// How long the queue has been over its soft bound, if it is.
    fn over_for(&self) -> Option<Duration> {
        lock(&self.over_since).map(|since| since.elapsed())
    }

    /// Bytes waiting to be written (for tests and benches).
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Requests awaiting their answer over this link (for tests).
    #[cfg(test)]
    pub(crate) fn outstanding_len(&self) -> usize {
        lock(&self.outstanding).since.len()
    }

    /// Sends the frame announcing this side's controlling actor.
    pub(crate) fn hello(self: &Arc<Self>, controller: u64) -> Result<(), PushError> {
        let header = Header {
            version: VERSION,
            kind: Kind::Hello {
                controller,
                incarnation: crate::runtime::incarnation(),
            },
        };
        let mut bytes = Vec::new();
        wire::frame(&mut bytes, &header, &[]);
        self.queue(&bytes, Class::Must)
    }

    /// How an address is written on this link: writing it makes it
    /// reachable over the link (see `reach`). Refused when it would be one
    /// relayed route more than [`LinkOptions::max_relayed`].
    pub(crate) fn wire_of(&self, address: &Address) -> Result<WireAddr, String> {
        Ok(match address.route() {
            RouteRef::Null | RouteRef::Unreachable => WireAddr::Null,
            RouteRef::Local(m) => WireAddr::Mine(self.reach.give_local(m)),
            RouteRef::Remote(channel, id) if channel.channel_id() == self.id => WireAddr::Yours(id),
            RouteRef::Remote(channel, id) => match channel.clone().into_any().downcast::<Link>() {
                Ok(via) => {
                    let max = self.options.max_relayed;
                    match self.reach.give_relay(&self.me, self.id, &via, id, max) {
                        Some(given) => WireAddr::Mine(given),
                        None => {
                            return Err(format!(
                                "link {} already relays {max} routes to \"{}\" (LinkOptions::max_relayed)",
                                self.id, self.remote
                            ));
                        }
                    }
                }
                Err(_) => WireAddr::Null,
            },
        })
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

    /// Who a message from the peer is from. A sender is always one of the
    /// peer's own actors (`Mine`): a peer that names one of *ours* (`Yours`,
    /// an address it was given) or nobody (`Null`) would otherwise pose as
    /// a local actor or as the runtime itself, whose events carry no
    /// sender. Such a sender becomes the peer's anonymous address — remote,
    /// on this link, and answering it reaches nobody (id 0 is never given).
    fn sender_of(self: &Arc<Self>, wire: WireAddr) -> Address {
        match wire {
            WireAddr::Mine(id) => Address::remote(self.clone(), id),
            WireAddr::Null | WireAddr::Yours(_) => Address::remote(self.clone(), 0),
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
        let class = if matches!(envelope.tag, Tag::None | Tag::Request(_))
            && !envelope.payload.is_control()
        {
            Class::User
        } else {
            Class::Must
        };
        if class == Class::User
            && self.queued.load(Ordering::Acquire) >= self.options.send_queue_bytes
        {
            return Err((envelope, PushError::Full));
        }
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let result = self.encode_and_queue(&envelope, to, class, &mut scratch);
        if scratch.body.capacity() <= SCRATCH_KEPT && scratch.frame.capacity() <= SCRATCH_KEPT {
            scratch.body.clear();
            scratch.frame.clear();
            SCRATCH.with(|s| *s.borrow_mut() = scratch);
        }
        match result {
            Ok(()) => Ok(()),
            Err(Unsent::Push(why)) => Err((envelope, why)),
            Err(Unsent::Unencodable(reason)) => {
                tracing::warn!(
                    link = self.id,
                    "cannot send {} over the network: {reason}",
                    envelope.payload.signature()
                );
                Err((envelope, PushError::Unencodable))
            }
        }
    }

    /// Encodes `envelope` into `scratch` and sends its frame: directly when
    /// someone waits on it (a request or an answer) and the link is idle,
    /// else through the queue, where frames sent together leave in one
    /// write.
    fn encode_and_queue(
        self: &Arc<Self>,
        envelope: &Envelope,
        to: u64,
        class: Class,
        scratch: &mut Scratch,
    ) -> Result<(), Unsent> {
        self.encode(envelope, to, scratch)
            .map_err(Unsent::Unencodable)?;
        // Recorded before the frame can leave, so that an answer arriving
        // at once finds it.
        if let Tag::Request(RequestId(id)) = envelope.tag {
            self.expect_local_answer(&envelope.from, id);
        }
        let direct = matches!(envelope.tag, Tag::Request(_) | Tag::Response(_));
        match self.queue_frame(&scratch.frame, class, direct) {
            Ok(()) => {
                match (envelope.tag, &envelope.meta) {
                    // After the request's frame: a cancellation goes after it.
                    (Tag::Request(RequestId(id)), Some(carried)) => {
                        let channel: Weak<dyn Channel> = self.me.clone();
                        carried.went_over(channel, &envelope.from, id);
                    }
                    (Tag::Response(RequestId(id)), _) => self.no_longer_cancellable(to, id),
                    _ => {}
                }
                Ok(())
            }
            Err(why) => {
                if let Tag::Request(RequestId(id)) = envelope.tag {
                    self.answered(&envelope.from, id);
                }
                Err(Unsent::Push(why))
            }
        }
    }

    /// [`send`](Link::send), waiting while the send queue is full.
    pub(crate) async fn send_waiting(
        self: &Arc<Self>,
        mut envelope: Envelope,
        to: u64,
    ) -> Result<(), (Envelope, PushError)> {
        loop {
            match self.send(envelope, to) {
                Err((back, PushError::Full)) => envelope = back,
                other => return other,
            }
            // Full: wait for room, registered before trying once more so
            // that a wake-up between the two is kept.
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

    /// Records that `asker` awaits the answer to request `id` over this
    /// link. Entries older than `outstanding_for` are swept first (their
    /// askers have long given up); at the cap nothing is recorded.
    fn expect_answer(&self, asker: &Address, id: u64) -> Result<(), NotRecorded> {
        if asker.is_null() {
            return Ok(());
        }
        let mut table = lock(&self.outstanding);
        let now = Instant::now();
        let sweep_due = table
            .last_sweep
            .is_none_or(|at| now.duration_since(at) >= self.options.outstanding_for / 4);
        if sweep_due || table.since.len() >= self.options.max_outstanding {
            let max_age = self.options.outstanding_for;
            table
                .since
                .retain(|_, sent| now.duration_since(*sent) < max_age);
            table.last_sweep = Some(now);
        }
        if table.since.len() >= self.options.max_outstanding {
            return Err(NotRecorded::Full);
        }
        table.since.insert((asker.clone(), id), now);
        Ok(())
    }

    /// [`expect_answer`](Link::expect_answer) for a request sent from this
    /// process: at the cap the asker only loses the early fault when the
    /// link ends (its own deadline still holds), so this is logged once.
    fn expect_local_answer(&self, asker: &Address, id: u64) {
        if let Err(NotRecorded::Full) = self.expect_answer(asker, id) {
            let mut table = lock(&self.outstanding);
            if !std::mem::replace(&mut table.warned, true) {
                tracing::warn!(
                    link = self.id,
                    "{} requests await an answer over the link to \"{}\": more are not tracked (their askers will time out if it closes)",
                    table.since.len(),
                    self.remote
                );
            }
        }
    }

    /// An answer came back over this link: its request is no longer owed.
    /// False when it was not owed (the answer is then refused).
    fn answered(&self, asker: &Address, id: u64) -> bool {
        lock(&self.outstanding)
            .since
            .remove(&(asker.clone(), id))
            .is_some()
    }

    /// `asker` gave up on request `id` (its ask timed out): the link no
    /// longer owes it a fault when it ends.
    pub(crate) fn abandon(&self, asker: &Address, id: u64) {
        self.answered(asker, id);
    }

    /// `asker`'s request `id`, sent over this link, is cancelled: the peer
    /// is told with a `Cancel` frame (nothing, once the link has closed).
    pub(crate) fn cancel_request(self: &Arc<Self>, asker: &Address, id: u64) {
        if self.is_closed() {
            return;
        }
        let Ok(from) = self.wire_of(asker) else {
            return;
        };
        let header = Header {
            version: VERSION,
            kind: Kind::Cancel { from, request: id },
        };
        let mut bytes = Vec::new();
        wire::frame(&mut bytes, &header, &[]);
        let _ = self.queue(&bytes, Class::Must);
    }

    /// A request from the peer with a request context: kept (weakly) so
    /// that the peer can cancel it, until it is answered.
    fn cancellable_request(&self, from: WireAddr, id: u64, carried: &Arc<Carried>) {
        let WireAddr::Mine(sender) = from else {
            return;
        };
        let mut table = lock(&self.cancellable);
        if table.len() >= MAX_CANCELLABLE {
            table.retain(|_, carried| carried.strong_count() > 0);
            if table.len() >= MAX_CANCELLABLE {
                return;
            }
        }
        table.insert((sender, id), Arc::downgrade(carried));
    }

    /// The request `id` of the peer's actor `asker` has been answered.
    fn no_longer_cancellable(&self, asker: u64, id: u64) {
        let mut table = lock(&self.cancellable);
        if !table.is_empty() {
            table.remove(&(asker, id));
        }
    }

    /// The peer cancelled a request it sent: its context here is cancelled
    /// (which passes the cancellation on to wherever the request went
    /// next). A request it never sent, or one already answered, is ignored.
    fn cancelled_by_peer(&self, from: WireAddr, id: u64) {
        let WireAddr::Mine(sender) = from else {
            return;
        };
        let carried = lock(&self.cancellable).remove(&(sender, id));
        if let Some(carried) = carried.and_then(|weak| weak.upgrade()) {
            tracing::debug!(link = self.id, "request {id:x} cancelled by the peer");
            carried.cancel();
        }
    }

    /// The link ended: every request it carried that has not been answered
    /// gets a fault as its answer.
    // An Address hashes and compares by ids that never change, whatever
    // the mailbox behind it does.
    #[allow(clippy::mutable_key_type)]
    fn fault_outstanding(&self, reason: EndOfTransport, note: &str) {
        let owed = std::mem::take(&mut lock(&self.outstanding).since);
        for (asker, id) in owed.into_keys() {
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

    /// Writes the frame of `envelope` for the actor `to` in
    /// `scratch.frame` (its body goes through `scratch.body` first).
    fn encode(
        self: &Arc<Self>,
        envelope: &Envelope,
        to: u64,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        let body = &mut scratch.body;
        let (encoded, book) = book::encoding(self, || envelope.payload.encode_binary(body));
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
                from: self.wire_of(&envelope.from)?,
                signature: envelope.payload.static_signature(),
                tag,
                request,
                // Each hop is a span of its own.
                trace: meta
                    .and_then(|m| m.trace)
                    .map(|t| t.child())
                    .map(|t| (t.trace_id, t.span_id, t.flags)),
                caller: meta.and_then(|m| m.caller.as_deref()),
                trace_state: meta
                    .and_then(|m| m.trace_state.as_ref())
                    .map(TraceState::as_str),
                ingress: match meta.and_then(|m| m.ingress.as_ref()) {
                    Some(ingress) => self.wire_of(ingress)?,
                    None => WireAddr::Null,
                },
                book,
            }),
        };
        wire::frame(&mut scratch.frame, &header, &scratch.body);
        let length = scratch.frame.len() - 4;
        if length > self.options.max_frame {
            return Err(format!(
                "a frame of {length} bytes exceeds the limit of {} bytes",
                self.options.max_frame
            ));
        }
        Ok(())
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
                kind: Kind::Close { note: &note },
            };
            wire::frame(&mut bytes, &header, &[]);
            let _ = self.queue(&bytes, Class::Must);
        }
        lock(&self.queue).shutdown = true;
        self.wake_writer.notify_one();
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
        // The owner's mailbox no longer needs to end this link.
        if let Some(mailbox) = self.owner.mailbox() {
            mailbox.forget_finished_watchers();
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
        // With heartbeats, silence past `stale_after` means the peer is gone.
        // Rather than arm a deadline per frame (a clock read each), a ticker
        // looks every half `stale_after` for a frame since its last look:
        // two quiet looks in a row end the link, so a silent peer goes
        // between one and one and a half `stale_after` after its last frame.
        let mut stale_check = self.heartbeats().then(|| {
            let every = self.options.stale_after / 2;
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        });
        let mut heard = true;
        let mut quiet_looks = 0u8;
        let ending = loop {
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    if self.is_closed() {
                        break None;
                    }
                    break Some(Ending(EndOfTransport::OnRequest, "the actor that owned it has ended".into()));
                }
                next = frames.next() => next,
                _ = async { stale_check.as_mut().expect("guarded").tick().await }, if stale_check.is_some() => {
                    quiet_looks = if std::mem::take(&mut heard) { 0 } else { quiet_looks + 1 };
                    if quiet_looks >= 2 {
                        break Some(Ending(
                            EndOfTransport::WentStale,
                            format!("nothing heard for {:?}", self.options.stale_after),
                        ));
                    }
                    continue;
                }
            };
            heard = true;
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
            Kind::Cancel { from, request } => {
                self.cancelled_by_peer(from, request);
                Ok(())
            }
            Kind::Message(message) => self.deliver(message, body).await,
        }
    }

    async fn deliver(
        self: &Arc<Self>,
        mut header: MessageHeader<'_>,
        body: &[u8],
    ) -> Result<(), Ending> {
        let bad = |why: String| Ending(EndOfTransport::InboundStreaming, why);
        let WireAddr::Yours(target_id) = header.to else {
            return Err(bad(format!(
                "a message addressed to {:?}, not to an id here",
                header.to
            )));
        };
        let from = self.sender_of(header.from);
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
                    self.reach.refuse(self.id, &self.remote, header.signature);
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
        // An answer comes back only over the link its request went out on
        // (and is then no longer owed).
        if let Tag::Response(RequestId(id)) = tag
            && !self.answered(&target, id)
        {
            self.reach.refuse(
                self.id,
                &self.remote,
                "an answer to a request it was never sent",
            );
            return Ok(());
        }
        if let RouteRef::Remote(next, next_id) = target.route() {
            let Ok(next) = next.clone().into_any().downcast::<Link>() else {
                return Ok(());
            };
            return self.relay(next, next_id, header, body, tag, from);
        }
        let entries = std::mem::take(&mut header.book);
        let decoded = book::decoding(self, entries, || {
            crate::message::codec::binary::decode_payload(header.signature, body)
        });
        let payload = match decoded {
            Ok(payload) => payload,
            Err(e) => {
                // The header was read, so the framing holds: only this
                // message is lost, and whoever waits on it hears why.
                self.undecodable(header.signature, &e);
                let fault = Faulted::new("not delivered")
                    .with_explanation(format!("undecodable body of {} bytes: {e}", body.len()));
                let (to, from) = match tag {
                    Tag::Request(_) => (&from, target.clone()),
                    Tag::Response(_) => (&target, from.clone()),
                    Tag::None | Tag::Timer(_) => return Ok(()),
                };
                let answer = Tag::Response(match tag {
                    Tag::Request(id) | Tag::Response(id) => id,
                    Tag::None | Tag::Timer(_) => unreachable!("returned above"),
                });
                let _ = to.push(Envelope {
                    from,
                    payload: Payload::new(fault),
                    tag: answer,
                    meta: None,
                });
                return Ok(());
            }
        };
        let ingress = self.address_of(header.ingress).map_err(bad)?;
        // A trace state must be a valid W3C list (and so bounded), as the
        // HTTP front would have accepted it.
        let trace_state = match header.trace_state {
            Some(text) => Some(text.parse::<TraceState>().map_err(|e| bad(e.to_string()))?),
            None => None,
        };
        let meta = (header.trace.is_some()
            || header.caller.is_some()
            || trace_state.is_some()
            || !ingress.is_null())
        .then(|| {
            Arc::new(Carried::new(Meta {
                trace: header.trace.map(|(trace_id, span_id, flags)| TraceContext {
                    trace_id,
                    span_id,
                    flags,
                }),
                trace_state,
                caller: header.caller.map(String::from),
                ingress: (!ingress.is_null()).then_some(ingress),
            }))
        });
        if let (Tag::Request(RequestId(id)), Some(carried)) = (tag, &meta) {
            self.cancellable_request(header.from, id, carried);
        }
        let envelope = Envelope {
            from,
            payload,
            tag,
            meta,
        };
        // Most deliveries find room at once: no deadline is armed for them.
        let backlogged = envelope.payload.is_control()
            && target
                .mailbox()
                .is_some_and(|m| m.control_backlog() >= MAX_CONTROL_BACKLOG);
        let mut slot = if backlogged {
            Some(envelope)
        } else {
            match target.push(envelope) {
                Ok(()) => return Ok(()),
                Err((envelope, _)) => Some(envelope),
            }
        };
        // Wait for room rather than drop: the connection slows down instead.
        // The control lane never refuses, so a peer could fill it without
        // bound: past a backlog, wait for the actor to catch up.
        let wait = self.options.stale_after;
        let room = async {
            if let Some(mailbox) = target.mailbox()
                && slot.as_ref().is_some_and(|e| e.payload.is_control())
            {
                while mailbox.control_backlog() >= MAX_CONTROL_BACKLOG && !mailbox.is_closed() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            target.push_waiting(&mut slot).await
        };
        let pushed = tokio::time::timeout(wait, room).await;
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

    /// Logs a body that did not decode, at most once per
    /// [`DECODE_LOG_EVERY`] per link (a peer can send them as fast as it
    /// likes), with how many were not logged.
    fn undecodable(&self, signature: &str, e: &crate::message::codec::CodecError) {
        let mut state = lock(&self.undecodable);
        let (quiet, last) = &mut *state;
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < DECODE_LOG_EVERY) {
            *quiet += 1;
            return;
        }
        let unlogged = std::mem::take(quiet);
        *last = Some(now);
        drop(state);
        tracing::warn!(
            link = self.id,
            "a {signature} from \"{}\" was not delivered: {e}{}",
            self.remote,
            if unlogged > 0 {
                format!(" ({unlogged} more undecodable messages since the last report)")
            } else {
                String::new()
            }
        );
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
            next.wire_of(&self.address_of(wire).map_err(bad)?)
                .map_err(bad)
        };
        header.to = WireAddr::Yours(to);
        header.from = next.wire_of(&self.sender_of(header.from)).map_err(bad)?;
        header.ingress = rewrite(header.ingress)?;
        for entry in header.book.iter_mut() {
            *entry = rewrite(*entry)?;
        }
        let frame = Header {
            version: VERSION,
            kind: Kind::Message(header),
        };
        let mut bytes = Vec::with_capacity(body.len() + 64);
        wire::frame(&mut bytes, &frame, body);
        // The table of requests awaiting answers over `next` is filled by
        // this link's peer: at its cap, that peer is the one cut off.
        if let Tag::Request(RequestId(id)) = tag
            && let Err(NotRecorded::Full) = next.expect_answer(&asker, id)
        {
            return Err(Ending(
                EndOfTransport::InboundStreaming,
                format!(
                    "more than {} relayed requests awaiting an answer",
                    next.options.max_outstanding
                ),
            ));
        }
        // A relayed frame is not refused at the soft bound (its sender
        // cannot be told to retry), but counts against the hard one.
        if let Err(why) = next.queue(&bytes, Class::Must) {
            tracing::warn!(
                link = self.id,
                "cannot relay over link {}: {why:?}",
                next.id
            );
            if let Tag::Request(RequestId(id)) = tag {
                next.answered(&asker, id);
                let fault = Faulted::lost(
                    "not delivered",
                    format!("the link this request was relayed over has closed ({why:?})"),
                );
                let _ = asker.push(Envelope {
                    from: Address::NULL,
                    payload: Payload::new(fault),
                    tag: Tag::Response(RequestId(id)),
                    meta: None,
                });
            }
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

    fn abandon(&self, asker: &Address, id: u64) {
        Link::abandon(self, asker, id);
    }

    fn cancel(&self, asker: &Address, id: u64) {
        if let Some(me) = self.me.upgrade() {
            me.cancel_request(asker, id);
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// Writes `bytes` to the link's socket, locking it for one poll at a time
/// (a sender may write directly between two batches, never within one).
async fn write_all(link: &Link, bytes: &[u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        let n = std::future::poll_fn(|cx| {
            let mut write = lock(&link.write);
            std::pin::Pin::new(&mut **write).poll_write(cx, &bytes[done..])
        })
        .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}

async fn writer(link: Arc<Link>, heartbeat: Option<Duration>) {
    let mut batch: std::collections::VecDeque<Vec<u8>> = Default::default();
    let mut ticker = heartbeat.map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut wrote_since_tick = false;
    let mut heartbeat_due = false;
    // A written chunk, emptied, for the queue to reuse.
    let mut spare: Option<Vec<u8>> = None;
    let heartbeat_frame = {
        let mut bytes = Vec::new();
        wire::frame(
            &mut bytes,
            &Header {
                version: VERSION,
                kind: Kind::Heartbeat,
            },
            &[],
        );
        bytes
    };
    let soft = link.options.send_queue_bytes;
    let grace = link.options.stale_after;
    // How often a write that does not finish looks at the grace period.
    let check_every = (grace / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        // Take everything queued in one swap (with the `busy` token); wait
        // while there is nothing, or while a sender writes directly.
        let shutdown = loop {
            {
                let mut queue = lock(&link.queue);
                if queue.spare.is_none() {
                    queue.spare = spare.take();
                }
                if !queue.busy {
                    if !queue.chunks.is_empty() || queue.shutdown {
                        std::mem::swap(&mut queue.chunks, &mut batch);
                        queue.busy = true;
                        break queue.shutdown;
                    }
                    if std::mem::take(&mut heartbeat_due) {
                        queue.busy = true;
                        link.queued
                            .fetch_add(heartbeat_frame.len(), Ordering::AcqRel);
                        batch.push_back(heartbeat_frame.clone());
                        break false;
                    }
                }
            }
            tokio::select! {
                () = link.wake_writer.notified() => {}
                () = link.discard.cancelled() => return,
                _ = async { ticker.as_mut().expect("guarded").tick().await }, if ticker.is_some() => {
                    let wrote = std::mem::take(&mut wrote_since_tick)
                        | link.wrote_directly.swap(false, Ordering::Relaxed);
                    heartbeat_due = !wrote;
                }
            }
        };
        while let Some(chunk) = batch.pop_front() {
            let written = {
                let write_all = write_all(&link, &chunk);
                tokio::pin!(write_all);
                loop {
                    tokio::select! {
                        written = &mut write_all => break Some(written),
                        () = link.discard.cancelled() => break None,
                        () = tokio::time::sleep(check_every) => {
                            if let Some(over) = link.over_for() && over > grace {
                                link.overflowed(format!(
                                    "the peer is not reading: more than {soft} bytes waited to be sent for {over:.1?}"
                                ));
                                break None;
                            }
                        }
                    }
                }
            };
            match written {
                // Dropped unwritten: the chunks' memory goes with the task.
                None => return,
                Some(Err(e)) => {
                    link.close(EndOfTransport::OutboundStreaming, e.to_string());
                    return;
                }
                Some(Ok(())) => {}
            }
            wrote_since_tick = true;
            let left = link.queued.fetch_sub(chunk.len(), Ordering::AcqRel) - chunk.len();
            if spare.is_none() && chunk.capacity() <= SPARE_KEPT {
                let mut chunk = chunk;
                chunk.clear();
                spare = Some(chunk);
            } else {
                drop(chunk);
            }
            if left <= soft {
                *lock(&link.over_since) = None;
                link.room.notify_waiters();
            } else if let Some(over) = link.over_for()
                && over > grace
            {
                link.overflowed(format!(
                    "the peer reads too slowly: more than {soft} bytes waited to be sent for {over:.1?}"
                ));
                return;
            }
        }
        if shutdown {
            let _ = std::future::poll_fn(|cx| {
                let mut write = lock(&link.write);
                std::pin::Pin::new(&mut **write).poll_shutdown(cx)
            })
            .await;
            return;
        }
        lock(&link.queue).busy = false;
    }
}

/// When the link was opened, for `Connected` and `Accepted`.
pub(crate) fn now() -> chrono::DateTime<Utc> {
    Utc::now()
}

/// Runs a link's reader over `stream`: the bytes a peer would send, from its
/// hello on. The owner is a fresh actor that drains what it is sent, and
/// every answer the link writes is read and thrown away. For fuzzing and the
/// property test: whatever the bytes, this returns, never panics.
pub(crate) async fn read_stream(stream: &[u8]) {
    use tokio::io::AsyncReadExt;
    let owner = crate::runtime::spawn(|mut cx: crate::Context| async move {
        loop {
            if cx.input().await.is::<crate::Stop>() {
                return;
            }
        }
    })
    .address()
    .clone();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(ours);
    let options = LinkOptions {
        stale_after: Duration::from_millis(200),
        ..LinkOptions::default()
    };
    let link = Link::open(
        Box::new(write),
        HostPort::new("127.0.0.1", 0),
        owner.clone(),
        options,
    );
    let _ = link.offer(&owner);
    let (mut from_link, mut to_link) = tokio::io::split(theirs);
    let drain = tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(from_link.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let feed = async {
        let _ = to_link.write_all(stream).await;
        let _ = to_link.shutdown().await;
    };
    let reader = link.clone().run(Box::new(read), |_| {});
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(feed, reader)
    })
    .await;
    link.close(EndOfTransport::OnRequest, "fuzzing done".into());
    drain.abort();
    let _ = owner.send(crate::Stop);
}

/// [`read_stream`] on a runtime of its own, for a fuzz target.
#[doc(hidden)]
pub fn read_stream_for_fuzzing(stream: &[u8]) {
    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        runtime.block_on(read_stream(stream));
    }
}
