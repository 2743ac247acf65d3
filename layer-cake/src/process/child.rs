//! Child processes: another executable run as if it were a child actor.
//!
//! [`Context::spawn_process`] starts a program and returns the address of a
//! *proxy* actor, a child of the caller. Messages sent to the proxy go to the
//! child process's main actor (once the child has connected back); when the
//! process ends, the proxy ends and the caller receives
//! [`Returned`](crate::Returned) with the process's result, decoded from its
//! `--full-output`.
//!
//! The pieces:
//!
//! * **the hub** — one actor per process, created on the first
//!   `spawn_process`, listening natively on `127.0.0.1:0`. A child connects
//!   there and sends [`ChildReady`] with its one-time key and its main
//!   actor's address; the hub hands that to the proxy that owns the key.
//! * **the proxy** — runs the process, copies its stderr through (keeping
//!   the last lines for a fault), drains its stdout, forwards messages to
//!   the main actor, turns `Stop` into SIGINT, and returns the result.
//! * **the child side** ([`child_side`], called by
//!   [`run`](super::run)) — connects back when `--connect-to-parent` is
//!   given, and stops the main actor when the parent goes away: its stdin
//!   (the lifeline, held open by the proxy) reaches end of file, or the
//!   connect-back link closes.
//!
//! See "Child processes" in `docs/processes.md`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use super::config::ProcessConfig;
use crate::message::codec::json;
use crate::net::{
    Accepted, Closed, ConnectOptions, Connected, HostPort, ListenOptions, Listening, NotConnected,
    NotListening,
};
use crate::runtime::{self, Address, Context, SpawnOptions};
use crate::{FAULTY_EXIT, Faulted, Payload, Stop, on};

/// How many lines of a child's stderr a fault quotes, unless
/// [`ProcessOptions::stderr_lines`] says otherwise.
pub const DEFAULT_STDERR_LINES: usize = 20;

/// How long a child has to end after SIGINT before it is killed, unless
/// [`ProcessOptions::stop_grace`] says otherwise.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a child whose parent has gone gives its main actor to end
/// before it exits by itself.
pub const LIFELINE_GRACE: Duration = Duration::from_secs(5);

/// How long the hub may take to start listening.
const HUB_DEADLINE: Duration = Duration::from_secs(20);

/// How long the output pipes may stay open after the process has exited (a
/// grandchild may hold them) before what was read so far is used.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// How to start a child process with [`Context::spawn_process`].
///
/// ```
/// use layer_cake::process::ProcessOptions;
///
/// let options = ProcessOptions::new("test_function_5")
///     .flag("x", "2")
///     .flag("y", "3")
///     .role_name("texture-1");
/// assert_eq!(options.name(), "texture-1");
/// ```
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    program: PathBuf,
    words: Vec<String>,
    flags: Vec<(String, String)>,
    role_name: Option<String>,
    env: Vec<(String, String)>,
    stderr_lines: usize,
    stop_grace: Duration,
    secret_key: Option<std::sync::Arc<crate::secret::SecretKey>>,
}

