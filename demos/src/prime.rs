//! The prime-number pipeline (issue 13), after kevinkreiser/prime_server's
//! `prime_serverd`: an HTTP front, a **parse** stage and a **compute**
//! stage, each a spool with its own workers.
//!
//! - The parse stage takes the request whole ([`HttpRequest`]): `GET
//!   /is_prime?possible_prime=N` (exactly one value) or `POST` with the
//!   body `N`. It passes the number on to the compute stage, or answers a
//!   bad request 400 itself — through its spool, straight back to the
//!   requester, so the compute stage never sees it.
//! - The compute stage divides by every integer from 2 up to √N, as the
//!   original does, and answers `200` with the body `N` when N is prime and
//!   [`NOT_PRIME`] (`18446744073709551615`) when it is not. Its answer goes
//!   to the request's ingress, the HTTP session.
//!
//! The workers are the same actor functions whether they run as separate
//! processes (`prime_parse`, `prime_compute`, found through the directory)
//! or inside the server (`prime_server --workers=N`).

use layer_cake::directory::{Available, Dropped, NotPublished, NotSubscribed, Published, Scope};
use layer_cake::net::{HttpRequest, HttpResponse};
use layer_cake::spool::NextStage;
use layer_cake::{Context, Faulted, Message, Stop, on};
use serde::{Deserialize, Serialize};

/// The parse stage's name; its workers publish `prime:parse:<uuid>`.
pub const PARSE: &str = "prime:parse";
/// The compute stage's name; its workers publish `prime:compute:<uuid>`.
pub const COMPUTE: &str = "prime:compute";

/// The body answered for a number that is not prime: `u64::MAX`, as the
/// original's `size_t(-1)`.
pub const NOT_PRIME: u64 = u64::MAX;

/// What the parse stage passes to the compute stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Message)]
pub struct PossiblePrime {
    /// The number to test.
    pub n: u64,
}

/// The 400 body for a bad GET.
pub const GET_USAGE: &str = "GET requests should look like: 'is_prime?possible_prime=SOME_NUMBER'";
/// The 400 body for a bad POST.
pub const POST_USAGE: &str =
    "POST requests should have a path of 'is_prime' and a body with 'SOME_NUMBER'";
/// The 400 body for another method.
pub const METHOD_USAGE: &str = "Only GET and POST requests supported";

/// Whether `n` is prime, by trial division with every integer from 2 up to
/// √n — the original's deliberately plain work: about 180 000 divisions for
/// 32416190071. 0 and 1 are not prime.
///
/// ```
/// use layer_cake_demos::prime::is_prime;
/// assert!(is_prime(2) && is_prime(3) && is_prime(32416190071));
/// assert!(!is_prime(0) && !is_prime(1) && !is_prime(4) && !is_prime(32416190073));
/// ```
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut divisor = 2;
    while divisor <= n / divisor {
        if n.is_multiple_of(divisor) {
            return false;
        }
        divisor += 1;
    }
    true
}

/// The number a request asks about, or the 400 body saying what is wrong.
///
/// ```
/// use layer_cake::net::HttpRequest;
/// use layer_cake_demos::prime::{GET_USAGE, parse};
///
/// let get = |target: &str| HttpRequest { method: "GET".into(), target: target.into(), headers: vec![], content_type: None, body: vec![] };
/// assert_eq!(parse(&get("/is_prime?possible_prime=7")), Ok(7));
/// assert_eq!(parse(&get("/is_prime?possible_prime=7&possible_prime=9")), Err(GET_USAGE));
/// assert_eq!(parse(&get("/is_prime?possible_prime=seven")), Err(GET_USAGE));
/// assert_eq!(parse(&get("/is_not_prime?possible_prime=7")), Err(GET_USAGE));
/// ```
pub fn parse(request: &HttpRequest) -> Result<u64, &'static str> {
    match request.method.as_str() {
        "GET" => {
            if request.path() != "/is_prime" {
                return Err(GET_USAGE);
            }
            let fields = request.query().map_err(|_| GET_USAGE)?;
            let mut values = fields.iter().filter(|(name, _)| name == "possible_prime");
            match (values.next(), values.next()) {
                (Some((_, Some(value))), None) => value.trim().parse().map_err(|_| GET_USAGE),
                _ => Err(GET_USAGE),
            }
        }
        // As in the original, the path of a POST is not checked.
        "POST" => std::str::from_utf8(&request.body)
            .ok()
            .and_then(|body| body.trim().parse().ok())
            .ok_or(POST_USAGE),
        _ => Err(METHOD_USAGE),
    }
}

