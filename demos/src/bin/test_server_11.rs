//! **test_server_11** — the hardened server: a tuned spool, and a clean
//! shutdown when the listen is lost.
//!
//! Like `test_server_10` (a spool fed with the `test_worker_10`s the
//! directory finds), with the spool's load shedding on the command line:
//! `--size-of-queue` (default 64), `--responsiveness` in seconds (default 2)
//! and `--busy-pass-rate` (default 10). Under a load it cannot keep up with,
//! it answers `Overloaded` or `Busy` (503 with `Retry-After`) rather than
//! letting requests pile up.
//!
//! When its listen fails or is lost (`NotListening`), it shuts down in order:
//! it stops the spool and waits for it to return (every request the spool
//! still holds is answered `Aborted`), withdraws its subscription and waits
//! for `SubscribedCleared`, and only then ends — with the `NotListening` as
//! its fault.
//!
//! ```text
//! $ cargo run -p host-cake -- --no-lan-autoconnect &
//! $ cargo run -p layer-cake-demos --bin test_server_11 -- --size-of-queue=16 &
//! test_server_11: listening on 127.0.0.1:5050
//! $ cargo run -p layer-cake-demos --bin test_worker_10 &
//! $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
//! ```

use std::time::Duration;

use layer_cake::directory::{
    Available, Dropped, NotSubscribed, Scope, Subscribed, SubscribedCleared,
};
use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::spool::{SpoolOptions, Workers};
use layer_cake::{Address, Context, Faulted, Returned, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs, Xy};

/// Every worker-10's name.
const SERVICES: &str = "test-multihosting:worker-10:[-a-f0-9]+";

/// How long each step of the shutdown may take.
const STEP: Duration = Duration::from_secs(10);

layer_cake::register!(Vec<Vec<f64>>);

/// Where to listen, the scope to subscribe at and the spool's tuning.
#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Args {
    server_address: layer_cake::HostPort,
    scope: Scope,
    size_of_queue: usize,
    responsiveness: f64,
    busy_pass_rate: u32,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: ServerArgs::default().server_address,
            scope: Scope::Host,
            size_of_queue: 64,
            responsiveness: 2.0,
            busy_pass_rate: 10,
        }
    }
}

async fn test_server_11(mut cx: Context, args: Args) -> Result<(), Faulted> {
    if !(args.responsiveness > 0.0 && args.responsiveness.is_finite()) {
        return Err(Faulted::new("bad --responsiveness").with_explanation("seconds, more than 0"));
    }
    let options = SpoolOptions::new()
        .size_of_queue(args.size_of_queue)
        .responsiveness(Some(Duration::from_secs_f64(args.responsiveness)))
        .busy_pass_rate(args.busy_pass_rate);
    let spool = cx.spawn_spool(Workers::external(), options)?;
    cx.subscribe(SERVICES, args.scope);
    let front = HttpServer::new().accept::<Xy>();
    cx.listen(args.server_address, ListenOptions::http(front));
    let mut subscription = None;
    let mut workers = 0_usize;
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("test_server_11", &l),
            NotListening as n => {
                eprintln!("test_server_11: not listening ({}); shutting down", n.reason);
                shut_down(&mut cx, &spool, subscription).await;
                return Err(n.into_fault());
            },
            Subscribed as s => subscription = Some(s.id),
            NotSubscribed as n => {
                return Err(Faulted::new(format!("cannot subscribe to {}", n.pattern)).with_explanation(n.reason));
            },
            Available as a => {
                workers += 1;
                eprintln!("test_server_11: worker available {} ({workers} in all)", a.name);
                let _ = cx.send(a, &spool);
            },
            Dropped as d => {
                workers = workers.saturating_sub(1);
                eprintln!("test_server_11: worker dropped {} ({workers} left)", d.name);
                let _ = cx.send(d, &spool);
            },
            Xy as xy => {
                if let Err(e) = cx.forward(xy, &spool) {
                    let _ = cx.reply(Faulted::out_of_service(format!("the spool is gone: {e}")));
                }
            },
            Returned as r => return Err(r.into_result::<()>().err().unwrap_or_else(|| Faulted::new("the spool ended"))),
            Stop as _ => {
                shut_down(&mut cx, &spool, subscription).await;
                return Err(Faulted::aborted());
            },
            other => tracing::warn!("test_server_11 ignores {}", other.signature()),
        })
    }
}

/// Stops the spool and waits for it, then withdraws the subscription (once
/// it is made, if it is still being made) and waits for the directory to
/// confirm.
async fn shut_down(cx: &mut Context, spool: &Address, subscription: Option<uuid::Uuid>) {
    match cx.stop(spool, STEP).await {
        Ok(_) => eprintln!("test_server_11: spool stopped"),
        Err(fault) => eprintln!("test_server_11: the spool did not stop: {fault}"),
    }
    let deadline = tokio::time::Instant::now() + STEP;
    let mut subscription = subscription;
    if let Some(id) = subscription {
        cx.clear_subscribed(id);
    }
    loop {
        let message = tokio::select! {
            message = cx.input() => message,
            () = tokio::time::sleep_until(deadline) => {
                eprintln!("test_server_11: the subscription was not cleared in time");
                return;
            }
        };
        on!(message, {
            // The subscription was still being made: withdraw it now.
            Subscribed as s => {
                if subscription.is_none() {
                    subscription = Some(s.id);
                    cx.clear_subscribed(s.id);
                }
            },
            NotSubscribed as _ => return,
            SubscribedCleared as _ => {
                eprintln!("test_server_11: subscription cleared");
                return;
            },
            Xy as _ => { let _ = cx.reply(Faulted::out_of_service("the server is shutting down")); },
            _other => {},
        })
    }
}

fn main() {
    layer_cake::create(test_server_11)
}