impl ProcessOptions {
    /// Runs `program`: a path, or a bare name looked up next to the current
    /// executable, then on `PATH` (see [`find_program`]).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        ProcessOptions {
            program: program.into(),
            words: Vec::new(),
            flags: Vec::new(),
            role_name: None,
            env: Vec::new(),
            stderr_lines: DEFAULT_STDERR_LINES,
            stop_grace: DEFAULT_STOP_GRACE,
            secret_key: None,
        }
    }

    /// Adds a positional word to the command line (before the flags).
    pub fn arg(mut self, word: impl Into<String>) -> Self {
        self.words.push(word.into());
        self
    }

    /// Adds the flag `--name=value`; the value is passed verbatim (`"2"`, a
    /// JSON fragment, a `HostPort` as `127.0.0.1:5050`).
    pub fn flag(mut self, name: &str, value: impl Into<String>) -> Self {
        self.flags.push((name.to_owned(), value.into()));
        self
    }

    /// The child's role: passed as `--role-name`, and the proxy actor's
    /// name. Default: the program's file name.
    pub fn role_name(mut self, name: impl Into<String>) -> Self {
        self.role_name = Some(name.into());
        self
    }

    /// Sets an environment variable for the child (it inherits the rest).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How many of the last lines of the child's stderr a fault quotes.
    pub fn stderr_lines(mut self, lines: usize) -> Self {
        self.stderr_lines = lines;
        self
    }

    /// How long the child has to end after SIGINT before it is killed.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Hands the child `key`, which opens the secrets among its flags
    /// (`docs/secrets.md`): it goes over the child's stdin, as the first
    /// line, and the child is given `--secret-key-file=-`. Never on the
    /// command line or in the environment.
    pub fn secret_key(mut self, key: std::sync::Arc<crate::secret::SecretKey>) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// The role name: as given, or the program's file name.
    pub fn name(&self) -> String {
        self.role_name.clone().unwrap_or_else(|| {
            self.program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "child-process".to_owned())
        })
    }

    /// The sub-role the child gets when this process is a role of a home
    /// (`--home-path` and `--role-name`) and the options do not name a home
    /// themselves: `<this role>.<the child's name>`.
    fn sub_role(&self, config: &ProcessConfig) -> Option<String> {
        match (&config.home_path, &config.role_name) {
            (Some(_), Some(parent)) if !self.has_flag("home-path") => {
                super::sub_role_name(parent, &self.name())
            }
            _ => None,
        }
    }

    /// The `--role-name` the child gets: its sub-role, else its name.
    fn role_in(&self, config: &ProcessConfig) -> String {
        self.sub_role(config).unwrap_or_else(|| self.name())
    }

    /// Whether the options give the flag `name` themselves.
    fn has_flag(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    /// The child's arguments (without the program): the words, the flags,
    /// the standard flags of a child, the ones inherited from this process
    /// (`config`) and the connect-back flags.
    /// The one-time key is not among them: it goes over stdin.
    pub(crate) fn arguments(&self, config: &ProcessConfig, hub: &HostPort) -> Vec<String> {
        let mut out = self.words.clone();
        out.extend(self.flags.iter().map(|(n, v)| format!("--{n}={v}")));
        out.push("--child-process".into());
        out.push("--full-output".into());
        out.push(format!("--role-name={}", self.role_in(config)));
        // A role of a home gives its children roles of their own there
        // (sub-roles, `<role>.<child>`), unless the options say where.
        if let Some(home) = &config.home_path
            && !self.has_flag("home-path")
            && self.sub_role(config).is_some()
        {
            out.push(format!("--home-path={}", home.display()));
        }
        if let Some(level) = config.debug_level
            && !self.has_flag("debug-level")
        {
            out.push(format!("--debug-level={level}"));
        }
        if let Some(directory) = &config.connect_to_directory
            && !self.has_flag("connect-to-directory")
        {
            out.push(format!("--connect-to-directory={directory}"));
        }
        if let Some(group) = &config.allow_group
            && !self.has_flag("allow-group")
        {
            out.push(format!("--allow-group={group}"));
        }
        if let Some(threads) = config.worker_threads
            && !self.has_flag("worker-threads")
        {
            out.push(format!("--worker-threads={threads}"));
        }
        if let Some(seconds) = config.drain_time
            && !self.has_flag("drain-time")
        {
            out.push(format!("--drain-time={seconds}"));
        }
        if self.secret_key.is_some() {
            out.push(format!("--secret-key-file={}", super::secrets::FROM_STDIN));
        }
        out.push(format!("--connect-to-parent={hub}"));
        out
    }
}

