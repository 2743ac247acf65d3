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
    MAX_ROLE_NAME, MovedAside, Role, RoleLock, Running, Usage, check_role_name, check_role_path,
};

/// A role's settings: flag name (without `--`) → the flag's value as text,
/// exactly as it is given on a command line (`"2"`, `"127.0.0.1:5050"`,
/// `{"regular_steps": 30.0}`).
pub type Settings = std::collections::BTreeMap<String, String>;

/// How many sub-roles of one name ([`Home::take_sub_role`]) may run at
/// once: `name`, `name-1` … `name-255`.
pub const MAX_SUB_ROLES: usize = 256;

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
    /// included only when a pattern names it). Sub-roles
    /// ([`Role::is_sub_role`]) are never included: they are the processes
    /// of a role, not roles to run.
    pub fn matching(&self, patterns: &[String]) -> Result<Vec<Role>, MatchError> {
        self.select(patterns, false, false)
    }

    /// What `list` and `status` show: the roles matching `patterns` as
    /// [`matching`](Home::matching) finds them, plus the group role with
    /// `group_role` (when no pattern is given; a pattern that names it
    /// finds it anyway) and, with `sub_roles`, the sub-roles whose names
    /// match (a pattern matching a role matches its sub-roles too:
    /// `server` matches `server.worker`).
    pub fn select(
        &self,
        patterns: &[String],
        group_role: bool,
        sub_roles: bool,
    ) -> Result<Vec<Role>, MatchError> {
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
            .filter(|r| sub_roles || !r.is_sub_role())
            .filter(|r| match regexes.is_empty() {
                true => group_role || !r.is_group(),
                false => regexes.iter().any(|re| re.is_match(r.name())),
            })
            .collect())
    }

    /// The sub-roles of `role` (`<role>.<name>`, and theirs in turn), in
    /// name order.
    pub fn sub_roles(&self, role: &Role) -> Result<Vec<Role>, HomeError> {
        let prefix = format!("{}.", role.name());
        Ok(self
            .roles()?
            .into_iter()
            .filter(|r| r.name().starts_with(&prefix))
            .collect())
    }

    /// The role a child process of role `parent` runs as: the
    /// `<parent>.<child>` sub-role, made on first use (see
    /// [`Home::take_sub_role`]). `None` when that is not a usable role name
    /// (too long, or `child` has characters a role name cannot have): the
    /// child then runs outside the home.
    pub fn sub_role_name(parent: &str, child: &str) -> Option<String> {
        let name = format!("{parent}.{child}");
        // Room for a `-N` suffix when several such children run at once.
        (check_role_path(&name).is_ok() && name.len() + 4 <= MAX_ROLE_NAME).then_some(name)
    }

    /// Opens, or makes, the sub-role `name` (`<parent>.<child>`, its parent
    /// an existing role) for a starting child process running `executable`,
    /// and locks it for that process. When that sub-role is running already
    /// (a parent runs several children of one name at once) the first free
    /// one of `name-1`, `name-2` … is taken instead. A sub-role is made with
    /// no settings: its process takes its flags from its parent's command
    /// line, every run.
    pub fn take_sub_role(
        &self,
        name: &str,
        executable: &str,
        parent_pid: u32,
    ) -> Result<(Role, RoleLock), HomeError> {
        let Some((parent, _)) = name.rsplit_once('.') else {
            return Err(HomeError::NoRole(name.to_owned()));
        };
        self.role(parent)?;
        let mut last = None;
        for n in 0..MAX_SUB_ROLES {
            let candidate = match n {
                0 => name.to_owned(),
                n => format!("{name}-{n}"),
            };
            let role = match self.role(&candidate) {
                Ok(role) => role,
                Err(HomeError::NoRole(_)) => {
                    let held = self.lock()?;
                    match Role::open(&self.path, &candidate) {
                        Ok(role) => role,
                        Err(_) => Role::create_sub(&held, &self.path, &candidate, executable)?,
                    }
                }
                Err(e) => return Err(e),
            };
            match role.lock(parent_pid) {
                Ok(lock) => return Ok((role, lock)),
                Err(e @ HomeError::Running { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| HomeError::NoRole(name.to_owned())))
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
///
/// A sub-role (`<role>.<child>`, given by a role's process to the child
/// processes it starts) is made on first use and taken as
/// [`Home::take_sub_role`] says; no supervisor records its end, so the
/// process records it itself ([`crate::process::TakenRole::finish`]).
fn take_role(home: &std::path::Path, role: &str) -> Result<crate::process::TakenRole, String> {
    let taken = || -> Result<crate::process::TakenRole, HomeError> {
        let home = Home::open(home)?;
        let parent_pid = std::os::unix::process::parent_id();
        let (role, lock, sub) = if role.contains('.') {
            let executable = std::env::current_exe()
                .map(|e| e.display().to_string())
                .unwrap_or_else(|_| "?".to_owned());
            let (role, lock) = home.take_sub_role(role, &executable, parent_pid)?;
            (role, lock, true)
        } else {
            let role = home.role(role)?;
            let lock = role.lock(parent_pid)?;
            (role, lock, false)
        };
        let moved = role.record_start(std::process::id())?;
        let finish: Option<Box<dyn FnOnce(Option<String>) + Send>> = sub.then(|| {
            let role = role.clone();
            Box::new(move |returned: Option<String>| {
                let value = returned
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or(serde_json::Value::Null);
                if let Err(e) = role.record_stop(value) {
                    tracing::warn!("cannot record the end of {}: {e}", role.name());
                }
            }) as Box<dyn FnOnce(Option<String>) + Send>
        });
        let tmp = role.tmp_dir();
        // The role's scratch folder starts empty at every run.
        folders::apply(&folders::plan_clear(&tmp)?)?;
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(crate::process::TakenRole {
            name: role.name().to_owned(),
            folders: crate::process::RoleFolders {
                resource: home.resource_dir(&role.executable()?),
                model: role.model_dir(),
                tmp,
            },
            logs_dir: role.logs_dir(),
            held: Box::new(lock),
            warning: moved.map(|m| m.to_string()),
            finish,
        })
    };
    taken().map_err(|e| e.to_string())
}

inventory::submit! {
    crate::process::RoleKeeper { take: take_role, sub_role_name: Home::sub_role_name }
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
        // Sub-roles: never matched, shown on request, found by their role.
        let server = home.role("server").unwrap();
        let (sub, lock) = home.take_sub_role("server.worker", "/bin/true", 1).unwrap();
        assert!(sub.is_sub_role() && !server.is_sub_role());
        assert_eq!(sub.executable().unwrap(), "/bin/true");
        assert!(sub.settings().unwrap().is_empty());
        assert!(names(home.matching(&["server".into()]).unwrap()) == ["server"]);
        assert_eq!(
            names(home.select(&["server".into()], false, true).unwrap()),
            ["server", "server.worker"]
        );
        assert_eq!(
            names(home.select(&[], true, false).unwrap()),
            ["group", "server", "worker-0", "worker-1", "worker-2"]
        );
        assert_eq!(names(home.sub_roles(&server).unwrap()), ["server.worker"]);
        assert!(matches!(
            home.take_sub_role("nobody.worker", "/bin/true", 1),
            Err(HomeError::NoRole(_))
        ));
        assert_eq!(
            Home::sub_role_name("server", "worker").as_deref(),
            Some("server.worker")
        );
        assert_eq!(Home::sub_role_name("server", "a b"), None);
        assert_eq!(Home::sub_role_name("server", &"w".repeat(60)), None);
        drop(lock);
        Home::open(&path).unwrap().destroy().unwrap();
        assert!(!path.exists());
    }
}
