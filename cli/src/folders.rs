//! The commands that fill the home's folders of files: `resource` (the
//! read-only files of an executable, `resource/<executable>/`), `model` (a
//! role's persistent `model/` folder, and `--get-latest` to copy it back
//! out) and `script` (copies of the programs the roles run, in `script/`).
//!
//! Each is a dry run unless given `--make-changes`: it prints the changes
//! it would make, one a line (`AddFolder(path=…, target=…)`), and changes
//! nothing. With no folders to copy (and no `--clear-all`), `resource` and
//! `model` list what the folder holds.

use std::io::Write;
use std::path::{Path, PathBuf};

use layer_cake::home::{self, Change, Home};

/// How `resource` and `model` copy and list.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Do it (else a dry run).
    pub make_changes: bool,
    /// Empty the folder first (alone: just empty it).
    pub clear_all: bool,
    /// List sizes and modification times too.
    pub long_listing: bool,
    /// List everything below the folder, not only its entries.
    pub recursive_listing: bool,
    /// List full paths rather than paths relative to the folder.
    pub full_path: bool,
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The folder name a path is copied under: its last part.
fn base_name(path: &Path) -> Result<std::ffi::OsString, String> {
    let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // `absolute` keeps `..`: take the name after resolving it.
    let resolved = std::fs::canonicalize(&absolute).unwrap_or(absolute);
    resolved
        .file_name()
        .map(|n| n.to_os_string())
        .ok_or_else(|| format!("{} has no name to copy it under", path.display()))
}

/// The changes that copy `sources` into `target` (each as
/// `target/<its name>`), after emptying `target` when `clear_all`.
fn plan_into(target: &Path, sources: &[PathBuf], clear_all: bool) -> Result<Vec<Change>, String> {
    let mut changes = if clear_all {
        home::plan_clear(target).map_err(text)?
    } else {
        Vec::new()
    };
    let mut seen = Vec::new();
    for source in sources {
        let meta = std::fs::metadata(source)
            .map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
        let name = base_name(source)?;
        if seen.contains(&name) {
            return Err(format!(
                "two of the folders given are called {}: rename one",
                name.to_string_lossy()
            ));
        }
        seen.push(name.clone());
        let path = std::path::absolute(source).map_err(text)?;
        let to = target.join(&name);
        if clear_all {
            changes.push(match meta.is_dir() {
                true => Change::AddFolder { path, target: to },
                false => Change::AddFile { path, target: to },
            });
        } else {
            changes.extend(home::plan_sync(&path, &to).map_err(text)?);
        }
    }
    Ok(changes)
}

/// Prints `changes` and, with `make_changes`, makes them.
fn carry_out(changes: &[Change], make_changes: bool, out: &mut dyn Write) -> Result<(), String> {
    for change in changes {
        writeln!(out, "{change}").map_err(text)?;
    }
    if changes.is_empty() {
        return writeln!(out, "nothing to change").map_err(text);
    }
    if !make_changes {
        return writeln!(
            out,
            "dry run: nothing changed (--make-changes to make these changes)"
        )
        .map_err(text);
    }
    home::apply(changes).map_err(text)
}

/// Lists what `folder` holds.
fn list(folder: &Path, options: &SyncOptions, out: &mut dyn Write) -> Result<(), String> {
    for entry in home::list_folder(folder, options.recursive_listing).map_err(text)? {
        let mut name = match options.full_path {
            true => entry.path.display().to_string(),
            false => entry.relative.display().to_string(),
        };
        if entry.is_dir {
            name.push('/');
        }
        let line = if options.long_listing {
            let modified = entry.modified.map_or_else(
                || "-".to_owned(),
                |t| {
                    chrono::DateTime::<chrono::Utc>::from(t)
                        .format("%Y-%m-%dT%H:%M:%S")
                        .to_string()
                },
            );
            format!("{:>12}  {modified}  {name}", entry.bytes)
        } else {
            name
        };
        writeln!(out, "{line}").map_err(text)?;
    }
    Ok(())
}

/// `resource EXECUTABLE [FOLDER…]`: copies each folder (or file) into the
/// home's `resource/<executable>/` under its own name, so that the copy
/// is the same as the original (what is missing added, what differs
/// replaced, what the original no longer has removed); with no folders,
/// lists what is there.
pub fn resource(
    home: &Home,
    executable: &str,
    sources: &[PathBuf],
    options: &SyncOptions,
    out: &mut dyn Write,
) -> Result<(), String> {
    let name = home::program_name(executable);
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("{executable:?} does not name an executable"));
    }
    let target = std::path::absolute(home.resource_dir(name)).map_err(text)?;
    if sources.is_empty() && !options.clear_all {
        return list(&target, options, out);
    }
    if options.make_changes
        && let Some(role) = home.roles().map_err(text)?.into_iter().find(|r| {
            r.executable().is_ok_and(|e| home::program_name(&e) == name) && r.running().is_some()
        })
    {
        return Err(format!(
            "role \"{}\" runs {name} and is running: stop it first",
            role.name()
        ));
    }
    let changes = plan_into(&target, sources, options.clear_all)?;
    carry_out(&changes, options.make_changes, out)
}