/// Finds the executable `name`: next to the current executable first, then
/// in the folders of `PATH`. `None` if it is in neither.
///
/// ```
/// // `sh` is on PATH on every Unix.
/// assert!(layer_cake::process::find_program("sh").is_some());
/// assert!(layer_cake::process::find_program("no-such-program-anywhere").is_none());
/// ```
pub fn find_program(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(path)
        .map(|folder| folder.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file with an execute bit: what [`find_program`]
/// (and the CLI's `add`) take as a program.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The program to run: a path as it is, a bare name found by
/// [`find_program`].
fn resolve(program: &Path) -> Result<PathBuf, Faulted> {
    if program.components().count() > 1 {
        return Ok(program.to_path_buf());
    }
    let name = program.to_string_lossy();
    find_program(&name).ok_or_else(|| {
        Faulted::new("cannot find program").with_explanation(format!(
            "{name} is neither next to this executable nor on PATH"
        ))
    })
}

/// A child process's first message to its parent: "I am the child holding
/// `key`, and my main actor is `main`". Sent over the connect-back link to
/// the parent's hub, which passes it to the proxy that owns the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, crate::Message)]
#[message(control)]
pub struct ChildReady {
    /// The one-time key, the first line the parent wrote to the child's
    /// stdin.
    pub key: String,
    /// The child's main actor, reached over the link.
    pub main: Address,
}

/// A child process's word to its parent that its main actor is retiring
/// (`--max-requests` reached, or SIGUSR1): sent over the connect-back link
/// to the parent's hub with the child's key, and passed by the hub to the
/// proxy, which tells the actor that started the child with [`Retiring`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, crate::Message)]
#[message(control)]
pub struct ChildRetiring {
    /// The one-time key of the child.
    pub key: String,
    /// Why it retires: `max-requests` or `SIGUSR1`.
    pub reason: String,
}

/// Sent by a child process's proxy to the actor that started the child
/// ([`Context::spawn_process`]) when the child's main actor starts to
/// retire: it should be sent nothing new, it answers what it holds, and
/// then exits 0 with [`Retired`](super::Retired). The return address is the
/// proxy. A spool takes such a worker out of its rotation at once and
/// starts a fresh one when it has exited; other actors may ignore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, crate::Message)]
#[message(control, name = "layer_cake.process.Retiring")]
pub struct Retiring {
    /// Why it retires: `max-requests` or `SIGUSR1`.
    pub reason: String,
}

/// The parent-link actor of this process, when it is a child process
/// (`--connect-to-parent`).
static PARENT_LINK: OnceLock<Address> = OnceLock::new();

/// Tells the parent-link actor that the main actor retires.
#[derive(Debug, Clone, Serialize, Deserialize, crate::Message)]
#[message(control)]
struct TellRetiring {
    reason: String,
}

/// Tells this process's parent, if it is a child process, that its main
/// actor is retiring for `reason` (see [`Retiring`]).
pub(crate) fn tell_parent_retiring(reason: &str) {
    if let Some(link) = PARENT_LINK.get() {
        let _ = link.send(TellRetiring {
            reason: reason.to_owned(),
        });
    }
}

impl Context {
    /// Starts the child process `options` describes and returns the address
    /// of its proxy actor, a child actor of `self`.
    ///
    /// Every message sent to the proxy is forwarded to the child's main
    /// actor, keeping its return address and request id, so the answer goes
    /// straight back to the sender; messages that arrive before the child
    /// has connected back are held, in order, until it has. When the process
    /// ends, the proxy ends and this actor receives
    /// [`Returned`](crate::Returned) with the process's result (its value,
    /// its `Faulted`, or a "non-standard process exit" fault with the exit
    /// status and the end of its stderr). [`Stop`] sent to the proxy sends
    /// SIGINT to the child (SIGKILL after [`ProcessOptions::stop_grace`]) and
    /// the proxy returns `Faulted::aborted()`.
    ///
    /// The child stops when this process ends, however it ends: see "Child
    /// processes" in `docs/processes.md`. A process should use one tokio
    /// runtime for its child processes: the hub they connect back to lives
    /// on the runtime of the first `spawn_process`.
    ///
    /// ```no_run
    /// use layer_cake::process::ProcessOptions;
    /// use layer_cake::{Context, Faulted, Returned};
    ///
    /// async fn parent(mut cx: Context) -> Result<Vec<Vec<f64>>, Faulted> {
    ///     cx.spawn_process(ProcessOptions::new("test_function_5").flag("x", "2").flag("y", "2"));
    ///     let returned = cx.input().await.downcast::<Returned>().map_err(|_| Faulted::new("?"))?;
    ///     returned.into_result::<Vec<Vec<f64>>>()
    /// }
    /// ```
    pub fn spawn_process(&mut self, options: ProcessOptions) -> Address {
        let name = options.name();
        self.spawn_with(SpawnOptions::new().name(name), move |cx| async move {
            crate::runtime::AnyReturn(proxy(cx, options).await)
        })
    }
}

/// The keys of the children that have not yet connected back, with the
/// proxy each belongs to.
fn waiting() -> &'static Mutex<HashMap<String, Address>> {
    static WAITING: OnceLock<Mutex<HashMap<String, Address>>> = OnceLock::new();
    WAITING.get_or_init(Default::default)
}

/// A key in [`waiting`], taken out when the proxy ends.
struct Claim(String);

impl Claim {
    fn new(key: &str, proxy: Address) -> Self {
        waiting()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), proxy);
        Claim(key.to_owned())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        waiting()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// The running hub: its address and where it listens.
struct Hub {
    address: Address,
    at: HostPort,
}

/// Where the hub listens, starting it on first use (or again, if the one
/// before ended with its runtime).
async fn hub_at() -> Result<HostPort, Faulted> {
    static HUB: tokio::sync::Mutex<Option<Hub>> = tokio::sync::Mutex::const_new(None);
    let mut hub = HUB.lock().await;
    if let Some(h) = hub.as_ref()
        && !h.address.is_closed()
    {
        return Ok(h.at.clone());
    }
    let (ready, listening) = tokio::sync::oneshot::channel();
    let handle = runtime::spawn_with(SpawnOptions::new().name("process-hub"), move |cx| {
        hub_actor(cx, ready)
    });
    let at = match tokio::time::timeout(HUB_DEADLINE, listening).await {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => return Err(Faulted::new("the process hub ended before listening")),
        Err(_) => {
            let _ = handle.address().send(Stop);
            return Err(Faulted::timed_out(
                "the process hub did not start listening",
            ));
        }
    };
    *hub = Some(Hub {
        address: handle.address().clone(),
        at: at.clone(),
    });
    Ok(at)
}

/// Listens for children connecting back and passes each [`ChildReady`] to
/// the proxy holding its key.
async fn hub_actor(
    mut cx: Context,
    ready: tokio::sync::oneshot::Sender<Result<HostPort, Faulted>>,
) -> Result<(), Faulted> {
    cx.listen(HostPort::new("127.0.0.1", 0), ListenOptions::native());
    let mut ready = Some(ready);
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(l.listening));
                }
            },
            NotListening as n => {
                let fault = n.into_fault();
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(fault.clone()));
                }
                return Err(fault);
            },
            ChildReady as child => {
                // The key stays until its proxy ends: a retiring child
                // names it again (`ChildRetiring`).
                let proxy = waiting()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&child.key)
                    .cloned();
                match proxy {
                    Some(proxy) => {
                        let _ = cx.send(child, &proxy);
                    }
                    None => tracing::warn!(
                        from = %cx.return_address(),
                        "refused a child process connecting back with an unknown key"
                    ),
                }
            },
            ChildRetiring as child => {
                let proxy = waiting()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&child.key)
                    .cloned();
                if let Some(proxy) = proxy {
                    let _ = cx.send(child, &proxy);
                }
            },
            Accepted as _ => {},
            Closed as _ => {},
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("the process hub ignores {}", other.signature()),
        })
    }
}

