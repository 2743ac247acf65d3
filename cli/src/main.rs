//! **layer-cake** — the command line.
//!
//! ```text
//! layer-cake create [--directory-at-host=…] [--retry=JSON] [--main-role=ROLE]
//! layer-cake add EXECUTABLE [ROLE] [--role-count=N] [--name=value …]
//! layer-cake list | update | edit | delete | destroy | history | returned …
//! layer-cake run [ROLE-PATTERN …]          # foreground; Ctrl-C stops it all
//! layer-cake start | stop | status | log ROLE
//! layer-cake install-service host-cake|lan-cake|home
//! layer-cake network [--open-scope=…] [--list-routed …]  # the live directory tree
//! layer-cake ping <ID-PREFIX> [--open-scope=…]
//! layer-cake lan-key create [--path=P] [--force] | path
//! layer-cake resource EXECUTABLE [FOLDER …] | model ROLE [FOLDER …] | script
//! layer-cake image --output=FILE.tar.gz [--with-model]
//! layer-cake secret-key PATH | secret ROLE --name=FLAG --secret-key-file=PATH|- < value
//! ```
//!
//! The home commands are in [`layer_cake_cli::roles`] and
//! [`layer_cake_cli::run`], the boot units in [`layer_cake_cli::service`],
//! the tree in [`layer_cake_cli::network`] and [`layer_cake_cli::ping`]; this
//! file only reads the command line. A failure is one line on stderr and
//! exit status 1 (`run` exits with group-cake's status); a bad command line
//! is clap's message and status 2. See `docs/cli.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use layer_cake::Context;
use layer_cake::directory::{Scope, lan};
use layer_cake::home::{Home, Settings};
use layer_cake::net::HostPort;
use layer_cake_cli::network::{self, DEFAULT_DEADLINE, Show};
use layer_cake_cli::ping;
use layer_cake_cli::roles;
use layer_cake_cli::run;

/// Make and run homes of roles (composite processes), and look at the
/// running directory tree.
#[derive(Debug, Parser)]
#[command(name = "layer-cake", version, about)]
struct Cli {
    /// The home folder.
    #[arg(long, global = true, value_name = "PATH", default_value = layer_cake::home::DEFAULT_HOME)]
    home_path: PathBuf,
    /// Log what the command does on stderr, at this level and above (FAULT,
    /// WARNING, CONSOLE, OBJECT, TRACE, DEBUG). Given before the command:
    /// after it, `--debug-level` is a setting (`create`, `add`, `update`),
    /// a daemon's flag (`install-service`), or `run`'s and `start`'s own.
    #[arg(long, value_name = "LEVEL")]
    debug_level: Option<layer_cake::log::DebugLevel>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a home, with the group's settings (--directory-at-host=HOST:PORT,
    /// --directory-at-lan=HOST:PORT, --retry=JSON, --main-role=ROLE).
    Create(SettingsArgs),
    /// Add roles: EXECUTABLE [ROLE] [--role-count=N] [--role-start=K] [--name=value …].
    Add(AddArgs),
    /// List the roles (matching the patterns, if any).
    List(ListArgs),
    /// Change settings of the roles matching the patterns: PATTERN… --name=value….
    Update(SettingsArgs),
    /// Edit a role's settings in $EDITOR.
    Edit(RoleArgs),
    /// Remove the roles matching the patterns.
    Delete(DeleteArgs),
    /// Remove the whole home.
    Destroy,
    /// A role's runs: when each started, how long it ran, what it returned.
    History(HistoryArgs),
    /// The value a role's run returned.
    Returned(ReturnedArgs),
    /// Run the roles (matching the patterns, if any) in the foreground under
    /// group-cake; Ctrl-C stops them all.
    Run(RunCommand),
    /// The same in the background, logging to the group's logs/ folder.
    Start(RunCommand),
    /// Stop what `start` (or `run`) is running.
    Stop,
    /// Recycle running roles one at a time (SIGUSR1: each retires — answers
    /// what it holds — and group-cake starts a fresh one) while the others
    /// keep serving.
    Restart(RestartArgs),
    /// The running roles.
    Status(ListArgs),
    /// The last lines a role logged while running under `start`.
    Log(LogArgs),
    /// Write a systemd unit that starts host-cake, lan-cake or this home at
    /// boot, and say how to enable it.
    InstallService(ServiceArgs),
    /// Print the live directory tree: one line per node, children indented.
    Network(NetworkArgs),
    /// Time round trips to one directory node, found by a prefix of its id.
    Ping(PingArgs),
    /// The LAN key that encrypts and authenticates links between hosts.
    #[command(subcommand)]
    LanKey(LanKeyCommand),
    /// Copy folders into the home's resource/EXECUTABLE/ (a dry run unless
    /// --make-changes), or list what is there.
    Resource(ResourceArgs),
    /// Copy folders into a role's model/ (a dry run unless --make-changes),
    /// list what is there, or --get-latest=PATH to copy it back out.
    Model(ModelArgs),
    /// Copy the programs the roles run into the home's script/ folder (a dry
    /// run unless --make-changes), where a launch looks first.
    Script(ScriptArgs),
    /// Write a portable .tar.gz of the home and every program it runs.
    Image(ImageArgs),
    /// Write a new secret key (`worker-v0 <hex>`) to a new file, mode 600.
    SecretKey(SecretKeyArgs),
    /// Encrypt the value on stdin into a role's setting --FLAG (never a
    /// value on the command line); see docs/secrets.md.
    Secret(SecretArgs),
}

