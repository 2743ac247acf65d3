//! The standard flags every layer-cake process accepts, decoded into a
//! [`ProcessConfig`].

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize};

use crate::log::DebugLevel;
use crate::net::HostPort;

/// Where a process sits in the chain of processes that started it: the value
/// of `--origin`, set by whoever starts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Origin {
    /// Started from a shell by a user.
    #[default]
    Shell,
    /// Started by `layer-cake run`.
    Run,
    /// A role started by a process that `layer-cake run` started.
    RunChild,
    /// Started by `layer-cake start` (in the background).
    Start,
    /// A role started by a process that `layer-cake start` started.
    StartChild,
}

/// The standard flags of a layer-cake process, parsed by
/// [`create`](crate::process::create) before the main actor's own arguments.
///
/// The main actor reads them with [`config`]. Each field is the flag of the
/// same name with `_` written as `-` (`full_output` is `--full-output`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    /// `--debug-level=LEVEL`: show log lines at this level and above on
    /// stderr. None: no logging.
    #[serde(deserialize_with = "debug_level")]
    pub debug_level: Option<DebugLevel>,
    /// `--home-path=PATH`: the home folder of the composite process this
    /// process is a role of.
    pub home_path: Option<PathBuf>,
    /// `--role-name=NAME`: this process's role in its home.
    pub role_name: Option<String>,
    /// `--resource-path=PATH`: the folder of read-only files that come
    /// with the program, when it is not a role of a home (see
    /// [`resource_path`](crate::process::resource_path)).
    pub resource_path: Option<PathBuf>,
    /// `--model-path=PATH`: the folder of files kept from run to run, when
    /// the process is not a role of a home (default: the current folder;
    /// see [`model_path`](crate::process::model_path)).
    pub model_path: Option<PathBuf>,
    /// `--full-output`: print the return value as a typed envelope.
    pub full_output: bool,
    /// `--child-process`: started by another layer-cake process; output is
    /// compact.
    pub child_process: bool,
    /// `--connect-to-directory=HOST:PORT`: the parent of this process's
    /// directory, which it connects to the first time it lists something
    /// wider than the process (default: host-cake at 127.0.0.1:54195).
    /// Passed on to child processes.
    pub connect_to_directory: Option<HostPort>,
    /// `--lan-key=PATH`: the LAN key file, which encrypts and authenticates
    /// the links that leave the host (else `LAYER_CAKE_LAN_KEY`, else the
    /// default place: see [`LanKey`](crate::net::LanKey)).
    pub lan_key: Option<PathBuf>,
    /// `--allow-group=NAME`: a group (name or gid) whose local processes
    /// this process admits too, besides its own user and root — on both
    /// ends of a same-host link: the peers that connect to its listeners,
    /// and the daemon it connects to. With the same flag on host-cake, the
    /// users of that group share a host-cake run as a dedicated user
    /// (`layer-cake install-service --user`), whose group it is. It applies
    /// to the links of the process's directory (to its parent directory, and
    /// the sessions between publishers and subscribers); a link the
    /// application opens itself takes
    /// [`LinkOptions::allow_group`](crate::net::LinkOptions::allow_group).
    /// Passed on to child processes. An unknown name is a usage error.
    pub allow_group: Option<String>,
    /// `--worker-threads=N`: how many threads run this process's actors.
    /// One runs them all on the thread that started the process, so a
    /// message between two of them never wakes another thread: the
    /// cheapest setting for a worker process that shares a few cores with
    /// many others. Default: one per core. From 1 to 1024; passed on to
    /// child processes.
    pub worker_threads: Option<usize>,
    /// `--drain-time=SECONDS`: on SIGTERM or SIGINT the process drains: its
    /// HTTP fronts close their listens and let the requests in flight be
    /// answered, then the main actor gets [`Stop`](crate::Stop). SECONDS
    /// after the signal the process exits whatever is still running (a
    /// second signal: at once). Default [`DEFAULT_DRAIN`] (28 s); passed on
    /// to child processes. See [`ProcessConfig::drain_duration`].
    pub drain_time: Option<u64>,
    /// `--max-requests=N`: the main actor retires after taking N requests:
    /// it withdraws its publications (so a spool fed by the directory stops
    /// sending it work), answers what it holds, is sent
    /// [`Stop`](crate::Stop), and the process exits 0 with
    /// [`Retired`](crate::process::Retired), which group-cake takes as "start
    /// a fresh one now". From 1 to 2^53; not passed on to child processes.
    /// See `docs/processes.md`, "Worker recycling".
    pub max_requests: Option<u64>,
    /// `--origin=ORIGIN`: where this process sits in the chain of processes:
    /// `layer-cake run` starts group-cake with `RUN`, `layer-cake start` with
    /// `START`, and group-cake gives its roles `RUN_CHILD` or `START_CHILD`
    /// to match. A process started from a shell is `SHELL`.
    pub origin: Origin,
    /// `--keep-logs`: keep rolling log files even in the foreground.
    pub keep_logs: bool,
    /// `--output-file=PATH`: write the output there instead of stdout.
    pub output_file: Option<PathBuf>,
    /// `--help`: list the flags and exit.
    pub help: bool,
    /// `--dump-types`: print the signature of every message type this
    /// program has registered, one per line, sorted, and exit 0 without
    /// running (see [`registry::signatures`](crate::message::registry::signatures)).
    /// It has no short form: `-dt` is `--drain-time`.
    pub dump_types: bool,
    /// `--check-settings`: read the command line as usual — a bad flag is
    /// one line on stderr and exit status 2 — but exit 0 without running the
    /// main actor. The CLI checks a role's settings this way before storing
    /// them.
    pub check_settings: bool,
    /// `--connect-to-parent=HOST:PORT`: started with
    /// [`spawn_process`](crate::Context::spawn_process); connect back there
    /// so that the parent can reach the main actor. The one-time key that
    /// proves which child is connecting back is the first line of stdin,
    /// never a flag: a command line is readable by every local user.
    pub connect_to_parent: Option<HostPort>,
    /// `--secret-key-file=PATH`: the key that opens the secrets among the
    /// main actor's flags (settings stored encrypted, see
    /// [`secret`](crate::secret) and `docs/secrets.md`), one line
    /// `worker-v0 <32 hex digits>` in a file only its owner can read, or
    /// with `-` the first line of stdin. Never an environment variable or a
    /// value on the command line. A bad or missing key, or a secret that
    /// does not open, is one line on stderr and exit status 78.
    pub secret_key_file: Option<PathBuf>,
}

