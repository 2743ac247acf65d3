//! Async requests: submit now, answer later (issue 15).
//!
//! An actor in front of one or more services (each an
//! [`ObjectSpool`](crate::spool) of workers) that takes a request over HTTP,
//! stores it durably, answers `201 {"request_id": "<32 hex>"}` at once, runs
//! it on a worker later — priority first, then FIFO — with retries and
//! capped exponential backoff, and POSTs the outcome to a webhook signed
//! with HMAC-SHA256. The public contract is Baseten's async inference API
//! (`docs/async.md` has every route, field and status).
//!
//! | route | what it does |
//! |---|---|
//! | `POST /environments/{env}/async_predict`, `/production/async_predict`, `/development/async_predict` | submit to the service the environment names |
//! | `POST /services/{service}/async_predict` | submit to a service by its name (the generic form) |
//! | `POST /environments/{env}/predict`, `/services/{service}/predict` | the synchronous path through the same workers |
//! | `GET /async_request/{id}` | the record |
//! | `DELETE /async_request/{id}` | cancel a `QUEUED` request |
//! | `GET /environments/{env}/async_queue_status`, `/services/{service}/async_queue_status` | counters |
//!
//! **Durability.** Records live in SQLite (WAL, `synchronous=FULL`) on a
//! thread of their own; concurrent submissions share one transaction
//! (group commit) and the `201` goes out only after that commit. A request
//! found `QUEUED` at start is queued again; one found `IN_PROGRESS` is run
//! again if its retry settings allow another attempt (each attempt is
//! counted in the record before the worker sees it), else it fails.
//!
//! **Sync first.** An async request goes to a worker only when the spool
//! reports an idle worker and no synchronous request waiting, so the
//! synchronous path always has priority on shared workers.
//!
//! Workers answer [`Predict`] with a [`Prediction`], or a [`Faulted`] whose
//! `error_code` (or kind) gives the HTTP-like status: 500, 502, 503 and 504
//! are retried; anything else (422, 404, 400 …) fails at once.

mod store;
mod webhook;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::message::{FaultKind, Faulted, Message, Returned, Stop};
use crate::net::{
    HostPort, HttpRequest, HttpResponse, HttpServer, ListenOptions, Listening, NotListening,
};
use crate::on;
use crate::runtime::{Address, Context, Meta, RequestId, ReturnPath, TraceContext};
use crate::spool::{InspectSpool, SpoolOptions, SpoolStatus, Workers};

pub use webhook::{MAX_URL, RequestError, signature};

/// The largest body a submission may have (256 KiB); larger is `413`.
pub const MAX_BODY: usize = 256 << 10;

/// A request to a worker: the model input (JSON text) of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, crate::Message)]
pub struct Predict {
    /// The request's id (32 hex; also the trace id of the worker hop).
    pub request_id: String,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The model input, as JSON text.
    pub input: String,
}

/// A worker's answer to [`Predict`]: the output, as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, crate::Message)]
pub struct Prediction {
    /// The model output, as JSON text (anything else is delivered as a JSON
    /// string).
    pub output: String,
}

/// Errors setting up the service.
#[derive(Debug, thiserror::Error)]
pub enum AsyncError {
    /// The store cannot be opened or used.
    #[error("the async request store {path}: {reason}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The options do not make a service.
    #[error("async requests: {0}")]
    Options(String),
}

/// The HTTP-like status a worker's fault stands for: its `error_code` when
/// that is one (400..=599), else by kind — `TimedOut` 504; `Busy`,
/// `Overloaded`, `TemporarilyUnavailable`, `OutOfService` 503; `Lost` 502;
/// anything else 500.
pub fn status_of(fault: &Faulted) -> u16 {
    match fault.error_code {
        Some(code) if (400..=599).contains(&code) => code as u16,
        _ => match fault.kind {
            FaultKind::TimedOut => 504,
            FaultKind::Busy
            | FaultKind::Overloaded
            | FaultKind::TemporarilyUnavailable
            | FaultKind::OutOfService => 503,
            FaultKind::Lost => 502,
            _ => 500,
        },
    }
}

/// The error code a status is reported as (`MODEL_INVALID_INPUT` for 422 …).
pub fn error_code(status: u16) -> &'static str {
    match status {
        400 => "MODEL_NOT_READY",
        404 => "MODEL_DOES_NOT_EXIST",
        422 => "MODEL_INVALID_INPUT",
        500 => "MODEL_PREDICT_ERROR",
        502 | 503 => "MODEL_UNAVAILABLE",
        504 => "MODEL_PREDICT_TIMEOUT",
        _ => "INTERNAL_SERVER_ERROR",
    }
}

/// Whether an attempt that failed with `status` is tried again: 500, 502,
/// 503 and 504 only (the documentation's text; its error table also marks
/// 400 `MODEL_NOT_READY` as retried — not followed here).
pub fn retryable(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

/// The delay before attempt `attempt + 1` after attempt `attempt` (from 1)
/// failed: `initial × 2^(attempt−1)`, at most `max`.
///
/// ```
/// use layer_cake::async_requests::backoff;
/// let d: Vec<u64> = (1..=4).map(|a| backoff(1000, 5000, a)).collect();
/// assert_eq!(d, [1000, 2000, 4000, 5000]);
/// ```
pub fn backoff(initial_ms: u64, max_ms: u64, attempt: u32) -> u64 {
    let factor = 1_u64 << attempt.saturating_sub(1).min(32);
    initial_ms.saturating_mul(factor).min(max_ms)
}

/// When a commit counts as done — and so when a `201` may go out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// SQLite `synchronous=FULL`: each group commit is fsynced before its
    /// `201`s go out. Survives a crash of the process and of the machine
    /// (power loss). The default.
    #[default]
    Fsync,
    /// SQLite `synchronous=NORMAL` in WAL mode: a commit is written to the
    /// WAL (in the OS's page cache) before its `201`s go out and fsynced at
    /// checkpoints. Survives a crash of the process (SIGKILL, a panic);
    /// a power loss may lose the last commits.
    Process,
}

/// How an async request service runs.
#[derive(Debug)]
pub struct AsyncOptions {
    store: PathBuf,
    listen: Option<HostPort>,
    services: Vec<(String, Workers, SpoolOptions)>,
    environments: Vec<(String, String)>,
    max_pending: usize,
    retention: Duration,
    secret: Option<Vec<u8>>,
    webhook_attempts: u32,
    webhook_backoff: Duration,
    webhook_timeout: Duration,
    tick: Duration,
    durability: Durability,
}

impl AsyncOptions {
    /// A service keeping its records in the SQLite file `store` (made if
    /// missing), with no services yet.
    pub fn new(store: impl Into<PathBuf>) -> Self {
        AsyncOptions {
            store: store.into(),
            listen: None,
            services: Vec::new(),
            environments: Vec::new(),
            max_pending: 5000,
            retention: Duration::from_secs(3600),
            secret: None,
            webhook_attempts: 2,
            webhook_backoff: Duration::from_secs(2),
            webhook_timeout: Duration::from_secs(10),
            tick: Duration::from_millis(50),
            durability: Durability::Fsync,
        }
    }

