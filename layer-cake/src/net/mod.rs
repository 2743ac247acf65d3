//! Networking: any actor can listen and connect.
//!
//! - [`Context::listen`](crate::Context::listen) /
//!   [`Context::connect`](crate::Context::connect) with [`ListenOptions`] /
//!   [`ConnectOptions`]; the outcomes arrive as messages ([`Listening`],
//!   [`NotListening`], [`Accepted`], [`Connected`], [`NotConnected`],
//!   [`Closed`]).
//! - `native`: layer-cake frames between processes. After connect or accept,
//!   the ordinary `send`/`reply`/`forward`/`ask` work across the connection.
//! - `http`: the HTTP front (requests become messages) and the HTTP client
//!   mode (messages become requests).
//!
//! [`HostPort`] names a listening socket.

mod events;
pub mod http;
pub mod key;
mod listen;
#[doc(hidden)]
pub mod native;
mod options;

pub use events::{
    Accepted, Close, Closed, Connected, EndOfTransport, HttpRequest, HttpResponse, ListenId,
    Listening, NotConnected, NotListening, Transport,
};
pub use key::{LanKey, LanKeyError};
pub use options::{
    CallerCheck, ConnectOptions, DEFAULT_MAX_BATCH, DEFAULT_MAX_CONNECTIONS, HttpClient,
    HttpServer, LinkOptions, ListenOptions, MIN_HEADER_BYTES, UnknownGroup, group_id,
};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A host and a TCP port: `127.0.0.1:5050`.
///
/// As JSON it is the original library's `HostPort` object,
/// `{"host":"127.0.0.1","port":5050}`; a human-readable decoder (JSON, a
/// command-line flag) also accepts the text form `"127.0.0.1:5050"`. It
/// prints as `host:port` and parses from it; an IPv6 host is written in
/// brackets (`[::1]:5050`). It is a [`Message`](crate::Message) with the
/// signature `HostPort`.
///
/// ```
/// use layer_cake::net::HostPort;
///
/// let a: HostPort = "127.0.0.1:5050".parse().unwrap();
/// assert_eq!(a, HostPort::new("127.0.0.1", 5050));
/// assert_eq!(a.to_string(), "127.0.0.1:5050");
/// assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"host":"127.0.0.1","port":5050}"#);
/// let b: HostPort = serde_json::from_str(r#""localhost:80""#).unwrap();
/// assert_eq!(b.port, 80);
/// assert!("no-port".parse::<HostPort>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct HostPort {
    /// A host name or IP address.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl HostPort {
    /// A host and port.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
        }
    }
}

impl crate::Message for HostPort {
    fn write_signature(out: &mut String) {
        out.push_str("HostPort");
    }
}

crate::register!(HostPort);

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The error from parsing a [`HostPort`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {text:?} as host:port ({reason})")]
pub struct ParseHostPortError {
    text: String,
    reason: &'static str,
}

impl FromStr for HostPort {
    type Err = ParseHostPortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseHostPortError {
            text: s.to_owned(),
            reason,
        };
        let text = s.trim();
        let (host, port) = text.rsplit_once(':').ok_or_else(|| fail("no port"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .ok_or_else(|| fail("unclosed bracket"))?,
            None if host.contains(':') => return Err(fail("an IPv6 host needs brackets")),
            None => host,
        };
        if host.is_empty() {
            return Err(fail("no host"));
        }
        let port = port.parse().map_err(|_| fail("the port is not 0-65535"))?;
        Ok(HostPort::new(host, port))
    }
}

/// The struct form, shared by every format.
#[derive(Deserialize)]
#[serde(rename = "HostPort", deny_unknown_fields)]
struct Fields {
    host: String,
    port: u16,
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            let Fields { host, port } = Fields::deserialize(d)?;
            return Ok(HostPort { host, port });
        }
        d.deserialize_any(HostPortVisitor)
    }
}

struct HostPortVisitor;

impl<'de> serde::de::Visitor<'de> for HostPortVisitor {
    type Value = HostPort;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"{"host": ..., "port": ...} or "host:port""#)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HostPort, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<HostPort, A::Error> {
        let Fields { host, port } =
            Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(HostPort { host, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        assert_eq!(
            "[::1]:80".parse::<HostPort>().unwrap(),
            HostPort::new("::1", 80)
        );
        assert_eq!(HostPort::new("::1", 80).to_string(), "[::1]:80");
        for bad in ["", ":80", "h:", "h:99999", "::1:80", "[::1:80"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn json_forms() {
        let a: HostPort = serde_json::from_str(r#"{"host":"h","port":1}"#).unwrap();
        assert_eq!(a, HostPort::new("h", 1));
        assert!(serde_json::from_str::<HostPort>(r#"{"host":"h","port":1,"x":2}"#).is_err());
        assert!(serde_json::from_str::<HostPort>(r#"{"host":"h"}"#).is_err());
        assert!(serde_json::from_str::<HostPort>("5").is_err());
    }

    #[test]
    fn binary_round_trip() {
        let config = bincode::config::standard();
        let a = HostPort::new("10.0.0.1", 54195);
        let bytes = bincode::serde::encode_to_vec(&a, config).unwrap();
        let (b, _): (HostPort, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(a, b);
    }
}