/// Reads a level name with [`DebugLevel`]'s `FromStr` (case ignored), so
/// that a bad name gets its list of good ones.
fn debug_level<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DebugLevel>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// One standard flag as `--help` shows it.
pub(crate) struct FlagHelp {
    /// The flag's name, with dashes.
    pub(crate) name: &'static str,
    /// What its value looks like; empty for a bool.
    pub(crate) value: &'static str,
    /// What it does.
    pub(crate) text: &'static str,
}

/// The standard flags, in the order `--help` lists them (the order of the
/// fields of [`ProcessConfig`]).
pub(crate) const STANDARD_FLAGS: &[FlagHelp] = &[
    FlagHelp {
        name: "debug-level",
        value: "LEVEL",
        text: "log to stderr at LEVEL and above: FAULT, WARNING, CONSOLE, OBJECT, TRACE, DEBUG",
    },
    FlagHelp {
        name: "home-path",
        value: "PATH",
        text: "the home folder of the composite process",
    },
    FlagHelp {
        name: "role-name",
        value: "NAME",
        text: "this process's role in its home",
    },
    FlagHelp {
        name: "resource-path",
        value: "PATH",
        text: "read-only files of the program, outside a home (a role's: resource/<executable>/)",
    },
    FlagHelp {
        name: "model-path",
        value: "PATH",
        text: "files kept from run to run, outside a home (default: the current folder; a role's: model/)",
    },
    FlagHelp {
        name: "full-output",
        value: "",
        text: "print the result as a typed envelope {\"value\":[type,value,[]]}",
    },
    FlagHelp {
        name: "child-process",
        value: "",
        text: "started by another layer-cake process: compact output",
    },
    FlagHelp {
        name: "connect-to-directory",
        value: "HOST:PORT",
        text: "the parent directory (default host-cake, 127.0.0.1:54195; also {\"host\":...,\"port\":...})",
    },
    FlagHelp {
        name: "lan-key",
        value: "PATH",
        text: "the LAN key that secures links leaving the host (else $LAYER_CAKE_LAN_KEY, else the default place)",
    },
    FlagHelp {
        name: "allow-group",
        value: "NAME",
        text: "also admit local peers (and daemons) of this group, besides this user and root",
    },
    FlagHelp {
        name: "worker-threads",
        value: "N",
        text: "threads that run this process's actors, 1 to 1024 (default: one per core)",
    },
    FlagHelp {
        name: "drain-time",
        value: "SECONDS",
        text: "on SIGTERM/SIGINT finish the HTTP requests in flight, stop, and exit within SECONDS (default 28)",
    },
    FlagHelp {
        name: "max-requests",
        value: "N",
        text: "retire after N requests: withdraw the publications, answer what is held, exit 0 (Retired)",
    },
    FlagHelp {
        name: "origin",
        value: "ORIGIN",
        text: "position in the process chain: SHELL (default), RUN, RUN_CHILD, START, START_CHILD",
    },
    FlagHelp {
        name: "keep-logs",
        value: "",
        text: "keep rolling log files even in the foreground",
    },
    FlagHelp {
        name: "output-file",
        value: "PATH",
        text: "write the result to PATH instead of stdout",
    },
    FlagHelp {
        name: "help",
        value: "",
        text: "show this help and exit",
    },
    FlagHelp {
        name: "dump-types",
        value: "",
        text: "print the registered message types, one per line, and exit",
    },
    FlagHelp {
        name: "check-settings",
        value: "",
        text: "check the command line and exit (0, or 2 with the error) without running",
    },
    FlagHelp {
        name: "connect-to-parent",
        value: "HOST:PORT",
        text: "started as a child process: connect back to the parent here",
    },
    FlagHelp {
        name: "secret-key-file",
        value: "PATH",
        text: "the key that opens secret settings: a private file, or - for the first line of stdin",
    },
];