/// The proxy actor: runs the process and stands in for its main actor.
async fn proxy(mut cx: Context, options: ProcessOptions) -> Result<Payload, Faulted> {
    let program = resolve(&options.program)?;
    let name = options.name();
    let hub = hub_at().await?;
    let key = format!("{:016x}", rand::random::<u64>());
    let _claim = Claim::new(&key, cx.address().clone());

    let mut command = tokio::process::Command::new(&program);
    command
        .args(options.arguments(super::config(), &hub))
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at the terminal reaches this
        // process, which stops its children in order.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| Faulted::from_error(format!("cannot start {}", program.display()), &e))?;
    tracing::info!(pid = child.id(), program = %program.display(), role = %name, "Started a child process");
    // The lifeline: the key's line, then nothing; closed when this proxy
    // ends (or this process dies), which the child sees as end of file. The
    // key travels here rather than on the command line or in the
    // environment, which other local users can read in /proc.
    let pid = child.id();
    let mut lifeline = child.stdin.take();
    // The secret key, if the child is given one, comes first: the child
    // reads it before its flags; then the connect-back key.
    let mut first = zeroize::Zeroizing::new(String::new());
    if let Some(secret) = &options.secret_key {
        first.push_str(&secret.to_line());
        first.push('\n');
    }
    first.push_str(&key);
    first.push('\n');
    if let Some(pipe) = lifeline.as_mut()
        && let Err(e) = pipe.write_all(first.as_bytes()).await
    {
        // The child ended at once (it will be reported as such) or does not
        // read its stdin; either way it cannot connect back.
        tracing::warn!(role = %name, "cannot hand the child its key over stdin: {e}");
    }
    let stdout = child.stdout.take().map(|out| tokio::spawn(read_all(out)));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(copy_and_keep_tail(err, options.stderr_lines, pid)));

    let mut main: Option<Address> = None;
    // Set when a message could not reach the main actor because the link
    // to the child has closed: the child is gone or going.
    let mut unreachable = false;
    let mut stopping = false;
    // Set once messages for the child go to it straight from their senders.
    let mut redirected = false;
    let mut kill_at: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let status = loop {
        // Once the child has connected and nothing held here is still to be
        // passed on, this proxy leaves the path: senders write to the link
        // themselves, which saves a wake-up and a hop per message. It stays
        // for the lifecycle (`Stop`, the exit), and gets back what the link
        // refuses once it has closed.
        if !redirected
            && !unreachable
            && let Some(to) = &main
        {
            redirected = cx.redirect_user_messages(to);
            if redirected {
                tracing::debug!(role = %name, "Messages now go straight to the child process");
            }
        }
        let grace_over = async {
            match kill_at.as_mut() {
                Some(sleep) => sleep.as_mut().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status,
            () = grace_over => {
                tracing::warn!(role = %name, "the child did not stop within {:?} of SIGINT; killing it", options.stop_grace);
                let _ = child.start_kill();
                kill_at = None;
            }
            message = cx.input() => on!(message, {
                Stop as _ => {
                    if !stopping {
                        stopping = true;
                        interrupt(&child);
                        kill_at = Some(Box::pin(tokio::time::sleep(options.stop_grace)));
                    }
                },
                ChildRetiring as retiring => {
                    if retiring.key == key && main.is_some() {
                        tracing::debug!(role = %name, reason = %retiring.reason, "The child process is retiring");
                        let _ = cx.send(Retiring { reason: retiring.reason }, &cx.parent().clone());
                    }
                },
                ChildReady as ready => {
                    if ready.key == key && main.is_none() {
                        tracing::debug!(role = %name, main = %ready.main, "The child process connected back");
                        main = Some(ready.main);
                        cx.restore_saved();
                    } else {
                        tracing::warn!(role = %name, "ignored a ChildReady that is not this child's");
                    }
                },
                other => match &main {
                    Some(_) if unreachable => hold(&mut cx, other),
                    Some(to) => {
                        if let Err((other, why)) = pass_on(&cx, other, to) {
                            tracing::warn!(role = %name, "{why}; the child is gone or going");
                            unreachable = true;
                            if !stopping && kill_at.is_none() {
                                // A child without its link serves no one:
                                // make sure it ends, so that the proxy ends
                                // and what it holds is answered.
                                interrupt(&child);
                                kill_at = Some(Box::pin(tokio::time::sleep(options.stop_grace)));
                            }
                            hold(&mut cx, other);
                        }
                    }
                    None => cx.save(other),
                },
            }),
        }
    };
    drop(lifeline);
    let out = drained(stdout).await.unwrap_or_default();
    let tail: Vec<String> = drained(stderr).await.map(Vec::from).unwrap_or_default();
    let status =
        status.map_err(|e| Faulted::from_error("cannot wait for the child process", &e))?;
    tracing::info!(role = %name, %status, "The child process ended");
    if stopping {
        return Err(Faulted::aborted());
    }
    outcome(&name, status, &out, &tail)
}

