//! **lan-cake** — the LAN directory: one per LAN, on a host of its own.
//!
//! The host directories of the LAN connect here with their LAN listings; it
//! matches them and rewrites each publication's address to the one its host
//! is seen at, so subscribers on other hosts can reach it. It has no parent.
//! Run it on a host with no application processes: addresses of processes
//! on its own host would be seen as 127.0.0.1.
//!
//! ```text
//! lan-cake [--directory-at-lan=0.0.0.0:54195] [--debug-level=CONSOLE]
//! ```
//!
//! It prints `lan-cake: listening on <address>` on stderr and runs until
//! SIGINT or SIGTERM, then exits 0.

use layer_cake::directory::{NodeOptions, Scope, lan, run_node};
use layer_cake::net::{HostPort, Listening, NotListening};
use layer_cake::{Context, Faulted, Stop, on};
use serde::Deserialize;

/// The flags.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    /// Where to accept the LAN's host directories.
    directory_at_lan: HostPort,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            directory_at_lan: lan::lan_listen_default(),
        }
    }
}

async fn lan_cake(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let options = NodeOptions::new(Scope::Lan).accept_at(args.directory_at_lan);
    let me = cx.address().clone();
    let node = cx.spawn(move |node_cx| run_node(node_cx, options, me));
    loop {
        on!(cx.input().await, {
            Listening as l => eprintln!("lan-cake: listening on {}", l.listening),
            NotListening as n => {
                let _ = cx.send(Stop, &node);
                return Err(n.into_fault());
            },
            Stop as _ => {
                let _ = cx.stop(&node, std::time::Duration::from_secs(5)).await;
                return Ok(());
            },
            _other => {},
        })
    }
}

fn main() {
    layer_cake::create(lan_cake)
}