#[derive(Debug, Args)]
struct SecretKeyArgs {
    /// The new key file (never overwritten).
    path: PathBuf,
}

#[derive(Debug, Args)]
struct SecretArgs {
    /// The role.
    role: String,
    /// The setting (flag name) that holds the secret.
    #[arg(long, value_name = "FLAG")]
    name: String,
    /// The key: a file only its owner can read, or - for the first line of
    /// stdin (the value follows it).
    #[arg(long, value_name = "PATH|-")]
    secret_key_file: PathBuf,
    /// Store a ciphertext of the Redis-worker seed instead: stdin holds its
    /// base64 (AES-128-CBC/PKCS7), this is its IV in hex.
    #[arg(long, value_name = "HEX", requires = "worker_v0_type")]
    worker_v0_iv: Option<String>,
    /// The `type` the seed's decrypted JSON must have.
    #[arg(long, value_name = "TYPE", requires = "worker_v0_iv")]
    worker_v0_type: Option<String>,
}

/// How `resource` and `model` copy and list.
#[derive(Debug, Args)]
struct SyncFlags {
    /// Make the changes (without it: print them, change nothing).
    #[arg(long)]
    make_changes: bool,
    /// Empty the folder first (with no folders: just empty it).
    #[arg(long)]
    clear_all: bool,
    /// List sizes and modification times too (`-l`, or `-ll`).
    #[arg(long, short = 'l', action = clap::ArgAction::Count)]
    long_listing: u8,
    /// List everything below the folder, not only its entries.
    #[arg(long)]
    recursive_listing: bool,
    /// List full paths.
    #[arg(long)]
    full_path: bool,
}

impl SyncFlags {
    fn options(&self) -> layer_cake_cli::folders::SyncOptions {
        layer_cake_cli::folders::SyncOptions {
            make_changes: self.make_changes,
            clear_all: self.clear_all,
            long_listing: self.long_listing > 0,
            recursive_listing: self.recursive_listing,
            full_path: self.full_path,
        }
    }
}

#[derive(Debug, Args)]
struct ResourceArgs {
    /// The executable (its name; a path is taken by its last part).
    executable: String,
    /// Folders (or files) to copy in, each under its own name.
    folders: Vec<PathBuf>,
    #[command(flatten)]
    sync: SyncFlags,
}

