//! A Redis stream read with a consumer group into a spool, answered the way
//! the Redis-driven workers of `evanx/deno-run-worker` answer.
//!
//! Callers `XADD <type>:req:x * ref <ref> type <type> data <json>` and
//! `BRPOP res:<ref> <timeout>`. A [`RedisBridge`] reads the stream with
//! `XREADGROUP GROUP worker <consumer>`, decodes `data` into the message
//! type it [`accept`](RedisBridge::accept)s, asks the spool, and in one
//! `MULTI` pushes the answer to `res:<ref>` (`LPUSH`, `EXPIRE` 8 s), records
//! it in the response stream `<type>:res:x` and `XACK`s the entry.
//!
//! ```text
//! $ redis-cli xadd demo-worker:req:x '*' ref a1b2c3 type demo-worker data '{}'
//! $ redis-cli brpop res:a1b2c3 4
//! 1) "res:a1b2c3"
//! 2) "{\"ref\":\"a1b2c3\",\"source\":\"demo-worker\",\"type\":\"demo-worker-res\",\"code\":200,\"res\":{…},\"time\":\"…\"}"
//! ```
//!
//! As the seed's workers do, a bridge:
//!
//! - configures itself from the worker hash `<type>:<id>:h`
//!   (`requestStream`, `responseStream`, `consumerId`, `requestLimit`),
//!   where the builder did not say otherwise;
//! - sets the hash's `pid` field to its process id at start (and refuses to
//!   start when the field is already there), and ends as soon as the field
//!   changes or goes: the **stop switch**;
//! - ends after `requestLimit` requests (0: no limit), having answered them;
//! - checks that an entry's `type` is its worker type.
//!
//! Where the seed leaves gaps, a bridge:
//!
//! - `XACK`s every entry once its reply is written (the seed never does);
//! - claims, with `XAUTOCLAIM`, entries another consumer has held
//!   unanswered for [`claim_min_idle`](RedisBridge::claim_min_idle) — a
//!   consumer that died — and answers them; an entry delivered more than
//!   [`max_deliveries`](RedisBridge::max_deliveries) times is answered
//!   with an error instead of being tried again;
//! - answers a malformed entry with a 400 reply (and acknowledges it): it
//!   never ends the bridge, never blocks the stream, and is never dropped
//!   silently (without a usable `ref` it is recorded in the response stream
//!   and logged);
//! - bounds an entry's size and field count, and the size of a reply;
//! - answers many entries at once (up to
//!   [`in_flight`](RedisBridge::in_flight)), so that all the spool's
//!   workers are kept busy.
//!
//! `docs/redis.md` has the whole story.

mod entry;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, RedisError, RedisResult, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use self::entry::{Parsed, RawEntry, Rules};
use crate::message::registry::{self, Entry};
use crate::message::{Faulted, Message, Payload};
use crate::runtime::{Address, AskError, Context, Meta, SendError, TraceContext};

/// Where a bridge takes requests from and how it answers them.
///
/// ```
/// use layer_cake::bridge::redis::RedisBridge;
/// use std::time::Duration;
///
/// let bridge = RedisBridge::new("redis://127.0.0.1:6379", "demo-worker:1:h")
///     .unwrap()
///     .accept::<Vec<i64>>()
///     .request_limit(10)
///     .claim_min_idle(Duration::from_secs(30));
/// assert_eq!(bridge.worker_type(), "demo-worker");
/// assert!(bridge.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct RedisBridge {
    url: String,
    worker_key: String,
    worker_type: String,
    worker_id: String,
    stream: Option<String>,
    response_stream: Option<Option<String>>,
    consumer: Option<String>,
    request_limit: Option<u64>,
    group: String,
    response_stream_limit: usize,
    block: Duration,
    reply_expiry: Duration,
    request_timeout: Duration,
    claim_min_idle: Duration,
    claim_interval: Duration,
    max_deliveries: u64,
    in_flight: usize,
    max_entry_bytes: usize,
    max_fields: usize,
    max_reply_bytes: usize,
    accepted: Vec<&'static Entry>,
}

/// How a bridge ended (it answered everything it had taken first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEnd {
    /// It took its `requestLimit` requests.
    RequestLimit,
    /// The worker hash's `pid` field changed (to this value) or went
    /// (`None`): the stop switch.
    Stopped(Option<String>),
    /// The shutdown future given to [`RedisBridge::run`] completed.
    Shutdown,
}

