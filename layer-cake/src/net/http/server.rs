//! The HTTP front: hyper's HTTP/1 server on each accepted connection, each
//! request asked of the listening actor.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, SERVER};
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::mapping::{HttpError, decode_request};
use super::response::{self, Body};
use crate::message::{Faulted, Payload};
use crate::net::{HostPort, HttpServer};
use crate::runtime::{Address, AskError, Context, Meta, SendError, TraceContext};

/// The `traceparent` header (W3C trace context).
pub(crate) const TRACEPARENT: &str = "traceparent";

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
    loop {
        if owner.is_closed() {
            tracing::debug!(target: "layer_cake::object", "HTTP front at {listening} closes: its owner has ended");
            return;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tokio::time::sleep(OWNER_CHECK) => continue,
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
        let _ = stream.set_nodelay(true);
        let owner = owner.clone();
        let front = front.clone();
        tokio::spawn(async move {
            let timeout = front.header_read_timeout;
            let service = service_fn(move |request| {
                let owner = owner.clone();
                let front = front.clone();
                async move { Ok::<_, Infallible>(handle(request, &owner, &front).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection ended: {e}");
            }
        });
    }
}

/// Answers one request: exactly one response, whatever happens.
async fn handle(request: Request<Incoming>, owner: &Address, front: &HttpServer) -> Response<Body> {
    let trace = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceContext>().ok())
        .map(|parent| parent.child())
        .unwrap_or_else(TraceContext::new_root);
    let mut response = match read_message(request, front).await {
        Ok(message) => ask(message, owner, front, trace).await,
        Err(error) => response::error_response(&error),
    };
    let headers = response.headers_mut();
    headers.insert(SERVER, SERVER_NAME);
    if let Ok(value) = HeaderValue::from_str(&trace.to_string()) {
        headers.insert(TRACEPARENT, value);
    }
    response
}

/// Reads the body (bounded) and maps the request to a message.
async fn read_message(
    request: Request<Incoming>,
    front: &HttpServer,
) -> Result<Payload, HttpError> {
    let too_large = || {
        HttpError::new(
            413,
            format!("the body is larger than {} bytes", front.max_body),
        )
    };
    let (parts, body) = request.into_parts();
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
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    decode_request(
        &front.accepted,
        parts.method.as_str(),
        target,
        content_type,
        &body,
    )
}

/// Asks the owner and turns its answer (or the lack of one) into a response.
///
/// The request goes out from a detached context of its own; a second one is
/// the *ingress* named in the request's [`Meta`]: any actor down a pipeline
/// may send the final answer there directly (with a plain `send`), and
/// whichever of the two answers first is the response.
async fn ask(
    message: Payload,
    owner: &Address,
    front: &HttpServer,
    trace: TraceContext,
) -> Response<Body> {
    let mut asker = Context::detached("http-request");
    let mut ingress = Context::detached("http-ingress");
    asker.set_meta(Meta {
        trace: Some(trace),
        caller: None,
        ingress: Some(ingress.address().clone()),
    });
    let answered = tokio::select! {
        answer = asker.ask_payload(message, owner, front.answer_within) => answer,
        answer = ingress.input() => Ok(answer),
    };
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