/// Forwards `message` to the child's main actor.
///
/// When the main actor cannot be reached — the link to the child has
/// closed, so the child is gone or going — the message comes back with the
/// reason, for [`hold`]: it was never delivered, so it must not be answered
/// by this (still running) proxy as if the worker had answered it. A request
/// that can never be forwarded (too many queued, or not encodable) is
/// answered with a fault saying so.
fn pass_on(cx: &Context, message: Payload, main: &Address) -> Result<(), (Payload, String)> {
    use crate::runtime::SendError;
    let signature = message.signature();
    let refused = match cx.forward_payload(message, main) {
        Ok(()) => return Ok(()),
        Err(
            SendError::Closed(message)
            | SendError::NoAddress(message)
            | SendError::Unreachable(message, _),
        ) => {
            let why = format!("cannot pass {signature} to the child process: its link has closed");
            return Err((message, why));
        }
        Err(SendError::Full(_)) => Faulted::overloaded(format!(
            "cannot pass {signature} to the child process: too many messages are queued for it"
        )),
        Err(SendError::Unencodable(_)) => Faulted::new("cannot send the request").with_explanation(
            format!("{signature} cannot be encoded for the child process"),
        ),
    };
    if cx.request_id().is_some() {
        let _ = cx.reply(refused);
    } else {
        tracing::warn!("{refused}");
    }
    Ok(())
}

/// Keeps a request the child can no longer be given until the proxy ends.
///
/// The proxy ends soon after (the child is gone, or is stopped), and the
/// runtime then answers every request it still holds with a `Lost` fault
/// ("not answered: … ended before answering …") from the ended proxy. That
/// is what a caller asking directly gets, and what a spool recognises as
/// "the worker is gone": the request goes to another worker, as it must,
/// since no worker ever ran it. Anything else is dropped with a warning.
fn hold(cx: &mut Context, message: Payload) {
    if cx.request_id().is_some() {
        cx.save(message);
    } else {
        tracing::warn!("dropped {}: the child process is gone", message.signature());
    }
}

/// Sends SIGINT to the child, if it is still running.
fn interrupt(child: &tokio::process::Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok())
        && let Err(e) = kill(Pid::from_raw(pid), Signal::SIGINT)
    {
        tracing::warn!(pid, "cannot interrupt the child process: {e}");
    }
}

/// What a reader task collected, waiting at most [`DRAIN_DEADLINE`].
async fn drained<T: Default>(task: Option<tokio::task::JoinHandle<T>>) -> Option<T> {
    let task = task?;
    let abort = task.abort_handle();
    match tokio::time::timeout(DRAIN_DEADLINE, task).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(_)) => None,
        Err(_) => {
            abort.abort();
            tracing::warn!("a child's output stayed open after it exited");
            None
        }
    }
}

/// Reads a pipe to its end.
async fn read_all(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = pipe.read_to_end(&mut out).await {
        tracing::warn!("cannot read a child's stdout: {e}");
    }
    out
}

