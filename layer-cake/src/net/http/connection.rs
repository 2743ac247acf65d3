//! One connection of the HTTP front: hyper's HTTP/1 server over an IO
//! wrapper that lets the front write the answers hyper would write itself,
//! the cap on open connections, and the connection's part in a drain.
//!
//! **hyper's own answers.** A request hyper cannot parse (a garbage request
//! line, two different `Content-Length`s, a head over the buffer, a version
//! other than HTTP/1.0 and 1.1) never reaches the service: hyper writes a
//! bare `400`/`431`/`414` itself — no `Content-Type`, no body, no reason —
//! and ends the connection with the parse error. hyper 1 has no hook for
//! that answer, so [`ConnectionIo`] holds it back (it is the only head
//! written while no answer of the service waits to be written, see
//! `service_answered`), and once hyper has ended the connection with the
//! error, [`drive`] writes the front's own answer in its place, now knowing
//! the reason: a JSON fault like every other error of the front, and `505`
//! for a version hyper does not speak. A normal response costs the wrapper
//! a flag and a few byte comparisons, no copy.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::drain::Counted;
use super::mapping::HttpError;
use super::response;
use crate::Faulted;

/// How long a refused connection (or one whose request hyper could not
/// parse) is read from after its answer, so that the close does not reset
/// the connection before the client has read the answer.
const LINGER: Duration = Duration::from_secs(1);
/// The most bytes read and dropped while lingering.
const LINGER_BYTES: usize = 64 * 1024;
/// Refused connections lingering at once, per listen; past this a refused
/// connection is answered and closed without lingering.
const MAX_LINGERING: usize = 256;

/// The socket of one connection, as hyper reads and writes it.
pub(super) struct ConnectionIo {
    stream: TcpStream,
    /// Set (by the service) when it has returned a response that hyper is
    /// to write, cleared when a write starts one.
    service_answered: Arc<AtomicBool>,
    /// Whether the next write starts a fresh batch: the last one took all
    /// it was given.
    at_start: bool,
    /// hyper's own answer, held back: its version (`HTTP/1.0` or 1.1) and
    /// status.
    held: Option<(&'static str, u16)>,
    /// Whether the connection's first request line came without a version
    /// (HTTP/0.9, which hyper calls an invalid URI), once its first bytes
    /// have been read; only a first request can be HTTP/0.9.
    first_line_unversioned: Option<bool>,
    /// Whether a response of the service has been written.
    answered_any: bool,
}

impl ConnectionIo {
    /// Wraps `stream`; `service_answered` is shared with the service.
    pub(super) fn new(stream: TcpStream, service_answered: Arc<AtomicBool>) -> Self {
        ConnectionIo {
            stream,
            service_answered,
            at_start: true,
            held: None,
            first_line_unversioned: None,
            answered_any: false,
        }
    }

    /// Whether nothing has been written on the connection, nor is waiting
    /// to be.
    fn untouched(&self) -> bool {
        !self.answered_any && self.at_start && !self.service_answered.load(Ordering::Relaxed)
    }

    /// Whether `head` (the first bytes of a write) is an answer of hyper's
    /// own, and if so holds it back.
    fn hold_back(&mut self, head: &[u8]) -> bool {
        if !self.at_start {
            return false;
        }
        // A write that starts a batch starts a response head: the service's
        // answer if it has just given one, else hyper's (a `100 Continue`,
        // or the answer to a parse error).
        if self.service_answered.swap(false, Ordering::Relaxed) {
            self.answered_any = true;
            return false;
        }
        let version = match head.get(..9) {
            Some(b"HTTP/1.1 ") => "HTTP/1.1",
            Some(b"HTTP/1.0 ") => "HTTP/1.0",
            _ => return false,
        };
        let status = match head.get(9..13) {
            Some(b"400 ") => 400,
            Some(b"414 ") => 414,
            Some(b"431 ") => 431,
            _ => return false,
        };
        self.held = Some((version, status));
        true
    }
}

impl AsyncRead for ConnectionIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if self.first_line_unversioned.is_none() && buf.filled().len() > before {
            // Once per connection: is the first line (if it is all here)
            // `METHOD target`, with no version?
            let first = &buf.filled()[before..];
            let line = first
                .iter()
                .position(|&b| b == b'\n')
                .map(|end| &first[..end]);
            self.first_line_unversioned = Some(line.is_some_and(|l| {
                l.trim_ascii().split(|&b| b == b' ').count() == 2
                    && !l.windows(6).any(|w| w == b" HTTP/")
            }));
        }
        read
    }
}

