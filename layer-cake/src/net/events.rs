//! What the network tells an actor: the outcomes of `listen` and `connect`,
//! each accepted connection, and each connection's end. All of them travel on
//! the control lane, so a busy actor never misses one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::HostPort;
use crate::message::{Faulted, Message};
use crate::runtime::Address;

/// Names one listen, for [`Context::stop_listening`](crate::Context::stop_listening).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListenId(pub u64);

/// A listen succeeded: `listening` is the real address (the real port when
/// port 0 was asked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Listening {
    /// What was asked for.
    pub requested: HostPort,
    /// Where it listens.
    pub listening: HostPort,
    /// Stops it.
    pub id: ListenId,
}

/// A listen failed, or a listen ended (after `stop_listening`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct NotListening {
    /// What was asked for.
    pub requested: HostPort,
    /// Why, in the operating system's words where it gave some
    /// (`Address already in use (os error 98)`).
    pub reason: String,
}

/// A peer connected to one of this actor's listens. `proxy` is the peer:
/// messages sent there cross the connection, and messages from the peer
/// arrive with return addresses that route back over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Accepted {
    /// The listening address.
    pub listening: HostPort,
    /// The peer's address.
    pub remote: HostPort,
    /// The peer, reached over the connection.
    pub proxy: Address,
    /// When the connection was opened.
    pub opened_at: DateTime<Utc>,
    /// What carries it: a Unix socket for a local peer that came in through
    /// the abstract socket beside a loopback listener, TCP otherwise.
    pub transport: Transport,
}

/// A connect succeeded: `proxy` is the peer (the actor that listens there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Connected {
    /// What was asked for.
    pub requested: HostPort,
    /// The peer's address as connected.
    pub remote: HostPort,
    /// The peer, reached over the connection.
    pub proxy: Address,
    /// When the connection was opened.
    pub opened_at: DateTime<Utc>,
    /// What carries it: a Unix socket when the peer was on this host and
    /// listened on its abstract socket too, TCP otherwise.
    pub transport: Transport,
}

/// What carries a connection's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transport {
    /// A TCP connection (to another host, or on loopback).
    Tcp,
    /// A Linux abstract Unix-domain socket between two processes of one
    /// host (and one network namespace), named after the TCP listener:
    /// `\0layer-cake/127.0.0.1:54195`.
    Unix,
}

/// A connect failed: refused, unreachable, timed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct NotConnected {
    /// What was asked for.
    pub requested: HostPort,
    /// Why (`Connection refused (os error 111)`, `timed out after 5s` …).
    pub reason: String,
}

/// Sent to a connection's `proxy`: close the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message)]
pub struct Close {
    /// Why, for the log and the `Closed` that follows.
    pub note: Option<String>,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndOfTransport {
    /// A `Close` asked for it.
    OnRequest,
    /// The peer closed it, or went away.
    AbandonedByRemote,
    /// Nothing was heard from the peer within the liveness bound.
    WentStale,
    /// A frame from the peer broke the rules (too large, truncated, unknown
    /// type, undecodable).
    InboundStreaming,
    /// Writing to the peer failed.
    OutboundStreaming,
}

/// A connection ended; the controlling actor (the one that listened or
/// connected) receives this once per connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[message(control)]
pub struct Closed {
    /// The peer's address.
    pub remote: HostPort,
    /// The peer's proxy address (no longer usable).
    pub proxy: Address,
    /// Why.
    pub reason: EndOfTransport,
    /// Detail: the bad frame, the I/O error, the `Close` note.
    pub note: String,
}

impl NotListening {
    /// This failure as a fault.
    pub fn into_fault(self) -> Faulted {
        Faulted::new(format!("cannot listen at {}", self.requested)).with_explanation(self.reason)
    }
}

impl NotConnected {
    /// This failure as a fault.
    pub fn into_fault(self) -> Faulted {
        Faulted::new(format!("cannot connect to {}", self.requested)).with_explanation(self.reason)
    }
}

/// A complete HTTP request, as it came or as it goes:
///
/// - **in**: a front that accepts `HttpRequest`
///   (`HttpServer::new().accept::<HttpRequest>()`) delivers every request
///   that names none of its other messages as one of these, whatever its
///   method, path or body — so that the actor (or a pipeline stage further
///   on) decides what is a bad request. The limits of the front (body size,
///   head size, timeouts) still apply.
/// - **out**: an HTTP client session (the `proxy` of a [`Connected`] from
///   `ConnectOptions::http`) sends one as it is, for servers that do not
///   speak layer-cake's JSON messages; the answer is the [`HttpResponse`]
///   as it came, whatever its content type. The session adds `Host`,
///   `User-Agent` and, when the sender has a trace, `traceparent` (a new
///   span) and `tracestate` — unless the request names them itself.
///
/// ```
/// use layer_cake::net::HttpRequest;
///
/// let call = HttpRequest::post_json("/api/rpc", &serde_json::json!({"jsonrpc": "2.0", "method": "ping", "id": 1}));
/// assert_eq!(call.method, "POST");
/// assert_eq!(call.content_type.as_deref(), Some("application/json"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
pub struct HttpRequest {
    /// The method, as sent (`GET`, `POST` …).
    pub method: String,
    /// The request target: the path and the query, as sent
    /// (`/is_prime?possible_prime=7`).
    pub target: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A POST of a JSON body to `target`.
    pub fn post_json(target: impl Into<String>, body: &serde_json::Value) -> Self {
        HttpRequest {
            method: "POST".into(),
            target: target.into(),
            headers: Vec::new(),
            content_type: Some("application/json".into()),
            body: body.to_string().into_bytes(),
        }
    }
}

/// A complete HTTP response, passed through as it is by the HTTP front
/// (replied by an actor) and delivered by the HTTP client when a response is
/// not a layer-cake JSON message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a status and a text body (`text/plain; charset=utf-8`).
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            content_type: Some("text/plain; charset=utf-8".into()),
            body: body.into().into_bytes(),
        }
    }

    /// A response with a status and a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            content_type: Some("application/json".into()),
            body: body.to_string().into_bytes(),
        }
    }
}
