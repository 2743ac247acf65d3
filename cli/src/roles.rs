//! The commands that make and change a home: `create`, `add`, `list`,
//! `update`, `edit`, `delete`, `destroy`, and the records of past runs:
//! `history`, `returned`.
//!
//! Each takes the home's path and its own arguments, writes what it has to
//! say to `out`, and fails with one line of text.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use layer_cake::home::{GROUP_ROLE, Home, Role, Settings, StartStop};

/// The settings a command line gives: every `--name=value` (a bare
/// `--name` is `true`), with the positional words apart.
///
/// ```
/// let (words, settings) = layer_cake_cli::roles::split_settings(&[
///     "test_worker_10".into(), "worker".into(), "--x=2".into(), "--verbose".into(),
/// ]).unwrap();
/// assert_eq!(words, ["test_worker_10", "worker"]);
/// assert_eq!(settings["x"], "2");
/// assert_eq!(settings["verbose"], "true");
/// ```
pub fn split_settings(args: &[String]) -> Result<(Vec<String>, Settings), String> {
    let mut words = Vec::new();
    let mut settings = Settings::new();
    for arg in args {
        if let Some(flag) = arg.strip_prefix("--") {
            let (name, value) = flag.split_once('=').unwrap_or((flag, "true"));
            if name.is_empty() {
                return Err(format!("{arg:?} is not a setting (--name=value)"));
            }
            let name = name.replace('_', "-");
            if settings.insert(name.clone(), value.to_owned()).is_some() {
                return Err(format!("--{name} is given twice"));
            }
        } else if arg.starts_with('-') && arg.len() > 1 {
            return Err(format!(
                "{arg:?}: settings are spelled in full, as --name=value"
            ));
        } else {
            words.push(arg.clone());
        }
    }
    Ok((words, settings))
}

/// `create`: a new home, with its group role holding the group's settings
/// (`--directory-at-host`, `--directory-at-lan`, `--retry`, `--main-role`).
pub fn create(home: &Path, group: Settings, out: &mut dyn Write) -> Result<(), String> {
    const GROUP_SETTINGS: &[&str] = &[
        "directory-at-host",
        "directory-at-lan",
        "retry",
        "main-role",
        "debug-level",
    ];
    if let Some(bad) = group.keys().find(|k| !GROUP_SETTINGS.contains(&k.as_str())) {
        return Err(format!(
            "--{bad} is not a group setting (those are --{})",
            GROUP_SETTINGS.join(", --")
        ));
    }
    check_group(&group)?;
    if home.exists() {
        return Err(format!("a home already exists at {}", home.display()));
    }
    check_settings("group-cake", &group)?;
    let made = Home::create(home).map_err(|e| e.to_string())?;
    if let Err(e) = made.add_role(GROUP_ROLE, "group-cake", group) {
        let _ = made.destroy();
        return Err(e.to_string());
    }
    writeln!(out, "created {}", home.display()).map_err(|e| e.to_string())
}

/// Checks the group settings that can be checked without group-cake.
fn check_group(group: &Settings) -> Result<(), String> {
    if let Some(retry) = group.get("retry") {
        serde_json::from_str::<layer_cake::runtime::RetryPolicy>(retry)
            .map_err(|e| format!("--retry={retry}: {e}"))?;
    }
    Ok(())
}

/// Asks `executable` whether it accepts `settings`: it reads them as its
/// own command line (`--check-settings`) and says what is wrong, if
/// anything, in one line.
pub fn check_settings(executable: &str, settings: &Settings) -> Result<(), String> {
    let program = layer_cake::process::find_program(executable)
        .ok_or_else(|| format!("cannot find {executable} (next to layer-cake or on PATH)"))?;
    let out = std::process::Command::new(&program)
        .arg("--check-settings")
        .args(flags(settings))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    settings_verdict(executable, &out)
}

/// What a program's `--check-settings` run said: `Ok` when it exited 0,
/// else its last line's reason (`program: reason` → the reason), as one
/// line naming the program as `shown`.
pub(crate) fn settings_verdict(shown: &str, out: &std::process::Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let reason = line.split_once(": ").map_or(line, |(_, r)| r);
    Err(format!("{shown} refuses the settings: {reason}"))
}

