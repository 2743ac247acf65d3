//! The home commands as a user types them: `layer-cake create`, `add`,
//! `list`, `update`, `edit`, `delete`, `history`, `returned`, `destroy`,
//! each a real run of the binary in a fresh temporary folder.

use std::path::Path;
use std::process::{Command, Output};

mod support;

use support::{bin_dir, build_executables};

fn layer_cake(dir: &Path, args: &[&str]) -> Output {
    build_executables();
    Command::new(bin_dir().join("layer-cake"))
        .args(args)
        .current_dir(dir)
        .env_remove("LC_EDITOR")
        .output()
        .expect("layer-cake runs")
}

/// Runs a command that must succeed; its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = layer_cake(dir, args);
    assert!(
        out.status.success(),
        "layer-cake {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with one line on stderr; that line.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = layer_cake(dir, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "layer-cake {args:?} should fail"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("layer-cake: "), "{err}");
    err.trim_end().to_owned()
}

#[test]
fn the_seed_recipe_makes_a_home_of_nine_roles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    ok(d, &["add", "test_server_10", "server"]);
    ok(
        d,
        &[
            "add",
            "test_worker_10",
            "worker",
            "--role-count=8",
            "--scope=HOST",
        ],
    );
    let listed = ok(d, &["list"]);
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(names.len(), 9, "{listed}");
    assert_eq!(names[0], "server");
    assert_eq!(names[8], "worker-7");
    let long = ok(d, &["list", "--long-listing", "worker-3"]);
    assert!(
        long.contains("stopped") && long.contains("test_worker_10 --scope=HOST"),
        "{long}"
    );

    // Settings change, for several roles at once.
    ok(d, &["update", "worker", "--scope=LAN"]);
    assert!(ok(d, &["list", "-l", "worker-7"]).contains("--scope=LAN"));
    ok(
        d,
        &["update", "group", r#"--retry={"regular_steps": 30.0}"#],
    );
    assert!(ok(d, &["list", "-l", "group"]).contains("regular_steps"));

    ok(d, &["delete", "worker-7"]);
    assert_eq!(ok(d, &["list"]).lines().count(), 8);
    assert!(ok(d, &["history", "server"]).contains("never run"));
    ok(d, &["destroy"]);
    assert!(!d.join(".layer-cake").exists());
}

#[test]
fn mistakes_are_refused_with_one_line_and_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(fails(d, &["list"]).contains("no home at .layer-cake"));
    assert!(fails(d, &["create", "--colour=blue"]).contains("not a group setting"));
    assert!(
        fails(d, &["create", "--retry={\"regular_step\": 1}"])
            .contains("unknown field `regular_step`")
    );
    assert!(!d.join(".layer-cake").exists(), "nothing made");
    ok(d, &["create"]);
    assert!(fails(d, &["create"]).contains("already exists"));
    ok(d, &["add", "test_worker_10", "worker"]);
    assert!(fails(d, &["add", "test_worker_10", "worker"]).contains("already exists"));
    assert!(fails(d, &["add", "x", "group-2"]).contains("reserved"));
    assert!(fails(d, &["add", "x", "w", "--role-count=0"]).contains("1 to 1000"));
    assert!(fails(d, &["add", "x", "w", "-r=2"]).contains("in full"));
    assert!(fails(d, &["add", "no_such_program", "w"]).contains("cannot find no_such_program"));
    // The executable checks the settings against its own arguments.
    let e = fails(d, &["add", "test_worker_10", "w", "--scope=PLANET"]);
    assert!(
        e.contains("test_worker_10 refuses the settings: --scope: invalid value \"PLANET\""),
        "{e}"
    );
    let e = fails(d, &["add", "test_worker_10", "w", "--colour=red"]);
    assert!(e.contains("unknown flag --colour"), "{e}");
    let e = fails(d, &["update", "worker", "--scope=nowhere"]);
    assert!(e.contains("refuses the settings"), "{e}");
    assert!(fails(d, &["update", "nothing", "--x=1"]).contains("no role matches nothing"));
    assert!(fails(d, &["delete", "group"]).contains("destroy"));
    assert!(fails(d, &["returned", "worker"]).contains("never run"));
    assert!(fails(d, &["history", "nobody"]).contains("no role \"nobody\""));
    assert_eq!(ok(d, &["list"]).trim(), "worker");
}

#[test]
fn edit_stores_what_the_editor_leaves_if_it_reads_as_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    ok(d, &["add", "test_worker_10", "worker", "--scope=HOST"]);
    // An "editor" that rewrites the file.
    let good = d.join("good.sh");
    std::fs::write(&good, "#!/bin/sh\necho '{\"scope\": \"LAN\"}' > \"$1\"\n").unwrap();
    let bad = d.join("bad.sh");
    std::fs::write(&bad, "#!/bin/sh\necho 'not json' > \"$1\"\n").unwrap();
    for script in [&good, &bad] {
        Command::new("chmod")
            .arg("+x")
            .arg(script)
            .status()
            .unwrap();
    }
    let edit = |editor: &Path| {
        Command::new(env!("CARGO_BIN_EXE_layer-cake"))
            .args(["edit", "worker"])
            .current_dir(d)
            .env("LC_EDITOR", editor)
            .output()
            .unwrap()
    };
    let out = edit(&bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing changed"));
    assert!(ok(d, &["list", "-l"]).contains("--scope=HOST"));
    assert!(edit(&good).status.success());
    assert!(ok(d, &["list", "-l"]).contains("--scope=LAN"));
}
