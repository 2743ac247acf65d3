//! **redis_worker** — the Redis-driven worker of `evanx/deno-run-worker`
//! as a spool of local workers behind a
//! [Redis-stream bridge](layer_cake::bridge::redis).
//!
//! It configures itself from the worker hash `--worker-key`
//! (`demo-worker:1:h` by default: `requestStream`, `responseStream`,
//! `consumerId`, `requestLimit`), sets the hash's `pid` field, reads the
//! request stream with the consumer group `worker`, and pushes each answer
//! to `res:<ref>` (8 s expiry). It exits 0 after `requestLimit` requests,
//! when the `pid` field changes, or on Ctrl-C, having answered what it took.
//!
//! ```text
//! $ redis-cli xgroup create demo-worker:req:x worker '$' mkstream
//! $ cargo run -p layer-cake-demos --bin redis_worker -- --redis=redis://127.0.0.1:6379 &
//! $ redis-cli xadd demo-worker:req:x '*' ref a1b2c3 type demo-worker data '{"text":"hi"}'
//! $ redis-cli brpop res:a1b2c3 4
//! 1) "res:a1b2c3"
//! 2) "{\"ref\":\"a1b2c3\",\"source\":\"demo-worker\",\"type\":\"demo-worker-res\",\"code\":200,\"res\":{\"text\":\"hi\",\"worker\":\"worker-0\"},\"time\":\"…\"}"
//! ```
//!
//! `data` is a [`DemoRequest`]: `text` is echoed, `work_ms` (at most
//! 10 000) is slept first, `fail` answers a 422 fault. Flags: `--workers=N`
//! (8), `--request-limit=N` (over the hash's), `--claim-min-idle=SECONDS`
//! (30), `--request-timeout=SECONDS` (20), `--in-flight=N` (64),
//! `--max-entry-bytes=N` and `--max-reply-bytes=N` (256 KiB each), and
//! `--server-address=HOST:PORT`, an HTTP front on the same spool
//! (`curl 'http://HOST:PORT/DemoRequest?text=hi'`).

use std::time::Duration;

use layer_cake::bridge::redis::{BridgeEnd, RedisBridge};
use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::spool::{SpoolOptions, Workers};
use layer_cake::{Context, Faulted, HostPort, Message, Stop, on};
use serde::{Deserialize, Serialize};

/// A request: what the stream entry's `data` field holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Message)]
#[serde(default)]
struct DemoRequest {
    /// Echoed in the answer.
    text: Option<String>,
    /// Milliseconds of "work" before answering (at most 10 000).
    work_ms: u64,
    /// Answer a 422 fault instead.
    fail: bool,
}

/// The answer: the text back, and which worker served it.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
struct DemoAnswer {
    text: Option<String>,
    worker: String,
}

async fn worker(mut cx: Context) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            DemoRequest as r => {
                if r.work_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(r.work_ms.min(10_000))).await;
                }
                if r.fail {
                    let _ = cx.reply(Faulted::new("asked to fail").with_error_code(422));
                } else {
                    let worker = cx.name().to_owned();
                    let _ = cx.reply(DemoAnswer { text: r.text, worker });
                }
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("worker ignores {}", other.signature()),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    redis: String,
    worker_key: String,
    workers: usize,
    request_limit: Option<u64>,
    claim_min_idle: f64,
    request_timeout: f64,
    in_flight: usize,
    max_entry_bytes: usize,
    max_reply_bytes: usize,
    server_address: Option<HostPort>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            redis: "redis://127.0.0.1:6379".into(),
            worker_key: "demo-worker:1:h".into(),
            workers: 8,
            request_limit: None,
            claim_min_idle: 30.0,
            request_timeout: 20.0,
            in_flight: 64,
            max_entry_bytes: 256 * 1024,
            max_reply_bytes: 256 * 1024,
            server_address: None,
        }
    }
}

fn seconds(flag: &str, s: f64) -> Result<Duration, Faulted> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Faulted::new(format!("--{flag}={s} is not a number of seconds")))
}

async fn redis_worker(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let request_timeout = seconds("request-timeout", args.request_timeout)?;
    let mut bridge = RedisBridge::new(&args.redis, &args.worker_key)?
        .accept::<DemoRequest>()
        .request_timeout(request_timeout)
        .claim_min_idle(seconds("claim-min-idle", args.claim_min_idle)?)
        .in_flight(args.in_flight)
        .max_entry_bytes(args.max_entry_bytes)
        .max_reply_bytes(args.max_reply_bytes);
    if let Some(limit) = args.request_limit {
        bridge = bridge.request_limit(limit);
    }
    bridge.validate()?;
    let options = SpoolOptions::new()
        .name("redis-spool")
        .request_timeout(request_timeout);
    let spool = cx.spawn_spool(Workers::local(args.workers, worker), options)?;
    if let Some(at) = args.server_address {
        cx.listen(
            at,
            ListenOptions::http(HttpServer::new().accept::<DemoRequest>()),
        );
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    let mut running = tokio::spawn(bridge.run(spool.clone(), async move {
        let _ = stopped.await;
    }));
    eprintln!(
        "redis_worker: {} with {} workers on {}",
        args.worker_key, args.workers, args.redis
    );
    loop {
        tokio::select! {
            done = &mut running => {
                let report = done
                    .map_err(|e| Faulted::new("the bridge task failed").with_explanation(e.to_string()))??;
                let why = match &report.end {
                    BridgeEnd::RequestLimit => "request limit reached".to_string(),
                    BridgeEnd::Stopped(pid) => format!("pid field changed to {pid:?}"),
                    BridgeEnd::Shutdown => "stopped".to_string(),
                };
                eprintln!(
                    "redis_worker: ended ({why}): {} taken, {} answered, {} malformed, {} claimed, {} given up",
                    report.taken, report.answered, report.malformed, report.claimed, report.given_up
                );
                return Ok(());
            }
            message = cx.input() => on!(message, {
                Listening as l => layer_cake_demos::announce("redis_worker", &l),
                NotListening as n => return Err(n.into_fault()),
                DemoRequest as r => {
                    if let Err(e) = cx.forward(r, &spool) {
                        let _ = cx.reply(Faulted::out_of_service(format!("the spool is gone: {e}")));
                    }
                },
                Stop as _ => {
                    // Answer what the bridge holds, then end.
                    if let Some(stop) = stop.take() {
                        let _ = stop.send(());
                    }
                },
                other => tracing::warn!("redis_worker ignores {}", other.signature()),
            }),
        }
    }
}

fn main() {
    layer_cake::create(redis_worker)
}
