//! **async_server** — async requests (issue 15) in front of a pool of
//! predict workers: submit now, answer later, over a durable store.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin async_server &
//! async_server: store model/async-requests.sqlite (WAL, synchronous=FULL)
//! async_server: listening on 127.0.0.1:5050
//! $ curl -s -X POST http://127.0.0.1:5050/environments/production/async_predict \
//!     -d '{"model_input":{"text":"hello"},"webhook_endpoint":"http://127.0.0.1:9003/webhook"}'
//! {"request_id":"653335653076454c8c76dc48f75d526d"}
//! $ curl -s http://127.0.0.1:5050/async_request/653335653076454c8c76dc48f75d526d
//! ```
//!
//! The workers (`--workers=N`, 2) are actors of this process behind one
//! spool, serving `POST /environments/production/predict` (sync) and the
//! async requests alike. A model input that is an object may steer the
//! worker, for tests and demos: `sleep_ms` (work that long), `fail_code`
//! (answer that status), `fail_until_attempt` (fail only the attempts
//! before that one) and `sleep_until_attempt` (sleep only in those); an
//! input with a `wrong_type` member is answered with a string, not a
//! `Prediction`, as a misbehaving worker would. The answer is `{"echo": <input>, "attempt": n, "finished_at_us": t}`.
//!
//! Flags: `--server-address` (127.0.0.1:5050); `--store=PATH` (the role's
//! `model/async-requests.sqlite`); `--workers=N`; `--max-pending=N`
//! (5000); `--retention-seconds=S` (3600); `--webhook-secret-file=PATH`
//! (the secret that signs webhooks; never on the command line);
//! `--request-timeout-seconds=S` (the spool's per-attempt deadline, 60);
//! `--durability=fsync|process` (fsync: each commit fsynced before its
//! 201s; process: written to the WAL, safe from a crash of the process).

use std::path::PathBuf;
use std::time::Duration;

use layer_cake::async_requests::{self, AsyncOptions, Predict, Prediction};
use layer_cake::net::{Listening, NotListening};
use layer_cake::spool::{SpoolOptions, Workers};
use layer_cake::{Context, Faulted, Returned, Stop, on};
use layer_cake_demos as demo;

#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Args {
    server_address: layer_cake::HostPort,
    store: Option<PathBuf>,
    workers: usize,
    max_pending: usize,
    retention_seconds: u64,
    webhook_secret_file: Option<PathBuf>,
    request_timeout_seconds: u64,
    durability: async_requests::Durability,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: demo::ServerArgs::default().server_address,
            store: None,
            workers: 2,
            max_pending: 5000,
            retention_seconds: 3600,
            webhook_secret_file: None,
            request_timeout_seconds: 60,
            durability: async_requests::Durability::Fsync,
        }
    }
}

/// One predict worker: answers each [`Predict`] in turn.
async fn predict_worker(mut cx: Context) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            Predict as p => {
                if p.input.contains("\"wrong_type\"") {
                    // A misbehaving worker, for the tests: not a Prediction.
                    let _ = cx.reply(format!("not a prediction for {}", p.request_id));
                    continue;
                }
                let trace = cx.meta().and_then(|m| m.trace).map(|t| t.to_string()).unwrap_or_default();
                let answer = predict(&p, trace).await;
                match answer {
                    Ok(output) => { let _ = cx.reply(Prediction { output }); },
                    Err(fault) => { let _ = cx.reply(fault); },
                }
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("predict_worker ignores {}", other.signature()),
        })
    }
}

async fn predict(p: &Predict, trace: String) -> Result<String, Faulted> {
    let input: serde_json::Value = serde_json::from_str(&p.input).map_err(|e| {
        Faulted::new("bad input")
            .with_explanation(e.to_string())
            .with_error_code(422)
    })?;
    eprintln!(
        "predict_worker: {} attempt {} started (trace {trace})",
        p.request_id, p.attempt
    );
    let sleep_until = input.get("sleep_until_attempt").and_then(|v| v.as_u64());
    if let Some(ms) = input.get("sleep_ms").and_then(|v| v.as_u64())
        && sleep_until.is_none_or(|u| u64::from(p.attempt) < u)
    {
        tokio::time::sleep(Duration::from_millis(ms.min(600_000))).await;
    }
    if let Some(code) = input.get("fail_code").and_then(|v| v.as_i64()) {
        let until = input.get("fail_until_attempt").and_then(|v| v.as_u64());
        if until.is_none_or(|u| u64::from(p.attempt) < u) {
            eprintln!(
                "predict_worker: {} attempt {} fails with {code}",
                p.request_id, p.attempt
            );
            return Err(Faulted::new("the model failed")
                .with_explanation(format!("asked to fail with {code}"))
                .with_error_code(code as i32));
        }
    }
    eprintln!(
        "predict_worker: {} attempt {} finished",
        p.request_id, p.attempt
    );
    // When the work ended (µs since the epoch): the benchmark's webhook
    // receiver measures completion → webhook POST from it.
    let finished_at_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    Ok(
        serde_json::json!({"echo": input, "attempt": p.attempt, "finished_at_us": finished_at_us})
            .to_string(),
    )
}

async fn async_server(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let store = args
        .store
        .clone()
        .unwrap_or_else(|| layer_cake::process::model_path().join("async-requests.sqlite"));
    eprintln!(
        "async_server: store {} (WAL, synchronous=FULL)",
        store.display()
    );
    let spool = SpoolOptions::new()
        .request_timeout(Duration::from_secs(args.request_timeout_seconds.max(1)))
        .responsiveness(None)
        .size_of_queue(100_000);
    let mut options = AsyncOptions::new(store)
        .listen(args.server_address.clone())
        .service(
            "predict",
            Workers::local(args.workers.max(1), predict_worker),
            spool,
        )
        .environment("production", "predict")
        .environment("development", "predict")
        .max_pending(args.max_pending)
        .durability(args.durability)
        .retention(Duration::from_secs(args.retention_seconds));
    if let Some(path) = &args.webhook_secret_file {
        let secret = std::fs::read(path).map_err(|e| {
            Faulted::new("cannot read --webhook-secret-file")
                .with_explanation(format!("{}: {e}", path.display()))
        })?;
        let secret = secret.strip_suffix(b"\n").unwrap_or(&secret).to_vec();
        options = options.webhook_secret(secret);
    }
    cx.spawn(move |cx| async_requests::serve(cx, options));
    loop {
        on!(cx.input().await, {
            Listening as l => demo::announce("async_server", &l),
            NotListening as n => return Err(n.into_fault()),
            Returned as r => {
                return Err(r.into_result::<()>().err().unwrap_or_else(|| Faulted::new("the async service ended")));
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("async_server ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(async_server)
}