/// What a bridge did, with how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeReport {
    /// How it ended.
    pub end: BridgeEnd,
    /// Entries taken from the stream (read or claimed).
    pub taken: u64,
    /// Of those, entries claimed from other consumers.
    pub claimed: u64,
    /// Entries answered by the spool (its faults included).
    pub answered: u64,
    /// Malformed entries answered 400 (or, without a usable `ref`, recorded
    /// in the response stream).
    pub malformed: u64,
    /// Entries answered with an error because they had been delivered more
    /// than `max_deliveries` times.
    pub given_up: u64,
    /// Replies Redis refused to store (a `res:<ref>` key of another type,
    /// say); each is logged, and its entry acknowledged.
    pub reply_failed: u64,
}

/// A bridge could not start, or lost Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisBridgeError {
    /// An option is out of range.
    #[error("bad redis bridge option {option}: {reason}")]
    BadOption {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A field of the worker hash holds a bad value.
    #[error("bad field {field} in {key}: {reason}")]
    BadConfig {
        /// The worker hash.
        key: String,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis could not be reached.
    #[error("cannot connect to redis at {url}: {source}")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        source: RedisError,
    },
    /// The worker hash already has a `pid` field: another worker holds it.
    #[error(
        "{key} already has a pid field ({pid}): another worker holds it \
         (stop it, or clear the field with HDEL {key} pid)"
    )]
    PidTaken {
        /// The worker hash.
        key: String,
        /// The pid found there.
        pid: String,
    },
    /// A Redis command failed (the connection was lost, say).
    #[error("redis {command} failed: {source}")]
    Redis {
        /// The command.
        command: &'static str,
        /// Why.
        source: RedisError,
    },
    /// Redis answered in a shape it does not document.
    #[error("redis {command} answered in an unexpected shape: {reason}")]
    Reply {
        /// The command.
        command: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl From<RedisBridgeError> for Faulted {
    fn from(e: RedisBridgeError) -> Self {
        Faulted::new("redis bridge failed").with_explanation(e.to_string())
    }
}

fn redis_error(command: &'static str) -> impl FnOnce(RedisError) -> RedisBridgeError {
    move |source| RedisBridgeError::Redis { command, source }
}

fn shape_error(command: &'static str) -> impl FnOnce(entry::Shape) -> RedisBridgeError {
    move |e| RedisBridgeError::Reply {
        command,
        reason: e.0,
    }
}

impl RedisBridge {
    /// A bridge for the worker hash `worker_key` (`<type>:<id>:h`, the
    /// type matching `^[a-z][-a-z0-9_]*$`) on the Redis server at `url`
    /// (`redis://HOST:PORT`, or `unix:///path/to/redis.sock`).
    ///
    /// Defaults (each overridden by the worker hash's field, where it has
    /// one, and by the builder over both): the request stream
    /// `<type>:req:x` (`requestStream`), the response stream `<type>:res:x`
    /// (`responseStream`), the consumer `<id>` (`consumerId`), no request
    /// limit (`requestLimit`, 0). The group is `worker`.
    ///
    /// # Errors
    ///
    /// [`RedisBridgeError::BadOption`] when the key is not of that form.
    pub fn new(
        url: impl Into<String>,
        worker_key: impl Into<String>,
    ) -> Result<Self, RedisBridgeError> {
        let worker_key = worker_key.into();
        let bad = |reason: String| RedisBridgeError::BadOption {
            option: "worker_key",
            reason,
        };
        let parts: Vec<&str> = worker_key.split(':').collect();
        let [worker_type, worker_id, "h"] = parts.as_slice() else {
            return Err(bad(format!("{worker_key:?} is not <type>:<id>:h")));
        };
        if !valid_type(worker_type) {
            return Err(bad(format!(
                "the type {worker_type:?} does not match ^[a-z][-a-z0-9_]*$"
            )));
        }
        if !entry::valid_ref(worker_id.as_bytes()) {
            return Err(bad(format!(
                "the id {worker_id:?} is not 1 to 128 letters, digits or -_.:"
            )));
        }
        Ok(RedisBridge {
            url: url.into(),
            worker_type: (*worker_type).to_owned(),
            worker_id: (*worker_id).to_owned(),
            worker_key,
            stream: None,
            response_stream: None,
            consumer: None,
            request_limit: None,
            group: "worker".into(),
            response_stream_limit: 1000,
            block: Duration::from_secs(2),
            reply_expiry: Duration::from_secs(8),
            request_timeout: Duration::from_secs(20),
            claim_min_idle: Duration::from_secs(30),
            claim_interval: Duration::from_secs(5),
            max_deliveries: 5,
            in_flight: 64,
            max_entry_bytes: 256 * 1024,
            max_fields: 16,
            max_reply_bytes: 256 * 1024,
            accepted: Vec::new(),
        })
    }

    /// The worker type (the first part of the worker key).
    pub fn worker_type(&self) -> &str {
        &self.worker_type
    }

    /// Accepts entries whose `data` is an `M` in JSON. With one accepted
    /// type an entry needs no `message` field; with several, its `message`
    /// field names the type's signature. At least one is needed.
    pub fn accept<M: Message>(mut self) -> Self {
        let entry = registry::register::<M>();
        if !self.accepted.iter().any(|e| e.type_id() == entry.type_id()) {
            self.accepted.push(entry);
        }
        self
    }

    /// The request stream (over the hash's `requestStream`).
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// The response stream each reply is also added to (over the hash's
    /// `responseStream`); `None` adds none.
    pub fn response_stream(mut self, stream: Option<String>) -> Self {
        self.response_stream = Some(stream);
        self
    }

    /// How many entries the response stream keeps, about (`MAXLEN ~`);
    /// 1 000 by default.
    pub fn response_stream_limit(mut self, limit: usize) -> Self {
        self.response_stream_limit = limit;
        self
    }

    /// The consumer name in the group (over the hash's `consumerId`).
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = Some(consumer.into());
        self
    }

    /// The consumer group (`worker` by default); made with `MKSTREAM` at
    /// `$` if it is missing.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// End after `limit` requests, having answered them (over the hash's
    /// `requestLimit`); 0 for no limit.
    pub fn request_limit(mut self, limit: u64) -> Self {
        self.request_limit = Some(limit);
        self
    }

    /// How long one `XREADGROUP` waits for entries (2 s, as the seed); the
    /// stop switch and the shutdown are seen between reads.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// How long a reply list lives (8 s, as the seed). Whole seconds, at
    /// least 1.
    pub fn reply_expiry(mut self, expiry: Duration) -> Self {
        self.reply_expiry = expiry;
        self
    }

    /// How long the spool has to answer before the reply is a 504 (20 s).
    /// Less than [`claim_min_idle`](Self::claim_min_idle).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long an entry must have stayed unanswered with another consumer
    /// before this one claims it (30 s). More than the request timeout, so
    /// that a live consumer's entries are never taken from it.
    pub fn claim_min_idle(mut self, idle: Duration) -> Self {
        self.claim_min_idle = idle;
        self
    }

    /// How often to look for entries to claim (every 5 s, and at start).
    pub fn claim_interval(mut self, interval: Duration) -> Self {
        self.claim_interval = interval;
        self
    }

    /// An entry claimed after more than this many deliveries (each went to
    /// a consumer that died holding it) is answered with an error instead
    /// (5 by default).
    pub fn max_deliveries(mut self, deliveries: u64) -> Self {
        self.max_deliveries = deliveries;
        self
    }

    /// How many entries may be with the spool at once (64).
    pub fn in_flight(mut self, n: usize) -> Self {
        self.in_flight = n;
        self
    }

    /// The largest entry, its field names and values together (256 KiB).
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// The most fields an entry may have (16).
    pub fn max_fields(mut self, fields: usize) -> Self {
        self.max_fields = fields;
        self
    }

    /// The largest reply; a larger answer is replied as a 500 (256 KiB).
    pub fn max_reply_bytes(mut self, bytes: usize) -> Self {
        self.max_reply_bytes = bytes;
        self
    }

    /// Checks the options, as [`run`](Self::run) does.
    ///
    /// # Errors
    ///
    /// [`RedisBridgeError::BadOption`] naming the first bad option.
    pub fn validate(&self) -> Result<(), RedisBridgeError> {
        let bad = |option, reason: &str| {
            Err(RedisBridgeError::BadOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.accepted.is_empty() {
            return bad("accept", "the bridge accepts no message type");
        }
        let name_ok = |s: &str| !s.is_empty() && s.len() <= 256;
        if self.stream.as_deref().is_some_and(|s| !name_ok(s)) {
            return bad("stream", "must be 1 to 256 bytes");
        }
        if let Some(Some(s)) = &self.response_stream
            && !name_ok(s)
        {
            return bad("response_stream", "must be 1 to 256 bytes");
        }
        if self
            .consumer
            .as_deref()
            .is_some_and(|c| !entry::valid_ref(c.as_bytes()))
        {
            return bad("consumer", "must be 1 to 128 letters, digits or -_.:");
        }
        if !name_ok(&self.group) {
            return bad("group", "must be 1 to 256 bytes");
        }
        if self.block < Duration::from_millis(1) {
            return bad("block", "must be at least 1 ms");
        }
        if self.reply_expiry < Duration::from_secs(1) {
            return bad("reply_expiry", "must be at least 1 s");
        }
        if self.request_timeout < Duration::from_millis(1) {
            return bad("request_timeout", "must be at least 1 ms");
        }
        if self.claim_min_idle <= self.request_timeout + Duration::from_millis(500) {
            return bad(
                "claim_min_idle",
                "must be more than the request timeout plus 500 ms, or a live \
                 consumer's entries would be claimed",
            );
        }
        if self.claim_interval < Duration::from_millis(1) {
            return bad("claim_interval", "must be at least 1 ms");
        }
        if self.max_deliveries < 1 {
            return bad("max_deliveries", "must be at least 1");
        }
        if self.in_flight < 1 {
            return bad("in_flight", "must be at least 1");
        }
        if self.max_entry_bytes < 1 || self.max_fields < 1 || self.max_reply_bytes < 64 {
            return bad(
                "max_entry_bytes/max_fields/max_reply_bytes",
                "an entry needs at least 1 byte and 1 field, a reply 64 bytes",
            );
        }
        Ok(())
    }

    /// Connects, takes the worker hash's `pid` field, and serves the stream
    /// into `spool` until the request limit, the stop switch or `shutdown`;
    /// then answers what it holds, gives the `pid` field back (unless the
    /// stop switch took it) and reports.
    ///
    /// # Errors
    ///
    /// A bad option or hash field, a `pid` field already taken, or a Redis
    /// command that failed (the connection lost): the bridge stops at once,
    /// and the entries it held stay pending for another consumer to claim.
    pub async fn run(
        self,
        spool: Address,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<BridgeReport, RedisBridgeError> {
        self.validate()?;
        let client =
            Client::open(self.url.as_str()).map_err(|source| RedisBridgeError::Connect {
                url: self.url.clone(),
                source,
            })?;
        let connect = |timeout: Duration| {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(timeout));
            let client = client.clone();
            let url = self.url.clone();
            async move {
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|source| RedisBridgeError::Connect { url, source })
            }
        };
        // Reads block: they get a connection of their own.
        let mut reader = connect(self.block + Duration::from_secs(10)).await?;
        let writer = connect(Duration::from_secs(10)).await?;
        let settings = self.settings(&mut reader).await?;
        let pid = std::process::id().to_string();
        take_pid(&mut reader, &self.worker_key, &pid).await?;
        tracing::info!(
            stream = settings.stream,
            group = self.group,
            consumer = settings.consumer,
            limit = settings.limit,
            "redis bridge {} serving",
            self.worker_key
        );
        Serve::new(self, settings, spool, reader, writer, pid)
            .serve(shutdown)
            .await
    }

    /// The hash's fields under the builder's.
    async fn settings(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> Result<Settings, RedisBridgeError> {
        let hash: std::collections::HashMap<String, String> = ::redis::cmd("HGETALL")
            .arg(&self.worker_key)
            .query_async(conn)
            .await
            .map_err(redis_error("HGETALL"))?;
        let bad = |field, reason: String| RedisBridgeError::BadConfig {
            key: self.worker_key.clone(),
            field,
            reason,
        };
        let t = &self.worker_type;
        let stream = match (&self.stream, hash.get("requestStream")) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
            (None, Some(s)) => {
                return Err(bad("requestStream", format!("{s:?} is not 1 to 256 bytes")));
            }
            (None, None) => format!("{t}:req:x"),
        };
        let response_stream = match (&self.response_stream, hash.get("responseStream")) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
            (None, Some(s)) => {
                return Err(bad(
                    "responseStream",
                    format!("{s:?} is not 1 to 256 bytes"),
                ));
            }
            (None, None) => Some(format!("{t}:res:x")),
        };
        let consumer = match (&self.consumer, hash.get("consumerId")) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) if entry::valid_ref(c.as_bytes()) => c.clone(),
            (None, Some(c)) => {
                return Err(bad(
                    "consumerId",
                    format!("{c:?} is not 1 to 128 letters, digits or -_.:"),
                ));
            }
            (None, None) => self.worker_id.clone(),
        };
        let limit = match (self.request_limit, hash.get("requestLimit")) {
            (Some(n), _) => n,
            (None, Some(n)) => n
                .trim()
                .parse()
                .map_err(|_| bad("requestLimit", format!("{n:?} is not a count")))?,
            (None, None) => 0,
        };
        Ok(Settings {
            stream,
            response_stream,
            consumer,
            limit,
        })
    }
}

