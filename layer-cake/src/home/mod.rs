//! The home: a folder holding the roles of a composite process — what to
//! run, with which settings, and what happened when it ran.
//!
//! The `layer-cake` CLI creates and edits a home; `group-cake` runs its
//! roles. The layout (`docs/home.md` tells the whole story):
//!
//! ```text
//! .layer-cake/                 the home (the default, in the current directory)
//!   role/
//!     group/                   the composite process itself (group-cake)
//!     <role>/
//!       executable.json        what to run: a path, or a bare name found next to the CLI or on PATH
//!       settings.json          the role's own flags: {"name": "value text", …}
//!       unique_id.json         a uuid, fixed when the role is added
//!       history.json           the last 16 starts: when, pid, when it stopped, what it returned
//!       logs/  model/  tmp/    logs (the group's: what `start` writes); persistent and scratch folders
//!       lock                   held while the role runs (pid and parent pid inside)
//!   resource/<executable>/     read-only files per executable (`layer-cake resource`)
//!   script/                    copies of the programs the roles run, preferred at launch
//!                              ([`Home::program`]; `layer-cake script`)
//!   home.lock                  held while a file of the home is read, changed and written
//! ```
//!
//! Files are changed under the home's lock ([`Home::lock`], an `flock`),
//! written through a uniquely named temporary file that is flushed to disk
//! and renamed into place, and every path made from a role name goes
//! through one check ([`check_role_path`]).
//!
//! ```
//! use layer_cake::home::{Home, Settings};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let home = Home::create(dir.path().join(".layer-cake")).unwrap();
//! let mut settings = Settings::new();
//! settings.insert("x".into(), "2".into());
//! home.add_role("worker-0", "test_worker_10", settings).unwrap();
//! let roles = home.roles().unwrap();
//! assert_eq!(roles.len(), 1);
//! assert_eq!(roles[0].executable().unwrap(), "test_worker_10");
//! assert_eq!(roles[0].settings().unwrap()["x"], "2");
//! ```

mod folders;
mod group;
mod history;
mod role;

use std::path::{Path, PathBuf};

pub use folders::{
    Change, Executable, Listed, PortableEntry, RESOURCE, SCRIPT, apply, copy_file, list_folder,
    plan_clear, plan_sync, program_name,
};
pub use group::{GroupOptions, RolesReturned, group_link, run_group};
pub use history::StartStop;
pub use role::{
    MAX_ROLE_NAME, MovedAside, Role, RoleLock, Running, check_role_name, check_role_path,
};

/// A role's settings: flag name (without `--`) → the flag's value as text,
/// exactly as it is given on a command line (`"2"`, `"127.0.0.1:5050"`,
/// `{"regular_steps": 30.0}`).
pub type Settings = std::collections::BTreeMap<String, String>;

/// The name of the role that stands for the composite process itself.
pub const GROUP_ROLE: &str = "group";

/// The default home: `.layer-cake` in the current directory.
pub const DEFAULT_HOME: &str = ".layer-cake";

/// A home that went wrong: what, and where.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// The home does not exist (or is not a home).
    #[error("no home at {0} (make one with `layer-cake create`)")]
    NoHome(PathBuf),
    /// `create` found something there already.
    #[error("a home already exists at {0}")]
    Exists(PathBuf),
    /// No role of that name.
    #[error("no role \"{0}\"")]
    NoRole(String),
    /// A role of that name exists already.
    #[error("role \"{0}\" already exists")]
    RoleExists(String),
    /// A role name that cannot be used.
    #[error("bad role name {name:?}: {reason}")]
    BadRoleName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The role is running, so it cannot be changed or deleted.
    #[error("role \"{role}\" is running (pid {pid})")]
    Running {
        /// The role.
        role: String,
        /// Its process.
        pid: u32,
    },
    /// A file of the home could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
    /// A home's lock was used for another home.
    #[error("the lock held is {held}'s, not {home}'s")]
    WrongLock {
        /// The home whose lock is held.
        held: PathBuf,
        /// The home being changed.
        home: PathBuf,
    },
    /// A file of the home holds something unreadable.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A home folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    path: PathBuf,
}

/// The name of the home's lock file.
const HOME_LOCK: &str = "home.lock";