    /// When a commit counts as done ([`Durability::Fsync`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Listens for HTTP at `at`.
    pub fn listen(mut self, at: HostPort) -> Self {
        self.listen = Some(at);
        self
    }

    /// A service named `name` (1 to 64 of `A-Z a-z 0-9 _ . -`) served by a
    /// spool of `workers`.
    pub fn service(
        mut self,
        name: impl Into<String>,
        workers: Workers,
        spool: SpoolOptions,
    ) -> Self {
        self.services.push((name.into(), workers, spool));
        self
    }

    /// The environment `env` (`production`, `development` …) is the service
    /// `service`.
    pub fn environment(mut self, env: impl Into<String>, service: impl Into<String>) -> Self {
        self.environments.push((env.into(), service.into()));
        self
    }

    /// At most `n` requests accepted and not complete (queued and in
    /// progress, all services); more are refused `429` (5 000).
    pub fn max_pending(mut self, n: usize) -> Self {
        self.max_pending = n;
        self
    }

    /// How long a completed record is kept (1 h).
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = keep;
        self
    }

    /// Signs webhook bodies with this secret (`X-BASETEN-SIGNATURE`).
    pub fn webhook_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Webhook delivery: `attempts` POSTs (2), `backoff` apart (2 s), each
    /// within `timeout` (10 s).
    pub fn webhook_delivery(mut self, attempts: u32, backoff: Duration, timeout: Duration) -> Self {
        self.webhook_attempts = attempts.max(1);
        self.webhook_backoff = backoff;
        self.webhook_timeout = timeout;
        self
    }

    fn check(&self) -> Result<(), AsyncError> {
        if self.services.is_empty() {
            return Err(AsyncError::Options("no service to front".into()));
        }
        for (name, ..) in &self.services {
            if !valid_name(name) {
                return Err(AsyncError::Options(format!(
                    "bad service name {name:?}: 1 to 64 of A-Z a-z 0-9 _ . -"
                )));
            }
        }
        for (env, service) in &self.environments {
            if !valid_name(env) {
                return Err(AsyncError::Options(format!("bad environment name {env:?}")));
            }
            if !self.services.iter().any(|(n, ..)| n == service) {
                return Err(AsyncError::Options(format!(
                    "environment {env:?} names the service {service:?}, which is not served"
                )));
            }
        }
        if self.max_pending == 0 {
            return Err(AsyncError::Options("max_pending must be at least 1".into()));
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

// ---- internal messages (this actor to itself, from the store's thread) ----

/// A submission is committed.
#[derive(Debug, Clone, Serialize, Deserialize, crate::Message)]
#[message(name = "layer_cake.async_requests.AsyncAccepted")]
struct AsyncAccepted {
    id: String,
}

/// A submission could not be committed.
#[derive(Debug, Clone, Serialize, Deserialize, crate::Message)]
#[message(name = "layer_cake.async_requests.AsyncRefused")]
struct AsyncRefused {
    id: String,
}

/// An attempt is recorded: the worker may be asked.
#[derive(Debug, Clone, Serialize, Deserialize, crate::Message)]
#[message(name = "layer_cake.async_requests.AsyncAttemptRecorded")]
struct AsyncAttemptRecorded {
    id: String,
}

/// A request is complete (status final, webhook done).
#[derive(Debug, Clone, Serialize, Deserialize, crate::Message)]
#[message(name = "layer_cake.async_requests.AsyncFinished")]
struct AsyncFinished {
    id: String,
}

/// The service's clock: backoffs due, expiry, dispatch, purge.
#[derive(Debug, Clone, Serialize, Deserialize, crate::Message)]
#[message(name = "layer_cake.async_requests.AsyncTick")]
struct AsyncTick;

// ---- the submission body ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    model_input: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    webhook_endpoint: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    max_time_in_queue_seconds: Option<i64>,
    #[serde(default)]
    inference_retry_config: Option<RetryConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryConfig {
    #[serde(default)]
    max_attempts: Option<i64>,
    #[serde(default)]
    initial_delay_ms: Option<i64>,
    #[serde(default)]
    max_delay_ms: Option<i64>,
}

fn in_range(name: &str, value: Option<i64>, default: i64, lo: i64, hi: i64) -> Result<i64, String> {
    let v = value.unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} must be between {lo} and {hi}; got {v}"))
    }
}

// ---- the actor's state ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Accepted, not yet committed: counted as queued.
    Inserting,
    Queued,
    Starting,
    Running,
    Backoff(Instant),
    Delivering,
}

#[derive(Debug)]
struct Entry {
    service: String,
    deployment: String,
    priority: u8,
    seq: i64,
    input: String,
    webhook: Option<String>,
    expires: i64,
    max_attempts: u32,
    initial_delay_ms: u64,
    max_delay_ms: u64,
    created_at: i64,
    attempts: u32,
    state: State,
    /// A cancellation that came while the request was being stored.
    cancel: Option<ReturnPath>,
}

#[derive(Debug)]
struct Service {
    spool: Address,
    queue: BTreeSet<(u8, i64, String)>,
    ready: VecDeque<String>,
    queued: usize,
    in_progress: usize,
    inspecting: bool,
    /// Async requests being recorded before they go to the spool.
    starting: usize,
    /// Async requests sent to the spool after the pending inspection was
    /// asked: its answer does not count them yet.
    sent_since_inspect: usize,
}

enum Pending {
    Sync(ReturnPath),
    Async(String),
    Inspect(String),
}

struct Server {
    store: store::Store,
    me: Address,
    runtime: tokio::runtime::Handle,
    delivery: webhook::Delivery,
    services: HashMap<String, Service>,
    environments: HashMap<String, String>,
    entries: HashMap<String, Entry>,
    /// Submissions not yet committed.
    inserting: usize,
    expiries: BTreeSet<(i64, String)>,
    /// Requests waiting to be tried again, by when.
    backoffs: BTreeSet<(Instant, String)>,
    pending: HashMap<RequestId, Pending>,
    next_seq: i64,
    max_pending: usize,
    retention: Duration,
    last_purge: Instant,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn respond(status: u16, body: serde_json::Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: Vec::new(),
        content_type: Some("application/json".into()),
        body: body.to_string().into_bytes(),
    }
}

fn error(status: u16, code: &str, message: impl Into<String>) -> HttpResponse {
    respond(
        status,
        json!({"error": {"code": code, "message": message.into()}}),
    )
}

fn errors_json(errors: &[RequestError]) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| "[]".into())
}

