//! **prime_server** — the prime-number pipeline of kevinkreiser/prime_server
//! (issue 13): an HTTP front, a parse stage and a compute stage, each stage
//! a spool with its own workers.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin prime_server -- --workers=1 &
//! prime_server: listening on 127.0.0.1:8002
//! $ curl -s 'http://127.0.0.1:8002/is_prime?possible_prime=32416190071'
//! 32416190071
//! $ curl -s -d 32416190073 http://127.0.0.1:8002/is_prime
//! 18446744073709551615
//! $ curl -s 'http://127.0.0.1:8002/is_prime?possible_prime=seven'
//! GET requests should look like: 'is_prime?possible_prime=SOME_NUMBER'
//! $ curl -s http://127.0.0.1:8002/health_check
//! OK
//! ```
//!
//! Flags:
//!
//! - `--workers=N`: run N parse and N compute workers inside this process
//!   (stages and workers listed at PROCESS scope). With 0 (the default) the
//!   workers are separate processes — `prime_parse` and `prime_compute`,
//!   as many of each as you like — found through the directory at `--scope`
//!   (HOST by default; `--connect-to-directory=HOST:PORT` names another
//!   directory).
//! - `--server-address` (default 127.0.0.1:8002): where to listen.
//! - `--health-check=PATH` (default `/health_check`): answered `200 OK` by
//!   the front itself, never queued.
//! - `--worker-capacity=N` (default 2): requests a stage's spool hands one
//!   worker at once. With 2, a worker's next request is already in its
//!   mailbox when it answers one, so it does not sit idle while its answer
//!   travels back to the spool and the next request comes out; it answers
//!   them in turn.
//! - `--range=LO,HI`: batch mode. Instead of listening, send every odd
//!   number between LO and HI through the same stages and print how many
//!   are prime: `--range=100000000000000,100000000008000` tests 4000
//!   numbers and prints `238 primes found`.

use std::time::Duration;

use layer_cake::directory::Scope;
use layer_cake::net::{
    HttpRequest, HttpResponse, HttpServer, ListenOptions, Listening, NotListening,
};
use layer_cake::runtime::{Meta, TraceContext};
use layer_cake::spool::SpoolOptions;
use layer_cake::{Address, Context, Faulted, HostPort, Returned, Stop, on};
use layer_cake_demos::prime::{self, COMPUTE, NOT_PRIME, PARSE};

/// The flags (see the module's documentation).
#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Args {
    server_address: HostPort,
    workers: usize,
    scope: Scope,
    health_check: String,
    range: Option<String>,
    worker_capacity: u32,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: HostPort::new("127.0.0.1", 8002),
            workers: 0,
            scope: Scope::Host,
            health_check: "/health_check".into(),
            range: None,
            worker_capacity: 2,
        }
    }
}

/// Requests a batch keeps in the pipeline at once.
const WINDOW: usize = 256;
/// How long a batch waits for the pipeline to be ready, and for any answer.
const PATIENCE: Duration = Duration::from_secs(60);

async fn prime_server(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let scope = if args.workers > 0 {
        Scope::Process
    } else {
        args.scope
    };
    let options = |name: &str| {
        SpoolOptions::new()
            .name(name)
            .worker_capacity(args.worker_capacity)
    };
    let parse = cx.spawn_stage(PARSE, scope, options("parse"))?;
    let compute = cx.spawn_stage(COMPUTE, scope, options("compute"))?;
    for _ in 0..args.workers {
        cx.spawn(move |cx| prime::parse_worker(cx, scope, "prime_server"));
        cx.spawn(move |cx| prime::compute_worker(cx, scope, "prime_server"));
    }
    if let Some(range) = &args.range {
        return batch(&parse, range).await;
    }
    let front = HttpServer::new()
        .accept::<HttpRequest>()
        .health_check(args.health_check, "OK");
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        on!(cx.input().await, {
            Listening as l => layer_cake_demos::announce("prime_server", &l),
            NotListening as n => return Err(n.into_fault()),
            HttpRequest as request => {
                if let Err(e) = cx.forward(request, &parse) {
                    let _ = cx.reply(Faulted::out_of_service(format!("the parse stage is gone: {e}")));
                }
            },
            Returned as r => {
                let stage = if cx.return_address() == &compute { COMPUTE } else { PARSE };
                let why = r.into_result::<()>().err().unwrap_or_else(|| Faulted::new("it returned"));
                return Err(Faulted::new(format!("the stage {stage} ended")).with_explanation(why.to_string()));
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("prime_server ignores {}", other.signature()),
        })
    }
}

