//! One role of a home: its files, and whether it is running.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::history::{KEPT, StartStop};
use super::{GROUP_ROLE, HomeError, HomeLock, Settings, io};

pub(crate) const EXECUTABLE: &str = "executable.json";
pub(crate) const SETTINGS: &str = "settings.json";
pub(crate) const UNIQUE_ID: &str = "unique_id.json";
const HISTORY: &str = "history.json";
const LOCK: &str = "lock";

/// The longest role name, in bytes: it is a folder name, and log file
/// names are made from it.
pub const MAX_ROLE_NAME: usize = 64;

/// A role: an executable, its settings and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    name: String,
    dir: PathBuf,
    /// The home it belongs to (whose lock guards its files).
    home: PathBuf,
}

/// What [`Role::record_start`] found wrong with the history it had to set
/// aside: the role starts with a fresh one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the history {from} could not be read ({reason}); moved aside to {to}, starting afresh")]
pub struct MovedAside {
    /// The history file.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
    /// What was wrong with it.
    pub reason: String,
}

/// Who holds a running role's lock. `pid` is 0 when the holder has not
/// said who it is (it took the lock a moment ago, or could not write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Running {
    /// The role's process.
    pub pid: u32,
    /// The process that started it (group-cake, usually).
    pub parent_pid: u32,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// What a role's folder holds ([`Role::usage`]), as `list -l` shows it:
/// `folders/files/bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Folders below the role's folder.
    pub folders: u64,
    /// Files (and links) below it.
    pub files: u64,
    /// The files' sizes, added up.
    pub bytes: u64,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.folders, self.files, self.bytes)
    }
}

/// Held while a role runs; released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct RoleLock {
    _file: File,
}

/// Whether `name` can name a new role: a safe folder name
/// ([`check_role_path`]) that does not start with `group` (reserved for the
/// group role, which is called just `group`) and has no `.` (a
/// `<role>.<child>` name is a sub-role, made by the role's process for a
/// child process it starts).
pub fn check_role_name(name: &str) -> Result<(), HomeError> {
    check_role_path(name)?;
    if name.starts_with(GROUP_ROLE) && name != GROUP_ROLE {
        return Err(bad_name(name, "names starting with \"group\" are reserved"));
    }
    if name.contains('.') {
        return Err(bad_name(
            name,
            "'.' is reserved for sub-roles (<role>.<child>, made by a role's process)",
        ));
    }
    Ok(())
}

