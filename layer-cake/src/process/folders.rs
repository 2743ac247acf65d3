//! The folders a process is given for its files: read-only resources, a
//! persistent model folder and a scratch folder.
//!
//! | | a role of a home (`--home-path`, `--role-name`) | standalone |
//! |---|---|---|
//! | [`resource_path`] | the home's `resource/<executable>/` | `--resource-path`, else none |
//! | [`model_path`] | the role's `model/` | `--model-path`, else the current folder |
//! | [`tmp_path`] | the role's `tmp/`, emptied when the role starts | a fresh temporary folder, removed when the main actor has returned |
//!
//! Inside a home the home decides: `--resource-path` and `--model-path`
//! are not used there.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::config::ProcessConfig;

/// The folders of a role of a home, as the home lays them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleFolders {
    /// `resource/<executable>/` of the home.
    pub(crate) resource: PathBuf,
    /// The role's `model/`.
    pub(crate) model: PathBuf,
    /// The role's `tmp/` (emptied at the start).
    pub(crate) tmp: PathBuf,
}

/// The process's folders, decided once at its start.
#[derive(Debug)]
struct Folders {
    resource: Option<PathBuf>,
    model: PathBuf,
    /// The role's tmp/, or None for a fresh temporary folder made when it
    /// is first asked for.
    tmp: Option<PathBuf>,
}

static FOLDERS: OnceLock<Folders> = OnceLock::new();
/// The fresh temporary folder of a standalone process, once made.
static FRESH_TMP: OnceLock<PathBuf> = OnceLock::new();
/// What removes it.
static FRESH_GUARD: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);

fn standalone(config: &ProcessConfig) -> Folders {
    Folders {
        resource: config.resource_path.clone(),
        model: config
            .model_path
            .clone()
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))),
        tmp: None,
    }
}

/// Records the folders at the start of the process (the first call wins):
/// the role's when it is a role of a home, else from the flags.
pub(crate) fn set(config: &ProcessConfig, role: Option<&RoleFolders>) {
    let folders = match role {
        Some(role) => Folders {
            resource: Some(role.resource.clone()),
            model: role.model.clone(),
            tmp: Some(role.tmp.clone()),
        },
        None => standalone(config),
    };
    let _ = FOLDERS.set(folders);
}

fn folders() -> &'static Folders {
    FOLDERS.get_or_init(|| standalone(super::config()))
}

/// Removes the fresh temporary folder, if one was made (at the end of
/// [`run`](super::run)).
pub(crate) fn finish() {
    if let Ok(mut guard) = FRESH_GUARD.lock()
        && let Some(dir) = guard.take()
    {
        let _ = dir.close();
    }
}

/// The folder of read-only files that come with this program: the home's
/// `resource/<executable>/` for a role of a home (filled with `layer-cake
/// resource`; it may not exist when nothing was put there), else
/// `--resource-path`, else none.
pub fn resource_path() -> Option<&'static Path> {
    folders().resource.as_deref()
}

/// The folder for the files this process keeps from run to run: the
/// role's `model/` for a role of a home (filled with `layer-cake model`),
/// else `--model-path`, else the current folder.
pub fn model_path() -> &'static Path {
    &folders().model
}

/// A scratch folder for this run: the role's `tmp/` for a role of a home
/// (emptied when the role starts), else a fresh temporary folder, made at
/// the first call and removed when the main actor has returned (when
/// [`run`] returns, or [`create`] exits; not when the process is killed or
/// exits at a second signal). An error only when that folder cannot be
/// made.
///
/// [`run`]: super::run
/// [`create`]: super::create
pub fn tmp_path() -> std::io::Result<&'static Path> {
    if let Some(tmp) = &folders().tmp {
        return Ok(tmp);
    }
    if let Some(path) = FRESH_TMP.get() {
        return Ok(path);
    }
    let mut guard = FRESH_GUARD
        .lock()
        .map_err(|_| std::io::Error::other("the temporary folder's lock is poisoned"))?;
    if let Some(path) = FRESH_TMP.get() {
        return Ok(path);
    }
    let dir = tempfile::Builder::new().prefix("layer-cake-").tempdir()?;
    let path = FRESH_TMP.get_or_init(|| dir.path().to_path_buf());
    *guard = Some(dir);
    Ok(path)
}
