//! **lan-cake** — the LAN directory: one per LAN, on a host of its own.
//!
//! The host directories of the LAN connect here with their LAN listings; it
//! matches them and rewrites each publication's address to the one its host
//! is seen at, so subscribers on other hosts can reach it. It has no parent.
//! Run it on a host with no application processes: addresses of processes
//! on its own host would be seen as 127.0.0.1.
//!
//! ```text
//! lan-cake [--directory-at-lan=0.0.0.0:54195] [--allow-group=NAME] [--debug-level=CONSOLE]
//! ```
//!
//! Processes of its own host (over loopback TCP or the abstract Unix socket
//! beside it) are admitted only when they run as its user, as root, or in
//! the group `--allow-group` names.
//!
//! It prints `lan-cake: listening on <address>` on stderr and runs until
//! SIGINT or SIGTERM, then exits 0.

use layer_cake::directory::{NodeOptions, Scope, lan, run_daemon};
use layer_cake::net::{HostPort, LinkOptions};
use layer_cake::{Context, Faulted};
use serde::Deserialize;

/// The flags.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    /// Where to accept the LAN's host directories.
    directory_at_lan: HostPort,
    /// Also admit local processes of this group (besides this user and
    /// root).
    allow_group: Option<String>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            directory_at_lan: lan::lan_listen_default(),
            allow_group: None,
        }
    }
}

async fn lan_cake(cx: Context, args: Args) -> Result<(), Faulted> {
    let link = LinkOptions::default()
        .allow_group_named(args.allow_group.as_deref())
        .map_err(|e| Faulted::new(e.to_string()).with_exit_status(2))?;
    let options = NodeOptions::new(Scope::Lan)
        .accept_at(args.directory_at_lan)
        .link(link);
    run_daemon(cx, "lan-cake", options).await
}

fn main() {
    layer_cake::create(lan_cake)
}