#[derive(Debug, Args)]
struct ModelArgs {
    /// The role.
    role: String,
    /// Folders (or files) to copy in, each under its own name.
    folders: Vec<PathBuf>,
    /// Copy each entry of the role's model/ to PATH instead (a dry run
    /// unless --make-changes).
    #[arg(long, value_name = "PATH")]
    get_latest: Option<PathBuf>,
    #[command(flatten)]
    sync: SyncFlags,
}

#[derive(Debug, Args)]
struct ScriptArgs {
    /// List the programs the roles run, and which roles run each.
    #[arg(long, conflicts_with = "list_paths")]
    list_executables: bool,
    /// List where each program is found (what a copy is made from).
    #[arg(long)]
    list_paths: bool,
    /// Make the changes (without it: print them, change nothing).
    #[arg(long)]
    make_changes: bool,
    /// Empty script/ first.
    #[arg(long)]
    clear_all: bool,
}

#[derive(Debug, Args)]
struct ImageArgs {
    /// The .tar.gz to write (replaced if there; outside the home).
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Also the files of the roles' model/ folders.
    #[arg(long)]
    with_model: bool,
}

/// `layer-cake lan-key …`
#[derive(Debug, Subcommand)]
enum LanKeyCommand {
    /// Write a new random key (owner-readable only) where host-cake and
    /// lan-cake look for it, or at --path; then copy it to every host of the
    /// LAN (as a file of mode 0600).
    Create {
        /// Where to write it (default: $LAYER_CAKE_LAN_KEY, else the default
        /// place that `layer-cake lan-key path` prints).
        #[arg(long, value_name = "PATH")]
        path: Option<PathBuf>,
        /// Replace a key that is already there (every host then needs the
        /// new one).
        #[arg(long)]
        force: bool,
    },
    /// Print where the key is looked for ($LAYER_CAKE_LAN_KEY, else the
    /// default place: /etc/layer-cake/lan.key for root, else the user's
    /// configuration folder).
    Path,
}

fn lan_key_command(command: LanKeyCommand) -> Result<(), String> {
    use layer_cake::net::LanKey;
    match command {
        LanKeyCommand::Create { path, force } => {
            let path = LanKey::locate(path.as_deref()).map_err(|e| e.to_string())?;
            LanKey::create(&path, force).map_err(|e| e.to_string())?;
            writeln!(Stdout::new(), "{}", path.display()).map_err(|e| e.to_string())?;
            Ok(())
        }
        LanKeyCommand::Path => {
            let path = LanKey::locate(None).map_err(|e| e.to_string())?;
            writeln!(Stdout::new(), "{}", path.display()).map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

/// Words and `--name=value` settings, in any order.
#[derive(Debug, Args)]
struct SettingsArgs {
    #[arg(
        allow_hyphen_values = true,
        trailing_var_arg = true,
        value_name = "WORD|--NAME=VALUE"
    )]
    args: Vec<String>,
}

#[derive(Debug, Args)]
struct AddArgs {
    /// What the roles run: a path, or a name found in the current folder, the
    /// home's script/ folder, next to layer-cake or on PATH (stored as the
    /// absolute path found).
    executable: String,
    /// [ROLE] [--role-count=N] [--role-start=K] and the roles' settings, --name=value.
    #[arg(
        allow_hyphen_values = true,
        trailing_var_arg = true,
        value_name = "ROLE|--NAME=VALUE"
    )]
    args: Vec<String>,
}

#[derive(Debug, Args)]
struct RunCommand {
    /// Regular expressions matched from the start of role names; all roles
    /// when none.
    patterns: Vec<String>,
    /// The role whose end ends the run, with its value.
    #[arg(long)]
    main_role: Option<String>,
    /// Log at this level and above (FAULT, WARNING, CONSOLE, OBJECT, TRACE,
    /// DEBUG): this command, group-cake and the roles.
    #[arg(long, value_name = "LEVEL")]
    debug_level: Option<layer_cake::log::DebugLevel>,
    /// The key that opens the roles' secret settings: a file only its owner
    /// can read, or - for the first line of stdin. Handed to group-cake
    /// over its stdin.
    #[arg(long, value_name = "PATH|-")]
    secret_key_file: Option<PathBuf>,
}