/// `model ROLE [FOLDER…]`: the same as [`resource`], into the role's
/// `model/` folder; refused while the role runs. With `get_latest`, the
/// other way: each entry of the role's `model/` is copied to
/// `get_latest/<its name>`.
pub fn model(
    home: &Home,
    role: &str,
    sources: &[PathBuf],
    get_latest: Option<&Path>,
    options: &SyncOptions,
    out: &mut dyn Write,
) -> Result<(), String> {
    let role = home.role(role).map_err(text)?;
    let model = std::path::absolute(role.model_dir()).map_err(text)?;
    if let Some(to) = get_latest {
        if !sources.is_empty() || options.clear_all {
            return Err(
                "--get-latest copies out of the model: give no folders and no --clear-all".into(),
            );
        }
        let to = std::path::absolute(to).map_err(text)?;
        if to.exists() && !to.is_dir() {
            return Err(format!("--get-latest={}: not a folder", to.display()));
        }
        let mut changes = Vec::new();
        for entry in home::list_folder(&model, false).map_err(text)? {
            changes.extend(home::plan_sync(&entry.path, &to.join(&entry.relative)).map_err(text)?);
        }
        if !changes.is_empty() && options.make_changes {
            std::fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
        return carry_out(&changes, options.make_changes, out);
    }
    if sources.is_empty() && !options.clear_all {
        return list(&model, options, out);
    }
    if options.make_changes
        && let Some(running) = role.running()
    {
        return Err(format!(
            "role \"{}\" is running (pid {}): stop it first",
            role.name(),
            running.pid
        ));
    }
    let changes = plan_into(&model, sources, options.clear_all)?;
    carry_out(&changes, options.make_changes, out)
}

/// What `script` is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScriptOptions {
    /// List the programs the roles run, with the roles that run each.
    pub list_executables: bool,
    /// List where each program is found (what a copy would be made from).
    pub list_paths: bool,
    /// Do it (else a dry run).
    pub make_changes: bool,
    /// Empty `script/` first.
    pub clear_all: bool,
}

/// A program the roles run and where it is found outside `script/`.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its name (in `script/`).
    pub name: String,
    /// The roles that run it.
    pub roles: Vec<String>,
    /// Where it is: `None` when the only copy is the one in `script/`.
    pub source: Option<PathBuf>,
}

/// Every program the home's roles run, and where each is found outside
/// the home's `script/` folder ([`Home::program_outside_script`]). Fails
/// when two roles run different programs of the same name (`script/`
/// holds one per name), or a program is found nowhere.
pub fn programs(home: &Home) -> Result<Vec<Found>, String> {
    let script = home.script_dir();
    let script_real = std::fs::canonicalize(&script).unwrap_or(script.clone());
    let mut found = Vec::new();
    for exe in home.executables().map_err(text)? {
        let mut sources: Vec<PathBuf> = Vec::new();
        for stored in &exe.stored {
            let path = home.program_outside_script(stored);
            let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
            if real.starts_with(&script_real) || path.starts_with(&script) {
                continue; // Already the copy.
            }
            if !layer_cake::process::is_executable(&path) {
                if layer_cake::process::is_executable(&script.join(&exe.name)) {
                    continue; // Found nowhere else, but the copy is there.
                }
                return Err(format!(
                    "cannot find {stored} (run by {}) as an executable file",
                    exe.roles.join(", ")
                ));
            }
            if !sources.iter().any(|s| s == &path) {
                sources.push(path);
            }
        }
        if sources.len() > 1 {
            let shown: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
            return Err(format!(
                "the roles run different programs called {}: {} (script/ holds one per name)",
                exe.name,
                shown.join(" and ")
            ));
        }
        found.push(Found {
            name: exe.name,
            roles: exe.roles,
            source: sources.pop(),
        });
    }
    Ok(found)
}

/// `script`: copies every program the home's roles run (group-cake
/// included) into the home's `script/` folder, where a launch looks first
/// ([`Home::program`]); or lists them.
pub fn script(home: &Home, options: &ScriptOptions, out: &mut dyn Write) -> Result<(), String> {
    let found = programs(home)?;
    let width = found.iter().map(|f| f.name.len()).max().unwrap_or(0);
    if options.list_executables || options.list_paths {
        for f in &found {
            let what = if options.list_paths {
                f.source.as_ref().map_or_else(
                    || format!("(only {})", home.script_dir().join(&f.name).display()),
                    |s| s.display().to_string(),
                )
            } else {
                f.roles.join(" ")
            };
            writeln!(out, "{:<width$}  {what}", f.name).map_err(text)?;
        }
        return Ok(());
    }
    let script = std::path::absolute(home.script_dir()).map_err(text)?;
    let mut changes = if options.clear_all {
        home::plan_clear(&script).map_err(text)?
    } else {
        Vec::new()
    };
    for f in &found {
        let Some(source) = &f.source else {
            if options.clear_all {
                return Err(format!(
                    "{} is found only in {}: --clear-all would lose it",
                    f.name,
                    script.display()
                ));
            }
            continue;
        };
        let target = script.join(&f.name);
        if options.clear_all {
            changes.push(Change::AddFile {
                path: source.clone(),
                target,
            });
        } else {
            changes.extend(home::plan_sync(source, &target).map_err(text)?);
        }
    }
    if options.make_changes
        && let Some(role) = home
            .roles()
            .map_err(text)?
            .into_iter()
            .find(|r| r.running().is_some())
    {
        return Err(format!(
            "role \"{}\" is running: stop the home first",
            role.name()
        ));
    }
    if options.make_changes {
        std::fs::create_dir_all(&script).map_err(|e| format!("{}: {e}", script.display()))?;
    }
    carry_out(&changes, options.make_changes, out)
}
