//! **show_folders** — the folders a process keeps its files in, and what
//! they hold: [`resource_path`], [`model_path`] and [`tmp_path`].
//!
//! It writes `scratch.txt` into its tmp folder, then returns where each
//! folder is and the names of the files in it (tmp's listed before the
//! write, so a role's tmp shows empty: it is emptied at every start).
//!
//! ```text
//! $ target/debug/show_folders --resource-path=assets --model-path=data
//! {
//!   "resource": "assets",
//!   "resource_files": ["logo.txt"],
//!   "model": "data",
//!   "model_files": ["customers.json"],
//!   "tmp": "/tmp/layer-cake-Xa3f9q",
//!   "tmp_files": []
//! }
//! ```
//!
//! As a role of a home (`layer-cake add show_folders`) the folders are the
//! home's `resource/show_folders/`, the role's `model/` and `tmp/`.
//!
//! [`resource_path`]: layer_cake::process::resource_path
//! [`model_path`]: layer_cake::process::model_path
//! [`tmp_path`]: layer_cake::process::tmp_path

use std::path::{Path, PathBuf};

use layer_cake::process::{model_path, resource_path, tmp_path};
use layer_cake::{Context, Faulted};
use serde::{Deserialize, Serialize};

/// Where the folders are, and the names in each.
#[derive(Debug, Serialize, Deserialize, layer_cake::Message)]
struct Folders {
    resource: Option<PathBuf>,
    resource_files: Vec<String>,
    model: PathBuf,
    model_files: Vec<String>,
    tmp: PathBuf,
    tmp_files: Vec<String>,
}

/// The names in `folder`, sorted; none when it does not exist.
fn names(folder: &Path) -> Result<Vec<String>, Faulted> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Faulted::new(format!("cannot read {}", folder.display()))
                .with_explanation(e.to_string()));
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

async fn show_folders(_cx: Context, _: ()) -> Result<Folders, Faulted> {
    let tmp = tmp_path().map_err(|e| {
        Faulted::new("cannot make a temporary folder").with_explanation(e.to_string())
    })?;
    let tmp_files = names(tmp)?;
    std::fs::write(tmp.join("scratch.txt"), "scratch").map_err(|e| {
        Faulted::new(format!("cannot write in {}", tmp.display())).with_explanation(e.to_string())
    })?;
    Ok(Folders {
        resource: resource_path().map(Path::to_path_buf),
        resource_files: resource_path().map(names).transpose()?.unwrap_or_default(),
        model: model_path().to_path_buf(),
        model_files: names(model_path())?,
        tmp: tmp.to_path_buf(),
        tmp_files,
    })
}

fn main() {
    layer_cake::create(show_folders)
}