fn trace_of(id: &str) -> Option<TraceContext> {
    let trace_id = u128::from_str_radix(id, 16).ok().filter(|t| *t != 0)?;
    Some(TraceContext {
        trace_id,
        span_id: rand::random::<u64>() | 1,
        flags: 1,
    })
}

fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Runs the async request service as the actor `cx` until it is stopped.
/// `Listening`/`NotListening` go to the parent.
pub async fn serve(mut cx: Context, options: AsyncOptions) -> Result<(), Faulted> {
    options
        .check()
        .map_err(|e| Faulted::from_error("cannot start async requests", &e))?;
    let (store, rows) = store::Store::open(&options.store, options.durability)
        .map_err(|e| Faulted::from_error("cannot open the async request store", &e))?;
    let mut services = HashMap::new();
    for (name, workers, spool) in options.services {
        let spool = cx
            .spawn_spool(workers, spool.name(format!("spool-{name}")))
            .map_err(|e| Faulted::from_error("cannot start a spool", &e))?;
        services.insert(
            name,
            Service {
                spool,
                queue: BTreeSet::new(),
                ready: VecDeque::new(),
                queued: 0,
                in_progress: 0,
                inspecting: false,
                starting: 0,
                sent_since_inspect: 0,
            },
        );
    }
    let mut server = Server {
        store,
        me: cx.address().clone(),
        runtime: tokio::runtime::Handle::current(),
        delivery: webhook::Delivery {
            secret: options.secret,
            attempts: options.webhook_attempts,
            backoff: options.webhook_backoff,
            timeout: options.webhook_timeout,
        },
        services,
        environments: options.environments.into_iter().collect(),
        entries: HashMap::new(),
        inserting: 0,
        expiries: BTreeSet::new(),
        backoffs: BTreeSet::new(),
        pending: HashMap::new(),
        next_seq: rows.iter().map(|r| r.seq).max().unwrap_or(0) + 1,
        max_pending: options.max_pending,
        retention: options.retention,
        last_purge: Instant::now(),
    };
    server.recover(rows);
    if let Some(at) = options.listen {
        let front = HttpServer::new().accept::<HttpRequest>().max_body(MAX_BODY);
        cx.listen(at, ListenOptions::http(front));
    }
    cx.start_repeating_timer(AsyncTick, options.tick);
    loop {
        let message = cx.input().await;
        let from_here = local(&cx);
        on!(message, {
            HttpRequest as request => server.http(&mut cx, request),
            // The service's own events (from its store thread, its timer,
            // its webhook tasks) never come over a link: a peer that
            // learned this address cannot forge them.
            AsyncAccepted as a => if from_here { server.accepted(&mut cx, a.id) },
            AsyncRefused as r => if from_here { server.refused(r.id) },
            AsyncAttemptRecorded as a => if from_here { server.ask_worker(&mut cx, a.id) },
            AsyncFinished as f => if from_here { server.finished(&mut cx, f.id) },
            AsyncDelivered as d => if from_here { server.delivered(d) },
            AsyncTick as _ => if from_here { server.tick(&mut cx) },
            SpoolStatus as status => server.inspected(&mut cx, status),
            Prediction as p => server.answer(&mut cx, Ok(p)),
            Faulted as f => server.answer(&mut cx, Err(f)),
            Listening as l => pass_up(&cx, l),
            NotListening as n => {
                let fault = Faulted::new("async requests cannot listen").with_explanation(n.reason.clone());
                pass_up(&cx, n);
                return Err(fault);
            },
            Returned as r => {
                tracing::warn!("a spool of the async service ended: {:?}", r.into_result::<()>().err());
                return Err(Faulted::new("a spool of the async service ended"));
            },
            Stop as _ => {
                cx.abort();
                return Ok(());
            },
            other => {
                // An answer of a type a worker should not give still ends
                // its request (as a fault), rather than leaving it waiting.
                if cx.answers().is_some_and(|rid| server.pending.contains_key(&rid)) {
                    let fault = Faulted::new("unexpected answer")
                        .with_explanation(format!("the worker answered {}, not Prediction", other.signature()));
                    server.answer(&mut cx, Err(fault));
                } else {
                    tracing::warn!("async requests ignore {}", other.signature());
                }
            },
        })
    }
}

/// Whether the message being handled came from this process.
fn local(cx: &Context) -> bool {
    !cx.return_address().is_remote()
}

fn pass_up<M: Message>(cx: &Context, message: M) {
    if !cx.parent().is_null() {
        let _ = cx.send(message, cx.parent());
    }
}

impl Server {
    /// Puts back what the store held when the process stopped.
    fn recover(&mut self, rows: Vec<store::Row>) {
        for row in rows {
            if !self.services.contains_key(&row.model_id) {
                tracing::warn!(id = %row.id, service = %row.model_id, "a stored request names a service no longer served");
                let errors = vec![RequestError {
                    code: "MODEL_DOES_NOT_EXIST".into(),
                    message: format!("the service {:?} is not served any more", row.model_id),
                }];
                self.complete_without_worker(&row.id, "FAILED", row.webhook.is_some(), &errors);
                continue;
            }
            let entry = Entry {
                service: row.model_id.clone(),
                deployment: row.deployment_id.clone(),
                priority: row.priority,
                seq: row.seq,
                input: row.input.clone(),
                webhook: row.webhook.clone(),
                expires: row.created_at + row.max_queue_ms,
                max_attempts: row.max_attempts,
                initial_delay_ms: row.initial_delay_ms,
                max_delay_ms: row.max_delay_ms,
                created_at: row.created_at,
                attempts: row.attempts,
                state: State::Queued,
                cancel: None,
            };
            let id = row.id.clone();
            match (row.status.as_str(), row.outcome.as_deref()) {
                ("QUEUED", _) => {
                    self.entries.insert(id.clone(), entry);
                    self.enqueue(&id);
                    eprintln!("async requests: {id} is still queued");
                }
                (_, Some(outcome)) => {
                    // The worker had answered; the webhook may not have gone.
                    let errors: Vec<RequestError> =
                        serde_json::from_str(&row.errors).unwrap_or_default();
                    let output = row.output.as_deref().map(parse_output);
                    let outcome = outcome.to_string();
                    self.entries.insert(id.clone(), entry);
                    self.count_in_progress(&id, 1);
                    self.deliver(&id, &outcome, output, errors);
                    eprintln!(
                        "async requests: {id} was answered before the restart; delivering its outcome"
                    );
                }
                _ if row.attempts < row.max_attempts => {
                    self.entries.insert(id.clone(), entry);
                    self.count_in_progress(&id, 1);
                    if let Some(e) = self.entries.get_mut(&id) {
                        let at = Instant::now();
                        e.state = State::Backoff(at);
                        self.backoffs.insert((at, id.clone()));
                    }
                    eprintln!(
                        "async requests: {id} was in progress (attempt {} of {}); trying again",
                        row.attempts, row.max_attempts
                    );
                }
                _ => {
                    let errors = vec![RequestError {
                        code: "INTERNAL_SERVER_ERROR".into(),
                        message: format!(
                            "interrupted by a restart during attempt {} of {}",
                            row.attempts, row.max_attempts
                        ),
                    }];
                    self.entries.insert(id.clone(), entry);
                    self.count_in_progress(&id, 1);
                    eprintln!("async requests: {id} was in progress on its last attempt; failed");
                    self.outcome(&id, "FAILED", None, errors);
                }
            }
        }
    }

