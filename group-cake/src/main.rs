//! **group-cake** — a composite process: the GROUP directory, and the
//! supervisor of a home's roles.
//!
//! With `--home-path` (as `layer-cake run` and `layer-cake start` start it),
//! it runs the home's roles — those matching `--roles` (a JSON list of
//! patterns; all by default) — each as a child process connected to its
//! GROUP directory, and supervises them: restarts by `--retry`, ends with
//! `--main-role`'s value when that role ends, records every start, stop and
//! return value in the home (`layer_cake::home::run_group`).
//!
//! Without a home it is the GROUP directory alone, for processes pointed at
//! it by hand.
//!
//! GROUP listings are matched in the group and never leave; HOST and LAN
//! listings go up to host-cake (`--directory-at-host`, by default
//! 127.0.0.1:54195) or, instead, straight to a LAN directory
//! (`--directory-at-lan`).
//!
//! ```text
//! group-cake [--home-path=PATH --role-name=group] [--roles='["server","worker"]']
//!            [--retry='{"regular_steps": 30.0}'] [--main-role=ROLE]
//!            [--accept-directories-at=127.0.0.1:0] [--directory-at-host=HOST:PORT]
//!            [--directory-at-lan=HOST:PORT] [--allow-group=NAME] [--debug-level=CONSOLE]
//! ```
//!
//! Its directory admits local processes of its own user, root, and the
//! group `--allow-group` names (see "Same-host links" in
//! `docs/wire-protocol.md`).
//!
//! It prints `group-cake: listening on <address>` on stderr. SIGINT or
//! SIGTERM stops every role and then the group.

use layer_cake::directory::{NodeOptions, Scope, lan, run_daemon};
use layer_cake::home::{GroupOptions, run_group};
use layer_cake::net::HostPort;
use layer_cake::runtime::AnyReturn;
use layer_cake::{Context, Faulted, Payload};

async fn group_cake(cx: Context, options: GroupOptions) -> AnyReturn {
    AnyReturn(run(cx, options).await)
}

async fn run(cx: Context, options: GroupOptions) -> Result<Payload, Faulted> {
    if options.directory_at_host.is_some() && options.directory_at_lan.is_some() {
        return Err(
            Faulted::new("give --directory-at-host or --directory-at-lan, not both")
                .with_exit_status(2),
        );
    }
    // `--home-path` is a standard flag, read from the process's
    // configuration.
    let config = layer_cake::process::config();
    if let Some(home) = config.home_path.clone() {
        return run_group(cx, home, options).await;
    }
    if options.retry.is_some() || options.main_role.is_some() || !options.roles.is_empty() {
        return Err(
            Faulted::new("--roles, --retry and --main-role need --home-path").with_exit_status(2),
        );
    }
    let link = layer_cake::home::group_link()?;
    let parent = options
        .directory_at_lan
        .or(options.directory_at_host)
        .unwrap_or_else(lan::directory_at_host);
    let accept_at = options
        .accept_directories_at
        .clone()
        .unwrap_or_else(|| HostPort::new("127.0.0.1", 0));
    let node = NodeOptions::new(Scope::Group)
        .accept_at(accept_at)
        .parent(parent)
        .link(link);
    run_daemon(cx, "group-cake", node).await.map(Payload::new)
}

fn main() {
    layer_cake::create(group_cake)
}
