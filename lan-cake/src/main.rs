//! **lan-cake** — the LAN directory: one per LAN, on a host of its own.
//!
//! The host directories of the LAN connect here with their LAN listings; it
//! matches them and rewrites each publication's address to the one its host
//! is seen at, so subscribers on other hosts can reach it. It has no parent.
//! Run it on a host with no application processes: addresses of processes
//! on its own host would be seen as 127.0.0.1.
//!
//! ```text
//! lan-cake [--directory-at-lan=0.0.0.0:54195] [--lan-key=PATH] [--allow-group=NAME]
//!           [--debug-level=CONSOLE]
//! ```
//!
//! Every host directory on another host must prove it holds the LAN key
//! (`--lan-key`, else `LAYER_CAKE_LAN_KEY`, else the default place) before
//! lan-cake reads anything from it; the link is then encrypted. A peer
//! without the key is refused and logged (once per address per minute).
//!
//! Processes of its own host (over loopback TCP or the abstract Unix socket
//! beside it) are admitted only when they run as its user, as root, or in
//! the group `--allow-group` names.
//!
//! It prints `lan-cake: listening on <address>` on stderr and runs until
//! SIGINT or SIGTERM, then exits 0.

use layer_cake::directory::{NodeOptions, Scope, lan, run_daemon};
use layer_cake::net::{HostPort, LanKey, LinkOptions};
use layer_cake::{Context, Faulted};
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

async fn lan_cake(cx: Context, args: Args) -> Result<(), Faulted> {
    let link = LinkOptions {
        lan_key: lan_key()?,
        ..LinkOptions::default()
    }
    // `--allow-group` is a standard flag of every process.
    .allow_group(
        layer_cake::process::config()
            .allowed_group()
            .map_err(|e| Faulted::new(e.to_string()).with_exit_status(2))?,
    );
    let options = NodeOptions::new(Scope::Lan)
        .accept_at(args.directory_at_lan)
        .link(link);
    run_daemon(cx, "lan-cake", options).await
}

/// The LAN key from `--lan-key`, `LAYER_CAKE_LAN_KEY` or the default place.
/// A key file that cannot be used stops the daemon with the reason; no key
/// at all is said once on stderr (host directories on other hosts will be refused).
fn lan_key() -> Result<Option<LanKey>, Faulted> {
    let flag = layer_cake::process::config().lan_key.clone();
    match LanKey::find(flag.as_deref()) {
        Ok(Some(key)) => Ok(Some(key)),
        Ok(None) => {
            let place = LanKey::locate(None)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| e.to_string());
            eprintln!(
                "lan-cake: no LAN key at {place}: host directories on other hosts will be refused; create one with `layer-cake lan-key create`"
            );
            Ok(None)
        }
        Err(e) => Err(Faulted::new(e.to_string())),
    }
}

fn main() {
    layer_cake::create(lan_cake)
}