/// The names `add` gives: `role` (or the executable's name) once, or
/// `role-K` … `role-(K+N-1)` for a count.
pub fn role_names(
    executable: &str,
    role: Option<&str>,
    count: Option<u32>,
    start: u32,
) -> Vec<String> {
    let base = role.map(str::to_owned).unwrap_or_else(|| {
        Path::new(executable).file_stem().map_or_else(
            || executable.to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )
    });
    match count {
        None => vec![base],
        Some(n) => (start..start + n).map(|i| format!("{base}-{i}")).collect(),
    }
}

/// `add`: new roles running `executable` with `settings`, once the
/// executable has accepted them ([`check_settings`]); all or nothing.
pub fn add(
    home: &Home,
    executable: &str,
    names: &[String],
    settings: &Settings,
    out: &mut dyn Write,
) -> Result<(), String> {
    // Every name, and the settings, are checked before anything is stored.
    for name in names {
        layer_cake::home::check_role_name(name).map_err(|e| e.to_string())?;
        if home.role(name).is_ok() {
            return Err(format!("role \"{name}\" already exists"));
        }
    }
    let found = find_executable(home.path(), executable)?;
    let executable = found
        .to_str()
        .ok_or_else(|| format!("the path of {executable} is not UTF-8: {}", found.display()))?;
    // Checked by the program that will run: a copy in script/ wins.
    check_settings(&launch_path(home, executable), settings)?;
    let mut added: Vec<Role> = Vec::new();
    for name in names {
        match home.add_role(name, executable, settings.clone()) {
            Ok(role) => added.push(role),
            Err(e) => {
                for role in added {
                    let _ = role.delete();
                }
                return Err(e.to_string());
            }
        }
    }
    for name in names {
        writeln!(out, "added {name}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Where `add` finds `given`, as an absolute path (what the role stores):
///
/// - a path (it has a `/`): relative to the current folder, or absolute;
/// - a name: in the current folder, then the home's `script/` folder, then
///   next to this program, then on `PATH`.
///
/// The first executable file wins. Its folder is made absolute with `..`
/// and links resolved; the file keeps its own name, so a link to a
/// versioned program stays the link. None found: an error naming every
/// place looked.
pub fn find_executable(home: &Path, given: &str) -> Result<std::path::PathBuf, String> {
    use std::path::PathBuf;
    let here =
        std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
    let mut places: Vec<PathBuf> = vec![here.join(given)];
    if !given.contains('/') {
        places.push(home.join("script").join(given));
        let beside = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf));
        places.extend(beside.map(|folder| folder.join(given)));
        let path = std::env::var_os("PATH").unwrap_or_default();
        places.extend(std::env::split_paths(&path).map(|folder| folder.join(given)));
    }
    for candidate in &places {
        if layer_cake::process::is_executable(candidate) {
            let folder = candidate.parent().unwrap_or(Path::new("/"));
            let folder = std::fs::canonicalize(folder)
                .map_err(|e| format!("cannot resolve {}: {e}", folder.display()))?;
            return Ok(folder.join(candidate.file_name().unwrap_or_default()));
        }
    }
    let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "cannot find {given} as an executable file (looked at {})",
        looked.join(", ")
    ))
}

/// The flags that run `role` with its settings: `--name=value` each.
pub fn flags(settings: &Settings) -> Vec<String> {
    settings.iter().map(|(k, v)| format!("--{k}={v}")).collect()
}

/// Which roles `list` and `status` show besides the roles themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Show {
    /// The group role (`--group-role`), hidden otherwise unless a pattern
    /// names it.
    pub group_role: bool,
    /// Sub-roles, `<role>.<child>` (`--sub-roles`): the roles of the child
    /// processes a role's process started.
    pub sub_roles: bool,
}

