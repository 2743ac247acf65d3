//! The commands that run a home: `run` (in the foreground), `start` (in
//! the background), `stop`, `status` and `log`.
//!
//! Both `run` and `start` start `group-cake` as the home's group role; it
//! starts and supervises the roles. "Running" means holding the role's lock
//! (`layer_cake::home::Role::running`), which the kernel releases however a
//! process ends, so `status` never shows a dead process as running.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use layer_cake::home::{GROUP_ROLE, Home, Role, Settings};

use crate::roles;

/// How long `stop` waits for the composite to end.
const STOP_PATIENCE: Duration = Duration::from_secs(30);

/// The settings of the group role that group-cake takes as flags.
const GROUP_FLAGS: &[&str] = &[
    "directory-at-host",
    "directory-at-lan",
    "retry",
    "main-role",
    "debug-level",
];

/// What to run, and how.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    /// Role patterns; all roles when empty.
    pub patterns: Vec<String>,
    /// Overrides the group's `--main-role`.
    pub main_role: Option<String>,
    /// Passed to group-cake and its roles.
    pub debug_level: Option<String>,
    /// The key that opens the roles' secret settings, handed to group-cake
    /// over its stdin (`--secret-key-file=-`; `docs/secrets.md`).
    pub secret_key: Option<std::sync::Arc<layer_cake::secret::SecretKey>>,
}

/// The group-cake command line for `home`.
pub fn group_command(
    home: &Home,
    args: &RunArgs,
    origin: &str,
) -> Result<std::process::Command, String> {
    let group = home.role(GROUP_ROLE).map_err(|e| e.to_string())?;
    if let Some(running) = group.running() {
        return Err(format!(
            "{} is already running (group-cake pid {})",
            home.path().display(),
            running.pid
        ));
    }
    // Check the patterns now, for a clear error before anything starts.
    let selected = roles::some_roles(home, &args.patterns)?;
    if let Some(role) = selected.iter().find(|r| r.is_group()) {
        return Err(format!(
            "\"{}\" is the group itself, not a role to run",
            role.name()
        ));
    }
    roles::refuse_running(&selected)?;
    // The group role stores "group-cake"; a copy in script/ wins.
    let stored = group.executable().map_err(|e| e.to_string())?;
    let program = home.program(&stored);
    if !layer_cake::process::is_executable(&program) {
        return Err(format!(
            "cannot find {stored} in {}, next to layer-cake or on PATH (see README: installing the tools)",
            home.script_dir().display()
        ));
    }
    let home_path = std::fs::canonicalize(home.path())
        .map_err(|e| format!("{}: {e}", home.path().display()))?;
    let mut settings: Settings = group.settings().map_err(|e| e.to_string())?;
    settings.retain(|k, _| GROUP_FLAGS.contains(&k.as_str()));
    if let Some(main) = &args.main_role {
        settings.insert("main-role".into(), main.clone());
    }
    if let Some(level) = &args.debug_level {
        settings.insert("debug-level".into(), level.clone());
    }
    let mut command = std::process::Command::new(program);
    command
        .arg(format!("--home-path={}", home_path.display()))
        .arg(format!("--role-name={GROUP_ROLE}"))
        .arg(format!("--origin={origin}"))
        .args(roles::flags(&settings));
    if args.secret_key.is_some() {
        command.arg(format!("--secret-key-file={}", crate::secrets::FROM_STDIN));
    }
    if !args.patterns.is_empty() {
        let json = serde_json::to_string(&args.patterns).map_err(|e| e.to_string())?;
        command.arg(format!("--roles={json}"));
    }
    let names: Vec<&str> = selected.iter().map(|r| r.name()).collect();
    tracing::debug!("Roles to run: {}", names.join(" "));
    Ok(command)
}

