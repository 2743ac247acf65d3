//! The HTTP client mode: a session actor in front of one HTTP/1.1
//! connection. Messages sent to it are POSTed as JSON, one at a time, and
//! each response goes back to whoever sent the request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http::Request;
use http::header::{CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::server::{TRACEPARENT, TRACESTATE, traceparent};
use crate::message::codec::{CodecError, json};
use crate::message::{Faulted, Payload, Stop};
use crate::net::listen::host_port;
use crate::net::{
    Close, Closed, Connected, EndOfTransport, HostPort, HttpClient, HttpRequest, HttpResponse,
    NotConnected, Transport,
};
use crate::runtime::{self, Address, Context, ReturnPath, SpawnOptions, TraceContext, TraceState};

/// The largest response body the client reads (64 MiB); a larger one is a
/// fault.
const MAX_RESPONSE: usize = 64 << 20;

/// What a signature needs escaped to be one path segment (`vector<float8>`).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b',');

/// One request waiting for the connection.
struct Job {
    message: Payload,
    answer: ReturnPath,
    trace: Option<TraceContext>,
    trace_state: Option<TraceState>,
}

/// What the session and its driver share.
struct Shared {
    host: HeaderValue,
    prefix: String,
    answer_within: Duration,
    /// Requests queued or in flight.
    pending: AtomicUsize,
}

/// Runs an HTTP client session on `stream` for the actor at `owner`: the
/// handshake, then a session actor (the `proxy` of the [`Connected`] sent to
/// `owner`) that ends with a [`Closed`].
pub(crate) async fn client(
    stream: TcpStream,
    owner: Address,
    requested: HostPort,
    client: HttpClient,
) {
    let remote = stream
        .peer_addr()
        .map(host_port)
        .unwrap_or_else(|_| requested.clone());
    let (sender, connection) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => {
            let _ = owner.send(NotConnected {
                requested,
                reason: e.to_string(),
            });
            return;
        }
    };
    let (ended, connection_ended) = oneshot::channel();
    let connection = tokio::spawn(async move {
        let note = match connection.await {
            Ok(()) => "closed by the server".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = ended.send(note);
    });
    let shared = Arc::new(Shared {
        host: HeaderValue::from_str(&requested.to_string())
            .unwrap_or(HeaderValue::from_static("localhost")),
        prefix: client.prefix.clone(),
        answer_within: client.answer_within,
        pending: AtomicUsize::new(0),
    });
    let (jobs, queued) = mpsc::unbounded_channel();
    let (shutdown, stopping) = oneshot::channel();
    tokio::spawn(driver(sender, queued, stopping, shared.clone()));
    let options = SpawnOptions::new()
        .name("http-client")
        .capacity(runtime::DEFAULT_CAPACITY.max(client.max_queued.saturating_mul(2)));
    let session = Session {
        owner,
        requested,
        remote,
        max_queued: client.max_queued,
        shared,
        jobs,
        shutdown: Some(shutdown),
        connection: connection.abort_handle(),
    };
    let _ = runtime::spawn_with(options, move |cx| session.run(cx, connection_ended));
}

struct Session {
    owner: Address,
    requested: HostPort,
    remote: HostPort,
    max_queued: usize,
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<Job>,
    shutdown: Option<oneshot::Sender<()>>,
    connection: tokio::task::AbortHandle,
}

impl Session {
    async fn run(mut self, mut cx: Context, mut connection_ended: oneshot::Receiver<String>) {
        // Sent from here so that `Connected` always comes before `Closed`.
        let _ = cx.send(
            Connected {
                requested: self.requested.clone(),
                remote: self.remote.clone(),
                proxy: cx.address().clone(),
                opened_at: Utc::now(),
                transport: Transport::Tcp,
            },
            &self.owner,
        );
        let (reason, note) = loop {
            let message = tokio::select! {
                message = cx.input() => message,
                note = &mut connection_ended => {
                    break (EndOfTransport::AbandonedByRemote, note.unwrap_or_default());
                }
            };
            let message = match message.downcast::<Close>() {
                Ok(close) => {
                    let note = close.note.unwrap_or_else(|| "closed on request".into());
                    break (EndOfTransport::OnRequest, note);
                }
                Err(other) => other,
            };
            if message.is::<Stop>() {
                break (EndOfTransport::OnRequest, "stopped".into());
            }
            if self.shared.pending.load(Ordering::Acquire) >= self.max_queued {
                let _ = cx.reply(Faulted::overloaded(format!(
                    "{} requests already wait for the HTTP connection to {}",
                    self.max_queued, self.remote
                )));
                continue;
            }
            self.shared.pending.fetch_add(1, Ordering::AcqRel);
            let job = Job {
                message,
                answer: cx.return_path(),
                trace: cx.meta().and_then(|m| m.trace),
                trace_state: cx.meta().and_then(|m| m.trace_state.clone()),
            };
            if let Err(refused) = self.jobs.send(job) {
                let _ = refused
                    .0
                    .answer
                    .reply(closed_fault("the connection has ended"));
            }
        };
        // The driver answers what is queued, then the connection goes.
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if reason == EndOfTransport::OnRequest {
            self.connection.abort();
        }
        tracing::debug!(target: "layer_cake::object", "HTTP client to {} closed: {note}", self.remote);
        let _ = cx.send(
            Closed {
                remote: self.remote.clone(),
                proxy: cx.address().clone(),
                reason,
                note,
            },
            &self.owner,
        );
    }
}

fn closed_fault(note: &str) -> Faulted {
    Faulted::new("connection closed").with_explanation(note.to_string())
}

/// Sends the queued requests one at a time, answering each; once told to
/// stop (or once the session is gone) it answers everything left with a
/// fault.
async fn driver(
    mut sender: SendRequest<Full<Bytes>>,
    mut queued: mpsc::UnboundedReceiver<Job>,
    mut stopping: oneshot::Receiver<()>,
    shared: Arc<Shared>,
) {
    loop {
        let job = tokio::select! {
            biased;
            _ = &mut stopping => break,
            job = queued.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let within = shared.answer_within;
        // An `HttpRequest` goes as it is, and its answer is the response
        // as it is.
        let raw = job.message.is::<HttpRequest>();
        let request = match prepare(&job, &shared) {
            Ok(request) => request,
            Err(fault) => {
                let _ = job.answer.reply(fault);
                shared.pending.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
        };
        let answer = tokio::select! {
            biased;
            _ = &mut stopping => {
                let _ = job.answer.reply(closed_fault("the session was closed before the answer"));
                shared.pending.fetch_sub(1, Ordering::AcqRel);
                break;
            }
            answer = tokio::time::timeout(within, exchange(&mut sender, request, raw)) => match answer {
                Ok(answer) => answer,
                Err(_) => Payload::new(Faulted::timed_out(format!("no HTTP response within {within:?}"))),
            },
        };
        let _ = job.answer.reply_payload(answer);
        shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
    queued.close();
    while let Ok(job) = queued.try_recv() {
        let _ = job.answer.reply(closed_fault(
            "the session was closed before the request was sent",
        ));
        shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The request for a job: an `HttpRequest` as it is, any other message
/// POSTed as JSON. (Nothing in it borrows the job across an await: a
/// `Payload` is not `Sync`.)
fn prepare(job: &Job, shared: &Shared) -> Result<Request<Full<Bytes>>, Faulted> {
    let cannot = |e: &dyn std::fmt::Display| {
        Faulted::new("cannot make the request").with_explanation(e.to_string())
    };
    let (mut request, body) = match job.message.downcast_ref::<HttpRequest>() {
        Some(raw) => {
            let mut request = Request::builder()
                .method(raw.method.as_str())
                .uri(raw.target.as_str());
            for (name, value) in &raw.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(content_type) = &raw.content_type {
                request = request.header(CONTENT_TYPE, content_type.as_str());
            }
            (request, Bytes::from(raw.body.clone()))
        }
        None => {
            let body = json::to_class_string(&job.message, false).map_err(|e| {
                Faulted::new("cannot encode the request").with_explanation(e.to_string())
            })?;
            let signature = job.message.signature();
            let path = format!(
                "{}{}",
                shared.prefix,
                utf8_percent_encode(&signature, SEGMENT)
            );
            let request = Request::post(path)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            (request, Bytes::from(body))
        }
    };
    let headers = request
        .headers_mut()
        .ok_or_else(|| cannot(&"invalid method, path or header"))?;
    headers.entry(HOST).or_insert(shared.host.clone());
    headers
        .entry(USER_AGENT)
        .or_insert(HeaderValue::from_static("layer-cake"));
    // Each call is a span of its own in the sender's trace, with the trace
    // state it came with (unless the request names its own).
    if let Some(trace) = job.trace
        && !headers.contains_key(TRACEPARENT)
    {
        headers.insert(TRACEPARENT, traceparent(&trace.child()));
        if let Some(state) = &job.trace_state
            && let Ok(value) = HeaderValue::from_str(state.as_str())
        {
            headers.insert(TRACESTATE, value);
        }
    }
    request.body(Full::new(body)).map_err(|e| cannot(&e))
}

/// One request and its response, as the answer to send back.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
    raw: bool,
) -> Payload {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Payload::new(Faulted::new(what.to_string()).with_explanation(e.to_string()))
    };
    if let Err(e) = sender.ready().await {
        return Payload::new(closed_fault(&e.to_string()));
    }
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(e) => return Payload::new(closed_fault(&e.to_string())),
    };
    let (parts, body) = response.into_parts();
    let body = match Limited::new(body, MAX_RESPONSE).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return failed("cannot read the response", &e),
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_json = content_type.as_deref().is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if is_json
        && !raw
        && let Ok(text) = std::str::from_utf8(&body)
    {
        match json::from_typed_str(text) {
            Ok(message) => return message,
            // A typed envelope of a type this process has not registered.
            Err(e @ CodecError::UnknownSignature(_)) => {
                tracing::warn!(
                    "HTTP response delivered as HttpResponse: {e} (register the type to receive it as a message)"
                );
            }
            Err(_) => {}
        }
    }
    Payload::new(HttpResponse {
        status: parts.status.as_u16(),
        headers: super::mapping::header_pairs(&parts.headers),
        content_type,
        body: body.to_vec(),
    })
}