/// `list`: the roles matching `patterns`, one a line; with `long`, whether
/// each runs, what its folder holds (`folders/files/bytes`), the full path
/// of what it runs and its settings:
///
/// ```text
/// server    stopped               3/4/312  /opt/app/bin/test_server_10 --server-address=127.0.0.1:5050
/// ```
pub fn list(
    home: &Home,
    patterns: &[String],
    long: bool,
    show: Show,
    out: &mut dyn Write,
) -> Result<(), String> {
    let roles = home
        .select(patterns, show.group_role, show.sub_roles)
        .map_err(|e| e.to_string())?;
    let width = roles.iter().map(|r| r.name().len()).max().unwrap_or(0);
    let mut lines = Vec::new();
    for role in &roles {
        if !long {
            lines.push((role.name().to_owned(), String::new(), String::new()));
            continue;
        }
        let executable = role.executable().map_err(|e| e.to_string())?;
        // A secret's value is shown as `<secret>`.
        let settings = crate::secrets::shown_flags(&role.settings().map_err(|e| e.to_string())?);
        let state = match role.running() {
            Some(r) => format!("running (pid {})", r.pid),
            None => "stopped".to_owned(),
        };
        let usage = role.usage().map_err(|e| e.to_string())?.to_string();
        // A bare name (group-cake) as the path it is found at.
        let executable = match executable.contains('/') {
            true => executable,
            false => layer_cake::process::find_program(&executable).map_or_else(
                || format!("{executable} (not found)"),
                |p| p.display().to_string(),
            ),
        };
        let rest = format!("{executable} {}", settings.join(" "));
        lines.push((format!("{:<width$}  {state:<20}", role.name()), usage, rest));
    }
    let usage_width = lines.iter().map(|(_, u, _)| u.len()).max().unwrap_or(0);
    for (head, usage, rest) in lines {
        let line = match long {
            true => format!("{head}  {usage:>usage_width$}  {rest}"),
            false => head,
        };
        writeln!(out, "{}", line.trim_end()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The roles matching `patterns`; an error when none do.
pub fn some_roles(home: &Home, patterns: &[String]) -> Result<Vec<Role>, String> {
    selected(home, patterns, Show::default())
}

/// The roles matching `patterns`, with the group role and sub-roles as
/// `show` says; an error when none do.
pub fn selected(home: &Home, patterns: &[String], show: Show) -> Result<Vec<Role>, String> {
    let roles = home
        .select(patterns, show.group_role, show.sub_roles)
        .map_err(|e| e.to_string())?;
    if roles.is_empty() {
        return Err(match patterns {
            [] => "the home has no roles (add some with `layer-cake add`)".to_owned(),
            _ => format!("no role matches {}", patterns.join(" ")),
        });
    }
    Ok(roles)
}

/// The roles `update` changes: those matching `patterns` (the group when
/// named). Sub-roles are not among them — they have no settings of their
/// own, their flags come from their parent's process at every start — and
/// patterns that name only sub-roles say so.
pub fn roles_to_update(home: &Home, patterns: &[String]) -> Result<Vec<Role>, String> {
    let with_subs = home
        .select(patterns, false, true)
        .map_err(|e| e.to_string())?;
    match with_subs.iter().find(|r| r.is_sub_role()) {
        Some(sub) if with_subs.iter().all(Role::is_sub_role) => Err(format!(
            "{} is a sub-role: it has no settings of its own (its process takes its flags from its parent's); update the parent role",
            sub.name()
        )),
        _ => some_roles(home, patterns),
    }
}

/// `update`: merges `settings` into each role; refused, for all of them,
/// if any runs. The whole read, merge, check and write happens under the
/// home's lock, so two `update`s at once both land.
pub fn update(
    home: &Home,
    roles: &[Role],
    settings: &Settings,
    out: &mut dyn Write,
) -> Result<(), String> {
    let held = home.lock().map_err(|e| e.to_string())?;
    refuse_running(roles)?;
    for role in roles {
        if role.is_group() {
            check_group(settings)?;
        }
    }
    let mut merged = Vec::new();
    for role in roles {
        let mut new = role.settings().map_err(|e| e.to_string())?;
        new.extend(settings.clone());
        check_settings(&launched(home, role)?, &new)?;
        merged.push(new);
    }
    for (role, merged) in roles.iter().zip(merged) {
        role.set_settings_held(&held, &merged)
            .map_err(|e| e.to_string())?;
        writeln!(out, "updated {}", role.name()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The program a role's stored executable starts ([`Home::program`]: a
/// copy in `script/` first), as text for [`check_settings`].
fn launched(home: &Home, role: &Role) -> Result<String, String> {
    let stored = role.executable().map_err(|e| e.to_string())?;
    Ok(launch_path(home, &stored))
}

/// [`Home::program`] for `stored`, made absolute (the home's path may be
/// relative to the current folder).
fn launch_path(home: &Home, stored: &str) -> String {
    let program = home.program(stored);
    let program = match program.components().count() > 1 {
        true => std::path::absolute(&program).unwrap_or(program),
        false => program,
    };
    program.to_string_lossy().into_owned()
}

/// Fails naming the first running role.
pub fn refuse_running(roles: &[Role]) -> Result<(), String> {
    match roles.iter().find_map(|r| r.running().map(|x| (r, x))) {
        Some((role, running)) => Err(format!(
            "role \"{}\" is running (pid {}); stop it first",
            role.name(),
            running.pid
        )),
        None => Ok(()),
    }
}

/// `edit`: opens `role`'s settings in `editor` and stores them if they
/// still read as settings — and if nobody changed them meanwhile (the home
/// is not locked while the editor runs; the settings are read again under
/// the lock before they are written).
pub fn edit(home: &Home, role: &Role, editor: &str, out: &mut dyn Write) -> Result<(), String> {
    refuse_running(std::slice::from_ref(role))?;
    let settings = role.settings().map_err(|e| e.to_string())?;
    let dir = tempfile_dir()?;
    let path = dir.join(format!("{}.settings.json", role.name()));
    let text = serde_json::to_string_pretty(&settings).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    let mut words = editor.split_whitespace();
    let program = words.next().ok_or("the editor is empty")?;
    let status = std::process::Command::new(program)
        .args(words)
        .arg(&path)
        .status()
        .map_err(|e| format!("cannot run the editor {program:?}: {e}"))?;
    let edited = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()));
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        return Err(format!("the editor ended with {status}; nothing changed"));
    }
    let edited: Settings = serde_json::from_str(&edited?).map_err(|e| {
        format!("the edited settings are not a map of names to text ({e}); nothing changed")
    })?;
    if role.is_group() {
        check_group(&edited)?;
    }
    check_settings(&launched(home, role)?, &edited)?;
    if edited == settings {
        return writeln!(out, "{}: no change", role.name()).map_err(|e| e.to_string());
    }
    let held = home.lock().map_err(|e| e.to_string())?;
    if role.settings().map_err(|e| e.to_string())? != settings {
        return Err(format!(
            "the settings of {} changed while they were being edited; nothing changed (edit again)",
            role.name()
        ));
    }
    role.set_settings_held(&held, &edited)
        .map_err(|e| e.to_string())?;
    writeln!(out, "updated {}", role.name()).map_err(|e| e.to_string())
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("layer-cake-edit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// `delete`: removes the roles and their sub-roles; refused, for all of
/// them, if any runs.
pub fn delete(home: &Home, roles: Vec<Role>, out: &mut dyn Write) -> Result<(), String> {
    if roles.iter().any(Role::is_group) {
        return Err(
            "the group role is the home's own; `layer-cake destroy` removes the home".into(),
        );
    }
    let mut all: Vec<Role> = Vec::new();
    for role in roles {
        let subs = home.sub_roles(&role).map_err(|e| e.to_string())?;
        for role in std::iter::once(role).chain(subs) {
            if !all.iter().any(|r| r.name() == role.name()) {
                all.push(role);
            }
        }
    }
    refuse_running(&all)?;
    for role in all {
        let name = role.name().to_owned();
        role.delete().map_err(|e| e.to_string())?;
        writeln!(out, "deleted {name}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `destroy`: removes the home; refused if anything runs.
pub fn destroy(home: Home, out: &mut dyn Write) -> Result<(), String> {
    let path = home.path().to_path_buf();
    home.destroy().map_err(|e| e.to_string())?;
    writeln!(out, "destroyed {}", path.display()).map_err(|e| e.to_string())
}

/// A span as `1h2m3.4s`, `8m18.8s`, `0.2s`.
pub fn span(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    let h = (seconds / 3600.0).floor();
    let m = ((seconds - h * 3600.0) / 60.0).floor();
    let s = seconds - h * 3600.0 - m * 60.0;
    match (h > 0.0, m > 0.0) {
        (true, _) => format!("{h}h{m}m{s:.1}s"),
        (false, true) => format!("{m}m{s:.1}s"),
        _ => format!("{s:.1}s"),
    }
}

/// `history`: one line per run, oldest first.
pub fn history(
    role: &Role,
    long: bool,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let runs = role.history().map_err(|e| e.to_string())?;
    if runs.is_empty() {
        return writeln!(out, "{}: never run", role.name()).map_err(|e| e.to_string());
    }
    for (i, run) in runs.iter().enumerate() {
        writeln!(out, "[{i}] {}", history_line(run, long, now)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn history_line(run: &StartStop, long: bool, now: DateTime<Utc>) -> String {
    let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_milliseconds() as f64 / 1000.0;
    let kind = run.returned_type().unwrap_or("?");
    match (long, run.stop) {
        (false, Some(stop)) => format!(
            "{} ago … {} ({kind})",
            span(secs(run.start, now)),
            span(secs(run.start, stop))
        ),
        (false, None) => format!("{} ago … (pid {})", span(secs(run.start, now)), run.pid),
        (true, Some(stop)) => format!(
            "{} … {} ({}) {kind}",
            run.start.format("%Y-%m-%dT%H:%M:%S%.3f"),
            stop.format("%Y-%m-%dT%H:%M:%S%.3f"),
            span(secs(run.start, stop))
        ),
        (true, None) => format!(
            "{} … (pid {})",
            run.start.format("%Y-%m-%dT%H:%M:%S%.3f"),
            run.pid
        ),
    }
}

/// `returned`: the value run `start` returned (the latest by default;
/// negative counts from the end), pretty-printed.
pub fn returned(
    role: &Role,
    start: Option<i64>,
    timeout: Option<std::time::Duration>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let runs = role.history().map_err(|e| e.to_string())?;
        let n = runs.len() as i64;
        let i = start.unwrap_or(-1);
        let at = if i < 0 { n + i } else { i };
        let run = usize::try_from(at)
            .ok()
            .and_then(|at| runs.get(at))
            .ok_or_else(|| match n {
                0 => format!("{} has never run", role.name()),
                _ => format!("no run {i} of {} (it has {n})", role.name()),
            })?;
        if let Some(value) = &run.returned {
            let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
            return writeln!(out, "{text}").map_err(|e| e.to_string());
        }
        // Still running: with a timeout, look again once a second.
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        match (timeout, left) {
            (Some(_), Some(left)) if !left.is_zero() => {
                std::thread::sleep(left.min(std::time::Duration::from_secs(1)));
            }
            (Some(t), _) => {
                return Err(format!(
                    "run {at} of {} (pid {}) has not returned within {}s",
                    role.name(),
                    run.pid,
                    t.as_secs_f64()
                ));
            }
            _ => {
                return Err(format!(
                    "run {at} of {} (pid {}) has not returned yet (wait for it with --timeout=SECONDS)",
                    role.name(),
                    run.pid
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `returned --timeout` waits for a run that is still going, and says
    /// so when it has not returned in time.
    #[test]
    fn returned_waits_for_a_run_with_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::create(dir.path().join(".layer-cake")).unwrap();
        let role = home
            .add_role("worker", "test_worker_10", Settings::new())
            .unwrap();
        role.record_start(4242).unwrap();
        let mut out = Vec::new();
        let second = std::time::Duration::from_secs(1);
        let e = returned(&role, None, None, &mut out).unwrap_err();
        assert!(e.contains("has not returned yet"), "{e}");
        let e = returned(&role, None, Some(second), &mut out).unwrap_err();
        assert!(e.contains("pid 4242) has not returned within 1s"), "{e}");
        let stopper = home.role("worker").unwrap();
        let stopping = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            stopper
                .record_stop(serde_json::json!({"value": ["integer8", 42, []]}))
                .unwrap();
        });
        returned(&role, None, Some(20 * second), &mut out).unwrap();
        stopping.join().unwrap();
        assert!(String::from_utf8(out).unwrap().contains("42"));
    }

    #[test]
    fn spans_read_like_the_original() {
        assert_eq!(span(0.24), "0.2s");
        assert_eq!(span(498.8), "8m18.8s");
        assert_eq!(span(3723.4), "1h2m3.4s");
    }

    #[test]
    fn role_names_count_from_the_start() {
        assert_eq!(
            role_names("/bin/test_worker_10", None, None, 0),
            ["test_worker_10"]
        );
        assert_eq!(
            role_names("test_worker_10", Some("worker"), Some(3), 1),
            ["worker-1", "worker-2", "worker-3"]
        );
    }

    #[test]
    fn settings_are_spelled_in_full() {
        assert!(
            split_settings(&["-x=2".into()])
                .unwrap_err()
                .contains("in full")
        );
        assert!(
            split_settings(&["--x=1".into(), "--x=2".into()])
                .unwrap_err()
                .contains("twice")
        );
        let (_, s) = split_settings(&["--server_address=127.0.0.1:1".into()]).unwrap();
        assert_eq!(s["server-address"], "127.0.0.1:1");
    }
}