fn valid_type(t: &str) -> bool {
    let mut chars = t.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The settings in force: the builder's over the hash's over the defaults.
#[derive(Debug, Clone)]
struct Settings {
    stream: String,
    response_stream: Option<String>,
    consumer: String,
    limit: u64,
}

/// `HSETNX <key> pid <pid>`: refuses when the field is there.
async fn take_pid(
    conn: &mut MultiplexedConnection,
    key: &str,
    pid: &str,
) -> Result<(), RedisBridgeError> {
    let set: i64 = ::redis::cmd("HSETNX")
        .arg(key)
        .arg("pid")
        .arg(pid)
        .query_async(conn)
        .await
        .map_err(redis_error("HSETNX"))?;
    if set == 1 {
        return Ok(());
    }
    let held: Option<String> = ::redis::cmd("HGET")
        .arg(key)
        .arg("pid")
        .query_async(conn)
        .await
        .map_err(redis_error("HGET"))?;
    Err(RedisBridgeError::PidTaken {
        key: key.to_owned(),
        pid: held.unwrap_or_default(),
    })
}

/// Deletes the `pid` field if it is still `pid` (atomically).
const GIVE_BACK_PID: &str = r"
if redis.call('HGET', KEYS[1], 'pid') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'pid')
end
return 0";