impl RunCommand {
    /// What to run; its `--debug-level` (else the one given before the
    /// command) goes on to group-cake, and so does the secret key.
    fn args(
        &self,
        debug_level: Option<layer_cake::log::DebugLevel>,
    ) -> Result<run::RunArgs, String> {
        let secret_key = self
            .secret_key_file
            .as_deref()
            .map(|path| layer_cake_cli::secrets::read_key(path, &mut std::io::stdin().lock()))
            .transpose()?;
        Ok(run::RunArgs {
            patterns: self.patterns.clone(),
            main_role: self.main_role.clone(),
            debug_level: self.debug_level.or(debug_level).map(|l| l.to_string()),
            secret_key,
        })
    }
}

#[derive(Debug, Args)]
struct ServiceArgs {
    /// host-cake, lan-cake, or home (the home at --home-path).
    what: String,
    /// Where to write the unit.
    #[arg(long, default_value = "/etc/systemd/system")]
    unit_dir: PathBuf,
    /// The user the unit runs as (make it with `useradd --system layer-cake`).
    #[arg(long, default_value = layer_cake_cli::service::DEFAULT_USER)]
    user: String,
    /// Flags for the daemon (e.g. --directory-at-lan=10.0.0.195:54195).
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    flags: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("begin").args(["tail", "from", "back", "last", "start"])))]
#[command(group(clap::ArgGroup::new("end").args(["to", "span", "count"])))]
struct LogArgs {
    /// The role.
    role: String,
    /// Begin: the last N lines (40 when no begin is given).
    #[arg(long)]
    tail: Option<usize>,
    /// Begin: from this time on (UTC, 2026-11-23T16:45:14).
    #[arg(long, alias = "from_")]
    from: Option<String>,
    /// Begin: from this long ago on (90s, 10m, 2h, 1d).
    #[arg(long)]
    back: Option<String>,
    /// Begin: the last MONTH, WEEK, DAY, HOUR, HALF (hour), QUARTER (hour),
    /// TEN or FIVE (minutes), or MINUTE.
    #[arg(long, value_name = "PERIOD")]
    last: Option<String>,
    /// Begin: from the start of the role's run I of its history (0 the
    /// oldest kept, -1 the latest).
    #[arg(long, value_name = "I", allow_negative_numbers = true)]
    start: Option<i64>,
    /// End: before this time (UTC).
    #[arg(long)]
    to: Option<String>,
    /// End: this long after the begin.
    #[arg(long)]
    span: Option<String>,
    /// End: at most N lines after the begin.
    #[arg(long)]
    count: Option<usize>,
    /// Only lines with these tag characters (e.g. '!?' for faults and warnings).
    #[arg(long)]
    tags: Option<String>,
    /// Show times in the local time zone (with a lowercase 't').
    #[arg(long)]
    clock: bool,
    /// Only the samples named NAME (lines tagged '&' reading `NAME (k=v,…)`;
    /// `request`: the HTTP request log), as tab-separated columns.
    #[arg(long, value_name = "NAME")]
    sample: Option<String>,
}

impl LogArgs {
    fn query(&self) -> Result<run::LogQuery, String> {
        let now = chrono::Utc::now();
        let begin = if let Some(t) = &self.from {
            run::Begin::From(run::parse_time(t)?)
        } else if let Some(b) = &self.back {
            run::Begin::From(now - run::parse_span(b)?)
        } else if let Some(l) = &self.last {
            run::Begin::From(now - run::parse_last(l)?)
        } else if let Some(i) = self.start {
            run::Begin::Start(i)
        } else {
            run::Begin::Tail(self.tail.unwrap_or(run::DEFAULT_TAIL))
        };
        let end = if let Some(t) = &self.to {
            Some(run::End::To(run::parse_time(t)?))
        } else if let Some(s) = &self.span {
            Some(run::End::Span(run::parse_span(s)?))
        } else {
            self.count.map(run::End::Count)
        };
        Ok(run::LogQuery {
            begin,
            end,
            tags: self.tags.clone(),
            clock: self.clock,
            sample: self.sample.clone(),
        })
    }
}

