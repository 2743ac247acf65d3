//! The home's folders of files, with the real `layer-cake` and real role
//! processes: `resource`, `model` and `script` print what they would do and
//! change nothing until `--make-changes`; a launch prefers the copy in
//! `script/`; and a process finds its folders — `--resource-path`,
//! `--model-path`, a fresh tmp folder standalone; the home's
//! `resource/<executable>/`, the role's `model/` and emptied `tmp/` as a
//! role. Every process started is stopped when the test ends, however it
//! ends.

use std::path::Path;
use std::process::Command;

mod support;

use support::{HomeGuard, bin_dir, cli, host_cake, ok};

/// Builds, once, the demos these tests run beside what `support` builds.
fn build_demos() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    support::build_executables();
    BUILT.call_once(|| {
        let dir = bin_dir();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "layer-cake-demos"])
            .args(["--bin", "show_folders", "--bin", "test_server_resource"])
            .arg("--target-dir")
            .arg(dir.parent().expect("a target directory"))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        assert!(
            cargo.status().expect("cargo runs").success(),
            "the demos build"
        );
    });
}

/// Runs a `layer-cake` command that must fail: its one line of stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir).args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "layer-cake {args:?} should fail"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.trim_end().to_owned()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

const DRY: &str = "dry run: nothing changed (--make-changes to make these changes)";

#[test]
fn resource_copies_folders_in_only_with_make_changes_and_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = &std::fs::canonicalize(dir.path()).unwrap();
    ok(d, &["create"]);
    let target = d.join(".layer-cake/resource/my_server");
    write(&d.join("assets/a.txt"), "a");
    write(&d.join("assets/img/b.txt"), "bb");

    // A dry run says what it would do and does nothing.
    let out = ok(d, &["resource", "my_server", "assets"]);
    let add = format!(
        "AddFolder(path={}, target={})",
        d.join("assets").display(),
        target.join("assets").display()
    );
    assert_eq!(lines(&out), [add.as_str(), DRY]);
    assert!(!target.exists());

    let out = ok(d, &["resource", "my_server", "assets", "--make-changes"]);
    assert_eq!(lines(&out), [add.as_str()]);
    assert_eq!(
        std::fs::read_to_string(target.join("assets/img/b.txt")).unwrap(),
        "bb"
    );
    // A path to the executable names the same folder as its name.
    let out = ok(d, &["resource", "/opt/app/bin/my_server", "assets"]);
    assert_eq!(lines(&out), ["nothing to change"]);

    // Listings.
    assert_eq!(ok(d, &["resource", "my_server"]), "assets/\n");
    assert_eq!(
        ok(d, &["resource", "my_server", "--recursive-listing"]),
        "assets/\nassets/a.txt\nassets/img/\nassets/img/b.txt\n"
    );
    assert_eq!(
        ok(d, &["resource", "my_server", "--full-path"]),
        format!("{}/\n", target.join("assets").display())
    );
    let long = ok(d, &["resource", "my_server", "-l", "--recursive-listing"]);
    let sizes: Vec<(&str, &str)> = long
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0], w[2])
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("3", "assets/"),
            ("1", "assets/a.txt"),
            ("2", "assets/img/"),
            ("2", "assets/img/b.txt")
        ],
        "{long}"
    );

    // The copy follows the original: added, changed, removed.
    write(&d.join("assets/a.txt"), "a changed");
    write(&d.join("assets/c.txt"), "c");
    std::fs::remove_dir_all(d.join("assets/img")).unwrap();
    let out = ok(d, &["resource", "my_server", "assets", "--make-changes"]);
    let (src, dst) = (d.join("assets"), target.join("assets"));
    assert_eq!(
        lines(&out),
        [
            format!(
                "UpdateFile(path={}, target={})",
                src.join("a.txt").display(),
                dst.join("a.txt").display()
            ),
            format!(
                "AddFile(path={}, target={})",
                src.join("c.txt").display(),
                dst.join("c.txt").display()
            ),
            format!("RemoveFolder(target={})", dst.join("img").display()),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("a.txt")).unwrap(),
        "a changed"
    );
    assert_eq!(
        ok(d, &["resource", "my_server", "assets"]),
        "nothing to change\n"
    );

    // --clear-all alone empties the folder.
    let out = ok(d, &["resource", "my_server", "--clear-all"]);
    assert_eq!(
        lines(&out),
        [
            format!("RemoveFolder(target={})", dst.display()).as_str(),
            DRY
        ]
    );
    ok(
        d,
        &["resource", "my_server", "--clear-all", "--make-changes"],
    );
    assert_eq!(ok(d, &["resource", "my_server"]), "");
    assert!(target.is_dir(), "the folder itself stays");

    // Bad input: one line each.
    let e = fails(d, &["resource", "my_server", "no-such-folder"]);
    assert!(
        e.starts_with("layer-cake: cannot copy no-such-folder: "),
        "{e}"
    );
    let e = fails(d, &["resource", "..", "assets"]);
    assert_eq!(e, "layer-cake: \"..\" does not name an executable");
}

