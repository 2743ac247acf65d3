//! **host-cake** — the HOST directory: one per host, started at boot.
//!
//! Every process and composite process on the host that lists something at
//! HOST scope or wider connects here (127.0.0.1:54195 unless told
//! otherwise). It matches what it holds and passes LAN listings up to the
//! LAN directory: the one at `--directory-at-lan`, or the standard LAN
//! address (the private range's base with station .195, port 54195) unless
//! `--no-lan-autoconnect` or `LAYER_CAKE_LAN_AUTOCONNECT=off` says not to.
//!
//! ```text
//! host-cake [--directory-at-host=127.0.0.1:54195] [--directory-at-lan=HOST:PORT]
//!           [--no-lan-autoconnect] [--lan-key=PATH] [--allow-group=NAME]
//!           [--debug-level=CONSOLE]
//! ```
//!
//! The link to the LAN directory leaves the host: it is encrypted and
//! authenticated with the LAN key (`--lan-key`, else `LAYER_CAKE_LAN_KEY`,
//! else the default place; `layer-cake lan-key path` prints it). A key file
//! others can read stops host-cake with the reason.
//!
//! Local processes reach it over the abstract Unix socket beside its
//! loopback address (or over loopback TCP); either way only processes of
//! its own user, root, or the group `--allow-group` names are admitted
//! (see "Same-host links" in `docs/wire-protocol.md`).
//!
//! It prints `host-cake: listening on <address>` on stderr and runs until
//! SIGINT or SIGTERM, then exits 0.

use layer_cake::directory::{NodeOptions, Scope, lan, run_daemon};
use layer_cake::net::{HostPort, LanKey, LinkOptions};
use layer_cake::{Context, Faulted};
use serde::Deserialize;

/// The flags.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    /// Where to accept the host's processes and composites.
    directory_at_host: HostPort,
    /// The LAN directory to connect to.
    directory_at_lan: Option<HostPort>,
    /// Never connect to the standard LAN address by itself.
    no_lan_autoconnect: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            directory_at_host: lan::directory_at_host(),
            directory_at_lan: None,
            no_lan_autoconnect: false,
        }
    }
}

async fn host_cake(cx: Context, args: Args) -> Result<(), Faulted> {
    let parent = match args.directory_at_lan {
        Some(at) => Some(at),
        None if args.no_lan_autoconnect => None,
        None => lan::auto_lan_directory(),
    };
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
    let mut options = NodeOptions::new(Scope::Host)
        .accept_at(args.directory_at_host)
        .link(link);
    if let Some(parent) = parent {
        options = options.parent(parent);
    }
    run_daemon(cx, "host-cake", options).await
}

/// The LAN key from `--lan-key`, `LAYER_CAKE_LAN_KEY` or the default place.
/// A key file that cannot be used stops the daemon with the reason; no key
/// at all is said once on stderr (the link to the LAN directory will be refused).
fn lan_key() -> Result<Option<LanKey>, Faulted> {
    let flag = layer_cake::process::config().lan_key.clone();
    match LanKey::find(flag.as_deref()) {
        Ok(Some(key)) => Ok(Some(key)),
        Ok(None) => {
            let place = LanKey::locate(None)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| e.to_string());
            eprintln!(
                "host-cake: no LAN key at {place}: the link to the LAN directory will be refused; create one with `layer-cake lan-key create`"
            );
            Ok(None)
        }
        Err(e) => Err(Faulted::new(e.to_string())),
    }
}

fn main() {
    layer_cake::create(host_cake)
}