    fn count_in_progress(&mut self, id: &str, delta: isize) {
        if let Some(e) = self.entries.get(id)
            && let Some(s) = self.services.get_mut(&e.service)
        {
            s.in_progress = s.in_progress.saturating_add_signed(delta);
        }
    }

    /// Puts a request in its queue; it is counted as queued from its
    /// submission on ([`State::Inserting`]), or from now on if recovered.
    fn enqueue(&mut self, id: &str) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let counted = e.state == State::Inserting;
        e.state = State::Queued;
        self.expiries.insert((e.expires, id.to_string()));
        if let Some(s) = self.services.get_mut(&e.service) {
            s.queue.insert((e.priority, e.seq, id.to_string()));
            if !counted {
                s.queued += 1;
            }
        }
    }

    fn pending_total(&self) -> usize {
        self.entries.len()
    }

    fn http(&mut self, cx: &mut Context, request: HttpRequest) {
        let path = request.target.split('?').next().unwrap_or("").to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = request.method.as_str();
        let answer = match (method, segments.as_slice()) {
            ("POST", ["environments", env, "async_predict"]) => {
                self.resolve_env(env).map(|s| (s, env.to_string()))
            }
            ("POST", [env @ ("production" | "development"), "async_predict"]) => {
                self.resolve_env(env).map(|s| (s, env.to_string()))
            }
            ("POST", ["services", service, "async_predict"]) => {
                self.resolve_service(service).map(|s| (s.clone(), s))
            }
            _ => Err(None),
        };
        match answer {
            Ok((service, deployment)) => {
                return self.submit(cx, &request.body, service, deployment);
            }
            Err(Some(refusal)) => {
                let _ = cx.reply(refusal);
                return;
            }
            Err(None) => {}
        }
        let response = match (method, segments.as_slice()) {
            ("POST", ["environments", env, "predict"])
            | ("POST", [env @ ("production" | "development"), "predict"]) => {
                match self.resolve_env(env) {
                    Ok(service) => return self.predict(cx, &request.body, &service),
                    Err(r) => r.unwrap_or_else(|| error(404, "NOT_FOUND", "no such route")),
                }
            }
            ("POST", ["services", service, "predict"]) => match self.resolve_service(service) {
                Ok(service) => return self.predict(cx, &request.body, &service),
                Err(r) => r.unwrap_or_else(|| error(404, "NOT_FOUND", "no such route")),
            },
            ("GET", ["environments", env, "async_queue_status"])
            | ("GET", [env @ ("production" | "development"), "async_queue_status"]) => {
                match self.resolve_env(env) {
                    Ok(service) => self.queue_status(&service, env),
                    Err(r) => r.unwrap_or_else(|| error(404, "NOT_FOUND", "no such route")),
                }
            }
            ("GET", ["services", service, "async_queue_status"]) => {
                match self.resolve_service(service) {
                    Ok(service) => self.queue_status(&service, &service),
                    Err(r) => r.unwrap_or_else(|| error(404, "NOT_FOUND", "no such route")),
                }
            }
            ("GET", ["async_request", id]) => match check_id(id) {
                Ok(()) => return self.status(cx, id),
                Err(r) => r,
            },
            ("DELETE", ["async_request", id]) => match check_id(id) {
                Ok(()) => return self.cancel(cx, id),
                Err(r) => r,
            },
            (
                _,
                ["environments", _, "async_predict" | "predict"]
                | ["services", _, "async_predict" | "predict"]
                | ["production" | "development", "async_predict" | "predict"],
            ) => {
                let mut r = error(
                    405,
                    "METHOD_NOT_ALLOWED",
                    format!("{method} is not allowed here; use POST"),
                );
                r.headers.push(("Allow".into(), "POST".into()));
                r
            }
            (_, ["async_request", _]) => {
                let mut r = error(
                    405,
                    "METHOD_NOT_ALLOWED",
                    format!("{method} is not allowed here; use GET or DELETE"),
                );
                r.headers.push(("Allow".into(), "GET, DELETE".into()));
                r
            }
            _ => error(
                404,
                "NOT_FOUND",
                format!("no route {method} {}", bounded(&path)),
            ),
        };
        let _ = cx.reply(response);
    }

    fn resolve_env(&self, env: &str) -> Result<String, Option<HttpResponse>> {
        match self.environments.get(env) {
            Some(s) => Ok(s.clone()),
            None => Err(Some(error(
                404,
                "ENVIRONMENT_DOES_NOT_EXIST",
                format!("no environment named {:?}", bounded(env)),
            ))),
        }
    }

    fn resolve_service(&self, service: &str) -> Result<String, Option<HttpResponse>> {
        if self.services.contains_key(service) {
            Ok(service.to_string())
        } else {
            Err(Some(error(
                404,
                "MODEL_DOES_NOT_EXIST",
                format!("no service named {:?}", bounded(service)),
            )))
        }
    }

    fn submit(&mut self, cx: &mut Context, body: &[u8], service: String, deployment: String) {
        let parsed = match parse_submission(body) {
            Ok(p) => p,
            Err(r) => {
                let _ = cx.reply(r);
                return;
            }
        };
        if self.pending_total() >= self.max_pending {
            let mut r = error(
                429,
                "TOO_MANY_REQUESTS",
                format!(
                    "{} requests are queued or in progress, the most this server takes; try again later",
                    self.max_pending
                ),
            );
            r.headers.push(("Retry-After".into(), "1".into()));
            let _ = cx.reply(r);
            return;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let seq = self.next_seq;
        self.next_seq += 1;
        let row = store::Row {
            id: id.clone(),
            seq,
            model_id: service.clone(),
            deployment_id: deployment.clone(),
            priority: parsed.priority,
            input: parsed.input.clone(),
            webhook: parsed.webhook.clone(),
            max_queue_ms: parsed.max_queue_ms,
            max_attempts: parsed.max_attempts,
            initial_delay_ms: parsed.initial_delay_ms,
            max_delay_ms: parsed.max_delay_ms,
            status: "QUEUED".into(),
            webhook_status: if parsed.webhook.is_some() {
                "PENDING"
            } else {
                "NO_WEBHOOK_PROVIDED"
            }
            .into(),
            created_at: now,
            status_at: now,
            attempts: 0,
            errors: "[]".into(),
            outcome: None,
            output: None,
            completed_at: None,
        };
        self.entries.insert(
            id.clone(),
            Entry {
                service,
                deployment,
                priority: parsed.priority,
                seq,
                input: parsed.input,
                webhook: parsed.webhook,
                expires: now + parsed.max_queue_ms,
                max_attempts: parsed.max_attempts,
                initial_delay_ms: parsed.initial_delay_ms,
                max_delay_ms: parsed.max_delay_ms,
                created_at: now,
                attempts: 0,
                state: State::Inserting,
                cancel: None,
            },
        );
        self.inserting += 1;
        if let Some(s) = self.services.get_mut(&self.entries[&id].service) {
            s.queued += 1;
        }
        let answer = cx.return_path();
        let me = self.me.clone();
        let sent = self.store.run(Box::new(move |tx| {
            let result = store::insert(tx, &row);
            Box::new(move |committed| {
                if committed && result.is_ok() {
                    let _ = answer.reply(respond(201, json!({"request_id": row.id})));
                    let _ = me.send(AsyncAccepted { id: row.id });
                } else {
                    let why = match result {
                        Err(e) => e.to_string(),
                        Ok(()) => "the commit failed".into(),
                    };
                    tracing::error!("async request {} not stored: {why}", row.id);
                    let _ = answer.reply(error(
                        503,
                        "STORE_UNAVAILABLE",
                        format!("the request could not be stored: {why}"),
                    ));
                    let _ = me.send(AsyncRefused { id: row.id });
                }
            })
        }));
        if !sent {
            self.entries.remove(&id);
            self.inserting -= 1;
            let _ = cx.reply(error(503, "STORE_UNAVAILABLE", "the store has stopped"));
        }
    }

    fn refused(&mut self, id: String) {
        self.inserting = self.inserting.saturating_sub(1);
        if let Some(e) = self.entries.remove(&id)
            && let Some(s) = self.services.get_mut(&e.service)
        {
            s.queued = s.queued.saturating_sub(1);
            if let Some(cancel) = e.cancel {
                let _ = cancel.reply(error(
                    404,
                    "REQUEST_NOT_FOUND",
                    format!("no async request {id}"),
                ));
            }
        }
    }

    fn accepted(&mut self, cx: &mut Context, id: String) {
        self.inserting = self.inserting.saturating_sub(1);
        if self.entries.contains_key(&id) {
            self.enqueue(&id);
            if let Some(cancel) = self.entries.get_mut(&id).and_then(|e| e.cancel.take()) {
                self.cancel_queued(&id, cancel);
                return;
            }
            let service = self.entries[&id].service.clone();
            self.pump(cx, &service);
        }
    }

    fn predict(&mut self, cx: &mut Context, body: &[u8], service: &str) {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            let _ = cx.reply(error(
                400,
                "INVALID_JSON",
                format!("the body is not JSON: {e}"),
            ));
            return;
        }
        let spool = self.services[service].spool.clone();
        let request = Predict {
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            attempt: 1,
            input: String::from_utf8_lossy(body).into_owned(),
        };
        let answer = cx.return_path();
        match cx.request(request, &spool) {
            Ok(rid) => {
                self.pending.insert(rid, Pending::Sync(answer));
            }
            Err(e) => {
                let _ = cx.reply(error(
                    503,
                    "MODEL_UNAVAILABLE",
                    format!("the spool is gone: {e}"),
                ));
            }
        }
    }

    fn queue_status(&self, service: &str, deployment: &str) -> HttpResponse {
        let s = &self.services[service];
        respond(
            200,
            json!({
                "model_id": service,
                "deployment_id": deployment,
                "num_queued_requests": s.queued,
                "num_in_progress_requests": s.in_progress,
            }),
        )
    }

    fn status(&mut self, cx: &mut Context, id: &str) {
        let answer = cx.return_path();
        let id = id.to_string();
        let sent = self.store.run(Box::new(move |tx| {
            let row = store::get(tx, &id);
            Box::new(move |_| {
                let response = match row {
                    Ok(Some(r)) => respond(200, record_json(&r)),
                    Ok(None) => error(404, "REQUEST_NOT_FOUND", format!("no async request {id}")),
                    Err(e) => error(503, "STORE_UNAVAILABLE", e.to_string()),
                };
                let _ = answer.reply(response);
            })
        }));
        if !sent {
            let _ = cx.reply(error(503, "STORE_UNAVAILABLE", "the store has stopped"));
        }
    }

    fn cancel(&mut self, cx: &mut Context, id: &str) {
        let id = id.to_string();
        let state = self.entries.get(&id).map(|e| e.state);
        match state {
            Some(State::Inserting) => {
                // Committed in a moment: cancel it then.
                let answer = cx.return_path();
                if let Some(e) = self.entries.get_mut(&id) {
                    e.cancel = Some(answer);
                }
            }
            Some(State::Queued) => {
                let answer = cx.return_path();
                self.cancel_queued(&id, answer);
            }
            Some(_) => {
                let _ = cx.reply(respond(
                    200,
                    json!({"request_id": id, "canceled": false,
                           "message": "the request is IN_PROGRESS; only QUEUED requests can be canceled"}),
                ));
            }
            None => {
                let answer = cx.return_path();
                self.store.run(Box::new(move |tx| {
                    let row = store::get(tx, &id);
                    Box::new(move |_| {
                        let response = match row {
                            Ok(Some(r)) => respond(200, json!({"request_id": id, "canceled": false,
                                "message": format!("the request is {}; only QUEUED requests can be canceled", r.status)})),
                            Ok(None) => error(404, "REQUEST_NOT_FOUND", format!("no async request {id}")),
                            Err(e) => error(503, "STORE_UNAVAILABLE", e.to_string()),
                        };
                        let _ = answer.reply(response);
                    })
                }));
            }
        }
    }

    /// Cancels a queued request; `answer` hears once it is recorded.
    fn cancel_queued(&mut self, id: &str, answer: ReturnPath) {
        let Some(e) = self.entries.get(id) else {
            return;
        };
        let had_webhook = e.webhook.is_some();
        self.dequeue(id);
        if let Some(e) = self.entries.get_mut(id) {
            e.state = State::Delivering;
        }
        let id2 = id.to_string();
        let webhook_status = if had_webhook {
            "CANCELED"
        } else {
            "NO_WEBHOOK_PROVIDED"
        };
        self.finish_job(id, "CANCELED", webhook_status, &[], Some(Box::new(move |committed| {
            let _ = answer.reply(if committed {
                respond(200, json!({"request_id": id2, "canceled": true, "message": "the request was canceled"}))
            } else {
                error(503, "STORE_UNAVAILABLE", "the cancellation could not be stored")
            });
        })));
    }

    /// Takes a queued request out of its queue (to run, expire or cancel).
    fn dequeue(&mut self, id: &str) {
        let Some(e) = self.entries.get(id) else {
            return;
        };
        self.expiries.remove(&(e.expires, id.to_string()));
        if let Some(s) = self.services.get_mut(&e.service)
            && s.queue.remove(&(e.priority, e.seq, id.to_string()))
        {
            s.queued -= 1;
        }
    }

    /// A final status without a worker's outcome (canceled, expired …):
    /// one store job; the entry is dropped once committed.
    fn finish_job(
        &mut self,
        id: &str,
        status: &'static str,
        webhook_status: &'static str,
        errors: &[RequestError],
        then: Option<Box<dyn FnOnce(bool) + Send>>,
    ) {
        let errors = errors_json(errors);
        let id = id.to_string();
        let me = self.me.clone();
        let now = now_ms();
        self.store.run(Box::new(move |tx| {
            let result = store::finish(tx, &id, status, webhook_status, &errors, now);
            Box::new(move |committed| {
                if let Err(e) = &result {
                    tracing::error!("async request {id}: cannot record {status}: {e}");
                }
                if let Some(then) = then {
                    then(committed && result.is_ok());
                }
                let _ = me.send(AsyncFinished { id });
            })
        }));
    }

    fn complete_without_worker(
        &mut self,
        id: &str,
        status: &'static str,
        webhook: bool,
        errors: &[RequestError],
    ) {
        let errors = errors_json(errors);
        let id = id.to_string();
        let now = now_ms();
        self.store.run(Box::new(move |tx| {
            let _ = store::finish(
                tx,
                &id,
                status,
                if webhook {
                    "CANCELED"
                } else {
                    "NO_WEBHOOK_PROVIDED"
                },
                &errors,
                now,
            );
            Box::new(|_| {})
        }));
    }

    /// Asks the spool of `service` whether a worker is free, if any request
    /// of it waits.
    fn pump(&mut self, cx: &mut Context, service: &str) {
        let Some(s) = self.services.get_mut(service) else {
            return;
        };
        if s.inspecting || (s.queue.is_empty() && s.ready.is_empty()) {
            return;
        }
        if let Ok(rid) = cx.request(InspectSpool, &s.spool) {
            s.inspecting = true;
            s.sent_since_inspect = 0;
            self.pending
                .insert(rid, Pending::Inspect(service.to_string()));
        }
    }

    fn inspected(&mut self, cx: &mut Context, status: SpoolStatus) {
        let Some(Pending::Inspect(service)) =
            cx.answers().and_then(|rid| self.pending.remove(&rid))
        else {
            return;
        };
        let Some(s) = self.services.get_mut(&service) else {
            return;
        };
        s.inspecting = false;
        // Synchronous requests waiting in the spool go first: no async
        // request is sent while any waits.
        let mut free = if status.queued > 0 {
            0
        } else {
            status
                .idle
                .saturating_sub(s.starting + s.sent_since_inspect)
        };
        let now = now_ms();
        while free > 0 {
            let s = self.services.get_mut(&service).expect("present");
            let id = if let Some(id) = s.ready.pop_front() {
                id
            } else if let Some((_, _, id)) = s.queue.first().cloned() {
                self.dequeue(&id);
                let e = &self.entries[&id];
                if now >= e.expires {
                    self.expire(&id);
                    continue;
                }
                self.count_in_progress(&id, 1);
                id
            } else {
                break;
            };
            free -= 1;
            self.start_attempt(&id);
        }
    }

    fn expire(&mut self, id: &str) {
        let Some(e) = self.entries.get(id) else {
            return;
        };
        let waited = (now_ms() - e.created_at) as f64 / 1000.0;
        let max = (e.expires - e.created_at) / 1000;
        let webhook = e.webhook.is_some();
        let errors = [RequestError {
            code: "REQUEST_EXPIRED".into(),
            message: format!(
                "not started within max_time_in_queue_seconds ({max} s; waited {waited:.1} s)"
            ),
        }];
        if let Some(e) = self.entries.get_mut(id) {
            e.state = State::Delivering;
        }
        self.finish_job(
            id,
            "EXPIRED",
            if webhook {
                "CANCELED"
            } else {
                "NO_WEBHOOK_PROVIDED"
            },
            &errors,
            None,
        );
    }

    fn start_attempt(&mut self, id: &str) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        e.attempts += 1;
        e.state = State::Starting;
        let attempts = e.attempts;
        if let Some(s) = self.services.get_mut(&e.service) {
            s.starting += 1;
        }
        let me = self.me.clone();
        let id = id.to_string();
        let now = now_ms();
        self.store.run(Box::new(move |tx| {
            let result = store::start_attempt(tx, &id, attempts, now);
            Box::new(move |committed| {
                if !committed || result.is_err() {
                    tracing::error!(
                        "async request {id}: attempt {attempts} not recorded: {result:?}"
                    );
                }
                let _ = me.send(AsyncAttemptRecorded { id });
            })
        }));
    }

    fn ask_worker(&mut self, cx: &mut Context, id: String) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let Some(s) = self.services.get_mut(&e.service) else {
            return;
        };
        s.starting = s.starting.saturating_sub(1);
        if s.inspecting {
            s.sent_since_inspect += 1;
        }
        e.state = State::Running;
        let request = Predict {
            request_id: id.clone(),
            attempt: e.attempts,
            input: e.input.clone(),
        };
        cx.set_meta(Meta {
            trace: trace_of(&id),
            ..Meta::default()
        });
        match cx.request(request, &s.spool) {
            Ok(rid) => {
                self.pending.insert(rid, Pending::Async(id));
            }
            Err(e) => {
                let fault = Faulted::out_of_service(format!("the spool is gone: {e}"));
                self.attempt_failed(&id, &fault);
            }
        }
    }

    fn answer(&mut self, cx: &mut Context, answer: Result<Prediction, Faulted>) {
        let Some(pending) = cx.answers().and_then(|rid| self.pending.remove(&rid)) else {
            if let Err(f) = answer {
                tracing::warn!("async requests: a fault nobody asked for: {f}");
            }
            return;
        };
        match pending {
            Pending::Sync(path) => {
                let response = match answer {
                    Ok(p) => HttpResponse {
                        status: 200,
                        headers: Vec::new(),
                        content_type: Some("application/json".into()),
                        body: p.output.into_bytes(),
                    },
                    Err(f) => {
                        let status = status_of(&f);
                        let mut r = error(status, error_code(status), f.to_string());
                        if status == 503 {
                            r.headers.push(("Retry-After".into(), "1".into()));
                        }
                        r
                    }
                };
                let _ = path.reply(response);
            }
            Pending::Async(id) => match answer {
                Ok(p) => {
                    let output = parse_output(&p.output);
                    self.outcome(&id, "SUCCEEDED", Some(output), Vec::new());
                }
                Err(f) => self.attempt_failed(&id, &f),
            },
            Pending::Inspect(service) => {
                // A spool that answers an inspection with a fault has ended.
                if let Some(s) = self.services.get_mut(&service) {
                    s.inspecting = false;
                }
            }
        }
        // A worker is free.
        let services: Vec<String> = self.services.keys().cloned().collect();
        for s in services {
            self.pump(cx, &s);
        }
    }

    fn attempt_failed(&mut self, id: &str, fault: &Faulted) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let status = status_of(fault);
        if retryable(status) && e.attempts < e.max_attempts {
            let delay = backoff(e.initial_delay_ms, e.max_delay_ms, e.attempts);
            tracing::info!(
                id,
                attempt = e.attempts,
                status,
                delay_ms = delay,
                "async attempt failed; retrying"
            );
            let at = Instant::now() + Duration::from_millis(delay);
            e.state = State::Backoff(at);
            self.backoffs.insert((at, id.to_string()));
            return;
        }
        let message = if retryable(status) {
            format!("{fault} (attempt {} of {})", e.attempts, e.max_attempts)
        } else {
            fault.to_string()
        };
        let errors = vec![RequestError {
            code: error_code(status).into(),
            message,
        }];
        self.outcome(id, "FAILED", None, errors);
    }

    /// The worker's outcome is known: store it, then deliver it.
    fn outcome(
        &mut self,
        id: &str,
        outcome: &'static str,
        output: Option<serde_json::Value>,
        errors: Vec<RequestError>,
    ) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        e.state = State::Delivering;
        if e.webhook.is_none() {
            let errs = errors_json(&errors);
            let id = id.to_string();
            let me = self.me.clone();
            let now = now_ms();
            self.store.run(Box::new(move |tx| {
                let result = store::finish(tx, &id, outcome, "NO_WEBHOOK_PROVIDED", &errs, now);
                Box::new(move |_| {
                    if let Err(e) = result {
                        tracing::error!("async request {id}: cannot record {outcome}: {e}");
                    }
                    let _ = me.send(AsyncFinished { id });
                })
            }));
            return;
        }
        let stored_output = output.as_ref().map(|o| o.to_string());
        let errs = errors_json(&errors);
        let key = id.to_string();
        let me = self.me.clone();
        let runtime = self.runtime.clone();
        let delivery = self.delivery.clone();
        let (service, deployment, webhook) = (
            e.service.clone(),
            e.deployment.clone(),
            e.webhook.clone().unwrap_or_default(),
        );
        self.store.run(Box::new(move |tx| {
            let result = store::outcome(tx, &key, outcome, stored_output.as_deref(), &errs);
            Box::new(move |committed| {
                if !committed || result.is_err() {
                    tracing::error!("async request {key}: outcome not recorded: {result:?}");
                }
                runtime.spawn(deliver(DeliverJob {
                    id: key,
                    service,
                    deployment,
                    webhook,
                    outcome,
                    output,
                    errors,
                    delivery,
                    me,
                }));
            })
        }));
    }

    /// Delivers an outcome recovered from the store.
    fn deliver(
        &mut self,
        id: &str,
        outcome: &str,
        output: Option<serde_json::Value>,
        errors: Vec<RequestError>,
    ) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        e.state = State::Delivering;
        let outcome: &'static str = if outcome == "SUCCEEDED" {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        let job = DeliverJob {
            id: id.to_string(),
            service: e.service.clone(),
            deployment: e.deployment.clone(),
            webhook: e.webhook.clone().unwrap_or_default(),
            outcome,
            output,
            errors,
            delivery: self.delivery.clone(),
            me: self.me.clone(),
        };
        if e.webhook.is_none() {
            let errs = errors_json(&job.errors);
            let now = now_ms();
            let (id, me) = (job.id, job.me);
            self.store.run(Box::new(move |tx| {
                let _ = store::finish(tx, &id, outcome, "NO_WEBHOOK_PROVIDED", &errs, now);
                Box::new(move |_| {
                    let _ = me.send(AsyncFinished { id });
                })
            }));
            return;
        }
        self.runtime.spawn(deliver(job));
    }

    /// A webhook delivery ended: the final state goes to the store.
    fn delivered(&mut self, d: AsyncDelivered) {
        let me = self.me.clone();
        let now = now_ms();
        self.store.run(Box::new(move |tx| {
            let result = store::finish(tx, &d.id, &d.status, &d.webhook_status, &d.errors, now);
            Box::new(move |_| {
                if let Err(e) = result {
                    tracing::error!("async request {}: cannot record {}: {e}", d.id, d.status);
                }
                let _ = me.send(AsyncFinished { id: d.id });
            })
        }));
    }

    fn finished(&mut self, cx: &mut Context, id: String) {
        if let Some(e) = self.entries.remove(&id)
            && let Some(s) = self.services.get_mut(&e.service)
            && e.state != State::Queued
        {
            // Expired and canceled requests left the queue's count already.
            if e.attempts > 0 {
                s.in_progress = s.in_progress.saturating_sub(1);
            }
        }
        let services: Vec<String> = self.services.keys().cloned().collect();
        for s in services {
            self.pump(cx, &s);
        }
    }

    fn tick(&mut self, cx: &mut Context) {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some((at, id)) = self.backoffs.first().cloned() {
            if at > now {
                break;
            }
            self.backoffs.pop_first();
            due.push(id);
        }
        for id in due {
            let e = self.entries.get_mut(&id).expect("present");
            e.state = State::Starting;
            if let Some(s) = self.services.get_mut(&e.service) {
                s.ready.push_back(id);
            }
        }
        let wall = now_ms();
        while let Some((at, id)) = self.expiries.first().cloned() {
            if at > wall {
                break;
            }
            self.dequeue(&id);
            self.expire(&id);
        }
        let services: Vec<String> = self.services.keys().cloned().collect();
        for s in services {
            self.pump(cx, &s);
        }
        let every = (self.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        if self.last_purge.elapsed() >= every {
            self.last_purge = now;
            let before = wall - self.retention.as_millis() as i64;
            self.store.run(Box::new(move |tx| {
                let result = store::purge(tx, before);
                Box::new(move |_| match result {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        "async requests: {n} completed records past retention removed"
                    ),
                    Err(e) => tracing::error!("async requests: purge failed: {e}"),
                })
            }));
        }
    }
}