/// Counts shared by the reader and the reply tasks.
#[derive(Debug, Default)]
struct Counts {
    answered: AtomicU64,
    malformed: AtomicU64,
    given_up: AtomicU64,
    reply_failed: AtomicU64,
}

/// What every reply task needs.
#[derive(Debug)]
struct Shared {
    worker_type: String,
    stream: String,
    group: String,
    response_stream: Option<String>,
    response_stream_limit: usize,
    reply_expiry_secs: u64,
    request_timeout: Duration,
    max_reply_bytes: usize,
    counts: Counts,
    /// Contexts to ask the spool from, kept for the next request.
    askers: std::sync::Mutex<Vec<Context>>,
}

/// A running bridge.
struct Serve {
    options: RedisBridge,
    settings: Settings,
    shared: Arc<Shared>,
    rules: Rules,
    spool: Address,
    reader: MultiplexedConnection,
    writer: MultiplexedConnection,
    pid: String,
    slots: Arc<Semaphore>,
    tasks: JoinSet<Result<(), RedisBridgeError>>,
    taken: u64,
    claimed: u64,
}

/// One entry's work: a request for the spool, an error to reply, or an
/// entry to give up on.
enum Work {
    Ask {
        reference: String,
        payload: Payload,
    },
    Refuse {
        reference: Option<String>,
        code: u16,
        reason: String,
    },
}

