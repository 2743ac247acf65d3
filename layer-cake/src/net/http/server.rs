//! The HTTP front: hyper's HTTP/1 server on each accepted connection, each
//! request asked of the listening actor.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, SERVER};
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::connection::{self, ConnectionIo, Connections};
use super::drain;
use super::mapping::{HttpError, decode_request, header_pairs};
use super::response::{self, Body};
use super::rest;
use crate::message::{Faulted, Payload};
use crate::net::{HostPort, HttpRequest, HttpServer};
use crate::runtime::{
    Address, AskError, Cancellation, Context, Meta, SendError, TraceContext, TraceState,
};

/// The `traceparent` header (W3C trace context).
pub(crate) const TRACEPARENT: &str = "traceparent";

/// The `tracestate` header (W3C trace context).
pub(crate) const TRACESTATE: &str = "tracestate";

const SERVER_NAME: HeaderValue = HeaderValue::from_static("layer-cake");

/// How often an idle listen checks that its owner is still there.
const OWNER_CHECK: Duration = Duration::from_secs(1);

/// Serves HTTP on `listener` for the actor at `owner`, until aborted or until
/// the owner has ended. Connections already accepted carry on (answering
/// 503 once the owner is gone).
pub(crate) async fn serve(
    listener: TcpListener,
    owner: Address,
    listening: HostPort,
    front: HttpServer,
) {
    let front = Arc::new(front);
    let connections = Connections::new(front.connections_allowed());
    // The process drains (SIGTERM): the listen closes, and its connections
    // close once their requests in flight are answered.
    let draining = drain::begun();
    tokio::pin!(draining);
    loop {
        if owner.is_closed() {
            tracing::debug!(target: "layer_cake::object", "HTTP front at {listening} closes: its owner has ended");
            return;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tokio::time::sleep(OWNER_CHECK) => continue,
            () = &mut draining => {
                tracing::info!("HTTP front at {listening} closes: the process drains");
                connections.shut_down_all();
                return;
            }
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!("HTTP front at {listening} cannot accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((admitted, shut_down)) = connections.admit() else {
            tracing::debug!("HTTP front at {listening} refuses a connection: at its limit");
            connections.refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service_answered = Arc::new(AtomicBool::new(false));
        // What every request of this connection needs, behind one pointer
        // of the connection's own: a request clones that (not the listen's
        // shared ones, whose counts every connection would contend for).
        let shared = Arc::new(Shared {
            owner: owner.clone(),
            front: front.clone(),
            asker: Mutex::new(None),
            service_answered: service_answered.clone(),
        });
        tokio::spawn(async move {
            let _admitted = admitted;
            let timeout = shared.front.header_read_timeout;
            // hyper's read buffer bounds the request head (past it: 431);
            // a body streams through it in pieces, bounded by `max_body`.
            let head_limit = shared.front.max_header_bytes;
            // Boxed so that the connection can be driven without being
            // shut down by hyper (`poll_without_shutdown` wants an `Unpin`
            // future): the front then writes its own answer where hyper
            // would write a bare one (see `connection`).
            let service = service_fn(move |request| {
                let shared = shared.clone();
                Box::pin(async move {
                    let response = handle(request, &shared).await;
                    shared.service_answered.store(true, Ordering::Relaxed);
                    Ok::<_, Infallible>(response)
                })
            });
            let connection = http1::Builder::new()
                .timer(ConnectionTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(head_limit)
                .keep_alive(true)
                .serve_connection(
                    TokioIo::new(ConnectionIo::new(stream, service_answered)),
                    service,
                );
            connection::drive(connection, shut_down, head_limit).await;
        });
    }
}

/// What the requests of one connection share.
struct Shared {
    owner: Address,
    front: Arc<HttpServer>,
    /// The asker of the connection's last request, for the next one (an
    /// HTTP/1 connection has one request in flight at a time).
    asker: Mutex<Option<Asker>>,
    /// Set once a response is given to hyper (see [`ConnectionIo`]).
    service_answered: Arc<AtomicBool>,
}

/// Where the requests of one connection are asked from: a detached context
/// and the timer of its asks, kept from one request to the next instead of
/// made (and the timer registered) anew for each.
struct Asker {
    cx: Context,
    expiry: Pin<Box<tokio::time::Sleep>>,
}

impl Asker {
    fn new() -> Self {
        Asker {
            cx: Context::detached("http-request"),
            expiry: Box::pin(tokio::time::sleep(FAR)),
        }
    }

    /// Whether nothing is left from earlier requests: no late answer (to a
    /// request the ingress answered first) waits in the mailbox. Answers to
    /// requests that timed out are discarded by the context itself.
    fn is_clean(&mut self) -> bool {
        self.cx.input().now_or_never().is_none()
    }
}

/// The deadline of a timer not yet in use.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// hyper's header-read timer for one connection: one tokio timer for all
/// its requests, moved forward for each (cheap, as each deadline is later
/// than the last), where `TokioTimer` registers a new timer for each
/// request and removes it once the request's head has arrived.
///
/// One deadline at a time: hyper's HTTP/1 server asks its timer only for
/// the header-read timeout, and one request head is read at a time on a
/// connection. Two sleeps alive at once would move each other's deadline.
#[derive(Clone)]
struct ConnectionTimer {
    sleep: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
}

impl ConnectionTimer {
    fn new() -> Self {
        ConnectionTimer {
            sleep: Arc::new(Mutex::new(Box::pin(tokio::time::sleep(FAR)))),
        }
    }
}

impl hyper::rt::Timer for ConnectionTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let now = std::time::Instant::now();
        self.sleep_until(now.checked_add(duration).unwrap_or(now + FAR))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ConnectionSleep {
            deadline: deadline.into(),
            sleep: self.sleep.clone(),
        })
    }
}

