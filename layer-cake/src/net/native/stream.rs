//! The byte stream under a native link, whatever carries it.
//!
//! The link frames and reads bytes; it does not care whether they travel
//! over a TCP socket, a Unix-domain socket or an encrypted session. Whatever
//! sits between the socket and the framing (a credentials check, a
//! handshake) hands the link a [`Halves`]: the two directions, each owned by
//! one task (the reader, the writer).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The receiving direction of a link's stream.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The sending direction of a link's stream.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// A connected stream, split for the link's reader and writer.
pub(crate) struct Halves {
    pub(crate) read: ReadHalf,
    pub(crate) write: WriteHalf,
}

impl std::fmt::Debug for Halves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Halves").finish_non_exhaustive()
    }
}

impl From<TcpStream> for Halves {
    fn from(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Halves {
            read: Box::new(read),
            write: Box::new(write),
        }
    }
}