/// How long a process has from its first SIGTERM or SIGINT to its exit
/// when `--drain-time` does not say: a little less than the 30 s that
/// service managers (systemd's `TimeoutStopSec`, Kubernetes'
/// `terminationGracePeriodSeconds`) wait before SIGKILL, and more than the
/// [`DEFAULT_STOP_GRACE`](crate::process::DEFAULT_STOP_GRACE) a parent
/// gives each child to end, so that a supervisor stopping its children is
/// not cut short.
pub const DEFAULT_DRAIN: std::time::Duration = std::time::Duration::from_secs(28);

/// Standard flags without a short form, because their initials are taken
/// (`--dump-types` would be `-dt`, which is `--drain-time`).
pub(crate) const NO_SHORT_FORM: &[&str] = &["dump-types"];

/// The most `--drain-time` may ask for (a day).
pub(crate) const MAX_DRAIN_SECONDS: u64 = 86_400;

impl ProcessConfig {
    /// How long the process has from its first SIGTERM or SIGINT to its
    /// exit: `--drain-time`, else [`DEFAULT_DRAIN`].
    pub fn drain_duration(&self) -> std::time::Duration {
        self.drain_time
            .map_or(DEFAULT_DRAIN, std::time::Duration::from_secs)
    }

    /// The gid `--allow-group` names, if any; an error when there is no
    /// such group.
    pub fn allowed_group(&self) -> Result<Option<u32>, crate::net::UnknownGroup> {
        self.allow_group
            .as_deref()
            .map(crate::net::group_id)
            .transpose()
    }
}

/// The most threads `--worker-threads` may ask for.
pub(crate) const MAX_WORKER_THREADS: usize = 1024;

static CONFIG: OnceLock<ProcessConfig> = OnceLock::new();

/// Records the process's configuration; the first call wins.
pub(crate) fn set(config: ProcessConfig) {
    let _ = CONFIG.set(config);
}

/// The standard flags this process was started with, as parsed by
/// [`create`](crate::process::create) (or [`run`](crate::process::run)).
///
/// In a program that did not start through `create` (a test, a `main` of
/// its own) every flag has its default.
///
/// ```
/// use layer_cake::process::{Origin, config};
///
/// // Not started through `create`: the defaults.
/// assert_eq!(config().origin, Origin::Shell);
/// assert_eq!(config().debug_level, None);
/// ```
pub fn config() -> &'static ProcessConfig {
    static DEFAULT: OnceLock<ProcessConfig> = OnceLock::new();
    CONFIG
        .get()
        .unwrap_or_else(|| DEFAULT.get_or_init(ProcessConfig::default))
}
