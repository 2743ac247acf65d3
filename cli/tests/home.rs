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
    // `-ll`, the original's short form of --long-listing, is the same.
    assert_eq!(
        ok(d, &["list", "-ll", "worker-7"]),
        ok(d, &["list", "-l", "worker-7"])
    );
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

/// The group role's settings, straight from its file.
fn group_settings(d: &Path) -> serde_json::Value {
    let path = d.join(".layer-cake/role/group/settings.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Five `update`s at once, each of another setting: every one lands (the
/// read, check and write of each happens under the home's lock), and no
/// temporary file is left behind.
#[test]
fn concurrent_updates_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    build_executables();
    for round in 0..3 {
        let settings = [
            format!("--directory-at-host=127.0.0.1:{}", 1000 + round),
            format!("--directory-at-lan=127.0.0.1:{}", 2000 + round),
            format!("--main-role=role-{round}"),
            format!(r#"--retry={{"regular_steps": {round}.5}}"#),
            ["CONSOLE", "DEBUG", "TRACE"][round].to_owned(),
        ];
        let children: Vec<_> = settings
            .iter()
            .enumerate()
            .map(|(i, setting)| {
                let setting = if i == 4 {
                    format!("--debug-level={setting}")
                } else {
                    setting.clone()
                };
                Command::new(bin_dir().join("layer-cake"))
                    .args(["update", "group", &setting])
                    .current_dir(d)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let group = group_settings(d);
        let want = serde_json::json!({
            "directory-at-host": format!("127.0.0.1:{}", 1000 + round),
            "directory-at-lan": format!("127.0.0.1:{}", 2000 + round),
            "main-role": format!("role-{round}"),
            "retry": format!(r#"{{"regular_steps": {round}.5}}"#),
            "debug-level": (["CONSOLE", "DEBUG", "TRACE"][round]),
        });
        assert_eq!(group, want, "round {round}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(d.join(".layer-cake/role/group"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp") && n != "tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Every command that takes a role name refuses one that is not a plain
/// folder name — `..`, a path, an absolute path, a hidden name, one too
/// long — with one line, before touching anything.
#[test]
fn role_names_that_are_paths_are_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    ok(d, &["add", "test_worker_10", "worker"]);
    // Something a path could reach, outside the home's role folder.
    std::fs::write(d.join("executable.json"), "\"/bin/sh\"").unwrap();
    let long = "w".repeat(65);
    for name in [
        "..", "../..", "../../..", "/etc", "/", "a/b", ".hidden", "a..b", &long,
    ] {
        for command in [
            vec!["edit", name],
            vec!["history", name],
            vec!["returned", name],
            vec!["log", name],
            vec!["add", "test_worker_10", name],
        ] {
            let e = fails(d, &command);
            assert!(e.contains("bad role name"), "{command:?}: {e}");
        }
    }
    assert_eq!(ok(d, &["list"]).trim(), "worker", "nothing added");
    // A role process given such a name by --role-name: refused the same
    // way, before it runs (exit 78, configuration).
    for name in ["../..", "/tmp"] {
        let out = Command::new(bin_dir().join("test_worker_10"))
            .current_dir(d)
            .args(["--home-path=.layer-cake", &format!("--role-name={name}")])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{name}: {err}");
        assert!(err.contains("bad role name"), "{name}: {err}");
    }
}

/// `install-service` writes a unit that runs as a named user, with the
/// hardening of an unprivileged network daemon, and says how to make the
/// user; `systemd-analyze verify` accepts it where it exists.
#[test]
fn the_service_unit_runs_as_its_own_user_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let units = tempfile::tempdir().unwrap();
    let unit_dir = format!("--unit-dir={}", units.path().display());
    let said = ok(
        d,
        &[
            "install-service",
            "host-cake",
            &unit_dir,
            "--user=lc-test",
            "--no-lan-autoconnect",
        ],
    );
    assert!(
        said.contains("useradd --system --no-create-home --shell /usr/sbin/nologin lc-test"),
        "{said}"
    );
    // How other users' processes may use it: a group both ends name.
    assert!(said.contains("--allow-group=lc-test"), "{said}");
    let path = units.path().join("layer-cake-host-cake.service");
    let unit = std::fs::read_to_string(&path).unwrap();
    // A program under /tmp (a checkout there, as CI may use) would vanish
    // behind a private /tmp, so the unit keeps the real one.
    let program = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let private_tmp = if ["/tmp/", "/var/tmp/"]
        .iter()
        .any(|t| program.starts_with(t))
    {
        "PrivateTmp=no"
    } else {
        "PrivateTmp=yes"
    };
    for line in [
        "User=lc-test",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        private_tmp,
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in\n{unit}");
    }
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecStart=") && l.ends_with("host-cake --no-lan-autoconnect")),
        "{unit}"
    );
    // The default user, and a home's unit, which may write the home only.
    ok(d, &["create"]);
    ok(d, &["install-service", "home", &unit_dir]);
    let home_unit = std::fs::read_dir(units.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("layer-cake-home-"))
        .unwrap();
    let text = std::fs::read_to_string(&home_unit).unwrap();
    assert!(text.lines().any(|l| l == "User=layer-cake"), "{text}");
    let home = std::fs::canonicalize(d.join(".layer-cake")).unwrap();
    assert!(
        text.lines()
            .any(|l| l == format!("ReadWritePaths={}", home.display())),
        "{text}"
    );
    // Never root.
    assert!(
        fails(
            d,
            &["install-service", "host-cake", &unit_dir, "--user=root"]
        )
        .contains("root")
    );

    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .arg(&home_unit)
        .output()
    {
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "systemd-analyze verify: {err}");
            // It warns about what it cannot check here (the user may not
            // exist); it must not find the unit's own lines wrong.
            for bad in ["Unknown key", "Failed to parse", "Invalid", "not valid"] {
                assert!(!err.contains(bad), "systemd-analyze verify: {err}");
            }
        }
        Err(e) => eprintln!("skipped systemd-analyze verify: cannot run it ({e})"),
    }
}

/// `add` finds an executable as a shell user expects — a path relative to
/// the current folder, a name in the current folder, in the home's
/// `script/` folder, next to layer-cake or on PATH — stores the absolute
/// path it found, and names every place looked when there is none.
#[test]
fn executables_are_found_where_a_user_expects_and_stored_absolute() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let here = std::fs::canonicalize(d).unwrap();
    ok(d, &["create"]);
    // A role written as a script: it answers --check-settings, as any role.
    let script = |path: &Path| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            path,
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --check-settings ] && exit 0; done\nexec sleep 60\n",
        )
        .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(&d.join("job.sh"));
    script(&d.join("bin/other.sh"));
    script(&d.join(".layer-cake/script/tool.sh"));
    std::fs::write(d.join("notes.txt"), "not a program").unwrap();

    ok(d, &["add", "./job.sh", "a"]);
    ok(d, &["add", "job.sh", "b"]);
    ok(d, &["add", "bin/../bin/other.sh", "c"]);
    ok(d, &["add", "tool.sh", "d"]);
    let stored = |role: &str| ok(d, &["list", "-l", role]);
    assert!(
        stored("a").contains(&format!("{}/job.sh", here.display())),
        "{}",
        stored("a")
    );
    assert!(stored("b").contains(&format!("{}/job.sh", here.display())));
    assert!(
        stored("c").contains(&format!("{}/bin/other.sh", here.display())),
        "{}",
        stored("c")
    );
    assert!(
        stored("d").contains(&format!("{}/.layer-cake/script/tool.sh", here.display())),
        "{}",
        stored("d")
    );

    for missing in ["nothing-here", "notes.txt"] {
        let e = fails(d, &["add", missing, "e"]);
        assert!(
            e.contains(&format!("cannot find {missing} as an executable file")),
            "{e}"
        );
        assert!(e.contains(&format!("{}/{missing}", here.display())), "{e}");
        assert!(e.contains(&format!(".layer-cake/script/{missing}")), "{e}");
    }
    let e = fails(d, &["add", "./nothing-here", "e"]);
    assert!(e.contains("cannot find ./nothing-here"), "{e}");
    // Nothing was stored for the refused role.
    let listed = ok(d, &["list"]);
    assert!(
        !listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some("e")),
        "{listed}"
    );
}

/// `delete --all-roles` removes every role but the group's; it takes no
/// patterns beside it, and `delete` alone names none.
#[test]
fn delete_all_roles_leaves_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    ok(d, &["add", "test_worker_10", "worker", "--role-count=3"]);
    ok(d, &["add", "test_server_10", "server"]);
    for usage in [&["delete"][..], &["delete", "--all-roles", "worker"]] {
        let out = layer_cake(d, usage);
        assert_eq!(out.status.code(), Some(2), "{usage:?}");
    }
    let deleted = ok(d, &["delete", "--all-roles"]);
    assert_eq!(deleted.lines().count(), 4, "{deleted}");
    assert!(fails(d, &["delete", "--all-roles"]).contains("the home has no roles"));
    assert!(ok(d, &["list", "-l", "group"]).contains("group-cake"));
}
