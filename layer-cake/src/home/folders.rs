//! The home's folders of files: `script/` (copies of the programs the
//! roles run), `resource/<executable>/` (read-only files per program) and
//! each role's `model/` (its persistent files); where a stored executable
//! is launched from; syncing folders in and out; and what a portable image
//! of the home holds.
//!
//! A sync is planned first ([`plan_sync`]) as a list of [`Change`]s, which
//! the CLI prints (a dry run) or carries out ([`apply`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Home, HomeError, io, role};

/// The name of the home's folder of program copies.
pub const SCRIPT: &str = "script";
/// The name of the home's folder of read-only files per executable.
pub const RESOURCE: &str = "resource";

/// How deep a folder tree may go (a link loop ends here, with an error).
const MAX_DEPTH: usize = 64;

/// One step of a sync: what it does, from where, to where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Copy a whole folder that the target lacks.
    AddFolder {
        /// The folder copied.
        path: PathBuf,
        /// Where it goes.
        target: PathBuf,
    },
    /// Copy a file that the target lacks.
    AddFile {
        /// The file copied.
        path: PathBuf,
        /// Where it goes.
        target: PathBuf,
    },
    /// Replace a file that differs (size or modification time).
    UpdateFile {
        /// The newer file.
        path: PathBuf,
        /// The file replaced.
        target: PathBuf,
    },
    /// Remove a file the source no longer has.
    RemoveFile {
        /// The file removed.
        target: PathBuf,
    },
    /// Remove a folder (and all in it) the source no longer has.
    RemoveFolder {
        /// The folder removed.
        target: PathBuf,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::AddFolder { path, target } => write!(
                f,
                "AddFolder(path={}, target={})",
                path.display(),
                target.display()
            ),
            Change::AddFile { path, target } => write!(
                f,
                "AddFile(path={}, target={})",
                path.display(),
                target.display()
            ),
            Change::UpdateFile { path, target } => write!(
                f,
                "UpdateFile(path={}, target={})",
                path.display(),
                target.display()
            ),
            Change::RemoveFile { target } => write!(f, "RemoveFile(target={})", target.display()),
            Change::RemoveFolder { target } => {
                write!(f, "RemoveFolder(target={})", target.display())
            }
        }
    }
}

/// The plan that makes `target` a copy of `source` (a file or a folder):
/// what is missing is added, what differs (size or modification time) is
/// replaced, and — inside a folder — what the source no longer has is
/// removed. An empty plan: they are the same already.
pub fn plan_sync(source: &Path, target: &Path) -> Result<Vec<Change>, HomeError> {
    let mut changes = Vec::new();
    plan_entry(source, target, 0, &mut changes)?;
    Ok(changes)
}

