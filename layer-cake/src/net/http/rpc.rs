//! The HTTP front's JSON-RPC endpoint: a `POST` to the configured path is
//! parsed ([`jsonrpc::parse`]), each call asked of the listening actor as an
//! [`RpcCall`] — all the calls of a batch at once, under one deadline — and
//! the answers, in the order of the calls, make the response. Each request
//! writes one JSON line on the [`REQUEST_LOG_TARGET`] target.

use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::jsonrpc::{self, Entry, RpcCall};
use super::mapping::HttpError;
use super::response::{self, Body};
use super::server::{CancelOnDrop, read_body};
use crate::message::{FaultKind, Payload};
use crate::net::HttpServer;
use crate::net::options::JsonRpc;
use crate::runtime::{Address, Context, Meta, TraceContext, TraceState};

/// The `tracing` target of the request log: one `info` event per request
/// to an HTTP front (`rpc_` values null when it is not JSON-RPC), whose
/// message is a JSON object (`uuid`, `rpc_chain`, `rpc_id`,
/// `rpc_method`, `duration_ms`, `http_method`, `http_path`, `time_in`,
/// `timestamp`, and `user_id` when a caller was authenticated). Shown with
/// `--debug-level=CONSOLE` (or finer), or picked out by any `tracing`
/// subscriber that filters on the target.
pub const REQUEST_LOG_TARGET: &str = "layer_cake::request";

/// The request's uuid: its trace id, written as a uuid. Every hop of the
/// request sees the same one (`<uuid>@<service>` in a call's chain).
pub fn request_uuid(trace: &TraceContext) -> String {
    uuid::Uuid::from_u128(trace.trace_id).to_string()
}

/// Answers one request to the JSON-RPC path.
pub(crate) async fn answer(
    request: Request<Incoming>,
    owner: &Address,
    front: &HttpServer,
    rpc: &JsonRpc,
    trace: TraceContext,
    trace_state: Option<TraceState>,
) -> Response<Body> {
    let caller = rpc
        .caller
        .as_ref()
        .and_then(|check| (check.0)(request.headers()));
    let mut log = LogLine::start(&request, &trace, caller.clone());
    let uuid = log.uuid.clone();
    let response = match read_calls(request, front, rpc).await {
        Err(error) => {
            let mut response = response::error_response(&error);
            if error.status == 405 {
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
            }
            response
        }
        Ok(Err(refused)) => json_body(Some(jsonrpc::member(Value::Null, Err(refused)))),
        Ok(Ok(parsed)) => {
            log.calls = parsed
                .entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Call(call) => Some((call.method.clone(), call.id.clone())),
                    Entry::Invalid { .. } => None,
                })
                .collect();
            let meta = Meta {
                trace: Some(trace),
                trace_state,
                caller: caller.clone(),
                ingress: None,
            };
            let members = ask_all(parsed.entries, owner, front, meta, &uuid).await;
            json_body(jsonrpc::body(parsed.batch, members))
        }
    };
    log.write();
    response
}

/// Reads and parses the body; `Err` for what is wrong at the HTTP level
/// (method, size), `Ok(Err)` for a request refused whole
/// by the JSON-RPC rules.
async fn read_calls(
    request: Request<Incoming>,
    front: &HttpServer,
    rpc: &JsonRpc,
) -> Result<Result<jsonrpc::Parsed, jsonrpc::RpcError>, HttpError> {
    if request.method() != http::Method::POST {
        return Err(HttpError::new(
            405,
            format!("JSON-RPC takes POST here, not {}", request.method()),
        ));
    }
    // The body is read as JSON whatever its Content-Type says (`curl -d`
    // sends application/x-www-form-urlencoded): what is not JSON is -32700.
    let (parts, body) = request.into_parts();
    let body = read_body(&parts, body, front).await?;
    Ok(jsonrpc::parse(&body, rpc.max_batch))
}