/// `restart`'s arguments.
#[derive(Debug, Args)]
struct RestartArgs {
    /// Regular expressions matched from the start of role names (at least
    /// one).
    #[arg(required = true)]
    patterns: Vec<String>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Regular expressions matched from the start of role names.
    patterns: Vec<String>,
    /// Also show (`-l`, or `-ll` as the original spells it) for `list`:
    /// whether each runs, its folder's folders/files/bytes, the full path
    /// of what it runs and its settings; for `status`: pid and uptime.
    #[arg(long, short = 'l', action = clap::ArgAction::Count)]
    long_listing: u8,
    /// Also show the group role (names starting `group` are reserved).
    #[arg(long)]
    group_role: bool,
    /// Also show sub-roles: `ROLE.CHILD`, the roles of the child processes
    /// a role's process starts.
    #[arg(long)]
    sub_roles: bool,
}

impl ListArgs {
    fn show(&self) -> roles::Show {
        roles::Show {
            group_role: self.group_role,
            sub_roles: self.sub_roles,
        }
    }
}

#[derive(Debug, Args)]
struct PatternArgs {
    /// Regular expressions matched from the start of role names.
    #[arg(required = true)]
    patterns: Vec<String>,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// Regular expressions matched from the start of role names.
    #[arg(required_unless_present = "all_roles", conflicts_with = "all_roles")]
    patterns: Vec<String>,
    /// Every role of the home (the group role stays: `destroy` removes the
    /// home).
    #[arg(long)]
    all_roles: bool,
}

#[derive(Debug, Args)]
struct RoleArgs {
    /// The role.
    role: String,
}

#[derive(Debug, Args)]
struct HistoryArgs {
    /// The role.
    role: String,
    /// Times in full (UTC) rather than how long ago (`-l` or `-ll`).
    #[arg(long, short = 'l', action = clap::ArgAction::Count)]
    long_listing: u8,
}

#[derive(Debug, Args)]
struct ReturnedArgs {
    /// The role.
    role: String,
    /// Which run: 0 the oldest kept, -1 the latest (the default).
    #[arg(long, allow_negative_numbers = true)]
    start: Option<i64>,
    /// When the run is still going, wait up to this many seconds for it to
    /// return (looking once a second) instead of failing at once.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
}

/// Where the walk starts, and how patient it is.
#[derive(Debug, Args)]
struct Directory {
    /// The directory node the CLI's own directory connects to (host-cake
    /// by default).
    #[arg(long, value_name = "HOST:PORT", default_value_t = lan::directory_at_host())]
    directory_at: HostPort,
    /// How far up from there to start: the widest node no wider than this
    /// (GROUP, HOST or LAN: the root of the tree, the default).
    #[arg(long, value_name = "SCOPE", default_value = "LAN", value_parser = open_scope)]
    open_scope: Scope,
    /// Seconds each node gets to answer before it is shown as "(no answer)".
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_DEADLINE.as_secs_f64())]
    answer_within: f64,
    /// Also trust a directory daemon of this host that runs as a user of
    /// this group (a name or a gid): a host-cake installed as a service
    /// under its own user, started with the same `--allow-group`.
    #[arg(long, value_name = "GROUP")]
    allow_group: Option<String>,
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
    /// Show the routes each node holds: its matches of a subscription to a
    /// publication.
    #[arg(long)]
    list_routed: bool,
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

    /// Opens the CLI's directory and walks the whole tree from the top; the
    /// answer is where the walk starts and the tree.
    async fn walk(&self, cx: &mut Context) -> Result<(network::Top, network::NodeView), String> {
        let deadline = self.deadline()?;
        let group = self
            .allow_group
            .as_deref()
            .map(layer_cake::net::group_id)
            .transpose()
            .map_err(|e| format!("--allow-group: {e}"))?;
        let top = network::Top {
            node: network::open(&self.directory_at, group),
            up_to: self.open_scope,
        };
        let tree = network::walk(cx, &top, deadline).await.map_err(|e| {
            if e == "no answer" {
                format!("the directory at {} did not answer", self.directory_at)
            } else {
                e
            }
        })?;
        Ok((top, tree))
    }
}