/// Copies each line of a child's stderr to this process's stderr as it
/// comes, keeping the last `keep`. A line that does not start with a pid
/// prefix (`[00012345] `, as log lines do) gets the child's, so that the
/// lines of processes sharing a stderr can be told apart — and so that
/// `layer-cake log` can find a role's lines by its pids.
async fn copy_and_keep_tail(
    pipe: impl AsyncRead + Unpin,
    keep: usize,
    pid: Option<u32>,
) -> VecDeque<String> {
    use std::io::Write;
    let mut lines = BufReader::new(pipe);
    let mut tail = VecDeque::with_capacity(keep.min(64));
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match lines.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        {
            let mut err = std::io::stderr().lock();
            if let Some(pid) = pid
                && !has_pid_prefix(&raw)
            {
                let _ = write!(err, "[{pid:08}] ");
            }
            let _ = err.write_all(&raw);
            if !raw.ends_with(b"\n") {
                let _ = err.write_all(b"\n");
            }
        }
        if keep > 0 {
            if tail.len() == keep {
                tail.pop_front();
            }
            let line = String::from_utf8_lossy(&raw);
            tail.push_back(line.trim_end_matches(['\n', '\r']).to_owned());
        }
    }
    tail
}

/// Whether a line starts `[` eight digits `]`.
fn has_pid_prefix(line: &[u8]) -> bool {
    line.len() >= 10
        && line[0] == b'['
        && line[9] == b']'
        && line[1..9].iter().all(u8::is_ascii_digit)
}

/// The process's result from how it exited and what it printed.
///
/// | exit | stdout | result |
/// |---|---|---|
/// | 0 | empty | `()` |
/// | 0 | a typed value | that value |
/// | any other | a typed `Faulted` | that fault |
/// | anything else | | "non-standard process exit" |
pub(crate) fn outcome(
    name: &str,
    status: ExitStatus,
    stdout: &[u8],
    stderr_tail: &[String],
) -> Result<Payload, Faulted> {
    use std::os::unix::process::ExitStatusExt;
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    let mut problem = None;
    match status.code() {
        Some(0) if text.is_empty() => return Ok(Payload::new(())),
        Some(0) => match json::from_typed_str_or_opaque(text) {
            Ok(value) => return Ok(value),
            Err(e) => problem = Some(format!("output not understood: {e}")),
        },
        Some(_) if !text.is_empty() => {
            if let Ok(value) = json::from_typed_str(text)
                && let Ok(fault) = value.downcast::<Faulted>()
            {
                return Err(fault);
            }
            problem = Some(format!("output not understood: {}", clip(text, 200)));
        }
        _ => {}
    }
    let (exit_status, how) = match (status.code(), status.signal()) {
        (Some(code), _) => (code, format!("{name} exited with status {code}")),
        (None, Some(signo)) => {
            let signal = nix::sys::signal::Signal::try_from(signo)
                .map_or_else(|_| format!("signal {signo}"), |s| s.as_str().to_owned());
            (128 + signo, format!("{name} was killed by {signal}"))
        }
        (None, None) => (FAULTY_EXIT, format!("{name} ended ({status})")),
    };
    let mut explanation = how;
    if let Some(problem) = problem {
        explanation.push_str("; ");
        explanation.push_str(&problem);
    }
    if !stderr_tail.is_empty() {
        explanation.push_str("; stderr:\n");
        explanation.push_str(&stderr_tail.join("\n"));
    }
    Err(Faulted::new("non-standard process exit")
        .with_exit_status(exit_status)
        .with_explanation(explanation))
}

/// At most `max` characters of `text`.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The child's side, started by [`run`](super::run) once the main actor is
/// running: when `--connect-to-parent` is given, connect back and introduce
/// the main actor, and stop it when the parent goes away (the link closes or
/// stdin, the lifeline, reaches end of file).
pub(crate) fn child_side(config: &ProcessConfig, main: &Address) {
    let Some(at) = config.connect_to_parent.clone() else {
        // `layer-cake run` holds a lifeline to the group-cake it starts in
        // the foreground, so that killing the command ends the composite.
        if config.origin == super::Origin::Run && stdin_is_pipe() {
            watch_lifeline(main, None);
        }
        return;
    };
    if !stdin_is_pipe() {
        parent_gone(
            main,
            "--connect-to-parent needs the parent's key on stdin, which is not a pipe",
        );
        return;
    }
    let (key, keyed) = tokio::sync::oneshot::channel();
    let linked = main.clone();
    let link = runtime::spawn_with(SpawnOptions::new().name("parent-link"), move |cx| {
        parent_link(cx, at, keyed, linked)
    });
    let _ = PARENT_LINK.set(link.address().clone());
    watch_lifeline(main, Some(key));
}