/// Whether `name` is safe as a role's folder name — the one check every
/// path made from a role name goes through (adding, opening, `--role-name`):
/// 1 to [`MAX_ROLE_NAME`] bytes of ASCII letters, digits, `-`, `_` and `.`,
/// not starting with `.` or `-` and without `..`. So no `/`, no NUL, no
/// absolute path and no way out of the home's `role/` folder.
pub fn check_role_path(name: &str) -> Result<(), HomeError> {
    let bad = |reason| Err(bad_name(name, reason));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_ROLE_NAME {
        return bad("longer than 64 bytes");
    }
    if name.contains('/') {
        return bad("contains '/'");
    }
    if name.contains('\0') {
        return bad("contains a NUL");
    }
    if name.starts_with(['.', '-']) {
        return bad("starts with '.' or '-'");
    }
    if name.contains("..") {
        return bad("contains '..'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return bad("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

fn bad_name(name: &str, reason: &'static str) -> HomeError {
    // Quoted and cut short: the name may be long or hold control characters.
    let mut shown: String = name.chars().take(MAX_ROLE_NAME + 1).collect();
    if shown.len() < name.len() {
        shown.push('…');
    }
    HomeError::BadRoleName {
        name: shown,
        reason,
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, HomeError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| HomeError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `value` as pretty JSON so that a reader — or the file after a
/// crash or power cut — is either the old file or the new one, never half
/// of one: the text goes to a uniquely named temporary file in the same
/// folder (so concurrent writers never share one), which is flushed to disk
/// (`fsync`), renamed over `path`, and then the folder is flushed too so
/// that the rename itself is on disk. The caller holds the home's lock when
/// the file is read, changed and written back.
fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), HomeError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| HomeError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    // A replaced file keeps its permissions; a new one is the owner's only.
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = tmp.as_file().set_permissions(meta.permissions());
    }
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io(tmp.path()))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    sync_dir(dir)
}

/// Flushes a folder's entries (a rename, a new file) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), HomeError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Role {
    /// The role `name` of the home at `home` — its name checked first, as
    /// for every path made from a role name.
    fn at(home: &Path, name: &str) -> Result<Role, HomeError> {
        check_role_path(name)?;
        Ok(Role {
            name: name.to_owned(),
            dir: home.join("role").join(name),
            home: home.to_path_buf(),
        })
    }

    /// Adds the role (the caller holds the home's lock).
    pub(crate) fn create(
        home: &Path,
        name: &str,
        executable: &str,
        settings: Settings,
    ) -> Result<Role, HomeError> {
        check_role_name(name)?;
        Role::make(home, name, executable, settings)
    }

    /// Makes the sub-role `name` for a child process running `executable`
    /// (the caller holds the home's lock, and has checked that the parent
    /// role exists).
    pub(crate) fn create_sub(
        held: &HomeLock,
        home: &Path,
        name: &str,
        executable: &str,
    ) -> Result<Role, HomeError> {
        held.check(home)?;
        if !name.contains('.') {
            return Err(bad_name(name, "a sub-role's name is <role>.<child>"));
        }
        Role::make(home, name, executable, Settings::new())
    }

    /// Makes the role's folder and files.
    fn make(
        home: &Path,
        name: &str,
        executable: &str,
        settings: Settings,
    ) -> Result<Role, HomeError> {
        let role = Role::at(home, name)?;
        if role.dir.exists() {
            return Err(HomeError::RoleExists(name.to_owned()));
        }
        std::fs::create_dir(&role.dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => HomeError::RoleExists(name.to_owned()),
            _ => io(&role.dir)(e),
        })?;
        for sub in ["logs", "model", "tmp"] {
            let sub = role.dir.join(sub);
            std::fs::create_dir(&sub).map_err(io(&sub))?;
        }
        write_json(&role.dir.join(SETTINGS), &settings)?;
        write_json(&role.dir.join(UNIQUE_ID), &uuid::Uuid::new_v4())?;
        write_json(&role.dir.join(HISTORY), &Vec::<StartStop>::new())?;
        // Last: a folder with an executable file is a role.
        write_json(&role.dir.join(EXECUTABLE), executable)?;
        if let Some(roles) = role.dir.parent() {
            sync_dir(roles)?;
        }
        Ok(role)
    }

    /// The existing role `name` of the home at `home`.
    pub(crate) fn open(home: &Path, name: &str) -> Result<Role, HomeError> {
        let role = Role::at(home, name)?;
        if !role.dir.join(EXECUTABLE).is_file() {
            return Err(HomeError::NoRole(name.to_owned()));
        }
        Ok(role)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether it is the group role (the composite process itself).
    pub fn is_group(&self) -> bool {
        self.name == GROUP_ROLE
    }

    /// Whether it is a sub-role: `<role>.<child>`, the role of a child
    /// process that a role's process started.
    pub fn is_sub_role(&self) -> bool {
        self.name.contains('.')
    }

    /// What its folder holds: how many folders, files and bytes (of the
    /// files), everything below it counted; links are not followed.
    pub fn usage(&self) -> Result<Usage, HomeError> {
        fn walk(dir: &Path, usage: &mut Usage) -> Result<(), HomeError> {
            for entry in std::fs::read_dir(dir).map_err(io(dir))? {
                let entry = entry.map_err(io(dir))?;
                let path = entry.path();
                // A file removed meanwhile (a temporary one) is not counted.
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.is_dir() {
                    usage.folders += 1;
                    walk(&path, usage)?;
                } else {
                    usage.files += 1;
                    usage.bytes += meta.len();
                }
            }
            Ok(())
        }
        let mut usage = Usage::default();
        walk(&self.dir, &mut usage)?;
        Ok(usage)
    }

    /// What it runs.
    pub fn executable(&self) -> Result<String, HomeError> {
        read_json(&self.dir.join(EXECUTABLE))
    }

    /// Its settings.
    pub fn settings(&self) -> Result<Settings, HomeError> {
        read_json(&self.dir.join(SETTINGS))
    }

    /// Replaces its settings, under the home's lock; refused while it runs.
    pub fn set_settings(&self, settings: &Settings) -> Result<(), HomeError> {
        let held = HomeLock::take(&self.home)?;
        self.set_settings_held(&held, settings)
    }

    /// Replaces its settings while the caller holds the home's lock (from
    /// [`Home::lock`](super::Home::lock)), having read and changed them
    /// under it; refused while the role runs.
    pub fn set_settings_held(&self, held: &HomeLock, settings: &Settings) -> Result<(), HomeError> {
        held.check(&self.home)?;
        self.refuse_if_running()?;
        write_json(&self.dir.join(SETTINGS), settings)
    }

    /// The id it was given when added.
    pub fn unique_id(&self) -> Result<uuid::Uuid, HomeError> {
        read_json(&self.dir.join(UNIQUE_ID))
    }

    /// Its runs, oldest first (the last 16).
    pub fn history(&self) -> Result<Vec<StartStop>, HomeError> {
        read_json(&self.dir.join(HISTORY))
    }

    /// The history for changing it (under the home's lock): a missing one
    /// is empty, and an unreadable one is moved aside
    /// (`history.json.corrupt-<UTC time>`) so that the role can still run.
    fn history_for_update(&self) -> Result<(Vec<StartStop>, Option<MovedAside>), HomeError> {
        let path = self.dir.join(HISTORY);
        match read_json(&path) {
            Ok(history) => Ok((history, None)),
            Err(HomeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok((Vec::new(), None))
            }
            Err(HomeError::Corrupt { reason, .. }) => {
                let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
                let to = self.dir.join(format!("{HISTORY}.corrupt-{stamp}"));
                std::fs::rename(&path, &to).map_err(io(&path))?;
                sync_dir(&self.dir)?;
                let moved = MovedAside {
                    from: path,
                    to,
                    reason,
                };
                tracing::warn!(role = %self.name, "{moved}");
                Ok((Vec::new(), Some(moved)))
            }
            Err(other) => Err(other),
        }
    }

    /// Records that it started as process `pid`, under the home's lock. A
    /// history that cannot be read is moved aside first (and said so in
    /// the answer, and in a warning): the role starts all the same.
    pub fn record_start(&self, pid: u32) -> Result<Option<MovedAside>, HomeError> {
        let _held = HomeLock::take(&self.home)?;
        let (mut history, moved) = self.history_for_update()?;
        history.push(StartStop {
            start: Utc::now(),
            pid,
            stop: None,
            returned: None,
        });
        let excess = history.len().saturating_sub(KEPT);
        history.drain(..excess);
        write_json(&self.dir.join(HISTORY), &history)?;
        Ok(moved)
    }

    /// Records that its latest run ended, returning `returned` (a typed
    /// JSON envelope), under the home's lock. A run that never recorded its
    /// start (it failed before it could) is recorded as starting and ending
    /// now, with pid 0. An unreadable history is moved aside first, as for
    /// [`record_start`](Role::record_start).
    pub fn record_stop(&self, returned: serde_json::Value) -> Result<(), HomeError> {
        let _held = HomeLock::take(&self.home)?;
        let (mut history, _moved) = self.history_for_update()?;
        let now = Utc::now();
        match history.last_mut() {
            Some(run) if run.stop.is_none() => {
                run.stop = Some(now);
                run.returned = Some(returned);
            }
            _ => {
                history.push(StartStop {
                    start: now,
                    pid: 0,
                    stop: Some(now),
                    returned: Some(returned),
                });
                let excess = history.len().saturating_sub(KEPT);
                history.drain(..excess);
            }
        }
        write_json(&self.dir.join(HISTORY), &history)
    }

    /// Where its rolling logs go.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Its persistent folder.
    pub fn model_dir(&self) -> PathBuf {
        self.dir.join("model")
    }

    /// Its scratch folder.
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Who runs it, if it is running (someone holds its lock).
    pub fn running(&self) -> Option<Running> {
        let path = self.dir.join(LOCK);
        let mut file = File::open(&path).ok()?;
        match file.try_lock() {
            Ok(()) => None,
            Err(std::fs::TryLockError::WouldBlock) => {
                // The holder writes who it is just after taking the lock:
                // give it a moment before saying "someone, pid unknown" (0).
                for _ in 0..50 {
                    let mut text = String::new();
                    let _ = file.rewind();
                    let _ = file.read_to_string(&mut text);
                    if let Ok(running) = serde_json::from_str(&text) {
                        return Some(running);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Some(Running {
                    pid: 0,
                    parent_pid: 0,
                    since: Utc::now(),
                })
            }
            Err(std::fs::TryLockError::Error(_)) => None,
        }
    }

    /// Takes its lock for this process (run by `parent_pid`): from now until
    /// the lock is dropped it is running.
    pub fn lock(&self, parent_pid: u32) -> Result<RoleLock, HomeError> {
        let path = self.dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(HomeError::Running {
                    role: self.name.clone(),
                    pid: self.running().map_or(0, |r| r.pid),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let holder = Running {
            pid: std::process::id(),
            parent_pid,
            since: Utc::now(),
        };
        let text = serde_json::to_string(&holder).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io(&path))?;
        Ok(RoleLock { _file: file })
    }

    fn refuse_if_running(&self) -> Result<(), HomeError> {
        match self.running() {
            Some(r) => Err(HomeError::Running {
                role: self.name.clone(),
                pid: r.pid,
            }),
            None => Ok(()),
        }
    }

    /// Removes the role, under the home's lock; refused while it runs.
    pub fn delete(self) -> Result<(), HomeError> {
        let _held = HomeLock::take(&self.home)?;
        self.refuse_if_running()?;
        std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))?;
        if let Some(roles) = self.dir.parent() {
            sync_dir(roles)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::Home;

    #[test]
    fn settings_and_history_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::create(dir.path().join("h")).unwrap();
        let mut settings = Settings::new();
        settings.insert("retry".into(), r#"{"regular_steps": 30.0}"#.into());
        let role = home
            .add_role("server", "test_server_10", settings.clone())
            .unwrap();
        assert_eq!(role.settings().unwrap(), settings);
        assert!(matches!(
            home.add_role("server", "x", Settings::new()),
            Err(HomeError::RoleExists(_))
        ));
        for bad in ["", "group-x", "a/b", ".hidden", "sp ace", "server.worker"] {
            let e = home.add_role(bad, "x", Settings::new()).unwrap_err();
            assert!(matches!(e, HomeError::BadRoleName { .. }), "{bad}: {e}");
        }
        for pid in 0..20 {
            role.record_start(pid).unwrap();
            role.record_stop(serde_json::json!({"value": ["Faulted", {}, []]}))
                .unwrap();
        }
        let history = role.history().unwrap();
        assert_eq!(history.len(), KEPT);
        assert_eq!(history[0].pid, 4);
        assert_eq!(history[KEPT - 1].returned_type(), Some("Faulted"));
        assert!(history.iter().all(|r| r.stop.is_some()));
    }

    #[test]
    fn role_names_are_plain_folder_names_wherever_they_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::create(dir.path().join("h")).unwrap();
        home.add_role("w-1_x-2", "x", Settings::new()).unwrap();
        let long = "w".repeat(MAX_ROLE_NAME + 1);
        for (bad, why) in [
            ("", "empty"),
            ("..", "starts with '.'"),
            ("../..", "contains '/'"),
            ("/etc", "contains '/'"),
            ("a/b", "contains '/'"),
            ("a..b", "contains '..'"),
            (".hidden", "starts with '.'"),
            ("x\0y", "contains a NUL"),
            (long.as_str(), "longer than 64 bytes"),
            ("é", "only letters"),
        ] {
            for e in [
                home.role(bad).unwrap_err(),
                home.add_role(bad, "x", Settings::new()).unwrap_err(),
            ] {
                assert!(matches!(e, HomeError::BadRoleName { .. }), "{bad:?}: {e}");
                assert!(e.to_string().contains(why), "{bad:?}: {e}");
                assert!(!e.to_string().contains('\0'), "{e}");
            }
        }
        assert!(
            home.role(&"w".repeat(MAX_ROLE_NAME))
                .is_err_and(|e| matches!(e, HomeError::NoRole(_)))
        );
        assert_eq!(home.role("w-1_x-2").unwrap().name(), "w-1_x-2");
        // A stray folder in role/ is not a role, and does not break listing.
        std::fs::create_dir(home.path().join("role/.stray")).unwrap();
        std::fs::write(home.path().join("role/.stray/executable.json"), "\"x\"").unwrap();
        assert_eq!(home.roles().unwrap().len(), 1);
    }

    #[test]
    fn a_corrupt_history_is_moved_aside_and_a_missing_one_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::create(dir.path().join("h")).unwrap();
        let role = home.add_role("w", "x", Settings::new()).unwrap();
        let path = role.dir().join(HISTORY);
        std::fs::write(&path, "[{\"start\":").unwrap();
        assert!(matches!(role.history(), Err(HomeError::Corrupt { .. })));
        let moved = role.record_start(7).unwrap().expect("moved aside");
        assert_eq!(moved.from, path);
        assert_eq!(std::fs::read_to_string(&moved.to).unwrap(), "[{\"start\":");
        assert!(moved.to.to_string_lossy().contains("history.json.corrupt-"));
        assert_eq!(role.history().unwrap().len(), 1);
        assert_eq!(role.record_start(8).unwrap(), None);
        std::fs::remove_file(&path).unwrap();
        role.record_stop(serde_json::json!({"value": ["Faulted", {}, []]}))
            .unwrap();
        let history = role.history().unwrap();
        assert_eq!((history.len(), history[0].pid), (1, 0));
    }

    #[test]
    fn writers_at_once_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::create(dir.path().join("h")).unwrap();
        let role = home.add_role("w", "x", Settings::new()).unwrap();
        // Each thread opens the lock file itself, as another process would.
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let role = role.clone();
                std::thread::spawn(move || {
                    for k in 0..2 {
                        role.record_start(t * 10 + k).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let mut pids: Vec<u32> = role.history().unwrap().iter().map(|r| r.pid).collect();
        pids.sort_unstable();
        let mut want: Vec<u32> = (0..8).flat_map(|t| [t * 10, t * 10 + 1]).collect();
        want.sort_unstable();
        assert_eq!(pids, want);
        let names: Vec<String> = std::fs::read_dir(role.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with(".tmp")), "{names:?}");
    }

    #[test]
    fn a_locked_role_is_running_and_cannot_change() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::create(dir.path().join("h")).unwrap();
        let role = home
            .add_role("worker", "test_worker_10", Settings::new())
            .unwrap();
        assert_eq!(role.running(), None);
        let lock = role.lock(42).unwrap();
        let running = role.running().expect("running while locked");
        assert_eq!((running.pid, running.parent_pid), (std::process::id(), 42));
        assert!(matches!(role.lock(1), Err(HomeError::Running { .. })));
        assert!(matches!(
            role.set_settings(&Settings::new()),
            Err(HomeError::Running { .. })
        ));
        assert!(matches!(
            role.clone().delete(),
            Err(HomeError::Running { .. })
        ));
        drop(lock);
        assert_eq!(role.running(), None);
        role.delete().unwrap();
    }
}