/// The compute stage's answer for `n`: `200`, body `n` or [`NOT_PRIME`].
pub fn answer(n: u64, prime: bool) -> HttpResponse {
    HttpResponse::text(200, if prime { n } else { NOT_PRIME }.to_string())
}

/// Publishes this worker as one of `stage`'s at `scope`.
fn join(cx: &mut Context, stage: &str, scope: Scope) {
    cx.publish(format!("{stage}:{}", uuid::Uuid::new_v4()), scope);
}

/// A worker's fault when the directory refuses it.
fn refused(who: &str, what: String, why: String) -> Faulted {
    Faulted::new(format!("{who}: cannot {what}")).with_explanation(why)
}

/// A parse worker: publishes itself as one of [`PARSE`]'s workers, finds
/// the [`COMPUTE`] stage, and passes it each good request's number;
/// answers a bad request `400` at once. `who` names it in its stderr lines.
pub async fn parse_worker(mut cx: Context, scope: Scope, who: &'static str) -> Result<(), Faulted> {
    join(&mut cx, PARSE, scope);
    let mut next = NextStage::find(&mut cx, COMPUTE, scope);
    loop {
        on!(cx.input().await, {
            HttpRequest as request => match parse(&request) {
                Ok(n) => { let _ = next.pass(&cx, PossiblePrime { n }); },
                Err(usage) => { let _ = cx.reply(HttpResponse::text(400, usage)); },
            },
            Available as a => {
                if next.available(&a) {
                    eprintln!("{who}: next stage {} available", a.name);
                }
            },
            Dropped as d => { next.dropped(&d); },
            Published as p => eprintln!("{who}: published {}", p.name),
            NotPublished as n => return Err(refused(who, format!("publish {}", n.name), n.reason)),
            NotSubscribed as n => return Err(refused(who, format!("find {}", n.pattern), n.reason)),
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// A compute worker: publishes itself as one of [`COMPUTE`]'s workers and
/// answers each [`PossiblePrime`]. With `--debug-level=CONSOLE` it logs
/// `testing N` for each number.
///
/// The division (about 0.75 ms for the benchmark's number) runs inline, on
/// the worker's own thread: handing each one to tokio's blocking pool
/// (`spawn_blocking`) and waking the worker again cost the pipeline 28 % of
/// its throughput with two workers (`docs/performance.md`, "Prime server").
/// Work that runs much longer, or must heed a cancellation while it runs,
/// belongs on the blocking pool (`docs/http.md`, "Cancellation").
pub async fn compute_worker(
    mut cx: Context,
    scope: Scope,
    who: &'static str,
) -> Result<(), Faulted> {
    join(&mut cx, COMPUTE, scope);
    loop {
        on!(cx.input().await, {
            PossiblePrime as p => {
                let n = p.n;
                tracing::info!("testing {n}");
                let _ = cx.reply(answer(n, is_prime(n)));
            },
            Published as p => eprintln!("{who}: published {}", p.name),
            NotPublished as n => return Err(refused(who, format!("publish {}", n.name), n.reason)),
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// A worker process's flags: the scope to publish at (`--scope=LAN` for a
/// front on another host; HOST by default).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WorkerArgs {
    /// Where the worker is listed.
    pub scope: Scope,
}
