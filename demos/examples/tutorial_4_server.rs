//! The tutorial's step 4 (`docs/tutorial.md`): an HTTP front over a spool
//! fed by the directory: whatever workers publish a matching name join it,
//! however they were started.

use std::time::Duration;

use layer_cake::directory::{Available, Dropped, NotSubscribed, Scope, Subscribed};
use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::spool::{SpoolOptions, Workers};
use layer_cake::{Context, Faulted, HostPort, Returned, Stop, on};
use layer_cake_demos::tutorial::Greet;
use serde::Deserialize;

/// The program's arguments: where to listen.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    server_address: HostPort,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: HostPort::new("127.0.0.1", 5050),
        }
    }
}

async fn main_actor(mut cx: Context, args: Args) -> Result<(), Faulted> {
    // An empty spool: the directory fills it.
    let spool = cx.spawn_spool(Workers::external(), SpoolOptions::new())?;
    cx.subscribe(r"tutorial-greeter:\d+", Scope::Host);
    let front = HttpServer::new().accept::<Greet>();
    cx.listen(args.server_address, ListenOptions::http(front));
    let mut count = 0;
    loop {
        on!(cx.input().await, {
            Listening as l => eprintln!("tutorial_4_server: listening on {}", l.listening),
            NotListening as n => return Err(n.into_fault()),
            Subscribed as _ => {},
            NotSubscribed as n => {
                return Err(Faulted::new(format!("cannot subscribe to {}", n.pattern)).with_explanation(n.reason));
            },
            // A worker found (or lost): into (or out of) the spool.
            Available as a => {
                count += 1;
                eprintln!("tutorial_4_server: {} available ({count} in all)", a.name);
                let _ = cx.send(a, &spool);
            },
            Dropped as d => {
                count -= 1;
                eprintln!("tutorial_4_server: {} dropped ({count} left)", d.name);
                let _ = cx.send(d, &spool);
            },
            Greet as g => {
                if let Err(e) = cx.forward(g, &spool) {
                    let _ = cx.reply(Faulted::out_of_service(format!("the spool is gone: {e}")));
                }
            },
            Returned as _ => return Err(Faulted::new("the spool ended")),
            Stop as _ => {
                let _ = cx.stop(&spool, Duration::from_secs(5)).await;
                return Ok(());
            },
            other => tracing::warn!("ignored {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(main_actor)
}