/// The home's lock: an exclusive `flock` on `home.lock`, held while files of
/// the home are read, changed and written back, so that two commands (or a
/// command and a starting role) never lose each other's changes. Held for
/// moments; released when dropped, or when the process ends however it
/// ends. Not reentrant: a process holding it passes it on (methods ending
/// in `_held`) rather than taking it again.
#[derive(Debug)]
pub struct HomeLock {
    _file: std::fs::File,
    home: PathBuf,
}

impl HomeLock {
    /// Takes the lock of the home at `home`, waiting while another holds it.
    pub(crate) fn take(home: &Path) -> Result<HomeLock, HomeError> {
        let path = home.join(HOME_LOCK);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(HomeLock {
            _file: file,
            home: home.to_path_buf(),
        })
    }

    /// Fails unless this is the lock of the home at `home`.
    pub(crate) fn check(&self, home: &Path) -> Result<(), HomeError> {
        if self.home == home {
            return Ok(());
        }
        Err(HomeError::WrongLock {
            held: self.home.clone(),
            home: home.to_path_buf(),
        })
    }
}

impl Home {
    /// Makes a new home at `path` (its parent must exist); fails if anything
    /// is already there.
    pub fn create(path: impl Into<PathBuf>) -> Result<Home, HomeError> {
        let path = path.into();
        if path.exists() {
            return Err(HomeError::Exists(path));
        }
        std::fs::create_dir(&path).map_err(io(&path))?;
        for dir in ["role", folders::RESOURCE, folders::SCRIPT] {
            let sub = path.join(dir);
            std::fs::create_dir(&sub).map_err(io(&sub))?;
        }
        Ok(Home { path })
    }

    /// Opens the home at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Home, HomeError> {
        let path = path.into();
        if !path.join("role").is_dir() {
            return Err(HomeError::NoHome(path));
        }
        Ok(Home { path })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the home's lock (see [`HomeLock`]), waiting while another
    /// process holds it. Hold it across a read, change and write of the
    /// home's files; keep it short.
    pub fn lock(&self) -> Result<HomeLock, HomeError> {
        HomeLock::take(&self.path)
    }

    /// The folder of read-only files for `executable`.
    pub fn resource_dir(&self, executable: &str) -> PathBuf {
        let base = Path::new(executable)
            .file_name()
            .map_or_else(|| executable.into(), |n| n.to_os_string());
        self.path.join("resource").join(base)
    }

    /// Adds a role that runs `executable` with `settings`, under the
    /// home's lock.
    pub fn add_role(
        &self,
        name: &str,
        executable: &str,
        settings: Settings,
    ) -> Result<Role, HomeError> {
        let held = self.lock()?;
        self.add_role_held(&held, name, executable, settings)
    }

    /// [`add_role`](Home::add_role) while the caller holds the home's lock.
    pub fn add_role_held(
        &self,
        held: &HomeLock,
        name: &str,
        executable: &str,
        settings: Settings,
    ) -> Result<Role, HomeError> {
        held.check(&self.path)?;
        Role::create(&self.path, name, executable, settings)
    }

    /// The role called `name` (refused with [`HomeError::BadRoleName`] when
    /// the name is not a safe folder name, see [`check_role_path`]).
    pub fn role(&self, name: &str) -> Result<Role, HomeError> {
        Role::open(&self.path, name)
    }

