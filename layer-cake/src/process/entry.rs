//! The process entry point: flags in, main actor run, result out.

use std::io::Write;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::args::{self, RawFlag};
use super::config::{self, ProcessConfig, STANDARD_FLAGS};
use crate::message::codec::json;
use crate::message::text::{self, Source};
use crate::runtime::{self, Context, IntoReturn, SpawnOptions};
use crate::{Faulted, Payload, Stop};

/// Exit status: the command line was wrong (a bad flag or value).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: a fault in the program rather than in its input (the
/// runtime would not start, the result would not encode, the main actor's
/// arguments clash with a standard flag).
pub const EXIT_SOFTWARE: i32 = 70;
/// Exit status: the result could not be written (`--output-file`, stdout).
pub const EXIT_IO: i32 = 74;
/// Exit status: started as a role of a home (`--home-path`, `--role-name`)
/// that does not exist or is already running.
pub const EXIT_CONFIG: i32 = 78;

/// How long the runtime's blocking threads get to finish once the main actor
/// has returned.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Makes this program a layer-cake process whose main actor is `main_actor`;
/// never returns.
///
/// `main_actor` is an async function taking its [`Context`] and its own
/// arguments `A` (any `serde` type, `()` for none), which are decoded from
/// the command line's `--name=value` flags. The standard flags
/// (`--debug-level`, `--full-output`, … see [`ProcessConfig`]) are taken out
/// first and can be read with [`config`](super::config).
///
/// The process logs at `--debug-level`, runs the main actor on a
/// multi-threaded tokio runtime, drains on SIGINT or SIGTERM (its HTTP
/// fronts stop accepting and finish the requests in flight, then the main
/// actor gets [`Stop`]; `--drain-time` after the signal, default 28, or
/// at a second signal, the process exits at once with status 128 + the
/// signal's number), and
/// when it returns prints its value as JSON on stdout (nothing for `()`) and
/// exits 0; a [`Faulted`] result goes to stderr and exits with
/// [`Faulted::exit_code`] (71 unless set). A bad command line gets one line
/// on stderr and exit status 2. See `docs/processes.md`.
///
/// ```no_run
/// use layer_cake::{Context, Faulted};
///
/// #[derive(serde::Deserialize)]
/// struct Args {
///     name: String,
/// }
///
/// async fn hello(_cx: Context, args: Args) -> Result<String, Faulted> {
///     Ok(format!("hello {}", args.name))
/// }
///
/// fn main() {
///     layer_cake::create(hello) // hello --name=world  →  "hello world"
/// }
/// ```
pub fn create<F, A, Fut>(main_actor: F) -> !
where
    F: FnOnce(Context, A) -> Fut + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoReturn,
{
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Not locked for the run: the actors and the log layer write to these
    // too, from other threads.
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let code = run(main_actor, &args, &mut stdout, &mut stderr);
    let _ = stdout.flush();
    let _ = stderr.flush();
    std::process::exit(code)
}

