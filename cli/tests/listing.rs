//! What the CLI shows of a home without running it: `list -l` (the role
//! folder's folders/files/bytes and the executable's full path),
//! `--group-role`, sub-roles (`--sub-roles`, `delete` taking them along),
//! `log` with `--last`, `--start`, `--sample` and its begin/end rules over
//! log files written by the test, `--debug-level` on any command, and a
//! reader that goes away (`layer-cake list | head`). Each a real run of the
//! binary in a fresh temporary folder.

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod support;

use support::{bin_dir, build_executables};

fn layer_cake(dir: &Path, args: &[&str]) -> Output {
    build_executables();
    Command::new(bin_dir().join("layer-cake"))
        .args(args)
        .current_dir(dir)
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

/// Runs a command that must fail with `code`; its stderr.
fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let out = layer_cake(dir, args);
    assert_eq!(out.status.code(), Some(code), "layer-cake {args:?}");
    String::from_utf8(out.stderr).unwrap()
}

/// The sizes of the files below `dir`, added up.
fn bytes_below(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                bytes_below(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
fn list_long_shows_folder_usage_and_full_paths_and_hides_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    ok(d, &["add", "test_worker_10", "worker", "--scope=HOST"]);
    let role = d.join(".layer-cake/role/worker");
    // A fresh role: logs/ model/ tmp/ and its four files.
    let long = ok(d, &["list", "-l"]);
    let exe = bin_dir().join("test_worker_10");
    let exe = std::fs::canonicalize(&exe).unwrap();
    assert_eq!(
        long,
        format!(
            "worker  stopped               3/4/{}  {} --scope=HOST\n",
            bytes_below(&role),
            exe.display()
        )
    );
    // Files in its folders count.
    std::fs::create_dir(role.join("model/tables")).unwrap();
    std::fs::write(role.join("model/tables/t.json"), "[1,2,3]").unwrap();
    let long = ok(d, &["list", "-ll", "worker"]);
    assert!(
        long.contains(&format!("  4/5/{}  ", bytes_below(&role))),
        "{long}"
    );

    // The group: hidden unless --group-role (or named), shown with the
    // full path of the group-cake it runs.
    assert_eq!(ok(d, &["list"]), "worker\n");
    assert_eq!(ok(d, &["list", "--group-role"]), "group\nworker\n");
    let group = ok(d, &["list", "-l", "--group-role"]);
    let group_cake = std::fs::canonicalize(bin_dir().join("group-cake")).unwrap();
    assert!(
        group
            .lines()
            .next()
            .unwrap()
            .ends_with(&format!("  {}", group_cake.display())),
        "{group}"
    );
    assert_eq!(ok(d, &["list", "group"]), "group\n");
}

#[test]
fn sub_roles_are_hidden_unless_asked_for_and_go_with_their_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    ok(d, &["add", "test_worker_10", "server"]);
    ok(d, &["add", "test_worker_10", "other"]);
    // The names of sub-roles are not for `add`.
    let e = fails(d, &["add", "test_worker_10", "server.worker"], 1);
    assert!(e.contains("'.' is reserved for sub-roles"), "{e}");
    // What a child process of `server` does when it starts: takes its
    // sub-role, made on first use; a second one at once gets `-1`.
    let home = layer_cake::home::Home::open(d.join(".layer-cake")).unwrap();
    let (first, held) = home.take_sub_role("server.worker", "/bin/true", 1).unwrap();
    let (second, _held2) = home.take_sub_role("server.worker", "/bin/true", 1).unwrap();
    assert_eq!(
        (first.name(), second.name()),
        ("server.worker", "server.worker-1")
    );
    drop(held);
    // Free again: the next child takes the first one back.
    let (again, _held3) = home.take_sub_role("server.worker", "/bin/true", 1).unwrap();
    assert_eq!(again.name(), "server.worker");
    drop((_held2, _held3));
    // No parent role, no sub-role.
    assert!(home.take_sub_role("nobody.worker", "/bin/true", 1).is_err());

    assert_eq!(ok(d, &["list"]), "other\nserver\n");
    assert_eq!(
        ok(d, &["list", "--sub-roles"]),
        "other\nserver\nserver.worker\nserver.worker-1\n"
    );
    assert_eq!(
        ok(d, &["list", "--sub-roles", "server"]),
        "server\nserver.worker\nserver.worker-1\n"
    );
    let long = ok(d, &["list", "-l", "--sub-roles", "server.worker-1"]);
    assert!(
        long.contains("stopped") && long.ends_with("  /bin/true\n"),
        "{long}"
    );
    // A sub-role has no settings of its own to update.
    let e = fails(d, &["update", "server.worker", "--x=1"], 1);
    assert!(
        e.starts_with("layer-cake: server.worker is a sub-role: it has no settings of its own"),
        "{e}"
    );
    // A sub-role is never a role to run.
    let e = fails(d, &["run", "server.worker"], 1);
    assert!(e.contains("no role matches server.worker"), "{e}");
    // `delete` of a role takes its sub-roles along; one can go alone.
    assert_eq!(
        ok(d, &["delete", "server.worker-1"]),
        "deleted server.worker-1\n"
    );
    assert_eq!(
        ok(d, &["delete", "server"]),
        "deleted server\ndeleted server.worker\n"
    );
    assert_eq!(ok(d, &["list", "--sub-roles"]), "other\n");
}