/// `--open-scope`: GROUP, HOST or LAN, in any case.
fn open_scope(text: &str) -> Result<Scope, String> {
    match text.to_ascii_uppercase().as_str() {
        "GROUP" => Ok(Scope::Group),
        "HOST" => Ok(Scope::Host),
        "LAN" => Ok(Scope::Lan),
        _ => Err(format!("{text:?} is not GROUP, HOST or LAN")),
    }
}

async fn network_command(args: NetworkArgs) -> Result<(), String> {
    let mut cx = Context::detached("layer-cake network");
    let (_, tree) = args.directory.walk(&mut cx).await?;
    let show = Show {
        published: args.list_published,
        subscribed: args.list_subscribed,
        routed: args.list_routed,
        connected: args.list_connected,
        addresses: args.directory_addresses,
        full_identity: args.full_identity,
    };
    let mut out = Stdout::new();
    write!(out, "{}", network::render(&tree, &show)).map_err(|e| e.to_string())
}

async fn ping_command(args: PingArgs) -> Result<(), String> {
    let mut cx = Context::detached("layer-cake ping");
    let (top, tree) = args.directory.walk(&mut cx).await?;
    let found = ping::find(&tree, &args.id_prefix)?;
    let path = match found.as_slice() {
        [(_, path)] => path.clone(),
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
    let mut out = Stdout::new();
    let answered = ping::ping(&mut cx, &top, &path, args.ping_count, &mut out)
        .await
        .map_err(|e| format!("cannot write: {e}"))?;
    if answered == 0 {
        return Err("no answer to any ping".into());
    }
    Ok(())
}

/// Takes `--home-path`, swallowed with the settings, out of them.
fn home_from(cli_home: &Path, settings: &mut Settings) -> PathBuf {
    settings
        .remove("home-path")
        .map_or_else(|| cli_home.to_path_buf(), PathBuf::from)
}

fn open(home: &Path) -> Result<Home, String> {
    Home::open(home).map_err(|e| e.to_string())
}

/// The commands that work on the home's files.
fn home_command(
    home_path: &Path,
    debug_level: Option<layer_cake::log::DebugLevel>,
    command: Command,
) -> Result<(), String> {
    let mut out = Stdout::new();
    match command {
        Command::Create(args) => {
            let (words, mut group) = roles::split_settings(&args.args)?;
            let home = home_from(home_path, &mut group);
            if let [word, ..] = words.as_slice() {
                return Err(format!(
                    "create takes no words (got {word:?}); --home-path says where"
                ));
            }
            roles::create(&home, group, &mut out)
        }
        Command::Add(args) => {
            let (words, mut settings) = roles::split_settings(&args.args)?;
            let home = open(&home_from(home_path, &mut settings))?;
            let number = |settings: &mut Settings, name: &str| -> Result<Option<u32>, String> {
                settings
                    .remove(name)
                    .map(|v| {
                        v.parse::<u32>()
                            .map_err(|_| format!("--{name}={v} is not a count"))
                    })
                    .transpose()
            };
            let count = number(&mut settings, "role-count")?;
            let start = number(&mut settings, "role-start")?.unwrap_or(0);
            if count.is_some_and(|n| !(1..=1000).contains(&n)) {
                return Err("--role-count must be 1 to 1000".into());
            }
            let role = match words.as_slice() {
                [] => None,
                [role] => Some(role.as_str()),
                [_, extra, ..] => return Err(format!("unexpected word {extra:?}")),
            };
            let names = roles::role_names(&args.executable, role, count, start);
            roles::add(&home, &args.executable, &names, &settings, &mut out)
        }
        Command::List(args) => roles::list(
            &open(home_path)?,
            &args.patterns,
            args.long_listing > 0,
            args.show(),
            &mut out,
        ),
        Command::Update(args) => {
            let (patterns, mut settings) = roles::split_settings(&args.args)?;
            let home = open(&home_from(home_path, &mut settings))?;
            if patterns.is_empty() {
                return Err("update needs the roles to change: PATTERN… --name=value…".into());
            }
            if settings.is_empty() {
                return Err("update needs settings to change (--name=value)".into());
            }
            let matched = roles::roles_to_update(&home, &patterns)?;
            roles::update(&home, &matched, &settings, &mut out)
        }
        Command::Edit(args) => {
            let home = open(home_path)?;
            let role = home.role(&args.role).map_err(|e| e.to_string())?;
            let editor = ["LC_EDITOR", "VISUAL", "EDITOR"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
                .unwrap_or_else(|| "vi".into());
            roles::edit(&home, &role, &editor, &mut out)
        }
        Command::Delete(args) => {
            let home = open(home_path)?;
            // No patterns (with --all-roles): every role but the group's.
            // A role goes with its sub-roles; a sub-role can go alone.
            let show = roles::Show {
                group_role: false,
                sub_roles: true,
            };
            let matched = roles::selected(&home, &args.patterns, show)?;
            roles::delete(&home, matched, &mut out)
        }
        Command::Destroy => roles::destroy(open(home_path)?, &mut out),
        Command::History(args) => {
            let role = open(home_path)?
                .role(&args.role)
                .map_err(|e| e.to_string())?;
            roles::history(&role, args.long_listing > 0, chrono::Utc::now(), &mut out)
        }
        Command::Returned(args) => {
            let role = open(home_path)?
                .role(&args.role)
                .map_err(|e| e.to_string())?;
            let timeout = match args.timeout {
                Some(t) if t.is_finite() && (0.0..=86_400.0).contains(&t) => {
                    Some(std::time::Duration::from_secs_f64(t))
                }
                Some(t) => return Err(format!("--timeout={t}: give 0 to 86400 seconds")),
                None => None,
            };
            roles::returned(&role, args.start, timeout, &mut out)
        }
        Command::Start(args) => run::start(&open(home_path)?, &args.args(debug_level)?, &mut out),
        Command::SecretKey(args) => layer_cake_cli::secrets::new_key_file(&args.path, &mut out),
        Command::Secret(args) => layer_cake_cli::secrets::store(
            &open(home_path)?,
            &args.role,
            &args.name,
            &args.secret_key_file,
            &layer_cake_cli::secrets::Import {
                iv: args.worker_v0_iv,
                kind: args.worker_v0_type,
            },
            &mut std::io::stdin().lock(),
            &mut out,
        ),
        Command::Stop => run::stop(&open(home_path)?, &mut out),
        Command::Restart(args) => layer_cake_cli::recycle::restart(
            &open(home_path)?,
            &args.patterns,
            layer_cake_cli::recycle::RESTART_PATIENCE,
            &mut out,
        ),
        Command::Status(args) => run::status(
            &open(home_path)?,
            &args.patterns,
            args.long_listing > 0,
            args.show(),
            &mut out,
        ),
        Command::Log(args) => run::log(&open(home_path)?, &args.role, &args.query()?, &mut out),
        Command::InstallService(args) => {
            use layer_cake_cli::service::{self, Service};
            let (service, program) = match args.what.as_str() {
                "host-cake" => (Service::HostCake, "host-cake"),
                "lan-cake" => (Service::LanCake, "lan-cake"),
                "home" => {
                    let home = open(home_path)?;
                    let path = std::fs::canonicalize(home.path()).map_err(|e| e.to_string())?;
                    (Service::Home(path), "layer-cake")
                }
                other => {
                    return Err(format!(
                        "install-service takes host-cake, lan-cake or home, not {other:?}"
                    ));
                }
            };
            let program = layer_cake::process::find_program(program)
                .ok_or_else(|| format!("cannot find {program} next to layer-cake or on PATH"))?;
            let program = std::fs::canonicalize(&program).unwrap_or(program);
            service::install(
                &service,
                &program,
                &args.flags,
                &args.user,
                &args.unit_dir,
                &mut out,
            )
        }
        Command::Resource(args) => layer_cake_cli::folders::resource(
            &open(home_path)?,
            &args.executable,
            &args.folders,
            &args.sync.options(),
            &mut out,
        ),
        Command::Model(args) => layer_cake_cli::folders::model(
            &open(home_path)?,
            &args.role,
            &args.folders,
            args.get_latest.as_deref(),
            &args.sync.options(),
            &mut out,
        ),
        Command::Script(args) => layer_cake_cli::folders::script(
            &open(home_path)?,
            &layer_cake_cli::folders::ScriptOptions {
                list_executables: args.list_executables,
                list_paths: args.list_paths,
                make_changes: args.make_changes,
                clear_all: args.clear_all,
            },
            &mut out,
        ),
        Command::Image(args) => {
            layer_cake_cli::image::image(&open(home_path)?, &args.output, args.with_model, &mut out)
        }
        Command::Network(_) | Command::Ping(_) | Command::Run(_) | Command::LanKey(_) => {
            unreachable!("not a home command")
        }
    }
}

/// Set when stdout's reader has gone away (`layer-cake list | head`): the
/// command then ends quietly, with status 0, as it would have had the
/// reader read everything.
static READER_GONE: AtomicBool = AtomicBool::new(false);

/// The process's stdout, noting when its reader has gone ([`READER_GONE`]).
struct Stdout(std::io::Stdout);

impl Stdout {
    fn new() -> Self {
        Stdout(std::io::stdout())
    }
}

/// Notes a broken pipe in [`READER_GONE`].
fn noted<T>(result: std::io::Result<T>) -> std::io::Result<T> {
    if let Err(e) = &result
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        READER_GONE.store(true, Ordering::SeqCst);
    }
    result
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        noted(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        noted(self.0.flush())
    }
}

/// The exit for a failure: one line on stderr and status 1 — or nothing
/// and status 0 when the failure is that stdout's reader has gone.
fn failed(e: &str) -> ExitCode {
    if READER_GONE.load(Ordering::SeqCst) {
        return ExitCode::SUCCESS;
    }
    eprintln!("layer-cake: {e}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
        .map_err(|e| e.format(&mut <Cli as clap::CommandFactory>::command()))
        .unwrap_or_else(|e| e.exit());
    // `layer-cake --debug-level=L COMMAND`, or `run`'s and `start`'s own.
    let debug_level = match &cli.command {
        Command::Run(args) | Command::Start(args) => args.debug_level.or(cli.debug_level),
        _ => cli.debug_level,
    };
    if debug_level.is_some() {
        layer_cake::log::init(debug_level);
    }
    let home = std::path::absolute(&cli.home_path).unwrap_or_else(|_| cli.home_path.clone());
    tracing::debug!(
        home = %home.display(),
        "layer-cake {}",
        matches.subcommand_name().unwrap_or_default()
    );
    if let Command::LanKey(command) = cli.command {
        return match lan_key_command(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed(&e),
        };
    }
    if !matches!(
        cli.command,
        Command::Network(_) | Command::Ping(_) | Command::Run(_)
    ) {
        return match home_command(&cli.home_path, cli.debug_level, cli.command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed(&e),
        };
    }
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
    // Ok(status): the exit status of what ran (0 for the inspections).
    let result: Result<i32, String> = runtime.block_on(async move {
        match cli.command {
            Command::Network(args) => network_command(args).await.map(|()| 0),
            Command::Ping(args) => ping_command(args).await.map(|()| 0),
            Command::Run(args) => {
                run::run(&open(&cli.home_path)?, &args.args(cli.debug_level)?).await
            }
            _ => unreachable!("home commands run without a runtime"),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(e) => failed(&e),
    }
}
