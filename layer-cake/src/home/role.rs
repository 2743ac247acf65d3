//! One role of a home: its files, and whether it is running.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::history::{KEPT, StartStop};
use super::{GROUP_ROLE, HomeError, Settings, io};

pub(crate) const EXECUTABLE: &str = "executable.json";
const SETTINGS: &str = "settings.json";
const UNIQUE_ID: &str = "unique_id.json";
const HISTORY: &str = "history.json";
const LOCK: &str = "lock";

/// A role: an executable, its settings and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    name: String,
    dir: PathBuf,
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

/// Held while a role runs; released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct RoleLock {
    _file: File,
}

/// Whether `name` can name a role: letters, digits, `-`, `_` and `.`, not
/// starting with `.` or `-`; names starting with `group` are reserved for
/// the group role.
pub fn check_role_name(name: &str) -> Result<(), HomeError> {
    let bad = |reason| {
        Err(HomeError::BadRoleName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with(['.', '-']) {
        return bad("starts with '.' or '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return bad("only letters, digits, '-', '_' and '.' are allowed");
    }
    if name.starts_with(GROUP_ROLE) && name != GROUP_ROLE {
        return bad("names starting with \"group\" are reserved");
    }
    Ok(())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, HomeError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| HomeError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `value` as pretty JSON through a temporary file and a rename, so
/// a reader never sees half a file.
fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), HomeError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| HomeError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl Role {
    pub(crate) fn create(
        roles: &Path,
        name: &str,
        executable: &str,
        settings: Settings,
    ) -> Result<Role, HomeError> {
        check_role_name(name)?;
        let dir = roles.join(name);
        if dir.exists() {
            return Err(HomeError::RoleExists(name.to_owned()));
        }
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        for sub in ["logs", "model", "tmp"] {
            let sub = dir.join(sub);
            std::fs::create_dir(&sub).map_err(io(&sub))?;
        }
        let role = Role {
            name: name.to_owned(),
            dir,
        };
        write_json(&role.dir.join(SETTINGS), &settings)?;
        write_json(&role.dir.join(UNIQUE_ID), &uuid::Uuid::new_v4())?;
        write_json(&role.dir.join(HISTORY), &Vec::<StartStop>::new())?;
        // Last: a folder with an executable file is a role.
        write_json(&role.dir.join(EXECUTABLE), executable)?;
        Ok(role)
    }

    pub(crate) fn open(roles: &Path, name: &str) -> Result<Role, HomeError> {
        let dir = roles.join(name);
        if !dir.join(EXECUTABLE).is_file() {
            return Err(HomeError::NoRole(name.to_owned()));
        }
        Ok(Role {
            name: name.to_owned(),
            dir,
        })
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

    /// What it runs.
    pub fn executable(&self) -> Result<String, HomeError> {
        read_json(&self.dir.join(EXECUTABLE))
    }

    /// Its settings.
    pub fn settings(&self) -> Result<Settings, HomeError> {
        read_json(&self.dir.join(SETTINGS))
    }

    /// Replaces its settings; refused while it runs.
    pub fn set_settings(&self, settings: &Settings) -> Result<(), HomeError> {
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

    /// Records that it started as process `pid`.
    pub fn record_start(&self, pid: u32) -> Result<(), HomeError> {
        let mut history = self.history()?;
        history.push(StartStop {
            start: Utc::now(),
            pid,
            stop: None,
            returned: None,
        });
        let excess = history.len().saturating_sub(KEPT);
        history.drain(..excess);
        write_json(&self.dir.join(HISTORY), &history)
    }

    /// Records that its latest run ended, returning `returned` (a typed
    /// JSON envelope). A run that never recorded its start (it failed before
    /// it could) is recorded as starting and ending now, with pid 0.
    pub fn record_stop(&self, returned: serde_json::Value) -> Result<(), HomeError> {
        let mut history = self.history()?;
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

    /// Removes the role; refused while it runs.
    pub fn delete(self) -> Result<(), HomeError> {
        self.refuse_if_running()?;
        std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))
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
        for bad in ["", "group-x", "a/b", ".hidden", "sp ace"] {
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
