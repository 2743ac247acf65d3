//! An attacker's client for the native protocol: a plain blocking TCP
//! socket that writes whatever frames the test builds, written from
//! `docs/wire-protocol.md` rather than from the library's own (private)
//! wire types — the way a hostile peer would.
//!
//! Message bodies use the library's public binary codec
//! (`layer_cake::message::codec::binary`), which is what a peer would link
//! or reimplement anyway.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use layer_cake::message::codec::binary;
use serde::{Deserialize, Serialize};

/// The protocol version every header carries.
pub(crate) const VERSION: u8 = 2;

/// An address as written on one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireAddr {
    Null,
    /// An id in the receiver's table.
    Yours(u64),
    /// An id in the sender's table.
    Mine(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    Hello { controller: u64, incarnation: u128 },
    Message(MessageHeader),
    Heartbeat,
    Close { note: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MessageHeader {
    pub(crate) to: WireAddr,
    pub(crate) from: WireAddr,
    pub(crate) signature: String,
    pub(crate) tag: u8,
    pub(crate) request: u64,
    pub(crate) trace: Option<(u128, u64, u8)>,
    pub(crate) caller: Option<String>,
    pub(crate) trace_state: Option<String>,
    pub(crate) ingress: WireAddr,
    pub(crate) book: Vec<WireAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) version: u8,
    pub(crate) kind: Kind,
}

/// A whole frame: length prefix, header, body.
pub(crate) fn frame(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0; 4];
    binary::encode(
        &Header {
            version: VERSION,
            kind,
        },
        &mut out,
    )
    .expect("a header encodes");
    out.extend_from_slice(body);
    let length = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&length.to_be_bytes());
    out
}

/// A message frame to `to` from our id 1; `tag` 0 plain, 1 request.
pub(crate) fn message(
    to: WireAddr,
    signature: &str,
    tag: u8,
    request: u64,
    body: &[u8],
) -> Vec<u8> {
    frame(
        Kind::Message(MessageHeader {
            to,
            from: WireAddr::Mine(1),
            signature: signature.into(),
            tag,
            request,
            trace: None,
            caller: None,
            trace_state: None,
            ingress: WireAddr::Null,
            book: vec![],
        }),
        body,
    )
}

/// A raw connection that has exchanged hellos.
pub(crate) struct Raw {
    pub(crate) stream: TcpStream,
    /// The id the listener's hello named.
    pub(crate) controller: u64,
}

impl Raw {
    /// Connects to 127.0.0.1:`port`, says hello and reads the peer's.
    pub(crate) fn connect(port: u16) -> Raw {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .write_all(&frame(
                Kind::Hello {
                    controller: 1,
                    incarnation: 0x5eed,
                },
                &[],
            ))
            .expect("hello written");
        let mut raw = Raw {
            stream,
            controller: 0,
        };
        match raw.read_frame() {
            Some((
                Header {
                    kind: Kind::Hello { controller, .. },
                    ..
                },
                _,
            )) => raw.controller = controller,
            other => panic!("expected a hello, got {other:?}"),
        }
        raw
    }

    /// Writes bytes; false once the peer has closed or reset the socket.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// The next frame (heartbeats skipped), or `None` when the connection
    /// ended or nothing came within the read timeout.
    pub(crate) fn read_frame(&mut self) -> Option<(Header, Vec<u8>)> {
        loop {
            let mut length = [0u8; 4];
            self.stream.read_exact(&mut length).ok()?;
            let mut bytes = vec![0u8; u32::from_be_bytes(length) as usize];
            self.stream.read_exact(&mut bytes).ok()?;
            let (header, used): (Header, usize) = binary::decode_prefix(&bytes).ok()?;
            if header.kind == Kind::Heartbeat {
                continue;
            }
            return Some((header, bytes[used..].to_vec()));
        }
    }

    /// The answer to request `request`: its signature, or `None` if the
    /// link ended first.
    pub(crate) fn answer_to(&mut self, request: u64) -> Option<String> {
        loop {
            let (header, _) = self.read_frame()?;
            if let Kind::Message(m) = header.kind
                && m.tag == 2
                && m.request == request
            {
                return Some(m.signature);
            }
        }
    }

    /// Whether the peer has closed the connection (reads until EOF or
    /// error, discarding frames, within the read timeout).
    pub(crate) fn closed_by_peer(&mut self) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}