/// A command line as a shell would show it (for the log).
fn command_line(command: &std::process::Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `run`: group-cake in the foreground, its output and logs on this
/// terminal. Ctrl-C stops everything cleanly: this command passes the
/// SIGINT on to group-cake, which drains and stops its roles; this command
/// waits for it and exits with its status. A second Ctrl-C is passed on
/// too, and group-cake then exits at once. group-cake runs in a process
/// group of its own, so that a terminal's Ctrl-C (sent to the whole
/// foreground group) reaches it once, through this command, rather than
/// twice. If this command is killed, group-cake sees its stdin (a lifeline
/// this command holds) close, and stops everything too.
pub async fn run(home: &Home, args: &RunArgs) -> Result<i32, String> {
    let mut command = group_command(home, args, "RUN")?;
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    tracing::debug!("Starting group-cake: {}", command_line(&command));
    let mut child = tokio::process::Command::from(command)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start group-cake: {e}"))?;
    // The lifeline: if this command dies, however it dies, group-cake sees
    // it close and stops everything. The secret key, if any, is its only
    // line.
    let mut _lifeline = child.stdin.take();
    if let (Some(key), Some(pipe)) = (&args.secret_key, _lifeline.as_mut()) {
        use tokio::io::AsyncWriteExt;
        let mut line = key.to_line();
        line.push('\n');
        if let Err(e) = pipe.write_all(line.as_bytes()).await {
            tracing::warn!("cannot hand group-cake the secret key: {e}");
        }
    }
    let pid = child.id().map(|p| p as i32);
    tracing::debug!(pid, "Started group-cake in the foreground");
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| format!("cannot wait for group-cake: {e}"))?;
                return Ok(exit_code(status));
            }
            interrupted = tokio::signal::ctrl_c() => {
                if interrupted.is_err() {
                    continue;
                }
                // group-cake is in a group of its own: only this copy
                // reaches it, from a terminal as from `kill`.
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT);
                }
            }
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// `start`: group-cake in the background (its own process group, stdin closed);
/// its output and its roles' logs go to a file in the group's `logs/`.
/// Returns once the composite is running.
pub fn start(home: &Home, args: &RunArgs, out: &mut dyn Write) -> Result<(), String> {
    let mut command = group_command(home, args, "START")?;
    tracing::debug!(
        "Starting group-cake in the background: {}",
        command_line(&command)
    );
    let group = home.role(GROUP_ROLE).map_err(|e| e.to_string())?;
    let log_path = group.logs_dir().join(format!(
        "{}.log",
        chrono::Utc::now().format("%Y-%m-%dT%H-%M-%S%.3f")
    ));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    use std::os::unix::process::CommandExt;
    let mut child = command
        .stdin(match args.secret_key {
            Some(_) => Stdio::piped(),
            None => Stdio::null(),
        })
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start group-cake: {e}"))?;
    // The secret key, if any, is the one line of its stdin, closed then.
    if let (Some(key), Some(mut pipe)) = (&args.secret_key, child.stdin.take()) {
        let mut line = key.to_line();
        line.push('\n');
        if let Err(e) = pipe.write_all(line.as_bytes()) {
            tracing::warn!("cannot hand group-cake the secret key: {e}");
        }
    }
    let pid = child.id();
    tracing::debug!(pid, log = %log_path.display(), "Started group-cake in the background");
    // Wait until it holds the group's lock (or has already failed).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut child = child;
    loop {
        if group.running().is_some() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            // A composite whose roles all end at once may have run to its
            // end before its lock was seen here: that is a start.
            if status.success() {
                break;
            }
            return Err(format!(
                "group-cake ended at once ({status}); see {}",
                log_path.display()
            ));
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "group-cake (pid {pid}) did not start in time; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writeln!(
        out,
        "started {} (group-cake pid {pid}), logging to {}",
        home.path().display(),
        log_path.display()
    )
    .map_err(|e| e.to_string())
}