struct DeliverJob {
    id: String,
    service: String,
    deployment: String,
    webhook: String,
    outcome: &'static str,
    output: Option<serde_json::Value>,
    errors: Vec<RequestError>,
    delivery: webhook::Delivery,
    me: Address,
}

async fn deliver(job: DeliverJob) {
    let body = webhook::Body {
        request_id: &job.id,
        model_id: &job.service,
        deployment_id: &job.deployment,
        kind: "async_request_completed",
        time: iso(now_ms()),
        data: job.output.as_ref().map(|output| webhook::Output { output }),
        errors: &job.errors,
    };
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let (result, attempts) = match webhook::parse_url(&job.webhook) {
        Ok(url) => webhook::deliver(&job.delivery, &url, &job.id, body).await,
        Err(e) => (Err(e), 0),
    };
    let mut errors = job.errors;
    let (status, webhook_status) = match result {
        Ok(()) => (job.outcome, "SUCCEEDED"),
        Err(why) => {
            tracing::warn!(id = %job.id, attempts, "webhook delivery failed: {why}");
            errors.push(RequestError {
                code: "WEBHOOK_DELIVERY_FAILED".into(),
                message: format!("{why} (after {attempts} attempts)"),
            });
            ("WEBHOOK_FAILED", "FAILED")
        }
    };
    let errs = errors_json(&errors);
    let _ = job.me.send(AsyncDelivered {
        id: job.id,
        status: status.into(),
        webhook_status: webhook_status.into(),
        errors: errs,
    });
}