/// The longest key line read from stdin.
const MAX_KEY_LINE: u64 = 256;

/// Reads the parent's key, the first line of stdin: `None` when stdin ends
/// first or the line is not a key (empty, too long, not text).
fn read_key(stdin: &mut impl std::io::BufRead) -> Option<String> {
    use std::io::{BufRead, Read};
    let mut line = Vec::new();
    stdin
        .by_ref()
        .take(MAX_KEY_LINE)
        .read_until(b'\n', &mut line)
        .ok()?;
    let line = line.strip_suffix(b"\n")?;
    let key = std::str::from_utf8(line).ok()?.trim();
    (!key.is_empty()).then(|| key.to_owned())
}

/// Stops `main` (and then the process) when stdin, the lifeline a parent
/// holds, reaches its end. With `key`, the first line of stdin is the
/// parent's connect-back key, handed over there first.
fn watch_lifeline(main: &Address, key: Option<tokio::sync::oneshot::Sender<Option<String>>>) {
    let watched = main.clone();
    let started = std::thread::Builder::new()
        .name("lifeline".into())
        .spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            if let Some(key) = key {
                let _ = key.send(read_key(&mut stdin));
            }
            let mut buffer = [0u8; 64];
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            parent_gone(&watched, "stdin (the lifeline) closed");
        });
    if let Err(e) = started {
        tracing::warn!("cannot watch the lifeline: {e}");
    }
}

/// Whether stdin is a pipe (the lifeline a parent holds), rather than a
/// terminal or `/dev/null`.
fn stdin_is_pipe() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_fifo())
}

/// Waits for the key from stdin, connects back to the parent's hub and
/// introduces the main actor; stops the main actor when there is no key, or
/// the link cannot be made or closes.
async fn parent_link(
    mut cx: Context,
    at: HostPort,
    key: tokio::sync::oneshot::Receiver<Option<String>>,
    main: Address,
) {
    let Ok(Some(key)) = key.await else {
        parent_gone(
            &main,
            "stdin ended before the parent's key (its first line)",
        );
        return;
    };
    cx.connect(at.clone(), ConnectOptions::native());
    // The parent's hub, once connected; a retirement told before then.
    let mut hub: Option<Address> = None;
    let mut retiring: Option<String> = None;
    loop {
        let message = cx.input().await;
        on!(message, {
            Connected as c => {
                let ready = ChildReady { key: key.clone(), main: main.clone() };
                if let Err(e) = cx.send(ready, &c.proxy) {
                    parent_gone(&main, &format!("cannot introduce the main actor to the parent: {e}"));
                    return;
                }
                if let Some(reason) = retiring.take() {
                    let _ = cx.send(ChildRetiring { key: key.clone(), reason }, &c.proxy);
                }
                hub = Some(c.proxy);
            },
            TellRetiring as t => match &hub {
                Some(hub) => {
                    let _ = cx.send(ChildRetiring { key: key.clone(), reason: t.reason }, hub);
                }
                None => retiring = Some(t.reason),
            },
            NotConnected as n => {
                parent_gone(&main, &format!("cannot connect back to the parent at {at}: {}", n.reason));
                return;
            },
            Closed as c => {
                parent_gone(&main, &format!("the link to the parent closed ({})", c.note));
                return;
            },
            Stop as _ => return,
            other => tracing::warn!("parent-link ignores {}", other.signature()),
        })
    }
}

