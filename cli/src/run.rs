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
    let program = layer_cake::process::find_program("group-cake").ok_or(
        "cannot find group-cake next to layer-cake or on PATH (see README: installing the tools)",
    )?;
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
    if !args.patterns.is_empty() {
        let json = serde_json::to_string(&args.patterns).map_err(|e| e.to_string())?;
        command.arg(format!("--roles={json}"));
    }
    Ok(command)
}

/// `run`: group-cake in the foreground, its output and logs on this
/// terminal. Ctrl-C stops everything cleanly: group-cake gets SIGINT and
/// stops its roles; this command waits for it and exits with its status.
/// If this command is killed, group-cake sees its stdin (a lifeline this
/// command holds) close, and stops everything too.
pub async fn run(home: &Home, args: &RunArgs) -> Result<i32, String> {
    let command = group_command(home, args, "RUN")?;
    let mut child = tokio::process::Command::from(command)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start group-cake: {e}"))?;
    // The lifeline: never written; if this command dies, however it dies,
    // group-cake sees it close and stops everything.
    let _lifeline = child.stdin.take();
    let pid = child.id().map(|p| p as i32);
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
                // From a terminal group-cake has it too; from `kill` it
                // would not: pass it on either way.
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
    let group = home.role(GROUP_ROLE).map_err(|e| e.to_string())?;
    let log_path = group.logs_dir().join(format!(
        "{}.log",
        chrono::Utc::now().format("%Y-%m-%dT%H-%M-%S%.3f")
    ));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    use std::os::unix::process::CommandExt;
    let child = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start group-cake: {e}"))?;
    let pid = child.id();
    // Wait until it holds the group's lock (or has already failed).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut child = child;
    loop {
        if group.running().is_some() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
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
/// it has run); nothing running is a failure.
pub fn status(
    home: &Home,
    patterns: &[String],
    long: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let mut all = home.roles().map_err(|e| e.to_string())?;
    if !patterns.is_empty() {
        all = home.matching(patterns).map_err(|e| e.to_string())?;
    }
    let now = chrono::Utc::now();
    let running: Vec<(Role, layer_cake::home::Running)> = all
        .into_iter()
        .filter_map(|r| r.running().map(|x| (r, x)))
        .collect();
    if running.is_empty() {
        return Err("nothing is running".into());
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

/// Which lines `log` shows.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// The last this many lines (when no start is given).
    pub tail: Option<usize>,
    /// Lines from this time on.
    pub from: Option<DateTime<Utc>>,
    /// Lines before this time.
    pub to: Option<DateTime<Utc>>,
    /// At most this many lines from the start.
    pub count: Option<usize>,
    /// Only lines whose tag character is one of these (`^!?` …).
    pub tags: Option<String>,
    /// Times in the local time zone rather than UTC.
    pub clock: bool,
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

/// `log`: the lines a role wrote while running under `start`, chosen by
/// `query` (its lines carry its pids, which its history records; lines
/// without a time of their own count as at the time of the line before).
pub fn log(home: &Home, role: &str, query: &LogQuery, out: &mut dyn Write) -> Result<(), String> {
    let role = home.role(role).map_err(|e| e.to_string())?;
    let pids: Vec<String> = role
        .history()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|run| format!("[{:08}]", run.pid))
        .collect();
    let tail = match (query.from, query.tail) {
        (Some(_), tail) => tail,
        (None, Some(tail)) => Some(tail),
        (None, None) => Some(40),
    };
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
            if query
                .from
                .is_some_and(|from| last_time.is_none_or(|t| t < from))
            {
                continue;
            }
            if query
                .to
                .is_some_and(|to| last_time.is_some_and(|t| t >= to))
            {
                break 'files;
            }
            if let Some(tags) = &query.tags
                && !stamped.is_some_and(|(_, tag)| tags.contains(tag))
            {
                continue;
            }
            let line = match (query.clock, stamped) {
                (true, Some((time, _))) => format!(
                    "{}{}{}",
                    &line[..11],
                    time.with_timezone(&chrono::Local)
                        .format("%Y-%m-%dt%H:%M:%S%.3f"),
                    &line[34..]
                ),
                _ => line,
            };
            lines.push_back(line);
            shown += 1;
            if tail.is_some_and(|t| lines.len() > t) {
                lines.pop_front();
            }
            if query.count.is_some_and(|c| shown >= c) && query.from.is_some() {
                break 'files;
            }
        }
    }
    for line in lines {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}