/// A webhook delivery ended; the record's final state.
#[derive(Debug, Clone, Serialize, Deserialize, crate::Message)]
#[message(name = "layer_cake.async_requests.AsyncDelivered")]
struct AsyncDelivered {
    id: String,
    status: String,
    webhook_status: String,
    errors: String,
}

fn parse_output(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

fn record_json(r: &store::Row) -> serde_json::Value {
    let errors: serde_json::Value = serde_json::from_str(&r.errors).unwrap_or_else(|_| json!([]));
    json!({
        "request_id": r.id,
        "model_id": r.model_id,
        "deployment_id": r.deployment_id,
        "status": r.status,
        "webhook_status": r.webhook_status,
        "created_at": iso(r.created_at),
        "status_at": iso(r.status_at),
        "errors": errors,
        "attempts": r.attempts,
        "priority": r.priority,
    })
}

fn check_id(id: &str) -> Result<(), HttpResponse> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(error(
            400,
            "INVALID_REQUEST_ID",
            format!(
                "a request id is 32 lowercase hex digits; got {:?}",
                bounded(id)
            ),
        ))
    }
}

/// At most 64 characters of what a client sent, for error messages.
fn bounded(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[derive(Debug)]
struct Parsed {
    input: String,
    webhook: Option<String>,
    priority: u8,
    max_queue_ms: i64,
    max_attempts: u32,
    initial_delay_ms: u64,
    max_delay_ms: u64,
}

fn parse_submission(body: &[u8]) -> Result<Parsed, HttpResponse> {
    let bad = |m: String| error(422, "INVALID_INPUT", m);
    let s: Submission = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            error(422, "INVALID_INPUT", e.to_string())
        } else {
            error(400, "INVALID_JSON", format!("the body is not JSON: {e}"))
        }
    })?;
    let input = s
        .model_input
        .ok_or_else(|| bad("model_input is required".into()))?
        .get()
        .to_string();
    let webhook = match s.webhook_endpoint {
        Some(url) => {
            webhook::parse_url(&url).map_err(bad)?;
            Some(url)
        }
        None => None,
    };
    let priority = in_range("priority", s.priority, 0, 0, 2).map_err(bad)? as u8;
    let max_queue = in_range(
        "max_time_in_queue_seconds",
        s.max_time_in_queue_seconds,
        600,
        10,
        72 * 3600,
    )
    .map_err(bad)?;
    let retry = s.inference_retry_config.unwrap_or(RetryConfig {
        max_attempts: None,
        initial_delay_ms: None,
        max_delay_ms: None,
    });
    let max_attempts = in_range(
        "inference_retry_config.max_attempts",
        retry.max_attempts,
        3,
        1,
        10,
    )
    .map_err(bad)?;
    let initial = in_range(
        "inference_retry_config.initial_delay_ms",
        retry.initial_delay_ms,
        1000,
        0,
        10_000,
    )
    .map_err(bad)?;
    let max_delay = in_range(
        "inference_retry_config.max_delay_ms",
        retry.max_delay_ms,
        5000,
        0,
        60_000,
    )
    .map_err(bad)?;
    Ok(Parsed {
        input,
        webhook,
        priority,
        max_queue_ms: max_queue * 1000,
        max_attempts: max_attempts as u32,
        initial_delay_ms: initial as u64,
        max_delay_ms: max_delay as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_are_checked() {
        let ok = parse_submission(br#"{"model_input":{"a":1},"priority":2,"webhook_endpoint":"http://127.0.0.1:9003/webhook"}"#).unwrap();
        assert_eq!(
            (
                ok.input.as_str(),
                ok.priority,
                ok.max_queue_ms,
                ok.max_attempts
            ),
            (r#"{"a":1}"#, 2, 600_000, 3)
        );
        let r = parse_submission(b"{nope").unwrap_err();
        assert_eq!(r.status, 400);
        let r = parse_submission(br#"{"model_input":1,"priority":3}"#).unwrap_err();
        assert_eq!(r.status, 422);
        assert!(
            String::from_utf8_lossy(&r.body).contains("priority must be between 0 and 2; got 3")
        );
        let r = parse_submission(br#"{"priority":1}"#).unwrap_err();
        assert!(String::from_utf8_lossy(&r.body).contains("model_input is required"));
        let r =
            parse_submission(br#"{"model_input":1,"max_time_in_queue_seconds":5}"#).unwrap_err();
        assert!(String::from_utf8_lossy(&r.body).contains("between 10 and 259200"));
        let r = parse_submission(br#"{"model_input":1,"bogus":5}"#).unwrap_err();
        assert!(String::from_utf8_lossy(&r.body).contains("unknown field `bogus`"));
        let r = parse_submission(br#"{"model_input":1,"webhook_endpoint":"file:///etc/passwd"}"#)
            .unwrap_err();
        assert!(String::from_utf8_lossy(&r.body).contains("must be an http:// URL"));
    }

    #[test]
    fn faults_map_to_statuses() {
        assert_eq!(status_of(&Faulted::new("x").with_error_code(422)), 422);
        assert_eq!(status_of(&Faulted::timed_out("x")), 504);
        assert_eq!(status_of(&Faulted::busy("x")), 503);
        assert_eq!(status_of(&Faulted::lost("x", "y")), 502);
        assert_eq!(status_of(&Faulted::new("x")), 500);
        assert!(retryable(503) && !retryable(422) && !retryable(404) && !retryable(400));
        assert_eq!(error_code(422), "MODEL_INVALID_INPUT");
    }

    #[test]
    fn ids() {
        assert!(valid_id("653335653076454c8c76dc48f75d526d"));
        assert!(!valid_id("653335653076454C8C76DC48F75D526D"));
        assert!(!valid_id("abc"));
        assert_eq!(
            trace_of("653335653076454c8c76dc48f75d526d")
                .unwrap()
                .trace_id,
            0x653335653076454c8c76dc48f75d526d
        );
    }
}