/// What [`create`] does, short of exiting: parses `args` (the program name
/// first), runs `main_actor`, writes the output to `stdout` (or the
/// `--output-file`) and errors to `stderr`, and returns the exit status.
///
/// It builds its own tokio runtime, so it must not be called from inside
/// one. The first call in a process records the [`config`](super::config)
/// and installs the log subscriber; later calls cannot change either.
pub fn run<F, A, Fut, S>(
    main_actor: F,
    args: &[S],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32
where
    F: FnOnce(Context, A) -> Fut + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoReturn,
    S: AsRef<str>,
{
    let program = program_name(args.first().map_or("", |a| a.as_ref()));
    let rest = args.get(1..).unwrap_or_default();
    let (config, arguments) = match parse::<A, S>(&program, rest) {
        Ok(Parsed::Run(config, arguments)) => (*config, arguments),
        Ok(Parsed::Checked) => return 0,
        Ok(parsed @ (Parsed::Help(_) | Parsed::Types)) => {
            let text = match parsed {
                Parsed::Help(text) => text,
                _ => crate::message::registry::signatures()
                    .iter()
                    .map(|signature| format!("{signature}\n"))
                    .collect(),
            };
            return match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(stderr, "{program}: cannot write to stdout: {e}");
                    EXIT_IO
                }
            };
        }
        Err(usage) => {
            let _ = writeln!(stderr, "{program}: {}", usage.text);
            return usage.code;
        }
    };
    config::set(config.clone());
    // The directory below takes its settings as a value, not from here.
    // The LAN key is loaded once, here, and handed to the links that may
    // leave the host through their options.
    let lan_key = match crate::net::LanKey::find(config.lan_key.as_deref()) {
        Ok(key) => key,
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    };
    crate::directory::configure_process_node(
        crate::directory::NodeOptions::new(crate::directory::Scope::Process)
            .parent(
                config
                    .connect_to_directory
                    .clone()
                    .unwrap_or_else(crate::directory::lan::directory_at_host),
            )
            .link(
                crate::net::LinkOptions {
                    lan_key,
                    ..crate::net::LinkOptions::default()
                }
                // Checked when the flags were read.
                .allow_group(config.allowed_group().ok().flatten()),
            ),
    );

    // A role of a home holds its role's lock while it runs (that is what
    // "running" means to the CLI) and records its start in the history.
    let mut role_lock = match (&config.home_path, &config.role_name) {
        (Some(home), Some(role)) => match take_role(home, role) {
            Ok(taken) => {
                if let Some(warning) = &taken.warning {
                    // Logging is not set up yet: straight to stderr.
                    let _ = writeln!(stderr, "{program}: warning: {warning}");
                }
                // In the background (or asked to), stderr goes to rolling
                // files in the role's logs/ folder.
                if (config.origin == super::Origin::Start || config.keep_logs)
                    && let Err(e) = crate::log::rolling::redirect_stderr(&taken.logs_dir)
                {
                    let _ = writeln!(
                        stderr,
                        "{program}: cannot keep logs in {}: {e}",
                        taken.logs_dir.display()
                    );
                }
                super::folders::set(&config, Some(&taken.folders));
                Some((taken.held, taken.finish, taken.name))
            }
            Err(e) => {
                let _ = writeln!(stderr, "{program}: {e}");
                return EXIT_CONFIG;
            }
        },
        _ => {
            super::folders::set(&config, None);
            None
        }
    };

    let mut builder = match config.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(stderr, "{program}: cannot start the runtime: {e}");
            return EXIT_SOFTWARE;
        }
    };
    crate::log::init(config.debug_level);

    // The role taken (a sub-role may have a `-N` suffix), else the role
    // name, else the main actor's function.
    let name = role_lock
        .as_ref()
        .map(|(_, _, name)| name.clone())
        .or_else(|| config.role_name.clone())
        .unwrap_or_else(|| function_name::<F>().to_owned());
    let child_config = config.clone();
    // SIGTERM and SIGINT are watched on a thread of their own, so that an
    // actor that blocks the runtime's threads cannot keep the process from
    // ending.
    let mut watch = match SignalWatch::start(config.drain_duration(), program.clone()) {
        Ok(watch) => watch,
        Err(e) => {
            let _ = writeln!(stderr, "{program}: cannot watch for signals: {e}");
            return EXIT_SOFTWARE;
        }
    };
    let watch_main = watch.main.take();
    // `--max-requests`, SIGUSR1: the main actor retires.
    let retirement = super::retire::Retirement::new(config.max_requests);
    let tally = retirement.tally();
    let patience = config.drain_duration();
    let result = runtime.block_on(async {
        let handle = runtime::spawn_with(SpawnOptions::new().name(name), move |mut cx| {
            cx.count_requests(tally);
            main_actor(cx, arguments)
        });
        let main = handle.address().clone();
        retirement.watch(main.clone(), patience);
        super::child::child_side(&child_config, &main);
        if let Some(watch_main) = watch_main {
            let _ = watch_main.send(main);
        }
        handle.join_payload().await
    });
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    let result = retirement.outcome(result);

    if let Some((_, finish, _)) = role_lock.as_mut()
        && let Some(finish) = finish.take()
    {
        let typed = match &result {
            Ok(value) => json::to_typed_string(value, false).ok(),
            Err(fault) => json::to_typed_string(&Payload::new(fault.clone()), false).ok(),
        };
        finish(typed);
    }
    let code = output(result, &config, &program, stdout, stderr);
    // The drain deadline holds until here; a later `run` in the same
    // process (tests) starts undrained.
    drop(watch);
    crate::net::http::drain::end_drain();
    super::folders::finish();
    super::secrets::forget();
    code
}

/// The thread that watches for SIGTERM and SIGINT while the main actor
/// runs, with a small runtime of its own: the first signal drains the
/// process (see [`drain`]), a second one, or the drain time passing, exits
/// at once. Dropping it ends the watch.
struct SignalWatch {
    /// Where the main actor's address goes once it is running.
    main: Option<tokio::sync::oneshot::Sender<crate::Address>>,
    /// Dropped when the process no longer needs watching.
    _done: tokio::sync::oneshot::Sender<()>,
}

