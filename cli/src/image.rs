//! `image`: one `.tar.gz` holding a home and every program it runs, to be
//! unpacked and run on another machine of the same architecture with
//! nothing else installed.
//!
//! ```text
//! bin/layer-cake                 this program
//! .layer-cake/                   the home (whatever it is called here)
//!   role/<role>/                 executable.json ("script/<name>"), settings.json,
//!                                unique_id.json; empty logs/ tmp/, and model/
//!                                (its files only with --with-model)
//!   resource/                    as it is
//!   script/<name>                every program the roles run, group-cake included
//! ```
//!
//! Unpacked, `bin/layer-cake run` in that folder runs it: the home is the
//! default `.layer-cake`, group-cake is `script/group-cake` (a launch looks
//! in `script/` first) and each role's stored executable is the relative
//! `script/<name>`, found against the home. Never in the image: histories,
//! logs, locks and tmp files, which belong to this machine's runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use layer_cake::home::{DEFAULT_HOME, Home, PortableEntry, SCRIPT};

/// The CLI's place in the image.
pub const IMAGE_CLI: &str = "bin/layer-cake";

/// What goes into the image, by path inside it.
#[derive(Debug)]
enum Entry {
    Folder,
    File(PathBuf),
    Text(String),
}

/// Writes the image of `home` to `output` (replacing what is there), with
/// the roles' model files when `with_model`; says what it wrote.
pub fn image(
    home: &Home,
    output: &Path,
    with_model: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let home_real = std::fs::canonicalize(home.path())
        .map_err(|e| format!("{}: {e}", home.path().display()))?;
    let output = std::path::absolute(output).map_err(|e| e.to_string())?;
    let folder = output
        .parent()
        .ok_or_else(|| format!("{} is not a file name", output.display()))?;
    let folder_real = std::fs::canonicalize(folder)
        .map_err(|e| format!("cannot write in {}: {e}", folder.display()))?;
    if folder_real.starts_with(&home_real) {
        return Err(format!(
            "{}: write the image outside the home ({})",
            output.display(),
            home.path().display()
        ));
    }
    if let Some(role) = home
        .roles()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|r| r.running().is_some())
    {
        return Err(format!(
            "role \"{}\" is running: stop the home first (its files may be changing)",
            role.name()
        ));
    }

    // The home's own files, then each program where the launch would find
    // it (the script/ copy, or the stored path): every role's program is
    // in script/ whatever the home's script/ holds now.
    let mut entries: std::collections::BTreeMap<PathBuf, Entry> = Default::default();
    let base = Path::new(DEFAULT_HOME);
    entries.insert(base.to_path_buf(), Entry::Folder);
    for entry in home
        .portable_entries(with_model)
        .map_err(|e| e.to_string())?
    {
        let (path, entry) = match entry {
            PortableEntry::Folder(p) => (p, Entry::Folder),
            PortableEntry::File(p, from) => (p, Entry::File(from)),
            PortableEntry::Text(p, text) => (p, Entry::Text(text)),
        };
        entries.insert(base.join(path), entry);
    }
    let programs = crate::folders::programs(home)?;
    for program in &programs {
        let from = match &program.source {
            Some(source) => source.clone(),
            None => home.script_dir().join(&program.name),
        };
        entries.insert(base.join(SCRIPT).join(&program.name), Entry::File(from));
    }
    let cli = std::env::current_exe().map_err(|e| format!("cannot find layer-cake itself: {e}"))?;
    entries.insert(PathBuf::from("bin"), Entry::Folder);
    entries.insert(PathBuf::from(IMAGE_CLI), Entry::File(cli));

    // Written beside the output and renamed into place: a failed image
    // never leaves half a file under the name asked for.
    let temporary = tempfile::Builder::new()
        .prefix(".image-")
        .tempfile_in(folder)
        .map_err(|e| format!("cannot write in {}: {e}", folder.display()))?;
    let gz = flate2::write::GzEncoder::new(temporary.as_file(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(true);
    let mut files = 0usize;
    for (path, entry) in &entries {
        let failed = |e: std::io::Error| format!("cannot add {} to the image: {e}", path.display());
        match entry {
            Entry::Folder => {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                header.set_mtime(now());
                tar.append_data(&mut header, path, std::io::empty())
                    .map_err(failed)?;
            }
            Entry::File(from) => {
                let mut file = std::fs::File::open(from)
                    .map_err(|e| format!("cannot add {}: {e}", from.display()))?;
                tar.append_file(path, &mut file).map_err(failed)?;
                files += 1;
            }
            Entry::Text(text) => {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o600);
                header.set_size(text.len() as u64);
                header.set_mtime(now());
                tar.append_data(&mut header, path, text.as_bytes())
                    .map_err(failed)?;
                files += 1;
            }
        }
    }
    let gz = tar
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    gz.finish()
        .and_then(|file| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    temporary
        .persist(&output)
        .map_err(|e| format!("cannot write {}: {}", output.display(), e.error))?;
    let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    writeln!(
        out,
        "wrote {} ({files} files; programs: layer-cake {})",
        output.display(),
        names.join(" ")
    )
    .map_err(|e| e.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