/// One deadline on a connection's timer.
struct ConnectionSleep {
    deadline: tokio::time::Instant,
    sleep: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
}

impl Future for ConnectionSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<()> {
        let mut sleep = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        if sleep.deadline() != self.deadline {
            sleep.as_mut().reset(self.deadline);
        }
        sleep.as_mut().poll(task)
    }
}

impl hyper::rt::Sleep for ConnectionSleep {}

/// Answers one request: exactly one response, whatever happens.
async fn handle(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let front = &*shared.front;
    if let Some((path, body)) = &front.health_check
        && request.uri().path() == path
    {
        return response::health(body);
    }
    let (trace, trace_state) = trace_of(request.headers());
    let mut response = match front.rpc.as_ref() {
        Some(rpc) if !rpc.path.is_empty() && request.uri().path() == rpc.path => {
            super::rpc::answer(request, &shared.owner, front, rpc, trace, trace_state).await
        }
        _ => {
            super::rpc::logged(request, &trace, |request| async move {
                match read_message(request, front).await {
                    Ok(message) => ask(message, shared, trace, trace_state).await,
                    Err(error) => response::error_response(&error),
                }
            })
            .await
        }
    };
    let headers = response.headers_mut();
    headers.insert(SERVER, SERVER_NAME);
    headers.insert(TRACEPARENT, traceparent(&trace));
    response
}

/// The trace context a request continues, by the W3C rules: a child of its
/// one valid `traceparent` header, with the list of its `tracestate` headers
/// when that list is valid; otherwise a new trace (and no trace state: a
/// state belongs to the trace it came with).
fn trace_of(headers: &http::HeaderMap) -> (TraceContext, Option<TraceState>) {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let parent = match (parents.next(), parents.next()) {
        (Some(only), None) => only
            .to_str()
            .ok()
            .and_then(|v| v.parse::<TraceContext>().ok()),
        // None, or two (which the spec makes invalid).
        _ => None,
    };
    let Some(parent) = parent else {
        return (TraceContext::new_root(), None);
    };
    let states = headers.get_all(TRACESTATE).iter().map(|v| v.to_str());
    let state = states
        .collect::<Result<Vec<&str>, _>>()
        .ok()
        .and_then(|values| TraceState::from_headers(values).ok().flatten());
    (parent.child(), state)
}

/// The `traceparent` header for `trace`, as `TraceContext`'s `Display`
/// writes it (`00-<32 hex>-<16 hex>-<2 hex>`), without the formatting
/// machinery: one of these goes out with every response.
pub(super) fn traceparent(trace: &TraceContext) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    fn hex(out: &mut [u8], value: u128) {
        let mut value = value;
        for byte in out.iter_mut().rev() {
            *byte = HEX[(value & 0xf) as usize];
            value >>= 4;
        }
    }
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(&mut text[3..35], trace.trace_id);
    hex(&mut text[36..52], u128::from(trace.span_id));
    hex(&mut text[53..55], u128::from(trace.flags));
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(""))
}

/// Reads the body (bounded) and maps the request to a message.
async fn read_message(
    request: Request<Incoming>,
    front: &HttpServer,
) -> Result<Payload, HttpError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts, body, front).await?;
    if let Some(form) = &front.uri_form {
        if let Some(entries) = form.matches(parts.uri.path()) {
            return Ok(Payload::new(rest::form_request(
                &parts,
                entries,
                body.to_vec(),
            )));
        }
        if front.accepted.is_empty() {
            return Err(HttpError::new(
                404,
                format!("{:?} does not match {}", parts.uri.path(), form.template()),
            ));
        }
    }
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let message = decode_request(
        &front.accepted,
        parts.method.as_str(),
        target,
        content_type,
        &body,
    )?;
    // A request taken whole gets its headers too (the mapping sees none).
    match message.downcast::<HttpRequest>() {
        Ok(mut whole) => {
            whole.headers = header_pairs(&parts.headers);
            Ok(Payload::new(whole))
        }
        Err(message) => Ok(message),
    }
}