#[test]
fn model_copies_into_a_role_and_get_latest_copies_back_out() {
    build_demos();
    let dir = tempfile::tempdir().unwrap();
    let d = &std::fs::canonicalize(dir.path()).unwrap();
    ok(d, &["create"]);
    ok(d, &["add", "show_folders", "show"]);
    let model = d.join(".layer-cake/role/show/model");
    write(&d.join("data/weights.bin"), "0123456789");
    write(&d.join("notes.txt"), "n");

    let out = ok(d, &["model", "show", "data", "notes.txt"]);
    assert_eq!(out.lines().last(), Some(DRY));
    assert_eq!(ok(d, &["model", "show"]), "");
    let out = ok(d, &["model", "show", "data", "notes.txt", "--make-changes"]);
    assert_eq!(
        lines(&out),
        [
            format!(
                "AddFolder(path={}, target={})",
                d.join("data").display(),
                model.join("data").display()
            ),
            format!(
                "AddFile(path={}, target={})",
                d.join("notes.txt").display(),
                model.join("notes.txt").display()
            ),
        ]
    );
    assert_eq!(ok(d, &["model", "show"]), "data/\nnotes.txt\n");

    // The role changes its model; --get-latest brings it back out.
    write(&model.join("data/weights.bin"), "trained!!!!");
    let out = ok(d, &["model", "show", "--get-latest=latest"]);
    assert_eq!(out.lines().last(), Some(DRY));
    assert!(!d.join("latest").exists());
    ok(
        d,
        &["model", "show", "--get-latest=latest", "--make-changes"],
    );
    assert_eq!(
        std::fs::read_to_string(d.join("latest/data/weights.bin")).unwrap(),
        "trained!!!!"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("latest/notes.txt")).unwrap(),
        "n"
    );
    assert_eq!(
        ok(d, &["model", "show", "--get-latest=latest"]),
        "nothing to change\n"
    );

    let e = fails(d, &["model", "nobody", "data"]);
    assert_eq!(e, "layer-cake: no role \"nobody\"");
    let e = fails(d, &["model", "show", "data", "--get-latest=x"]);
    assert!(e.contains("--get-latest copies out of the model"), "{e}");
}