/// `GET /is_prime?possible_prime=n`, sent to the parse stage from `cx` with
/// `cx` as the ingress: every answer, from whichever stage, comes to `cx`.
fn send(cx: &mut Context, parse: &Address, n: u64) -> Result<(), Faulted> {
    cx.set_meta(Meta {
        trace: Some(TraceContext::new_root()),
        ingress: Some(cx.address().clone()),
        ..Meta::default()
    });
    let request = HttpRequest {
        method: "GET".into(),
        target: format!("/is_prime?possible_prime={n}"),
        headers: Vec::new(),
        content_type: None,
        body: Vec::new(),
    };
    cx.send(request, parse)
        .map_err(|e| Faulted::new("cannot reach the parse stage").with_explanation(e.to_string()))
}

/// Waits until a number goes through both stages (every worker publishes
/// and is found through the directory first).
async fn ready(parse: &Address) -> Result<(), Faulted> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // A fresh context for each try: a late answer to an earlier one
        // goes with it.
        let mut probe = Context::detached("probe");
        send(&mut probe, parse, 3)?;
        let answer = tokio::time::timeout(Duration::from_secs(5), probe.input()).await;
        if let Ok(answer) = answer
            && answer
                .downcast_ref::<HttpResponse>()
                .is_some_and(|r| r.status == 200)
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Faulted::timed_out("the pipeline was not ready in time"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Batch mode: every odd number strictly between the bounds of `range`
/// (`LO,HI`) through the stages, at most [`WINDOW`] at a time; prints how
/// many are prime.
async fn batch(parse: &Address, range: &str) -> Result<(), Faulted> {
    let bad = || {
        Faulted::new(format!("--range={range}"))
            .with_explanation("expected LO,HI (two unsigned numbers)")
    };
    let (lo, hi) = range.split_once(',').ok_or_else(bad)?;
    let lo: u64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u64 = hi.trim().parse().map_err(|_| bad())?;
    let mut numbers = (lo.saturating_add(1)..hi).filter(|n| n % 2 == 1);
    ready(parse).await?;
    let mut cx = Context::detached("batch");
    let (mut outstanding, mut found, mut failed) = (0_usize, 0_usize, 0_usize);
    loop {
        while outstanding < WINDOW {
            let Some(n) = numbers.next() else { break };
            send(&mut cx, parse, n)?;
            outstanding += 1;
        }
        if outstanding == 0 {
            break;
        }
        let answer = tokio::time::timeout(PATIENCE, cx.input())
            .await
            .map_err(|_| Faulted::timed_out(format!("{outstanding} numbers not answered")))?;
        outstanding -= 1;
        match answer.downcast::<HttpResponse>() {
            Ok(r) if r.status == 200 => {
                if r.body != NOT_PRIME.to_string().as_bytes() {
                    found += 1;
                }
            }
            Ok(r) => {
                failed += 1;
                eprintln!(
                    "prime_server: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
            }
            Err(other) => {
                failed += 1;
                eprintln!("prime_server: {other:?}");
            }
        }
    }
    println!("{found} primes found");
    if failed > 0 {
        return Err(Faulted::new(format!(
            "{failed} numbers were not answered with a result"
        )));
    }
    Ok(())
}

fn main() {
    layer_cake::create(prime_server)
}
