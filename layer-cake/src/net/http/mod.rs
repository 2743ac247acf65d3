//! HTTP: the front (a listen in HTTP mode turns requests into messages) and
//! the client mode (a connection that turns messages into requests).
//!
//! **The front.** `cx.listen(at, ListenOptions::http(HttpServer::new().accept::<Xy>()))`
//! serves HTTP/1.1 (and 1.0, keep-alive for both) on hyper. Each request is
//! mapped to a message by [`decode_request`] — `GET /Xy?x=2&y=2` is
//! `Xy { x: 2, y: 2 }` — and asked of the listening actor, which simply
//! replies (now, or later through a [`ReturnPath`](crate::runtime::ReturnPath)).
//! The reply becomes the response: a message as `200 application/json` with
//! its typed envelope, a [`Faulted`](crate::Faulted) with the status
//! [`status_of`] gives, an [`HttpResponse`](crate::net::HttpResponse) as it
//! is. Every request gets exactly one response: no answer within the
//! deadline is a 504, an ended actor a 503. `docs/http.md` has the whole
//! table.
//!
//! **The client.** `cx.connect(at, ConnectOptions::http(HttpClient::new()))`
//! gives a `Connected` whose `proxy` is a session actor: a message sent (or
//! asked) there is POSTed as `{"value":{...}}` to `/<Signature>`, and the
//! response comes back as the answer — the decoded message for a typed JSON
//! envelope, an `HttpResponse` otherwise.

mod client;
mod connection;
pub(crate) mod drain;
pub mod jsonrpc;
mod mapping;
mod response;
mod rest;
mod rpc;
mod server;

pub(crate) use client::client;
pub(crate) use server::{TRACEPARENT, TRACESTATE, serve};

/// The request headers a caller check reads (see
/// [`HttpServer::caller`](crate::net::HttpServer::caller)).
pub use http::HeaderMap;
pub use mapping::{HttpError, decode_request};
pub use response::status_of;
pub use rest::{FormRequest, HandlerResult, Resources, UriForm, UriFormError, json_response};
pub use rpc::{REQUEST_LOG_TARGET, call_log_fields, request_uuid};
