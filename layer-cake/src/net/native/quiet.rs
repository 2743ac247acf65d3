//! A Unix-domain stream that wakes its process only for what it waits on.
//!
//! tokio registers a socket with epoll for reading *and* writing, edge
//! triggered. On a Unix-domain stream the kernel signals "writable" each
//! time the peer reads what was sent, so a link that writes a request and
//! waits for the answer is woken twice per round trip: once for nothing
//! (the peer took the request) and once for the answer. On a few cores
//! shared by many worker processes, that empty wake-up is a context switch
//! per request on each side (seen with `strace`: an `epoll_wait` returning
//! only `EPOLLOUT` after every `sendto`).
//!
//! [`halves`] splits a connected stream so that the reading half is
//! registered for reading only, and the writing half writes straight to the
//! socket (it is non-blocking) and registers for writability only while the
//! socket is full: a second descriptor for the same socket (`dup`), added
//! to epoll when a write would block and removed once a write goes through.
//! Under back-pressure that costs a `dup`, two `epoll_ctl`s and a `close`
//! per stall, against a wake-up saved on every message otherwise.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::UnixStream;

use super::stream::Halves;

/// Splits `stream` into a reading half registered for reading only and a
/// writing half that registers only while the socket is full.
///
/// An error when the socket cannot leave tokio's registration or join its
/// own (epoll refused it): the link is then not made.
pub(crate) fn halves(stream: UnixStream) -> io::Result<Halves> {
    // `into_std` takes the socket out of tokio's registration; it stays
    // non-blocking.
    let socket = Arc::new(stream.into_std()?);
    let fd = register(Arc::clone(&socket), Interest::READABLE)?;
    Ok(Halves {
        read: Box::new(Reading { fd }),
        write: Box::new(Writing {
            socket,
            waiting: None,
        }),
    })
}

/// Registers `socket` with tokio's reactor for `interest` only.
///
/// tokio 1.54 deprecates the safe constructor for arbitrary `AsRawFd` types
/// (tokio-rs/tokio#8587: a type could change or close the descriptor it
/// reports while registered) in favour of an `unsafe` one. Here the
/// descriptor belongs to a `std` Unix stream that the registration owns
/// (directly, or through the `Arc` it shares with the writing half), so it
/// stays open and the same for as long as it is registered: the condition
/// the `unsafe` constructor asks its caller to uphold. This crate forbids
/// `unsafe`, so the safe form is kept.
#[allow(deprecated)]
fn register<S: std::os::fd::AsRawFd>(socket: S, interest: Interest) -> io::Result<AsyncFd<S>> {
    AsyncFd::with_interest(socket, interest)
}

/// The reading half: the socket, registered for reading only.
struct Reading {
    fd: AsyncFd<Arc<StdUnixStream>>,
}

/// The writing half: the same socket, written without waiting; `waiting` is
/// a registration for writability that exists only while the socket is full.
struct Writing {
    socket: Arc<StdUnixStream>,
    waiting: Option<AsyncFd<StdUnixStream>>,
}

impl AsyncRead for Reading {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let room = unfilled.len();
            match guard.try_io(|fd| (&**fd.get_ref()).read(unfilled)) {
                Ok(Ok(n)) => {
                    if 0 < n && n < room {
                        // Less than asked for: the socket is drained, so
                        // the next read waits for an edge instead of
                        // making a system call to learn that (as tokio's
                        // own streams do).
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Read everything there was: wait for the next edge.
                Err(_would_block) => continue,
            }
        }
    }
}

impl Writing {
    /// Writes what the socket takes now; `None` when it is full.
    fn try_write(&self, buf: &[u8]) -> Option<io::Result<usize>> {
        match (&*self.socket).write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            other => Some(other),
        }
    }
}

impl Drop for Writing {
    /// Like tokio's own writing half: the peer reads end of file once the
    /// writing half is gone, even while the reading half lives on.
    fn drop(&mut self) {
        let _ = self.socket.shutdown(Shutdown::Write);
    }
}

impl AsyncWrite for Writing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some(done) = self.try_write(buf) {
                // Room again (or a real error): no need to hear of it.
                self.waiting = None;
                return Poll::Ready(done);
            }
            if self.waiting.is_none() {
                // Adding the registration reports the socket's state at
                // once, so room made since the failed write is not missed.
                let socket = self.socket.try_clone()?;
                self.waiting = Some(register(socket, Interest::WRITABLE)?);
            }
            let Some(waiting) = self.waiting.as_ref() else {
                continue;
            };
            let mut guard = ready!(waiting.poll_write_ready(cx))?;
            // Writable was reported: clear it before trying again, so a
            // write that still finds the socket full waits for a new edge.
            guard.clear_ready();
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.socket.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A connected pair of tokio Unix streams.
    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    #[tokio::test]
    async fn bytes_arrive_whole_and_in_order_through_a_full_socket() {
        let (a, b) = pair();
        let mut a = halves(a).unwrap();
        let mut b = halves(b).unwrap();
        // Far more than a socket buffer holds: the writer stalls and is
        // woken by its temporary registration as the reader drains.
        let sent: Vec<u8> = (0..8 * 1024 * 1024_u32).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            a.write.write_all(&sent).await.unwrap();
            a.write.shutdown().await.unwrap();
            a
        });
        let mut got = Vec::new();
        let mut chunk = vec![0; 3000];
        loop {
            let n = b.read.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
            if got.len() % (1 << 20) < 3000 {
                // Read slowly now and then, so the writer does fill it.
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes changed on the way");
        let _a = writer.await.unwrap();
        // And back the other way after that.
        b.write.write_all(b"done").await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_peer_is_end_of_file_and_then_a_write_error() {
        let (a, b) = pair();
        let mut a = halves(a).unwrap();
        drop(b);
        let mut byte = [0; 1];
        assert_eq!(a.read.read(&mut byte).await.unwrap(), 0);
        let mut failed = false;
        for _ in 0..4 {
            if a.write.write_all(b"anyone?").await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writing to a closed peer fails");
    }
}