impl Serve {
    fn new(
        options: RedisBridge,
        settings: Settings,
        spool: Address,
        reader: MultiplexedConnection,
        writer: MultiplexedConnection,
        pid: String,
    ) -> Self {
        let shared = Arc::new(Shared {
            worker_type: options.worker_type.clone(),
            stream: settings.stream.clone(),
            group: options.group.clone(),
            response_stream: settings.response_stream.clone(),
            response_stream_limit: options.response_stream_limit,
            reply_expiry_secs: options.reply_expiry.as_secs().max(1),
            request_timeout: options.request_timeout,
            max_reply_bytes: options.max_reply_bytes,
            counts: Counts::default(),
            askers: std::sync::Mutex::new(Vec::new()),
        });
        let rules = Rules {
            worker_type: options.worker_type.clone(),
            accepted: options.accepted.clone(),
            max_entry_bytes: options.max_entry_bytes,
            max_fields: options.max_fields,
        };
        let slots = Arc::new(Semaphore::new(options.in_flight));
        Serve {
            options,
            settings,
            shared,
            rules,
            spool,
            reader,
            writer,
            pid,
            slots,
            tasks: JoinSet::new(),
            taken: 0,
            claimed: 0,
        }
    }

    async fn serve(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<BridgeReport, RedisBridgeError> {
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let watcher = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let outcome = self.read_loop(&mut stop_rx).await;
        watcher.abort();
        // Answer what was taken, whatever ended the loop.
        let mut failed = None;
        while let Some(done) = self.tasks.join_next().await {
            if let Some(e) = task_error(done) {
                failed.get_or_insert(e);
            }
        }
        let end = outcome?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !matches!(end, BridgeEnd::Stopped(_)) {
            let _: i64 = ::redis::Script::new(GIVE_BACK_PID)
                .key(&self.options.worker_key)
                .arg(&self.pid)
                .invoke_async(&mut self.reader)
                .await
                .map_err(redis_error("EVALSHA"))?;
        }
        let counts = &self.shared.counts;
        let report = BridgeReport {
            end,
            taken: self.taken,
            claimed: self.claimed,
            answered: counts.answered.load(Ordering::Relaxed),
            malformed: counts.malformed.load(Ordering::Relaxed),
            given_up: counts.given_up.load(Ordering::Relaxed),
            reply_failed: counts.reply_failed.load(Ordering::Relaxed),
        };
        tracing::info!(?report, "redis bridge {} ended", self.options.worker_key);
        Ok(report)
    }

    async fn read_loop(
        &mut self,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<BridgeEnd, RedisBridgeError> {
        self.make_group().await?;
        let limit = self.settings.limit;
        let mut next_claim = tokio::time::Instant::now();
        let mut cursor = String::from("0-0");
        loop {
            while let Some(done) = self.tasks.try_join_next() {
                if let Some(e) = task_error(done) {
                    return Err(e);
                }
            }
            if limit > 0 && self.taken >= limit {
                return Ok(BridgeEnd::RequestLimit);
            }
            if *stop.borrow() {
                return Ok(BridgeEnd::Shutdown);
            }
            let held: Option<String> = ::redis::cmd("HGET")
                .arg(&self.options.worker_key)
                .arg("pid")
                .query_async(&mut self.reader)
                .await
                .map_err(redis_error("HGET"))?;
            if held.as_deref() != Some(self.pid.as_str()) {
                tracing::info!(
                    "redis bridge {}: the pid field changed ({held:?}): stopping",
                    self.options.worker_key
                );
                return Ok(BridgeEnd::Stopped(held));
            }
            // Room for at least one entry (a slot frees as a reply is
            // written), then for as many as are free, within the limit.
            let first = tokio::select! {
                permit = Arc::clone(&self.slots).acquire_owned() => permit.expect("never closed"),
                _ = stop.changed() => continue,
            };
            let mut permits = vec![first];
            let room = if limit > 0 {
                (limit - self.taken) as usize
            } else {
                usize::MAX
            };
            while permits.len() < room.min(self.options.in_flight) {
                match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let (raws, claimed) = if tokio::time::Instant::now() >= next_claim {
                let (next, raws) = self.autoclaim(&cursor, permits.len()).await?;
                if next == "0-0" {
                    next_claim = tokio::time::Instant::now() + self.options.claim_interval;
                }
                cursor = next;
                if raws.is_empty() {
                    continue;
                }
                (raws, true)
            } else {
                (self.read(permits.len()).await?, false)
            };
            for raw in raws {
                let Some(permit) = permits.pop() else {
                    // Redis gave more than COUNT: never expected.
                    return Err(RedisBridgeError::Reply {
                        command: "XREADGROUP",
                        reason: "more entries than asked for".into(),
                    });
                };
                self.taken += 1;
                let work = if claimed {
                    self.claimed += 1;
                    self.claimed_work(&raw).await?
                } else {
                    self.work(&raw)
                };
                let shared = Arc::clone(&self.shared);
                let spool = self.spool.clone();
                let writer = self.writer.clone();
                self.tasks.spawn(async move {
                    let result = handle(shared, spool, writer, raw.id, work).await;
                    drop(permit);
                    result
                });
            }
        }
    }

    /// `XGROUP CREATE <stream> <group> $ MKSTREAM`, unless it exists.
    async fn make_group(&mut self) -> Result<(), RedisBridgeError> {
        let made: RedisResult<()> = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.settings.stream)
            .arg(&self.options.group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut self.reader)
            .await;
        match made {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(redis_error("XGROUP CREATE")(e)),
            _ => Ok(()),
        }
    }

    async fn read(&mut self, count: usize) -> Result<Vec<RawEntry>, RedisBridgeError> {
        let value: Value = ::redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.options.group)
            .arg(&self.settings.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(self.options.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.settings.stream)
            .arg(">")
            .query_async(&mut self.reader)
            .await
            .map_err(redis_error("XREADGROUP"))?;
        entry::read_reply(&value).map_err(shape_error("XREADGROUP"))
    }

    async fn autoclaim(
        &mut self,
        cursor: &str,
        count: usize,
    ) -> Result<(String, Vec<RawEntry>), RedisBridgeError> {
        let value: Value = ::redis::cmd("XAUTOCLAIM")
            .arg(&self.settings.stream)
            .arg(&self.options.group)
            .arg(&self.settings.consumer)
            .arg(self.options.claim_min_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.reader)
            .await
            .map_err(redis_error("XAUTOCLAIM"))?;
        let (next, raws) = entry::autoclaim_reply(&value).map_err(shape_error("XAUTOCLAIM"))?;
        for raw in &raws {
            tracing::info!(
                "redis bridge {}: claimed {} from a consumer that held it {:?} without answering",
                self.options.worker_key,
                raw.id,
                self.options.claim_min_idle
            );
        }
        Ok((next, raws))
    }

    fn work(&self, raw: &RawEntry) -> Work {
        match self.rules.parse(raw) {
            Parsed::Request { reference, payload } => Work::Ask { reference, payload },
            Parsed::Malformed { reference, reason } => Work::Refuse {
                reference,
                code: 400,
                reason,
            },
        }
    }

    /// A claimed entry is worked like a read one, unless it has been
    /// delivered too often (consumers keep dying with it).
    async fn claimed_work(&mut self, raw: &RawEntry) -> Result<Work, RedisBridgeError> {
        let value: Value = ::redis::cmd("XPENDING")
            .arg(&self.settings.stream)
            .arg(&self.options.group)
            .arg(&raw.id)
            .arg(&raw.id)
            .arg(1)
            .query_async(&mut self.reader)
            .await
            .map_err(redis_error("XPENDING"))?;
        let delivered = entry::times_delivered(&value).map_err(shape_error("XPENDING"))?;
        match (delivered, self.work(raw)) {
            (Some(n), Work::Ask { reference, .. }) if n > self.options.max_deliveries => {
                Ok(Work::Refuse {
                    reference: Some(reference),
                    code: 500,
                    reason: format!(
                        "delivered {n} times without an answer (the consumers holding it \
                         ended); given up after {}",
                        self.options.max_deliveries
                    ),
                })
            }
            (_, work) => Ok(work),
        }
    }
}

/// The error a reply task ended with, if any.
fn task_error(
    done: Result<Result<(), RedisBridgeError>, tokio::task::JoinError>,
) -> Option<RedisBridgeError> {
    match done {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(RedisBridgeError::Reply {
            command: "reply",
            reason: format!("a reply task failed: {e}"),
        }),
    }
}

/// Asks the spool (or not), then writes the reply and acknowledges.
async fn handle(
    shared: Arc<Shared>,
    spool: Address,
    mut writer: MultiplexedConnection,
    id: String,
    work: Work,
) -> Result<(), RedisBridgeError> {
    let t = &shared.worker_type;
    let (reference, code, reply) = match work {
        Work::Ask { reference, payload } => {
            let answer = ask(&shared, payload, &spool).await;
            shared.counts.answered.fetch_add(1, Ordering::Relaxed);
            let (code, reply) = entry::answer_reply(&reference, t, &answer);
            (Some(reference), code, reply)
        }
        Work::Refuse {
            reference,
            code,
            reason,
        } => {
            let counter = if code == 400 {
                &shared.counts.malformed
            } else {
                &shared.counts.given_up
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "redis bridge: entry {id} of {} answered {code}{}: {reason}",
                shared.stream,
                match &reference {
                    Some(r) => format!(" to res:{r}"),
                    None => " (no usable ref: recorded in the response stream only)".into(),
                }
            );
            let (code, reply) =
                entry::error_reply(reference.as_deref().unwrap_or(""), t, code, &reason);
            (reference, code, reply)
        }
    };
    let mut text = reply.to_string();
    let mut code = code;
    if text.len() > shared.max_reply_bytes {
        let (c, small) = entry::error_reply(
            reference.as_deref().unwrap_or(""),
            t,
            500,
            &format!(
                "the reply is {} bytes, over the limit of {}",
                text.len(),
                shared.max_reply_bytes
            ),
        );
        code = c;
        text = small.to_string();
    }
    write_reply(&shared, &mut writer, &id, reference.as_deref(), code, &text).await
}

/// Asks the spool as the HTTP front does: a new trace, an ingress for a
/// pipeline's early answer, the request cancelled when it times out.
async fn ask(shared: &Shared, payload: Payload, spool: &Address) -> Payload {
    let kept = shared
        .askers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop();
    let mut cx = kept.unwrap_or_else(|| Context::detached("redis-bridge"));
    let mut ingress = Context::detached("redis-ingress");
    cx.set_meta(Meta {
        trace: Some(TraceContext::new_root()),
        trace_state: None,
        caller: None,
        ingress: Some(ingress.address().clone()),
    });
    let signal = cx.cancellation();
    let answered = tokio::select! {
        answer = cx.ask_payload(payload, spool, shared.request_timeout) => answer,
        answer = ingress.input() => Ok(answer),
    };
    if let Err(AskError::TimedOut) = &answered {
        signal.cancel();
    }
    let answer = match answered {
        Ok(answer) => answer,
        Err(AskError::TimedOut) => Payload::new(Faulted::timed_out(format!(
            "no answer within {:?}",
            shared.request_timeout
        ))),
        Err(AskError::Send(SendError::Full(_))) => Payload::new(Faulted::overloaded(format!(
            "the spool's queue stayed full for {:?}",
            shared.request_timeout
        ))),
        Err(AskError::Send(_)) => Payload::new(Faulted::out_of_service(
            "the spool behind this bridge has ended",
        )),
        Err(AskError::Faulted(fault)) => Payload::new(fault),
        Err(other) => Payload::new(
            Faulted::new("request failed")
                .with_explanation(other.to_string())
                .with_error_code(500),
        ),
    };
    // A context with nothing left in its mailbox serves the next request.
    if futures_util::FutureExt::now_or_never(cx.input()).is_none() {
        shared
            .askers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cx);
    }
    answer
}

/// One `MULTI`: `LPUSH res:<ref>`, `EXPIRE`, `XADD` to the response stream,
/// `XACK`. Redis refusing the reply (a `res:<ref>` key of another type) is
/// logged and counted; refusing the `XACK`, or a lost connection, ends the
/// bridge.
async fn write_reply(
    shared: &Shared,
    writer: &mut MultiplexedConnection,
    id: &str,
    reference: Option<&str>,
    code: u16,
    text: &str,
) -> Result<(), RedisBridgeError> {
    let mut pipe = ::redis::pipe();
    pipe.atomic().ignore_errors();
    let mut names = Vec::new();
    if let Some(r) = reference {
        let key = format!("res:{r}");
        pipe.cmd("LPUSH").arg(&key).arg(text);
        pipe.cmd("EXPIRE").arg(&key).arg(shared.reply_expiry_secs);
        names.extend(["LPUSH", "EXPIRE"]);
    }
    if let Some(stream) = &shared.response_stream {
        pipe.cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(shared.response_stream_limit)
            .arg("*")
            .arg("ref")
            .arg(reference.unwrap_or(""))
            .arg("type")
            .arg(&shared.worker_type)
            .arg("xid")
            .arg(id)
            .arg("code")
            .arg(code)
            .arg("res")
            .arg(text);
        names.push("XADD");
    }
    pipe.cmd("XACK")
        .arg(&shared.stream)
        .arg(&shared.group)
        .arg(id);
    names.push("XACK");
    let results: Vec<RedisResult<Value>> = pipe
        .query_async(writer)
        .await
        .map_err(redis_error("MULTI/EXEC"))?;
    for (name, result) in names.iter().zip(results) {
        if let Err(e) = result {
            if *name == "XACK" {
                return Err(redis_error("XACK")(e));
            }
            shared.counts.reply_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "redis bridge: {name} for entry {id} (ref {:?}) refused: {e}",
                reference.unwrap_or("")
            );
        }
    }
    Ok(())
}