impl SignalWatch {
    /// Starts the thread, and returns once it has taken over the signals
    /// (so that a signal sent once the main actor runs is never lost).
    fn start(drain_time: Duration, program: String) -> std::io::Result<Self> {
        let (main, main_rx) = tokio::sync::oneshot::channel();
        let (done, done_rx) = tokio::sync::oneshot::channel();
        let (ready, installed) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("layer-cake-signals".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let signals = Signals::install();
                    let _ = ready.send(Ok(()));
                    tokio::select! {
                        () = drain(signals, main_rx, drain_time, &program) => {}
                        _ = done_rx => {}
                    }
                });
            })?;
        installed
            .recv()
            .map_err(|_| std::io::Error::other("the signal thread ended"))??;
        Ok(SignalWatch {
            main: Some(main),
            _done: done,
        })
    }
}

/// What the first SIGTERM or SIGINT starts: the HTTP fronts close their
/// listens and finish the requests in flight, then the main actor gets
/// [`Stop`]; `drain_time` after the signal, or at a second signal, the
/// process exits at once (status 128 + the signal's number, as a shell
/// reports a process ended by a signal). Returns only if the main actor
/// never started.
async fn drain(
    mut signals: Signals,
    main: tokio::sync::oneshot::Receiver<crate::Address>,
    drain_time: Duration,
    program: &str,
) {
    let first = signals.next().await;
    let deadline = tokio::time::Instant::now() + drain_time;
    let Ok(main) = main.await else { return };
    tracing::info!(
        signal = first.name,
        "Draining: the HTTP fronts finish the requests in flight (at most {drain_time:?})"
    );
    crate::net::http::drain::drain();
    tokio::select! {
        () = crate::net::http::drain::drained() => {}
        () = tokio::time::sleep_until(deadline) => {}
        second = signals.next() => exit_now(program, second, "a second signal"),
    }
    tracing::info!(signal = first.name, "Stopping the main actor");
    let _ = main.send(Stop);
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => exit_now(
            program,
            first,
            &format!("still running {drain_time:?} after {} (--drain-time)", first.name),
        ),
        second = signals.next() => exit_now(program, second, "a second signal"),
    }
}

/// Ends the process at once, whatever its actors are doing.
fn exit_now(program: &str, signal: Signal, why: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "{program}: {why}: exiting now");
    std::process::exit(128 + signal.number)
}

/// What the layer that keeps homes does when a process starts as a role of
/// one: it locks the role for this process and records its start. Homes sit
/// above processes, so they register this (through `inventory`) rather than
/// the entry point naming them.
pub(crate) struct RoleKeeper {
    /// Takes role `role` of the home at `home` for this process.
    pub(crate) take: fn(home: &std::path::Path, role: &str) -> Result<TakenRole, String>,
    /// The role name a child process of role `parent` gets (`None`: the
    /// child runs outside the home).
    pub(crate) sub_role_name: fn(parent: &str, child: &str) -> Option<String>,
}

inventory::collect!(RoleKeeper);

/// A role taken for this process: held (locked) until dropped.
pub(crate) struct TakenRole {
    /// The role taken (a sub-role may get a `-N` suffix).
    pub(crate) name: String,
    /// The role's folders for its files.
    pub(crate) folders: super::RoleFolders,
    /// Where the role keeps its logs.
    pub(crate) logs_dir: std::path::PathBuf,
    /// The role's lock.
    pub(crate) held: Box<dyn Send>,
    /// Something to warn about (a corrupt history moved aside).
    pub(crate) warning: Option<String>,
    /// For a role no supervisor watches (a sub-role): records the run's
    /// end, given the result as typed JSON (`None`: not encodable).
    pub(crate) finish: Option<Box<dyn FnOnce(Option<String>) + Send>>,
}

/// The role name a child process named `child` gets when this process is
/// role `parent` of a home: `<parent>.<child>`, if the layer that keeps
/// homes is linked in and the name is usable.
pub(crate) fn sub_role_name(parent: &str, child: &str) -> Option<String> {
    inventory::iter::<RoleKeeper>()
        .next()
        .and_then(|keeper| (keeper.sub_role_name)(parent, child))
}

/// Takes role `role` of the home at `home` through the registered keeper.
fn take_role(home: &std::path::Path, role: &str) -> Result<TakenRole, String> {
    match inventory::iter::<RoleKeeper>().next() {
        Some(keeper) => (keeper.take)(home, role),
        None => Err("this program cannot run as a role of a home".into()),
    }
}