/// Asks every call at once and makes a member of each answer (`None` for
/// notifications), in the order of `entries`.
async fn ask_all(
    entries: Vec<Entry>,
    owner: &Address,
    front: &HttpServer,
    meta: Meta,
    uuid: &str,
) -> Vec<Option<Value>> {
    let mut ids = Vec::new();
    let mut requests = Vec::new();
    let mut members: Vec<Option<Value>> = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            Entry::Call(call) => {
                ids.push((members.len(), call.id.clone()));
                members.push(None);
                requests.push((Payload::new(call), owner.clone()));
            }
            Entry::Invalid { id, error } => members.push(Some(jsonrpc::member(id, Err(error)))),
        }
    }
    if requests.is_empty() {
        return members;
    }
    let mut cx = Context::detached("json-rpc");
    cx.set_meta(meta);
    // The calls share one context: the client going away (this future
    // dropped) cancels them all, and so does a call past the deadline (its
    // answer is -32001, and the others have been answered).
    let mut unanswered = CancelOnDrop(Some(cx.cancellation()));
    let answers = cx.concurrently(requests, front.answer_within).await;
    let timed_out = answers
        .iter()
        .any(|a| matches!(a, Err(fault) if fault.kind == FaultKind::TimedOut));
    if !timed_out {
        unanswered.0 = None;
    }
    for ((slot, id), answer) in ids.into_iter().zip(answers) {
        // A notification is asked too (so that a batch of them is answered
        // 204 once they are done), but its outcome goes nowhere.
        if let Some(id) = id {
            members[slot] = Some(jsonrpc::member(id, jsonrpc::outcome(answer, uuid)));
        }
    }
    members
}

/// `200 application/json` with `body`, or `204` without one.
fn json_body(body: Option<Value>) -> Response<Body> {
    let Some(body) = body else {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        return response;
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Answers a request that is not JSON-RPC with `answer`, writing its log
/// line too (without `rpc_` values) when the request log is on.
pub(crate) async fn logged<F, Fut>(
    request: Request<Incoming>,
    trace: &TraceContext,
    answer: F,
) -> Response<Body>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    if !tracing::enabled!(target: REQUEST_LOG_TARGET, tracing::Level::INFO) {
        return answer(request).await;
    }
    let log = LogLine::start(&request, trace, None);
    let response = answer(request).await;
    log.write();
    response
}

/// The request log line of one request.
struct LogLine {
    uuid: String,
    caller: Option<String>,
    http_method: String,
    http_path: String,
    time_in: DateTime<Utc>,
    started: Instant,
    /// Method and id of each call (for a batch, in order).
    calls: Vec<(String, Option<Value>)>,
}

impl LogLine {
    /// The line of `request`, as it arrives.
    fn start(request: &Request<Incoming>, trace: &TraceContext, caller: Option<String>) -> Self {
        LogLine {
            uuid: request_uuid(trace),
            caller,
            http_method: request.method().to_string(),
            http_path: request.uri().path().to_string(),
            time_in: Utc::now(),
            started: Instant::now(),
            calls: Vec::new(),
        }
    }

    /// Writes the line, if anyone listens on [`REQUEST_LOG_TARGET`].
    fn write(&self) {
        if !tracing::enabled!(target: REQUEST_LOG_TARGET, tracing::Level::INFO) {
            return;
        }
        let line = self.to_value().to_string();
        tracing::info!(target: REQUEST_LOG_TARGET, "{line}");
    }

    /// The line: `rpc_method` and `rpc_id` are those of the call, arrays
    /// for a batch; `rpc_chain` is empty at the ingress (no hop yet).
    fn to_value(&self) -> Value {
        let (method, id) = match self.calls.as_slice() {
            [] => (Value::Null, Value::Null),
            [(method, id)] => (json!(method), id.clone().unwrap_or(Value::Null)),
            many => (
                many.iter().map(|(m, _)| json!(m)).collect(),
                many.iter()
                    .map(|(_, id)| id.clone().unwrap_or(Value::Null))
                    .collect(),
            ),
        };
        let mut line = json!({
            "uuid": self.uuid,
            "rpc_chain": Vec::<String>::new(),
            "rpc_id": id,
            "rpc_method": method,
            "duration_ms": self.started.elapsed().as_micros() as f64 / 1000.0,
            "http_method": self.http_method,
            "http_path": self.http_path,
            "time_in": self.time_in.to_rfc3339_opts(SecondsFormat::Micros, true),
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        });
        if let Some(user) = &self.caller {
            line["user_id"] = json!(user);
        }
        line
    }
}

/// What a layer-cake worker answering an [`RpcCall`] can log in the same
/// shape: the call's chain, method and id, and its caller.
pub fn call_log_fields(call: &RpcCall, meta: Option<&Meta>) -> Value {
    let mut line = json!({
        "uuid": meta.and_then(|m| m.trace).map(|t| request_uuid(&t)),
        "rpc_chain": call.chain,
        "rpc_id": call.id,
        "rpc_method": call.method,
    });
    if let Some(user) = meta.and_then(|m| m.caller.as_deref()) {
        line["user_id"] = json!(user);
    }
    line
}