    /// Every role, the group role included, in name order (numbers in names
    /// compare as numbers: `worker-2` before `worker-10`).
    pub fn roles(&self) -> Result<Vec<Role>, HomeError> {
        let dir = self.path.join("role");
        let mut roles = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_role_path(&name).is_err() {
                // Not made by `add`: a stray folder (or temporary file).
                tracing::debug!("{}: not a role name; skipped", entry.path().display());
                continue;
            }
            if entry.path().join(role::EXECUTABLE).is_file() {
                roles.push(Role::open(&self.path, &name)?);
            }
        }
        roles.sort_by(|a, b| natural_cmp(a.name(), b.name()));
        Ok(roles)
    }

    /// The roles whose names match any of `patterns`, regular expressions
    /// matched from the start of the name (so `worker` matches `worker-3`);
    /// when `patterns` is empty, every role but the group role (which is
    /// included only when a pattern names it).
    pub fn matching(&self, patterns: &[String]) -> Result<Vec<Role>, MatchError> {
        let regexes = patterns
            .iter()
            .map(|p| {
                regex::Regex::new(&format!("^(?:{p})")).map_err(|e| MatchError::BadPattern {
                    pattern: p.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let roles = self.roles()?;
        Ok(roles
            .into_iter()
            .filter(|r| match regexes.is_empty() {
                true => !r.is_group(),
                false => regexes.iter().any(|re| re.is_match(r.name())),
            })
            .collect())
    }

    /// Removes the whole home, under its lock; refuses while any role runs.
    pub fn destroy(self) -> Result<(), HomeError> {
        let _held = self.lock()?;
        for role in self.roles()? {
            if let Some(running) = role.running() {
                return Err(HomeError::Running {
                    role: role.name().to_owned(),
                    pid: running.pid,
                });
            }
        }
        std::fs::remove_dir_all(&self.path).map_err(io(&self.path))
    }
}

/// Role patterns that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// A pattern is not a regular expression.
    #[error("bad role pattern \"{pattern}\": {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// The home could not be read.
    #[error(transparent)]
    Home(#[from] HomeError),
}

/// Compares names with runs of digits taken as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, sa), (db, sb)) in ca.iter().zip(cb.iter()) {
        let order = if *da && *db {
            let (ta, tb) = (sa.trim_start_matches('0'), sb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then(ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if order.is_ne() {
            return order;
        }
    }
    ca.len().cmp(&cb.len())
}

/// Lets the process entry point run a process as a role of a home (with
/// `--home-path` and `--role-name`) without naming this module: the role is
/// locked for the process and its start recorded (a corrupt history moved
/// aside is a warning for the entry point to print).
fn take_role(home: &std::path::Path, role: &str) -> Result<crate::process::TakenRole, String> {
    let taken = || -> Result<crate::process::TakenRole, HomeError> {
        let role = Home::open(home)?.role(role)?;
        let lock = role.lock(std::os::unix::process::parent_id())?;
        let moved = role.record_start(std::process::id())?;
        let home = Home::open(home)?;
        let tmp = role.tmp_dir();
        // The role's scratch folder starts empty at every run.
        folders::apply(&folders::plan_clear(&tmp)?)?;
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(crate::process::TakenRole {
            folders: crate::process::RoleFolders {
                resource: home.resource_dir(&role.executable()?),
                model: role.model_dir(),
                tmp,
            },
            logs_dir: role.logs_dir(),
            held: Box::new(lock),
            warning: moved.map(|m| m.to_string()),
        })
    };
    taken().map_err(|e| e.to_string())
}

inventory::submit! {
    crate::process::RoleKeeper { take: take_role }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_naturally() {
        let mut names = vec!["worker-10", "worker-2", "server", "worker-1", "group"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["group", "server", "worker-1", "worker-2", "worker-10"]
        );
    }

    #[test]
    fn a_home_is_made_once_and_roles_are_found_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home");
        let home = Home::create(&path).unwrap();
        assert!(matches!(Home::create(&path), Err(HomeError::Exists(_))));
        home.add_role(GROUP_ROLE, "group-cake", Settings::new())
            .unwrap();
        for i in 0..3 {
            home.add_role(&format!("worker-{i}"), "test_worker_10", Settings::new())
                .unwrap();
        }
        home.add_role("server", "test_server_10", Settings::new())
            .unwrap();
        let names = |roles: Vec<Role>| {
            roles
                .iter()
                .map(|r| r.name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(home.matching(&[]).unwrap()),
            ["server", "worker-0", "worker-1", "worker-2"]
        );
        assert_eq!(
            names(home.matching(&["work".into()]).unwrap()),
            ["worker-0", "worker-1", "worker-2"]
        );
        assert_eq!(
            names(home.matching(&["s".into(), "worker-2".into()]).unwrap()),
            ["server", "worker-2"]
        );
        // Anchored at the start: "erver" matches nothing.
        assert!(home.matching(&["erver".into()]).unwrap().is_empty());
        assert_eq!(names(home.matching(&["group".into()]).unwrap()), ["group"]);
        let e = home.matching(&["(".into()]).unwrap_err();
        assert!(e.to_string().starts_with("bad role pattern \"(\""), "{e}");
        assert!(matches!(
            Home::open(dir.path().join("nope")),
            Err(HomeError::NoHome(_))
        ));
        Home::open(&path).unwrap().destroy().unwrap();
        assert!(!path.exists());
    }
}