/// Prints the main actor's result and returns the exit status.
fn output(
    result: Result<Payload, Faulted>,
    config: &ProcessConfig,
    program: &str,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let pretty = !config.child_process;
    let (payload, code) = match result {
        Ok(value) if value.is::<()>() => return 0,
        Ok(value) => (value, 0),
        Err(fault) if config.full_output => {
            let code = fault.exit_code();
            (Payload::new(fault), code)
        }
        Err(fault) => {
            let _ = writeln!(stderr, "{program}: {fault}");
            return fault.exit_code();
        }
    };
    let encoded = if config.full_output {
        json::to_typed_string(&payload, pretty)
    } else {
        json::to_value_string(&payload, pretty)
    };
    let mut text = match encoded {
        Ok(text) => text,
        Err(e) => {
            let _ = writeln!(stderr, "{program}: {e}");
            return EXIT_SOFTWARE;
        }
    };
    text.push('\n');
    let written = match &config.output_file {
        Some(path) => std::fs::write(path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write the output: {e}")),
    };
    match written {
        Ok(()) => code,
        Err(e) => {
            let _ = writeln!(stderr, "{program}: {e}");
            EXIT_IO
        }
    }
}

/// The outcome of reading a command line.
#[derive(Debug)]
pub(crate) enum Parsed<A> {
    /// Run the main actor with these flags and arguments.
    Run(Box<ProcessConfig>, A),
    /// `--help` was given: print this and exit 0.
    Help(String),
    /// `--check-settings` was given and the command line is good: exit 0.
    Checked,
    /// `--dump-types` was given: print the registered types and exit 0.
    Types,
}

/// A command line that cannot be run: the exit status and one line saying
/// why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) code: i32,
    pub(crate) text: String,
}

/// A key or a secret that cannot be had: exit status [`EXIT_CONFIG`].
fn config_error(e: crate::secret::SecretError) -> Usage {
    Usage {
        code: EXIT_CONFIG,
        text: e.to_string(),
    }
}

fn usage(text: impl Into<String>) -> Usage {
    Usage {
        code: EXIT_USAGE,
        text: text.into(),
    }
}

/// Reads the flags (without the program name): the standard flags into a
/// [`ProcessConfig`], the others into the main actor's arguments `A`.
pub(crate) fn parse<A: DeserializeOwned, S: AsRef<str>>(
    program: &str,
    args: &[S],
) -> Result<Parsed<A>, Usage> {
    let standard: Vec<&str> = STANDARD_FLAGS.iter().map(|f| f.name).collect();
    let own: Option<Vec<String>> =
        text::field_names::<A>().map(|names| names.iter().map(|n| n.replace('_', "-")).collect());
    if let Some(clash) = own
        .iter()
        .flatten()
        .find(|name| standard.contains(&name.as_str()))
    {
        return Err(Usage {
            code: EXIT_SOFTWARE,
            text: format!(
                "the main actor's argument --{clash} has the name of a standard flag; rename it"
            ),
        });
    }
    // The names a short form may stand for.
    let mut all: Vec<&str> = standard
        .iter()
        .copied()
        .filter(|name| !super::config::NO_SHORT_FORM.contains(name))
        .collect();
    all.extend(own.iter().flatten().map(String::as_str));

    let mut standard_fields = Vec::new();
    let mut own_fields = Vec::new();
    for flag in args::split(args).map_err(usage)? {
        let RawFlag { name, value, short } = flag;
        let long = if short {
            args::resolve_short(&name, &all).map_err(usage)?.to_owned()
        } else {
            name
        };
        let normal = long.replace('_', "-");
        if standard.contains(&normal.as_str()) {
            standard_fields.push((normal, value));
        } else {
            own_fields.push((long, value));
        }
    }

    let config: ProcessConfig =
        text::from_fields(&standard_fields, Source::Flag).map_err(|e| usage(e.to_string()))?;
    if let Err(e) = config.allowed_group() {
        return Err(usage(format!("--allow-group: {e}")));
    }
    if let Some(n) = config.worker_threads
        && !(1..=super::config::MAX_WORKER_THREADS).contains(&n)
    {
        return Err(usage(format!(
            "--worker-threads: {n} is not from 1 to {}",
            super::config::MAX_WORKER_THREADS
        )));
    }
    if let Some(n) = config.drain_time
        && n > super::config::MAX_DRAIN_SECONDS
    {
        return Err(usage(format!(
            "--drain-time: {n} is more than {}",
            super::config::MAX_DRAIN_SECONDS
        )));
    }
    if let Some(n) = config.max_requests
        && !(1..=super::retire::MAX_REQUESTS).contains(&n)
    {
        return Err(usage(format!(
            "--max-requests: {n} is not from 1 to {}",
            super::retire::MAX_REQUESTS
        )));
    }
    if config.help {
        return Ok(Parsed::Help(help_text(program, own.as_deref(), &all)));
    }
    if config.dump_types {
        return Ok(Parsed::Types);
    }
    // Secrets among the flags are opened now, so that the arguments see
    // plaintext; it is wiped once they are decoded.
    let key = match &config.secret_key_file {
        Some(path) => Some(super::secrets::load(path).map_err(config_error)?),
        None => None,
    };
    let mut own_fields = super::secrets::Wiped(own_fields);
    let secrets =
        super::secrets::open_fields(&mut own_fields.0, key.as_deref(), config.check_settings)
            .map_err(config_error)?;
    let arguments: A = match text::from_fields(&own_fields.0, Source::Flag) {
        Ok(arguments) => arguments,
        // `--check-settings` without the key checks all but the secrets'
        // own values.
        Err(e)
            if config.check_settings
                && key.is_none()
                && super::secrets::checked_without(&e, &secrets) =>
        {
            return super::secrets::check_around::<A>(&own_fields.0, &secrets)
                .map(|()| Parsed::Checked)
                .map_err(usage);
        }
        Err(e) => {
            return Err(usage(super::secrets::redacted(e, &secrets, &own_fields.0)));
        }
    };
    if config.check_settings {
        return Ok(Parsed::Checked);
    }
    Ok(Parsed::Run(Box::new(config), arguments))
}