/// `stop`: SIGINT to the group-cake of every running composite of the
/// home, then waits for it to end.
pub fn stop(home: &Home, out: &mut dyn Write) -> Result<(), String> {
    let group = home.role(GROUP_ROLE).map_err(|e| e.to_string())?;
    let Some(running) = group.running() else {
        return Err("nothing is running".into());
    };
    if running.pid == 0 {
        return Err("the group is running but its lock does not say which process runs it".into());
    }
    let pid = nix::unistd::Pid::from_raw(running.pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)
        .map_err(|e| format!("cannot signal group-cake (pid {}): {e}", running.pid))?;
    let deadline = std::time::Instant::now() + STOP_PATIENCE;
    while group.running().is_some() {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "group-cake (pid {}) did not stop within {STOP_PATIENCE:?}",
                running.pid
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    writeln!(out, "stopped {}", home.path().display()).map_err(|e| e.to_string())
}

/// `status`: the running roles, one a line (with `long`, pid and how long
/// it has run); nothing running is a failure. The group role and sub-roles
/// are shown as [`roles::Show`] says.
pub fn status(
    home: &Home,
    patterns: &[String],
    long: bool,
    show: roles::Show,
    out: &mut dyn Write,
) -> Result<(), String> {
    let all = home
        .select(patterns, show.group_role, show.sub_roles)
        .map_err(|e| e.to_string())?;
    let now = chrono::Utc::now();
    let running: Vec<(Role, layer_cake::home::Running)> = all
        .into_iter()
        .filter_map(|r| r.running().map(|x| (r, x)))
        .collect();
    if running.is_empty() {
        let hidden = home
            .select(patterns, true, true)
            .map_err(|e| e.to_string())?
            .iter()
            .any(|r| r.running().is_some());
        return Err(match hidden {
            true => {
                "no role is running (the group or sub-roles are: see --group-role, --sub-roles)"
                    .into()
            }
            false => "nothing is running".into(),
        });
    }
    let width = running
        .iter()
        .map(|(r, _)| r.name().len())
        .max()
        .unwrap_or(0);
    for (role, r) in running {
        let line = if long {
            let up = (now - r.since).num_milliseconds() as f64 / 1000.0;
            format!(
                "{:<width$}  pid {:<8} up {}",
                role.name(),
                r.pid,
                roles::span(up)
            )
        } else {
            role.name().to_owned()
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The group's log files, oldest first.
fn log_files(home: &Home) -> Result<Vec<PathBuf>, String> {
    let dir = home.role(GROUP_ROLE).map_err(|e| e.to_string())?.logs_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    Ok(files)
}

/// Where `log` starts: exactly one of these.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The last this many lines (`--tail`; 40 when no start is given).
    Tail(usize),
    /// From this time on (`--from`, `--back`, `--last`).
    From(DateTime<Utc>),
    /// From the start of the role's run with this index in its history
    /// (`--start`; negative counts from the end, -1 the latest).
    Start(i64),
}

/// Where `log` ends: at most one of these (the end of the logs when none).
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Lines before this time (`--to`).
    To(DateTime<Utc>),
    /// Lines within this long after the start (`--span`).
    Span(chrono::TimeDelta),
    /// At most this many lines from the start (`--count`).
    Count(usize),
}

/// Which lines `log` shows, and how.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// Where it starts.
    pub begin: Begin,
    /// Where it ends; `None`: at the end of the logs.
    pub end: Option<End>,
    /// Only lines whose tag character is one of these (`^!?` …).
    pub tags: Option<String>,
    /// Times in the local time zone rather than UTC.
    pub clock: bool,
    /// Only the samples of this name, as tab-separated columns (see
    /// [`Samples`]).
    pub sample: Option<String>,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            begin: Begin::Tail(DEFAULT_TAIL),
            end: None,
            tags: None,
            clock: false,
            sample: None,
        }
    }
}

/// How many lines `log` shows when no start is given.
pub const DEFAULT_TAIL: usize = 40;

/// A `--last` period: `MONTH` (30 days), `WEEK`, `DAY`, `HOUR`, `HALF` (an
/// hour), `QUARTER` (of an hour), `TEN` and `FIVE` (minutes), `MINUTE`;
/// case ignored.
///
/// ```
/// use layer_cake_cli::run::parse_last;
/// assert_eq!(parse_last("quarter").unwrap().num_minutes(), 15);
/// assert!(parse_last("YEAR").unwrap_err().contains("MONTH, WEEK"));
/// ```
pub fn parse_last(text: &str) -> Result<chrono::TimeDelta, String> {
    let minutes = match text.to_ascii_uppercase().as_str() {
        "MONTH" => 30 * 24 * 60,
        "WEEK" => 7 * 24 * 60,
        "DAY" => 24 * 60,
        "HOUR" => 60,
        "HALF" => 30,
        "QUARTER" => 15,
        "TEN" => 10,
        "FIVE" => 5,
        "MINUTE" => 1,
        _ => {
            return Err(format!(
                "--last={text}: give MONTH, WEEK, DAY, HOUR, HALF, QUARTER, TEN, FIVE or MINUTE"
            ));
        }
    };
    Ok(chrono::TimeDelta::minutes(minutes))
}