/// A log line as group-cake's log files hold them.
fn line(pid: u32, time: &str, tag: char, rest: &str) -> String {
    format!("[{pid:08}] {time} {tag} {rest}")
}

/// A home whose role `server` ran twice (pids 101 and 102) and whose
/// group log holds their lines, and another process's.
fn logged_home(d: &Path) -> Vec<String> {
    ok(d, &["create"]);
    ok(d, &["add", "test_worker_10", "server"]);
    let role = d.join(".layer-cake/role/server");
    std::fs::write(
        role.join("history.json"),
        r#"[
  {"start": "2026-01-01T10:00:00Z", "pid": 101, "stop": "2026-01-01T10:30:00Z", "returned": null},
  {"start": "2026-01-01T11:00:00Z", "pid": 102, "stop": null, "returned": null}
]"#,
    )
    .unwrap();
    let lines = vec![
        line(
            101,
            "2026-01-01T10:00:01.000",
            '^',
            "<00000001>server - first run",
        ),
        line(
            101,
            "2026-01-01T10:00:02.000",
            '&',
            "<00000003>spool - spool (queue=3,busy=0.25)",
        ),
        line(999, "2026-01-01T10:00:03.000", '^', "- not the server's"),
        line(
            101,
            "2026-01-01T10:00:04.000",
            '^',
            r#"- {"duration_ms":2.5,"http_method":"GET","http_path":"/Xy","rpc_id":null}"#,
        ),
        line(
            102,
            "2026-01-01T11:00:01.000",
            '&',
            "<00000003>spool - spool (queue=0,busy=0.5)",
        ),
        line(
            102,
            "2026-01-01T11:00:02.000",
            '?',
            "<00000001>server - second run",
        ),
        line(
            102,
            "2026-01-01T11:00:03.000",
            '&',
            "<00000003>spool - spool (queue=1)",
        ),
    ];
    let logs = d.join(".layer-cake/role/group/logs");
    std::fs::write(
        logs.join("2026-01-01T10-00-00.000.log"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    lines
}

#[test]
fn log_begins_and_ends_where_asked_and_reads_samples() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines = logged_home(d);
    let server: Vec<String> = lines
        .iter()
        .filter(|l| !l.starts_with("[00000999]"))
        .cloned()
        .collect();
    let shown = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["log", "server"];
        all.extend_from_slice(args);
        ok(d, &all).lines().map(str::to_owned).collect()
    };
    // The default: the tail of every run's lines.
    assert_eq!(shown(&[]), server);
    assert_eq!(shown(&["--tail=2"]), server[4..]);
    // --start: from the start of a run of the history.
    assert_eq!(shown(&["--start=1"]), server[3..]);
    assert_eq!(shown(&["--start=-1"]), server[3..]);
    assert_eq!(shown(&["--start=0", "--count=2"]), server[..2]);
    assert_eq!(shown(&["--start=-2", "--span=3s"]), server[..2]);
    assert_eq!(
        shown(&["--from=2026-01-01T10:00:02", "--to=2026-01-01T11:00:02"]),
        server[1..4]
    );
    // --last: everything is older than the last month.
    assert!(shown(&["--last=MONTH"]).is_empty());
    assert!(shown(&["--last=five"]).is_empty());
    // The tags.
    assert_eq!(shown(&["--tags=?"]), server[4..5]);

    // Samples: the `&` lines of that name, as columns, a header whenever
    // the keys change.
    assert_eq!(
        ok(d, &["log", "server", "--sample=spool"]),
        "time\tqueue\tbusy\n\
         2026-01-01T10:00:02.000\t3\t0.25\n\
         2026-01-01T11:00:01.000\t0\t0.5\n\
         time\tqueue\n\
         2026-01-01T11:00:03.000\t1\n"
    );
    assert_eq!(
        ok(
            d,
            &["log", "server", "--sample=spool", "--start=-1", "--count=1"]
        ),
        "time\tqueue\tbusy\n2026-01-01T11:00:01.000\t0\t0.5\n"
    );
    // `request`: the HTTP request log's JSON lines.
    assert_eq!(
        ok(d, &["log", "server", "--sample=request"]),
        "time\tduration_ms\thttp_method\thttp_path\trpc_id\n\
         2026-01-01T10:00:04.000\t2.5\tGET\t/Xy\t\n"
    );
    assert_eq!(ok(d, &["log", "server", "--sample=nothing"]), "");

    // Exactly one begin, at most one end: clap says which clash.
    for (args, clash) in [
        (
            &["--tail=2", "--last=HOUR"][..],
            "'--tail <TAIL>' cannot be used with '--last <PERIOD>'",
        ),
        (
            &["--start=0", "--back=1h"],
            "'--start <I>' cannot be used with '--back <BACK>'",
        ),
        (
            &["--from=2026-01-01T10:00:00", "--start=1"],
            "cannot be used with",
        ),
        (
            &["--start=0", "--to=2026-01-01T10:00:00", "--count=3"],
            "'--to <TO>' cannot be used with '--count <COUNT>'",
        ),
    ] {
        let mut all = vec!["log", "server"];
        all.extend_from_slice(args);
        let e = fails(d, &all, 2);
        assert!(e.contains(clash), "{args:?}: {e}");
    }
    for (args, error) in [
        (
            &["--last=YEAR"][..],
            "--last=YEAR: give MONTH, WEEK, DAY, HOUR, HALF, QUARTER, TEN, FIVE or MINUTE",
        ),
        (
            &["--start=2"],
            "--start=2: server has runs 0 to 1 (-1 to -2 from the latest)",
        ),
        (&["--start=-3"], "--start=-3: server has runs 0 to 1"),
        (
            &["--count=3"],
            "--span and --count need a begin time: --from, --back, --last or --start",
        ),
        (
            &["--tail=3", "--span=1h"],
            "--span and --count need a begin time",
        ),
    ] {
        let mut all = vec!["log", "server"];
        all.extend_from_slice(args);
        let e = fails(d, &all, 1);
        assert!(
            e.starts_with(&format!("layer-cake: {error}")),
            "{args:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

/// `--debug-level` before any command; at DEBUG the CLI says which command
/// it runs on which home. After a command that takes settings it is a
/// setting, as before.
#[test]
fn the_cli_logs_what_it_does_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    let out = layer_cake(d, &["--debug-level=DEBUG", "list"]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let home = std::fs::canonicalize(d).unwrap().join(".layer-cake");
    assert!(
        err.contains(&format!(" ~ - layer-cake list (home={})", home.display())),
        "{err}"
    );
    // Nothing below the level asked for.
    let out = layer_cake(d, &["--debug-level=CONSOLE", "list"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = fails(d, &["--debug-level=LOUD", "list"], 2);
    assert!(e.contains("unknown debug level \"LOUD\""), "{e}");
    // After `create`, `add` or `update` it is the role's setting.
    ok(d, &["update", "group", "--debug-level=OBJECT"]);
    ok(d, &["add", "test_worker_10", "w", "--debug-level=TRACE"]);
    let long = ok(d, &["list", "-l", "--group-role"]);
    assert!(long.contains("group-cake --debug-level=OBJECT"), "{long}");
    assert!(
        long.contains("test_worker_10 --debug-level=TRACE"),
        "{long}"
    );
}

/// `layer-cake list | head -1`: the reader goes away before the command
/// has written everything. The command ends quietly, with status 0.
#[test]
fn a_reader_going_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"]);
    ok(d, &["add", "test_worker_10", "worker", "--role-count=20"]);
    for args in [
        &["list"][..],
        &["list", "-l"],
        &["list", "-l", "--group-role"],
        &["lan-key", "path"],
    ] {
        // The pipe's reader is closed before the command starts: its first
        // write finds no reader, every time.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        build_executables();
        let out = Command::new(bin_dir().join("layer-cake"))
            .args(args)
            .current_dir(d)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "{args:?}: nothing on stderr"
        );
        assert!(out.status.success(), "{args:?}: {}", out.status);
    }
    // A real `head`, as a user types it.
    let sh = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} list | head -1",
            bin_dir().join("layer-cake").display()
        ))
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sh.stdout), "worker-0\n");
    assert_eq!(String::from_utf8_lossy(&sh.stderr), "");
}