/// The value `layer-cake run --main-role=show` prints: show_folders' JSON.
/// Killed (and the test failed) if it has not ended within the patience.
fn run_show(d: &Path) -> serde_json::Value {
    let _guard = HomeGuard(d.join(".layer-cake"));
    let output = d.join("run.out");
    let mut child = cli(d)
        .args(["run", "--main-role=show"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + support::PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("layer-cake run did not end in time");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&output).unwrap();
    assert!(status.success(), "run: {status}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn script_copies_the_programs_and_a_launch_prefers_the_copy() {
    use std::os::unix::fs::PermissionsExt;
    build_demos();
    let dir = tempfile::tempdir().unwrap();
    let d = &std::fs::canonicalize(dir.path()).unwrap();
    let (_host, host_at) = host_cake();
    ok(d, &["create", &format!("--directory-at-host={host_at}")]);
    ok(d, &["add", "show_folders", "show"]);
    let script = d.join(".layer-cake/script");
    let bin = bin_dir();

    assert_eq!(
        ok(d, &["script", "--list-executables"]),
        "group-cake    group\nshow_folders  show\n"
    );
    assert_eq!(
        ok(d, &["script", "--list-paths"]),
        format!(
            "group-cake    {}\nshow_folders  {}\n",
            bin.join("group-cake").display(),
            bin.join("show_folders").display()
        )
    );
    let out = ok(d, &["script"]);
    let expected = [
        format!(
            "AddFile(path={}, target={})",
            bin.join("group-cake").display(),
            script.join("group-cake").display()
        ),
        format!(
            "AddFile(path={}, target={})",
            bin.join("show_folders").display(),
            script.join("show_folders").display()
        ),
    ];
    assert_eq!(lines(&out), [&expected[0], &expected[1], DRY]);
    assert!(!script.join("show_folders").exists());
    assert_eq!(lines(&ok(d, &["script", "--make-changes"])), expected);
    assert!(layer_cake::process::is_executable(
        &script.join("show_folders")
    ));
    assert_eq!(ok(d, &["script"]), "nothing to change\n");

    // The copy is what runs: replace it with a wrapper that leaves a mark.
    let real = script.join("show_folders.real");
    std::fs::rename(script.join("show_folders"), &real).unwrap();
    let wrapper = script.join("show_folders");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho launched > {}\nexec {} \"$@\"\n",
            d.join("mark").display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let value = run_show(d);
    assert_eq!(value["tmp_files"], serde_json::json!([]), "{value}");
    assert_eq!(
        std::fs::read_to_string(d.join("mark")).unwrap(),
        "launched\n",
        "the script/ copy ran"
    );

    // --clear-all starts script/ afresh from the programs found outside it.
    let out = ok(d, &["script", "--clear-all", "--make-changes"]);
    assert!(
        out.contains(&format!("RemoveFile(target={})", real.display())),
        "{out}"
    );
    assert!(!real.exists());
    assert_eq!(ok(d, &["script"]), "nothing to change\n");
}

#[test]
fn a_process_finds_its_folders_by_flag_and_as_a_role() {
    build_demos();
    let dir = tempfile::tempdir().unwrap();
    let d = &std::fs::canonicalize(dir.path()).unwrap();
    write(&d.join("assets/logo.txt"), "logo");
    write(&d.join("data/customers.json"), "{}");

    // Standalone: the flags (long and short), else the current folder and
    // no resources; tmp is fresh each time and gone at the exit.
    let show = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(bin_dir().join("show_folders"))
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = show(&["--resource-path=assets", "--model-path=data"]);
    assert_eq!(v["resource"], "assets");
    assert_eq!(v["resource_files"], serde_json::json!(["logo.txt"]));
    assert_eq!(v["model"], "data");
    assert_eq!(v["model_files"], serde_json::json!(["customers.json"]));
    let tmp = v["tmp"].as_str().unwrap().to_owned();
    assert!(!Path::new(&tmp).exists(), "{tmp} is removed at the exit");
    let v = show(&["-rp=assets", "-mp=data"]);
    assert_eq!(
        (v["resource"].as_str(), v["model"].as_str()),
        (Some("assets"), Some("data"))
    );
    assert_ne!(v["tmp"].as_str(), Some(tmp.as_str()), "a fresh one");
    let v = show(&[]);
    assert_eq!(v["resource"], serde_json::Value::Null);
    assert_eq!(v["model"].as_str().map(Path::new), Some(d.as_path()));
    let out = Command::new(bin_dir().join("show_folders"))
        .arg("--model-path")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bare --model-path is a usage error"
    );

    // As a role of a home: the home's folders; the flags are not used.
    let (_host, host_at) = host_cake();
    ok(d, &["create", &format!("--directory-at-host={host_at}")]);
    ok(d, &["add", "show_folders", "show", "--model-path=data"]);
    ok(d, &["resource", "show_folders", "assets", "--make-changes"]);
    ok(d, &["model", "show", "data", "--make-changes"]);
    let role = d.join(".layer-cake/role/show");
    write(&role.join("tmp/left-over"), "from an earlier run");
    let v = run_show(d);
    let home = d.join(".layer-cake");
    assert_eq!(
        v["resource"].as_str().map(Path::new),
        Some(home.join("resource/show_folders").as_path())
    );
    assert_eq!(v["resource_files"], serde_json::json!(["assets"]));
    assert_eq!(
        v["model"].as_str().map(Path::new),
        Some(role.join("model").as_path())
    );
    assert_eq!(v["model_files"], serde_json::json!(["data"]));
    assert_eq!(
        v["tmp"].as_str().map(Path::new),
        Some(role.join("tmp").as_path())
    );
    assert_eq!(
        v["tmp_files"],
        serde_json::json!([]),
        "emptied at the start"
    );
    assert!(role.join("tmp/scratch.txt").is_file(), "kept after the run");
}