/// A span of time as `90s`, `10m`, `2h`, `1d` or a number of seconds.
///
/// ```
/// use layer_cake_cli::run::parse_span;
/// assert_eq!(parse_span("90s").unwrap().num_seconds(), 90);
/// assert_eq!(parse_span("2h").unwrap().num_seconds(), 7200);
/// assert!(parse_span("soon").is_err());
/// ```
pub fn parse_span(text: &str) -> Result<chrono::TimeDelta, String> {
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a span (90s, 10m, 2h, 1d)"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("{text:?} is not a span (90s, 10m, 2h, 1d)")),
    };
    chrono::TimeDelta::try_milliseconds((seconds * 1000.0) as i64)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// A time as `2026-11-23T16:45:14[.123]` (UTC) or with an offset.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| format!("{text:?} is not a time (2026-11-23T16:45:14, UTC)"))
}

/// A log line's time and tag, if it has them: `[pid] <time> <tag> …`.
fn stamp(line: &str) -> Option<(DateTime<Utc>, char)> {
    let rest = line.get(11..)?;
    let time = rest.get(..23)?;
    let time = chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S%.3f")
        .ok()?
        .and_utc();
    let tag = rest.get(24..)?.chars().next()?;
    Some((time, tag))
}

/// The text of a log line: what follows the actor part's ` - ` (after
/// the tag at column 35).
fn text_of(line: &str) -> Option<&str> {
    let rest = line.get(35..)?;
    rest.find(" - ").map(|at| &rest[at + 3..]).or_else(|| {
        // No actor part: `… ^ - text`.
        rest.strip_prefix("- ")
    })
}

/// The columns of one sample: each key with its value as text.
type Fields = Vec<(String, String)>;

