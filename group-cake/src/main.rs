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

use layer_cake::directory::{NodeOptions, Scope, lan, run_daemon};
use layer_cake::net::HostPort;
use layer_cake::{Context, Faulted};
use serde::Deserialize;

/// The flags.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    /// The host directory to pass HOST and LAN listings to.
    directory_at_host: Option<HostPort>,
    /// A LAN directory to use instead of the host's.
    directory_at_lan: Option<HostPort>,
}

async fn group_cake(cx: Context, args: Args) -> Result<(), Faulted> {
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
    // `--accept-directories-at` is a standard flag (every process may
    // accept child directories), so it is read from the process's
    // configuration rather than from this program's own arguments.
    let accept_at = layer_cake::process::config()
        .accept_directories_at
        .clone()
        .unwrap_or_else(|| HostPort::new("127.0.0.1", 0));
    let options = NodeOptions::new(Scope::Group)
        .accept_at(accept_at)
        .parent(parent);
    run_daemon(cx, "group-cake", options).await
}

fn main() {
    layer_cake::create(group_cake)
}
