//! **layer-cake** — the command line.
//!
//! ```text
//! layer-cake network [--directory-at=127.0.0.1:54195] [--list-published] [--list-subscribed]
//!                    [--list-connected] [--directory-addresses] [--full-identity]
//! layer-cake ping <ID-PREFIX> [--ping-count=4] [--directory-at=127.0.0.1:54195]
//! ```
//!
//! `network` prints the live directory tree below a directory node
//! (host-cake unless `--directory-at` names another); `ping` times round
//! trips to the node of that tree whose id starts with a prefix. A failure
//! is one line on stderr and exit status 1; a bad command line is clap's
//! message and status 2. See `docs/cli.md`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use layer_cake::Context;
use layer_cake::directory::lan;
use layer_cake::net::HostPort;
use layer_cake_cli::network::{self, DEFAULT_DEADLINE, Show};
use layer_cake_cli::ping;

/// Inspect and ping a running layer-cake directory tree.
#[derive(Debug, Parser)]
#[command(name = "layer-cake", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the live directory tree: one line per node, children indented.
    Network(NetworkArgs),
    /// Time round trips to one directory node, found by a prefix of its id.
    Ping(PingArgs),
}

/// Where the walk starts, and how patient it is.
#[derive(Debug, Args)]
struct Directory {
    /// The directory node to start from (host-cake by default).
    #[arg(long, value_name = "HOST:PORT", default_value_t = lan::directory_at_host())]
    directory_at: HostPort,
    /// Seconds each node gets to answer before it is shown as "(no answer)".
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_DEADLINE.as_secs_f64())]
    answer_within: f64,
}

#[derive(Debug, Args)]
struct NetworkArgs {
    #[command(flatten)]
    directory: Directory,
    /// Show the publications each node holds.
    #[arg(long)]
    list_published: bool,
    /// Show the subscriptions each node holds.
    #[arg(long)]
    list_subscribed: bool,
    /// Show the open sessions of each node's subscribers.
    #[arg(long)]
    list_connected: bool,
    /// Show where each node connects to (<C>) and accepts at (<L>).
    #[arg(long)]
    directory_addresses: bool,
    /// Print whole uuids instead of their first 8 hex digits.
    #[arg(long)]
    full_identity: bool,
}

#[derive(Debug, Args)]
struct PingArgs {
    /// The start of the node's id, as `layer-cake network` shows it.
    id_prefix: String,
    /// How many round trips, one a second.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    ping_count: u32,
    #[command(flatten)]
    directory: Directory,
}

impl Directory {
    fn deadline(&self) -> Result<Duration, String> {
        Duration::try_from_secs_f64(self.answer_within)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!(
                    "--answer-within={} is not a positive number of seconds",
                    self.answer_within
                )
            })
    }

    /// Connects and walks the whole tree.
    async fn walk(&self, cx: &mut Context) -> Result<network::NodeView, String> {
        let deadline = self.deadline()?;
        let root = network::connect(cx, &self.directory_at, deadline).await?;
        let tree = network::walk(cx, root, deadline).await;
        if tree.listing.is_none() {
            return Err(format!(
                "the directory at {} did not answer",
                self.directory_at
            ));
        }
        Ok(tree)
    }
}

async fn network_command(args: NetworkArgs) -> Result<(), String> {
    let mut cx = Context::detached("layer-cake network");
    let tree = args.directory.walk(&mut cx).await?;
    let show = Show {
        published: args.list_published,
        subscribed: args.list_subscribed,
        connected: args.list_connected,
        addresses: args.directory_addresses,
        full_identity: args.full_identity,
    };
    print!("{}", network::render(&tree, &show));
    Ok(())
}

async fn ping_command(args: PingArgs) -> Result<(), String> {
    let mut cx = Context::detached("layer-cake ping");
    let tree = args.directory.walk(&mut cx).await?;
    let found = ping::find(&tree, &args.id_prefix)?;
    let node = match found.as_slice() {
        [(_, node)] => node.clone(),
        [] => {
            return Err(format!(
                "no directory node has an id starting {:?}",
                args.id_prefix
            ));
        }
        many => {
            let ids: Vec<String> = many.iter().map(|(id, _)| id.to_string()).collect();
            return Err(format!(
                "{:?} starts more than one node id: {}",
                args.id_prefix,
                ids.join(", ")
            ));
        }
    };
    let mut out = std::io::stdout();
    let answered = ping::ping(&mut cx, &node, args.ping_count, &mut out)
        .await
        .map_err(|e| format!("cannot write: {e}"))?;
    if answered == 0 {
        return Err("no answer to any ping".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("layer-cake: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Network(args) => network_command(args).await,
            Command::Ping(args) => ping_command(args).await,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layer-cake: {e}");
            ExitCode::FAILURE
        }
    }
}
