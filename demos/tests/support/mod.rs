//! Helpers shared by integration tests (`mod support;`). Each test binary
//! uses only part of them.

#![allow(dead_code)]

pub(crate) mod netns;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Where cargo put this test's executable's sibling binaries
/// (`target/<profile>`): the directory above `deps/`.
pub(crate) fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// The path of a binary of another workspace package (host-cake, lan-cake
/// …), built on first use: cargo builds only this package's binaries for
/// its tests, and a build that is up to date costs nothing.
pub(crate) fn workspace_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let dir = bin_dir();
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashSet::new);
    if !built.contains(package) {
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_string();
        let target_dir = dir.parent().expect("a target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", package])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cargo.arg("--release");
            }
            other => {
                cargo.args(["--profile", other]);
            }
        }
        match cargo.status() {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("cargo build -p {package} failed: {s}"),
            Err(e) => panic!("cannot run cargo: {e}"),
        }
        built.insert(package.to_string());
    }
    dir.join(name)
}