/// The parent has gone: stop the main actor, and exit if it has not ended
/// within [`LIFELINE_GRACE`]. Only the first call does anything.
fn parent_gone(main: &Address, why: &str) {
    static GONE: AtomicBool = AtomicBool::new(false);
    if GONE.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::warn!("{why}: the parent is gone, stopping the main actor");
    let _ = main.send(Stop);
    let _ = std::thread::Builder::new()
        .name("lifeline-grace".into())
        .spawn(|| {
            std::thread::sleep(LIFELINE_GRACE);
            eprintln!(
                "the parent is gone and the main actor did not end within {LIFELINE_GRACE:?}; exiting"
            );
            std::process::exit(FAULTY_EXIT);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn the_key_is_the_first_line_of_stdin() {
        let mut input: &[u8] = b"0123abcd\nmore";
        assert_eq!(read_key(&mut input).as_deref(), Some("0123abcd"));
        // The rest stays for the lifeline to read.
        assert_eq!(input, b"more");
        for bad in [&b""[..], b"no newline", b"\n", b"  \n", b"\xff\xfe\n"] {
            let mut input = bad;
            assert_eq!(read_key(&mut input), None, "{bad:?}");
        }
        let long = vec![b'k'; 1000];
        assert_eq!(read_key(&mut &long[..]), None);
    }

    #[test]
    fn the_command_line_ends_with_the_child_flags() {
        let options = ProcessOptions::new("worker")
            .arg("word")
            .flag("x", "2")
            .role_name("w-1");
        let config = ProcessConfig {
            debug_level: Some(crate::log::DebugLevel::CONSOLE),
            connect_to_directory: Some(HostPort::new("127.0.0.1", 7)),
            allow_group: Some("layer-cake".into()),
            worker_threads: Some(1),
            drain_time: Some(3),
            ..ProcessConfig::default()
        };
        let args = options.arguments(&config, &HostPort::new("127.0.0.1", 9));
        assert_eq!(
            args,
            [
                "word",
                "--x=2",
                "--child-process",
                "--full-output",
                "--role-name=w-1",
                "--debug-level=CONSOLE",
                "--connect-to-directory=127.0.0.1:7",
                "--allow-group=layer-cake",
                "--worker-threads=1",
                "--drain-time=3",
                "--connect-to-parent=127.0.0.1:9",
            ]
        );
        let overridden = ProcessOptions::new("worker").flag("connect-to-directory", "1.2.3.4:5");
        let args = overridden.arguments(&config, &HostPort::new("127.0.0.1", 9));
        assert_eq!(args.iter().filter(|a| a.contains("directory")).count(), 1);
        assert_eq!(overridden.name(), "worker");
    }

    /// A role of a home gives its children sub-roles there; a child whose
    /// options name a home (group-cake's roles) keeps its own name.
    #[test]
    fn a_role_s_children_are_its_sub_roles() {
        let config = ProcessConfig {
            home_path: Some("/srv/app/.layer-cake".into()),
            role_name: Some("server".into()),
            ..ProcessConfig::default()
        };
        let hub = HostPort::new("127.0.0.1", 9);
        let args = ProcessOptions::new("worker")
            .role_name("w-1")
            .arguments(&config, &hub);
        assert!(
            args.contains(&"--role-name=server.w-1".to_owned()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--home-path=/srv/app/.layer-cake".to_owned()),
            "{args:?}"
        );
        let args = ProcessOptions::new("/bin/test_worker_7").arguments(&config, &hub);
        assert!(
            args.contains(&"--role-name=server.test_worker_7".to_owned()),
            "{args:?}"
        );
        // Its own home: a role of its own, as group-cake starts them.
        let args = ProcessOptions::new("worker")
            .role_name("worker")
            .flag("home-path", "/srv/app/.layer-cake")
            .arguments(&config, &hub);
        assert!(args.contains(&"--role-name=worker".to_owned()), "{args:?}");
        assert_eq!(
            args.iter().filter(|a| a.starts_with("--home-path")).count(),
            1
        );
        // A name that cannot be a role: the child runs outside the home.
        let args = ProcessOptions::new("worker")
            .role_name("a name with spaces")
            .arguments(&config, &hub);
        assert!(
            args.contains(&"--role-name=a name with spaces".to_owned()),
            "{args:?}"
        );
        assert!(
            !args.iter().any(|a| a.starts_with("--home-path")),
            "{args:?}"
        );
        // Not a role of a home: nothing changes.
        let args = ProcessOptions::new("worker")
            .role_name("w-1")
            .arguments(&ProcessConfig::default(), &hub);
        assert!(args.contains(&"--role-name=w-1".to_owned()), "{args:?}");
        assert!(
            !args.iter().any(|a| a.starts_with("--home-path")),
            "{args:?}"
        );
    }

    #[test]
    fn outcomes() {
        let value = outcome("p", exited(0), br#"{"value":["integer8",7,[]]}"#, &[]).unwrap();
        assert_eq!(value.downcast::<i64>().unwrap(), 7);
        assert!(outcome("p", exited(0), b"\n", &[]).unwrap().is::<()>());

        let fault = Faulted::new("bad dimensions").with_exit_status(3);
        let text = json::to_typed_string(&Payload::new(fault.clone()), false).unwrap();
        assert_eq!(
            outcome("p", exited(3), text.as_bytes(), &[]).unwrap_err(),
            fault
        );

        let usage = outcome("p", exited(2), b"", &["p: unknown flag --z".into()]).unwrap_err();
        assert_eq!(usage.condition, "non-standard process exit");
        assert_eq!(usage.exit_status, Some(2));
        assert!(usage.explanation.unwrap().contains("unknown flag --z"));

        let killed = outcome("p", ExitStatus::from_raw(9), b"", &[]).unwrap_err();
        assert_eq!(killed.exit_status, Some(137));
        assert!(killed.explanation.unwrap().contains("SIGKILL"));

        let garbled = outcome("p", exited(0), b"not json", &[]).unwrap_err();
        assert!(garbled.explanation.unwrap().contains("not understood"));
    }
}