fn plan_entry(
    source: &Path,
    target: &Path,
    depth: usize,
    changes: &mut Vec<Change>,
) -> Result<(), HomeError> {
    if depth > MAX_DEPTH {
        return Err(HomeError::Corrupt {
            path: source.to_path_buf(),
            reason: format!("more than {MAX_DEPTH} folders deep (a link loop?)"),
        });
    }
    let from = std::fs::metadata(source).map_err(io(source))?;
    let to = std::fs::symlink_metadata(target).ok();
    if from.is_dir() {
        match to {
            None => changes.push(Change::AddFolder {
                path: source.to_path_buf(),
                target: target.to_path_buf(),
            }),
            Some(to) if !to.is_dir() => {
                changes.push(Change::RemoveFile {
                    target: target.to_path_buf(),
                });
                changes.push(Change::AddFolder {
                    path: source.to_path_buf(),
                    target: target.to_path_buf(),
                });
            }
            Some(_) => {
                let mine = names(source)?;
                for name in &mine {
                    plan_entry(&source.join(name), &target.join(name), depth + 1, changes)?;
                }
                for name in names(target)? {
                    if mine.contains(&name) {
                        continue;
                    }
                    let gone = target.join(&name);
                    changes.push(match std::fs::symlink_metadata(&gone) {
                        Ok(m) if m.is_dir() => Change::RemoveFolder { target: gone },
                        _ => Change::RemoveFile { target: gone },
                    });
                }
            }
        }
        return Ok(());
    }
    match to {
        None => changes.push(Change::AddFile {
            path: source.to_path_buf(),
            target: target.to_path_buf(),
        }),
        Some(to) if to.is_dir() => {
            changes.push(Change::RemoveFolder {
                target: target.to_path_buf(),
            });
            changes.push(Change::AddFile {
                path: source.to_path_buf(),
                target: target.to_path_buf(),
            });
        }
        Some(to) => {
            let same = to.len() == from.len() && to.modified().ok() == from.modified().ok();
            if !same {
                changes.push(Change::UpdateFile {
                    path: source.to_path_buf(),
                    target: target.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

/// The names in a folder, sorted.
fn names(folder: &Path) -> Result<Vec<std::ffi::OsString>, HomeError> {
    let mut names = std::fs::read_dir(folder)
        .map_err(io(folder))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(folder))?;
    names.sort();
    Ok(names)
}

/// The plan that empties `folder` (which is kept): one removal per entry.
pub fn plan_clear(folder: &Path) -> Result<Vec<Change>, HomeError> {
    if !folder.exists() {
        return Ok(Vec::new());
    }
    Ok(names(folder)?
        .into_iter()
        .map(|name| {
            let target = folder.join(name);
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => Change::RemoveFolder { target },
                _ => Change::RemoveFile { target },
            }
        })
        .collect())
}

/// Carries out `changes`, in order. Files are copied with their
/// permissions and modification time (so that the next sync sees them as
/// the same), through a temporary name renamed into place.
pub fn apply(changes: &[Change]) -> Result<(), HomeError> {
    for change in changes {
        match change {
            Change::AddFolder { path, target } => copy_tree(path, target, 0)?,
            Change::AddFile { path, target } | Change::UpdateFile { path, target } => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                copy_file(path, target)?;
            }
            Change::RemoveFile { target } => {
                std::fs::remove_file(target).map_err(io(target))?;
            }
            Change::RemoveFolder { target } => {
                std::fs::remove_dir_all(target).map_err(io(target))?;
            }
        }
    }
    Ok(())
}

fn copy_tree(source: &Path, target: &Path, depth: usize) -> Result<(), HomeError> {
    if depth > MAX_DEPTH {
        return Err(HomeError::Corrupt {
            path: source.to_path_buf(),
            reason: format!("more than {MAX_DEPTH} folders deep (a link loop?)"),
        });
    }
    std::fs::create_dir_all(target).map_err(io(target))?;
    for name in names(source)? {
        let (from, to) = (source.join(&name), target.join(&name));
        if std::fs::metadata(&from).map_err(io(&from))?.is_dir() {
            copy_tree(&from, &to, depth + 1)?;
        } else {
            copy_file(&from, &to)?;
        }
    }
    Ok(())
}

/// Copies one file to `target` (replacing it) with its permissions and
/// modification time.
pub fn copy_file(source: &Path, target: &Path) -> Result<(), HomeError> {
    let folder = target.parent().unwrap_or(Path::new("."));
    let temporary = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(folder)
        .map_err(io(folder))?;
    std::fs::copy(source, temporary.path()).map_err(io(source))?;
    let modified = std::fs::metadata(source)
        .and_then(|m| m.modified())
        .map_err(io(source))?;
    let file = temporary.as_file();
    file.set_modified(modified).map_err(io(target))?;
    temporary.persist(target).map_err(|e| io(target)(e.error))?;
    Ok(())
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its path, relative to the folder listed.
    pub relative: PathBuf,
    /// Its full path.
    pub path: PathBuf,
    /// A folder?
    pub is_dir: bool,
    /// Its size in bytes (a folder: the sum of the files in it).
    pub bytes: u64,
    /// When it was last changed.
    pub modified: Option<SystemTime>,
}

/// What `folder` holds, sorted by path: its entries, and with `recursive`
/// everything below them too. A missing folder holds nothing.
pub fn list_folder(folder: &Path, recursive: bool) -> Result<Vec<Listed>, HomeError> {
    let mut out = Vec::new();
    if folder.exists() {
        list_into(folder, Path::new(""), recursive, 0, &mut out)?;
    }
    Ok(out)
}

fn list_into(
    folder: &Path,
    relative: &Path,
    recursive: bool,
    depth: usize,
    out: &mut Vec<Listed>,
) -> Result<u64, HomeError> {
    if depth > MAX_DEPTH {
        return Err(HomeError::Corrupt {
            path: folder.to_path_buf(),
            reason: format!("more than {MAX_DEPTH} folders deep (a link loop?)"),
        });
    }
    let mut total = 0;
    for name in names(folder)? {
        let path = folder.join(&name);
        let rel = relative.join(&name);
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        let at = out.len();
        let bytes = if meta.is_dir() {
            // Listed (if recursive) after their folder; counted either way.
            let mut below = Vec::new();
            let bytes = list_into(&path, &rel, recursive, depth + 1, &mut below)?;
            if recursive {
                out.extend(below);
            }
            bytes
        } else {
            meta.len()
        };
        out.insert(
            at,
            Listed {
                relative: rel,
                path,
                is_dir: meta.is_dir(),
                bytes,
                modified: meta.modified().ok(),
            },
        );
        total += bytes;
    }
    Ok(total)
}

/// The program file a stored executable names (its base name):
/// `/opt/app/bin/server` → `server`, `group-cake` → `group-cake`.
pub fn program_name(stored: &str) -> &str {
    Path::new(stored)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(stored)
}

impl Home {
    /// The home's folder of program copies (`script/`).
    pub fn script_dir(&self) -> PathBuf {
        self.path.join(SCRIPT)
    }

    /// Where a role's stored executable is started from — one rule for
    /// group-cake starting the roles, `layer-cake run` starting group-cake
    /// and the CLI checking settings:
    ///
    /// 1. the copy in the home's `script/` folder with the same base name,
    ///    if there is one (an executable file): what `layer-cake script
    ///    --make-changes` and a portable image put there;
    /// 2. else the stored path: an absolute path as it is, a relative one
    ///    (with a `/`, such as `script/server`) against the home's folder;
    /// 3. else, for a bare name, next to the running program, then on
    ///    `PATH` ([`find_program`](crate::process::find_program)); found
    ///    nowhere, the bare name (whose start then fails, saying so).
    pub fn program(&self, stored: &str) -> PathBuf {
        let copy = self.script_dir().join(program_name(stored));
        if crate::process::is_executable(&copy) {
            return copy;
        }
        self.program_outside_script(stored)
    }

    /// Where a stored executable is found when the `script/` copy does not
    /// count (rules 2 and 3 of [`Home::program`]): the program that a copy
    /// into `script/` is made from.
    pub fn program_outside_script(&self, stored: &str) -> PathBuf {
        let path = Path::new(stored);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        if stored.contains('/') {
            return self.path.join(path);
        }
        crate::process::find_program(stored).unwrap_or_else(|| path.to_path_buf())
    }

    /// Every program the home's roles run (the group role's group-cake
    /// included): its base name, the roles that run it (by name), and the
    /// executables as stored. Sorted by base name.
    pub fn executables(&self) -> Result<Vec<Executable>, HomeError> {
        let mut found: Vec<Executable> = Vec::new();
        for role in self.roles()? {
            let stored = role.executable()?;
            let name = program_name(&stored).to_owned();
            match found.iter_mut().find(|e| e.name == name) {
                Some(e) => {
                    e.roles.push(role.name().to_owned());
                    if !e.stored.contains(&stored) {
                        e.stored.push(stored);
                    }
                }
                None => found.push(Executable {
                    name,
                    roles: vec![role.name().to_owned()],
                    stored: vec![stored],
                }),
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// What a portable image of the home holds, as paths relative to the
    /// home: the roles' `executable.json` (given here rewritten to
    /// `script/<name>`), `settings.json` and `unique_id.json`, their empty
    /// `logs/` and `tmp/` folders and their `model/` folders (empty unless
    /// `with_model`), `resource/` and `script/` whole. Never the history,
    /// logs, locks or tmp files of this machine.
    pub fn portable_entries(&self, with_model: bool) -> Result<Vec<PortableEntry>, HomeError> {
        let mut entries = vec![
            PortableEntry::Folder(PathBuf::from("role")),
            PortableEntry::Folder(PathBuf::from(RESOURCE)),
            PortableEntry::Folder(PathBuf::from(SCRIPT)),
        ];
        for role in self.roles()? {
            let dir = Path::new("role").join(role.name());
            entries.push(PortableEntry::Folder(dir.clone()));
            let stored = role.executable()?;
            let rewritten = format!("{SCRIPT}/{}", program_name(&stored));
            let text = serde_json::to_string_pretty(&rewritten).unwrap_or_default() + "\n";
            entries.push(PortableEntry::Text(dir.join(role::EXECUTABLE), text));
            for file in [role::SETTINGS, role::UNIQUE_ID] {
                entries.push(PortableEntry::File(dir.join(file), role.dir().join(file)));
            }
            for sub in ["logs", "tmp", "model"] {
                entries.push(PortableEntry::Folder(dir.join(sub)));
            }
            if with_model {
                self.tree_entries(&role.model_dir(), &dir.join("model"), &mut entries)?;
            }
        }
        for folder in [RESOURCE, SCRIPT] {
            self.tree_entries(&self.path.join(folder), Path::new(folder), &mut entries)?;
        }
        Ok(entries)
    }

    fn tree_entries(
        &self,
        source: &Path,
        relative: &Path,
        entries: &mut Vec<PortableEntry>,
    ) -> Result<(), HomeError> {
        for listed in list_folder(source, true)? {
            let rel = relative.join(&listed.relative);
            entries.push(match listed.is_dir {
                true => PortableEntry::Folder(rel),
                false => PortableEntry::File(rel, listed.path),
            });
        }
        Ok(())
    }
}

/// A program the home's roles run (see [`Home::executables`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    /// Its base name: the name of its copy in `script/`.
    pub name: String,
    /// The roles that run it.
    pub roles: Vec<String>,
    /// The executables as the roles store them (more than one: different
    /// programs of the same name, which one `script/` cannot hold).
    pub stored: Vec<String>,
}

/// One entry of a portable image (see [`Home::portable_entries`]), by its
/// path relative to the home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortableEntry {
    /// A folder.
    Folder(PathBuf),
    /// A file copied from the second path.
    File(PathBuf, PathBuf),
    /// A file holding this text.
    Text(PathBuf, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_sync_adds_updates_and_removes_until_nothing_is_left_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst/src"));
        write(&src.join("a.txt"), "a");
        write(&src.join("sub/b.txt"), "b");
        let plan = plan_sync(&src, &dst).unwrap();
        assert_eq!(
            plan,
            [Change::AddFolder {
                path: src.clone(),
                target: dst.clone()
            }]
        );
        assert!(!dst.exists(), "planning changes nothing");
        apply(&plan).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("sub/b.txt")).unwrap(), "b");
        assert!(plan_sync(&src, &dst).unwrap().is_empty());

        write(&src.join("a.txt"), "a longer");
        write(&src.join("c.txt"), "c");
        std::fs::remove_dir_all(src.join("sub")).unwrap();
        let plan = plan_sync(&src, &dst).unwrap();
        assert_eq!(
            plan,
            [
                Change::UpdateFile {
                    path: src.join("a.txt"),
                    target: dst.join("a.txt")
                },
                Change::AddFile {
                    path: src.join("c.txt"),
                    target: dst.join("c.txt")
                },
                Change::RemoveFolder {
                    target: dst.join("sub")
                },
            ]
        );
        apply(&plan).unwrap();
        assert!(plan_sync(&src, &dst).unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(dst.join("a.txt")).unwrap(),
            "a longer"
        );

        let listed = list_folder(&dst, true).unwrap();
        let names: Vec<_> = listed.iter().map(|l| l.relative.clone()).collect();
        assert_eq!(names, [PathBuf::from("a.txt"), PathBuf::from("c.txt")]);
        apply(&plan_clear(&dst).unwrap()).unwrap();
        assert!(list_folder(&dst, true).unwrap().is_empty());
        assert!(plan_sync(&dir.path().join("nothing"), &dst).is_err());
    }

    #[test]
    fn a_script_copy_wins_and_relative_paths_are_the_homes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::create(dir.path().join("home")).unwrap();
        assert_eq!(
            home.program("/opt/app/server"),
            PathBuf::from("/opt/app/server")
        );
        assert_eq!(
            home.program("script/server"),
            home.path().join("script/server")
        );
        let copy = home.script_dir().join("server");
        write(&copy, "#!/bin/sh\n");
        assert_eq!(
            home.program("/opt/app/server"),
            PathBuf::from("/opt/app/server"),
            "not executable"
        );
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(home.program("/opt/app/server"), copy);
        assert_eq!(home.program("server"), copy);
        assert_eq!(
            home.program_outside_script("no-such-program-here"),
            PathBuf::from("no-such-program-here")
        );
    }
}