/// The `--help` text: the main actor's own flags, then the standard ones.
fn help_text(program: &str, own: Option<&[String]>, all: &[&str]) -> String {
    let short = |long: &str| {
        let s = args::initials(long);
        match args::resolve_short(&s, all) {
            Ok(found) if found == long => format!("-{s}"),
            _ => String::new(),
        }
    };
    let spelled = |flag: &super::config::FlagHelp| {
        if flag.value.is_empty() {
            flag.name.to_owned()
        } else {
            format!("{}={}", flag.name, flag.value)
        }
    };
    let width = STANDARD_FLAGS
        .iter()
        .map(|f| spelled(f).len())
        .chain(own.unwrap_or_default().iter().map(String::len))
        .max()
        .unwrap_or(0);
    let mut out = format!("usage: {program} [--name=value ...]\n\n");
    match own {
        Some([]) => out.push_str(&format!("{program} takes no arguments of its own.\n")),
        Some(names) => {
            out.push_str(&format!("Arguments of {program}:\n"));
            for name in names {
                out.push_str(&format!("  --{name:<width$}  {}\n", short(name)));
            }
        }
        None => out.push_str(&format!("{program} takes any --name=value arguments.\n")),
    }
    out.push_str("\nStandard flags:\n");
    for flag in STANDARD_FLAGS {
        out.push_str(&format!(
            "  --{:<width$}  {:<4} {}\n",
            spelled(flag),
            short(flag.name),
            flag.text
        ));
    }
    out
}

/// The file name of `argv[0]`, for messages.
fn program_name(argv0: &str) -> String {
    std::path::Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "layer-cake".to_owned())
}

/// `my_crate::server` → `server`, the name the main actor logs under.
fn function_name<F>() -> &'static str {
    let full = std::any::type_name::<F>();
    let base = full.split('<').next().unwrap_or(full);
    base.split("::")
        .filter(|segment| !segment.is_empty() && !segment.starts_with('{'))
        .last()
        .unwrap_or(base)
}

/// The signals that drain the process and stop the main actor.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Takes over SIGINT and SIGTERM (before the main actor starts, so a
    /// signal sent once it is running is never lost).
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let hook = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("cannot catch {name}: {e}");
                    None
                }
            };
            Signals {
                interrupt: hook(SignalKind::interrupt(), "SIGINT"),
                terminate: hook(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next signal to arrive.
    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                if let Some(s) = s
                    && s.recv().await.is_some()
                {
                    return;
                }
                std::future::pending().await
            }
            tokio::select! {
                () = recv(&mut self.interrupt) => Signal { name: "SIGINT", number: 2 },
                () = recv(&mut self.terminate) => Signal { name: "SIGTERM", number: 15 },
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => Signal {
                    name: "Ctrl-C",
                    number: 2,
                },
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// A signal that stops the process.
#[derive(Debug, Clone, Copy)]
struct Signal {
    /// `SIGINT`, `SIGTERM`.
    name: &'static str,
    /// Its number (2, 15).
    number: i32,
}