/// A sample named `name` in a log line, if the line holds one:
///
/// - a line tagged `&` whose text is `NAME (k=v,k2=v2)`, as
///   `tracing::info!(tag = "&", queue = 3, busy = 0.25, "spool")` logs
///   one named `spool` (values holding `,` or `)` do not read back);
/// - for the name `request`, the JSON request-log lines of HTTP fronts
///   (target `layer_cake::request`): each key of the object a column.
fn sample_in(line: &str, tag: char, name: &str) -> Option<Fields> {
    let text = text_of(line)?;
    if name == "request" && text.starts_with('{') {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
        if !object.contains_key("http_method") {
            return None;
        }
        return Some(
            object
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect(),
        );
    }
    if tag != '&' {
        return None;
    }
    let rest = text.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let inner = rest.strip_prefix(" (")?.strip_suffix(')')?;
    inner
        .split(',')
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Turns sample lines into tab-separated columns: a header line
/// (`time`, then the keys) before the first sample and again whenever the
/// keys change, then one line per sample (its time, then the values).
#[derive(Debug, Default)]
pub struct Samples {
    keys: Option<Vec<String>>,
}

impl Samples {
    /// The lines to print for one sample taken at `time`.
    fn rows(&mut self, time: &str, fields: Fields) -> Vec<String> {
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        let keys: Vec<String> = fields.iter().map(|(k, _)| clean(k)).collect();
        let mut out = Vec::new();
        if self.keys.as_ref() != Some(&keys) {
            let mut header = vec!["time".to_owned()];
            header.extend(keys.iter().cloned());
            out.push(header.join("\t"));
            self.keys = Some(keys);
        }
        let mut row = vec![time.to_owned()];
        row.extend(fields.iter().map(|(_, v)| clean(v)));
        out.push(row.join("\t"));
        out
    }
}

/// `log`: the lines a role wrote while running under `start`, chosen by
/// `query` (its lines carry its pids, which its history records; lines
/// without a time of their own count as at the time of the line before).
pub fn log(home: &Home, role: &str, query: &LogQuery, out: &mut dyn Write) -> Result<(), String> {
    let role = home.role(role).map_err(|e| e.to_string())?;
    let history = role.history().map_err(|e| e.to_string())?;
    let pids: Vec<String> = history
        .iter()
        .map(|run| format!("[{:08}]", run.pid))
        .collect();
    let (tail, from) = match &query.begin {
        Begin::Tail(n) => (Some(*n), None),
        Begin::From(t) => (None, Some(*t)),
        Begin::Start(i) => {
            let n = history.len() as i64;
            let at = if *i < 0 { n + i } else { *i };
            let run = usize::try_from(at)
                .ok()
                .and_then(|at| history.get(at))
                .ok_or_else(|| match n {
                    0 => format!("{} has never run", role.name()),
                    _ => format!(
                        "--start={i}: {} has runs 0 to {} (-1 to -{n} from the latest)",
                        role.name(),
                        n - 1
                    ),
                })?;
            (None, Some(run.start))
        }
    };
    let needs_start =
        || "--span and --count need a begin time: --from, --back, --last or --start".to_owned();
    let (to, count) = match &query.end {
        None => (None, None),
        Some(End::To(t)) => (Some(*t), None),
        Some(End::Span(span)) => (Some(from.ok_or_else(needs_start)? + *span), None),
        Some(End::Count(c)) => {
            from.ok_or_else(needs_start)?;
            (None, Some(*c))
        }
    };
    let mut samples = query.sample.as_ref().map(|_| Samples::default());
    let mut lines = std::collections::VecDeque::new();
    let mut shown = 0usize;
    'files: for file in log_files(home)? {
        let reader = std::io::BufReader::new(
            std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?,
        );
        let mut last_time = None;
        for line in reader.lines().map_while(Result::ok) {
            let stamped = stamp(&line);
            if let Some((time, _)) = stamped {
                last_time = Some(time);
            }
            if !(role.is_group() || pids.iter().any(|p| line.starts_with(p.as_str()))) {
                continue;
            }
            if from.is_some_and(|from| last_time.is_none_or(|t| t < from)) {
                continue;
            }
            if to.is_some_and(|to| last_time.is_some_and(|t| t >= to)) {
                break 'files;
            }
            if let Some(tags) = &query.tags
                && !stamped.is_some_and(|(_, tag)| tags.contains(tag))
            {
                continue;
            }
            let sample = match (&query.sample, stamped) {
                (Some(name), Some((_, tag))) => match sample_in(&line, tag, name) {
                    Some(fields) => Some(fields),
                    None => continue,
                },
                (Some(_), None) => continue,
                (None, _) => None,
            };
            let time = match (query.clock, stamped) {
                (true, Some((time, _))) => Some(
                    time.with_timezone(&chrono::Local)
                        .format("%Y-%m-%dt%H:%M:%S%.3f")
                        .to_string(),
                ),
                _ => None,
            };
            let entry = match (sample, &time) {
                (Some(fields), time) => {
                    let time = time.clone().unwrap_or_else(|| line[11..34].to_owned());
                    Entry::Sample(time, fields)
                }
                (None, Some(time)) => Entry::Line(format!("{}{time}{}", &line[..11], &line[34..])),
                (None, None) => Entry::Line(line),
            };
            lines.push_back(entry);
            shown += 1;
            if tail.is_some_and(|t| lines.len() > t) {
                lines.pop_front();
            }
            if count.is_some_and(|c| shown >= c) {
                break 'files;
            }
        }
    }
    for entry in lines {
        match (entry, samples.as_mut()) {
            (Entry::Line(line), _) => writeln!(out, "{line}"),
            (Entry::Sample(time, fields), Some(samples)) => samples
                .rows(&time, fields)
                .iter()
                .try_for_each(|row| writeln!(out, "{row}")),
            (Entry::Sample(..), None) => Ok(()),
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A line `log` shows: as it is, or a sample's columns.
enum Entry {
    Line(String),
    Sample(String, Fields),
}