impl AsyncWrite for ConnectionIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.hold_back(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.at_start = n == buf.len();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's answer is a head alone, in one slice.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && self.hold_back(first)
        {
            return Poll::Ready(Ok(first.len()));
        }
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.at_start = n == bufs.iter().map(|b| b.len()).sum::<usize>();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The answer the front writes for a request hyper could not parse: the
/// status hyper chose (505 for a version it does not speak) and why.
fn parse_error_answer(
    error: &hyper::Error,
    io: &ConnectionIo,
    max_head: usize,
) -> Option<HttpError> {
    let text = error.to_string();
    let held = io.held.map(|(_, status)| status);
    let http_0_9 = held == Some(400) && !io.answered_any && io.first_line_unversioned == Some(true);
    // hyper tells a bad version only in its message: "invalid HTTP version
    // parsed" (also for an HTTP/2 preface, which hyper answers with nothing).
    if http_0_9 || (error.is_parse() && text.contains("HTTP version")) {
        return Some(HttpError::new(
            505,
            "HTTP version not supported: this port speaks HTTP/1.1 and HTTP/1.0",
        ));
    }
    Some(match held? {
        431 => HttpError::new(
            431,
            format!("the request line and headers are larger than {max_head} bytes"),
        ),
        414 => HttpError::new(414, "the request target is too long"),
        _ => HttpError::new(400, format!("malformed request: {text}")),
    })
}

/// Serves `connection` to its end: shuts it down gracefully (the request
/// in flight answered, then closed) when `shut_down` fires or its sender
/// goes, and writes the front's own answer where hyper would have written
/// a bare one.
pub(super) async fn drive<S, B>(
    mut connection: http1::Connection<TokioIo<ConnectionIo>, S>,
    mut shut_down: oneshot::Receiver<()>,
    max_head: usize,
) where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut shutting = false;
    let ended = std::future::poll_fn(|cx| {
        if !shutting && Pin::new(&mut shut_down).poll(cx).is_ready() {
            shutting = true;
            Pin::new(&mut connection).graceful_shutdown();
        }
        connection.poll_without_shutdown(cx)
    })
    .await;
    let mut io = connection.into_parts().io.into_inner();
    match ended {
        Ok(()) => {}
        // Answered in hyper's place only where hyper answered (or, for an
        // HTTP/2 preface, where nothing was written yet): after an answer
        // hyper had not flushed, a new one would be garbled.
        Err(e) => match parse_error_answer(&e, &io, max_head) {
            Some(answer) if e.is_parse() && (io.held.is_some() || io.untouched()) => {
                let version = io.held.map_or("HTTP/1.1", |(v, _)| v);
                let text = response::raw_answer(version, answer.to_fault());
                answer_and_linger(&mut io.stream, &text).await;
                return;
            }
            _ => tracing::debug!("HTTP connection ended: {e}"),
        },
    }
    let _ = io.stream.shutdown().await;
}

/// Writes `answer`, ends the writing side, and reads (and drops) what the
/// client still sends for a little while, so that closing with unread
/// bytes does not reset the connection before the client has read the
/// answer.
async fn answer_and_linger(stream: &mut TcpStream, answer: &[u8]) {
    if stream.write_all(answer).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut scratch = vec![0; 4096];
    let mut dropped = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while dropped < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}

/// The open connections of one listen: counted against the cap, each with
/// the sender that shuts it down gracefully.
pub(super) struct Connections {
    max: usize,
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    open: std::collections::HashMap<u64, oneshot::Sender<()>>,
    lingering: usize,
}

/// A connection admitted under the cap: its place is freed when dropped.
pub(super) struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    _counted: Counted,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
    }
}

impl Connections {
    /// At most `max` open at once.
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Connections {
            max,
            inner: Mutex::new(Registry::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection if fewer than the cap are open: its place
    /// and the receiver that tells it to shut down.
    pub(super) fn admit(self: &Arc<Self>) -> Option<(Admitted, oneshot::Receiver<()>)> {
        let mut registry = self.lock();
        if registry.open.len() >= self.max {
            return None;
        }
        let id = registry.next;
        registry.next += 1;
        let (sender, receiver) = oneshot::channel();
        registry.open.insert(id, sender);
        drop(registry);
        let admitted = Admitted {
            connections: self.clone(),
            id,
            _counted: Counted::new(),
        };
        Some((admitted, receiver))
    }

    /// Tells every open connection to close once its request in flight is
    /// answered.
    pub(super) fn shut_down_all(&self) {
        let senders: Vec<_> = self.lock().open.drain().map(|(_, s)| s).collect();
        drop(senders);
    }

    /// Refuses `stream`, a connection past the cap, without reading its
    /// request: `503`, `Retry-After`, `Connection: close` and a fault
    /// naming the limit; then closes it.
    pub(super) fn refuse(self: &Arc<Self>, mut stream: TcpStream) {
        let fault = Faulted::overloaded(format!(
            "this server has {} connections open, its limit (max_connections): try again later",
            self.max
        ));
        let text = response::raw_answer("HTTP/1.1", fault);
        let linger = {
            let mut registry = self.lock();
            let linger = registry.lingering < MAX_LINGERING;
            registry.lingering += usize::from(linger);
            linger
        };
        let connections = self.clone();
        tokio::spawn(async move {
            if linger {
                answer_and_linger(&mut stream, &text).await;
                connections.lock().lingering -= 1;
            } else {
                // Too many refusals lingering: the answer alone, as far
                // as it goes without waiting.
                let _ = stream.try_write(&text);
            }
        });
    }
}