/// Reads a request's body, bounded by `max_body` and `answer_within`.
pub(crate) async fn read_body(
    parts: &http::request::Parts,
    body: Incoming,
    front: &HttpServer,
) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::new(
            413,
            format!("the body is larger than {} bytes", front.max_body),
        )
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > front.max_body as u64) {
        return Err(too_large());
    }
    // A GET without a body needs no reading (nor a timer for it).
    let body: Bytes = if declared == Some(0) || hyper::body::Body::is_end_stream(&body) {
        Bytes::new()
    } else {
        let reading = Limited::new(body, front.max_body).collect();
        match tokio::time::timeout(front.answer_within, reading).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Ok(Err(e)) => return Err(HttpError::new(400, format!("cannot read the body: {e}"))),
            Err(_) => return Err(HttpError::new(408, "the body took too long to arrive")),
        }
    };
    Ok(body)
}

/// Cancels a request's context when dropped, unless disarmed: the client
/// went away (hyper drops the request's future) before it was answered.
pub(super) struct CancelOnDrop(pub(super) Option<Cancellation>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(signal) = self.0.take() {
            tracing::debug!(target: "layer_cake::object", "HTTP client went away: request cancelled");
            signal.cancel();
        }
    }
}

/// Asks the owner and turns its answer (or the lack of one) into a response.
///
/// The request goes out from the connection's asker (see [`Asker`]); a
/// detached context of its own is the *ingress* named in the request's
/// [`Meta`]: any actor down a pipeline may send the final answer there
/// directly (with a plain `send`), and whichever of the two answers first is
/// the response.
///
/// The request's context carries its [`Cancellation`]: cancelled when the
/// client goes away before the answer, and when the answer is a 504 from
/// this front's own deadline, so that whoever holds the request can stop.
async fn ask(
    message: Payload,
    shared: &Shared,
    trace: TraceContext,
    trace_state: Option<TraceState>,
) -> Response<Body> {
    let front = &*shared.front;
    let kept = shared
        .asker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    // An asker with something left from earlier requests is dropped (with
    // what is left) and replaced, as a per-request one would have been.
    let mut asker = match kept {
        Some(mut asker) => {
            if asker.is_clean() {
                asker
            } else {
                Asker::new()
            }
        }
        None => Asker::new(),
    };
    let mut ingress = Context::detached("http-ingress");
    asker.cx.set_meta(Meta {
        trace: Some(trace),
        trace_state,
        caller: None,
        ingress: Some(ingress.address().clone()),
    });
    let mut unanswered = CancelOnDrop(Some(asker.cx.cancellation()));
    let deadline = tokio::time::Instant::now() + front.answer_within;
    asker.expiry.as_mut().reset(deadline);
    let answered = tokio::select! {
        answer = asker.cx.ask_payload_until(message, &shared.owner, asker.expiry.as_mut()) => answer,
        answer = ingress.input() => Ok(answer),
    };
    let signal = unanswered.0.take();
    if let (Err(AskError::TimedOut), Some(signal)) = (&answered, signal) {
        signal.cancel();
    }
    // If this future is dropped before here (the client went away), the
    // asker goes with it and the next request makes a new one.
    *shared.asker.lock().unwrap_or_else(|e| e.into_inner()) = Some(asker);
    match answered {
        Ok(answer) => response::from_answer(answer),
        Err(AskError::TimedOut) => response::fault_response(Faulted::timed_out(format!(
            "no answer within {:?}",
            front.answer_within
        ))),
        Err(AskError::Send(SendError::Full(_))) => {
            response::fault_response(Faulted::overloaded(format!(
                "the server's queue stayed full for {:?}",
                front.answer_within
            )))
        }
        Err(AskError::Send(_)) => response::fault_response(Faulted::out_of_service(
            "the actor behind this front has ended",
        )),
        Err(AskError::Faulted(fault)) => response::fault_response(fault),
        Err(other) => response::fault_response(
            Faulted::new("request failed")
                .with_explanation(other.to_string())
                .with_error_code(500),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traceparent_header_is_the_display_form() {
        let parsed: TraceContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap();
        for trace in [
            parsed,
            parsed.child(),
            TraceContext::new_root(),
            TraceContext {
                trace_id: u128::MAX,
                span_id: 1,
                flags: 0xfe,
            },
        ] {
            assert_eq!(traceparent(&trace).to_str().unwrap(), trace.to_string());
        }
    }
}
