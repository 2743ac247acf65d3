//! **group-cake** — the GROUP directory of a composite process.
//!
//! The roles of one composite process connect here (`--connect-to-directory`
//! is set for them); GROUP listings are matched here and never leave, and
//! HOST or LAN listings go up to host-cake (`--directory-at-host`, by default
//! 127.0.0.1:54195) or, instead, straight to a LAN directory
//! (`--directory-at-lan`). Supervising the roles comes with the CLI.
//!
//! ```text
//! group-cake [--accept-directories-at=127.0.0.1:0] [--directory-at-host=HOST:PORT]
//!            [--directory-at-lan=HOST:PORT] [--debug-level=CONSOLE]
//! ```
//!
//! It prints `group-cake: listening on <address>` on stderr and runs until
//! SIGINT or SIGTERM, then exits 0.

use layer_cake::directory::{NodeOptions, Scope, lan, run_node};
use layer_cake::net::{HostPort, Listening, NotListening};
use layer_cake::{Context, Faulted, Stop, on};
use serde::Deserialize;

/// The flags.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    /// Where the roles connect (an ephemeral port by default).
    accept_directories_at: HostPort,
    /// The host directory to pass HOST and LAN listings to.
    directory_at_host: Option<HostPort>,
    /// A LAN directory to use instead of the host's.
    directory_at_lan: Option<HostPort>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            accept_directories_at: HostPort::new("127.0.0.1", 0),
            directory_at_host: None,
            directory_at_lan: None,
        }
    }
}

async fn group_cake(mut cx: Context, args: Args) -> Result<(), Faulted> {
    if args.directory_at_host.is_some() && args.directory_at_lan.is_some() {
        return Err(
            Faulted::new("give --directory-at-host or --directory-at-lan, not both")
                .with_exit_status(2),
        );
    }
    let parent = args
        .directory_at_lan
        .or(args.directory_at_host)
        .unwrap_or_else(lan::directory_at_host);
    let options = NodeOptions::new(Scope::Group)
        .accept_at(args.accept_directories_at)
        .parent(parent);
    let me = cx.address().clone();
    let node = cx.spawn(move |node_cx| run_node(node_cx, options, me));
    loop {
        on!(cx.input().await, {
            Listening as l => eprintln!("group-cake: listening on {}", l.listening),
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
    layer_cake::create(group_cake)
}
