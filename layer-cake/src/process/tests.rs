//! Reading command lines, and running main actors in this process.

use serde::Deserialize;

use super::config::STANDARD_FLAGS;
use super::entry::{Parsed, Usage, parse};
use super::*;
use crate::log::DebugLevel;
use crate::message::text::field_names;
use crate::net::HostPort;
use crate::{Context, Faulted};

#[derive(Debug, PartialEq, Deserialize)]
struct Xy {
    x: i64,
    #[serde(default)]
    y: i64,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Server {
    server_address: Option<HostPort>,
    #[serde(default)]
    name: String,
}

fn ok<A: serde::de::DeserializeOwned>(args: &[&str]) -> (ProcessConfig, A) {
    match parse::<A, _>("demo", args) {
        Ok(Parsed::Run(config, a)) => (*config, a),
        Ok(Parsed::Help(h)) => panic!("{args:?}: unexpected help {h}"),
        Ok(Parsed::Checked) => panic!("{args:?}: unexpected check"),
        Ok(Parsed::Types) => panic!("{args:?}: unexpected dump of the types"),
        Err(e) => panic!("{args:?}: {}", e.text),
    }
}

fn err<A: serde::de::DeserializeOwned + std::fmt::Debug>(args: &[&str]) -> Usage {
    match parse::<A, _>("demo", args) {
        Err(e) => e,
        Ok(other) => panic!("{args:?}: expected an error, got {other:?}"),
    }
}

#[test]
fn the_help_table_lists_every_standard_flag() {
    let fields: Vec<String> = field_names::<ProcessConfig>()
        .unwrap()
        .iter()
        .map(|f| f.replace('_', "-"))
        .collect();
    let listed: Vec<&str> = STANDARD_FLAGS.iter().map(|f| f.name).collect();
    assert_eq!(fields, listed);
}

#[test]
fn own_arguments_are_decoded_by_type() {
    let (config, xy) = ok::<Xy>(&["--x=2", "--y=-3"]);
    assert_eq!(xy, Xy { x: 2, y: -3 });
    assert_eq!(config, ProcessConfig::default());
    let (_, s) = ok::<Server>(&[
        r#"--server-address={"host":"127.0.0.1","port":5051}"#,
        "--name=plain text",
    ]);
    assert_eq!(s.server_address, Some(HostPort::new("127.0.0.1", 5051)));
    assert_eq!(s.name, "plain text");
    let (_, s) = ok::<Server>(&["--server_address=localhost:80"]);
    assert_eq!(s.server_address, Some(HostPort::new("localhost", 80)));
    let (_, ()) = ok::<()>(&[]);
}

#[test]
fn standard_flags_are_taken_first() {
    let (config, xy) = ok::<Xy>(&[
        "--full-output",
        "--x=1",
        "--debug-level=object",
        "--child-process=true",
        r#"--connect-to-directory={"host":"127.0.0.1","port":54195}"#,
        "--role-name=worker-1",
        "--home-path=/tmp/home",
        "--origin=RUN_CHILD",
        "--output-file=out.json",
        "--keep-logs",
        "--lan-key=/etc/layer-cake/lan.key",
    ]);
    assert_eq!(xy.x, 1);
    assert!(config.full_output && config.child_process && config.keep_logs);
    assert!(!config.help);
    assert_eq!(
        config.lan_key.as_deref(),
        Some(std::path::Path::new("/etc/layer-cake/lan.key"))
    );
    assert_eq!(config.debug_level, Some(DebugLevel::OBJECT));
    assert_eq!(
        config.connect_to_directory,
        Some(HostPort::new("127.0.0.1", 54195))
    );
    assert_eq!(config.role_name.as_deref(), Some("worker-1"));
    assert_eq!(config.home_path.unwrap().to_str(), Some("/tmp/home"));
    assert_eq!(config.origin, Origin::RunChild);
    assert_eq!(config.output_file.unwrap().to_str(), Some("out.json"));
}

#[test]
fn allow_group_is_a_standard_flag_checked_when_read() {
    // Every Linux system has a group 0 (a number is taken as a gid).
    let (config, ()) = ok::<()>(&["--allow-group=0"]);
    assert_eq!(config.allow_group.as_deref(), Some("0"));
    assert_eq!(config.allowed_group().unwrap(), Some(0));
    let (config, ()) = ok::<()>(&[]);
    assert_eq!(config.allowed_group().unwrap(), None);
    // An unknown name is one line and a usage error, never "no group".
    let e = err::<()>(&["--allow-group=no-such-group-anywhere"]);
    assert_eq!(e.code, EXIT_USAGE);
    assert_eq!(
        e.text,
        "--allow-group: cannot find the group \"no-such-group-anywhere\" (no such group)"
    );
    // A main actor cannot take the name for an argument of its own.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Clash {
        allow_group: String,
    }
    assert!(err::<Clash>(&[]).text.contains("--allow-group"));
}

#[test]
fn worker_threads_is_a_standard_flag_from_1_to_1024() {
    let (config, ()) = ok::<()>(&["--worker-threads=1"]);
    assert_eq!(config.worker_threads, Some(1));
    let (config, ()) = ok::<()>(&["--worker-threads=1024"]);
    assert_eq!(config.worker_threads, Some(1024));
    for bad in ["0", "1025"] {
        let e = err::<()>(&[&format!("--worker-threads={bad}")]);
        assert_eq!(e.code, EXIT_USAGE);
        assert_eq!(
            e.text,
            format!("--worker-threads: {bad} is not from 1 to 1024")
        );
    }
    let e = err::<()>(&["--worker-threads=many"]);
    assert_eq!(e.code, EXIT_USAGE);
    assert!(e.text.contains("worker-threads"), "{}", e.text);
}

#[test]
fn drain_time_is_a_standard_flag_up_to_a_day() {
    let (config, ()) = ok::<()>(&[]);
    assert_eq!(config.drain_duration(), crate::process::DEFAULT_DRAIN);
    let (config, ()) = ok::<()>(&["--drain-time=0"]);
    assert_eq!(config.drain_duration(), std::time::Duration::ZERO);
    let (config, ()) = ok::<()>(&["--drain-time=86400"]);
    assert_eq!(config.drain_time, Some(86_400));
    let e = err::<()>(&["--drain-time=86401"]);
    assert_eq!(e.code, EXIT_USAGE);
    assert_eq!(e.text, "--drain-time: 86401 is more than 86400");
    let e = err::<()>(&["--drain-time=-1"]);
    assert_eq!(e.code, EXIT_USAGE);
    assert!(e.text.contains("drain-time"), "{}", e.text);
    // Its short form clashes with no other standard flag's.
    let (config, ()) = ok::<()>(&["-dt=5", "-ctd=127.0.0.1:1"]);
    assert_eq!(config.drain_time, Some(5));
    assert_eq!(
        config.connect_to_directory,
        Some(HostPort::new("127.0.0.1", 1))
    );
}

#[test]
fn short_forms_are_initials() {
    let (config, xy) = ok::<Xy>(&["-dl=DEBUG", "-fo", "-x=4"]);
    assert_eq!(config.debug_level, Some(DebugLevel::DEBUG));
    assert!(config.full_output);
    assert_eq!(xy.x, 4);
    // --debug-level and a --dry-loop argument share -dl.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Dry {
        dry_loop: bool,
    }
    let e = err::<Dry>(&["-dl=DEBUG"]);
    assert_eq!(
        e,
        Usage {
            code: EXIT_USAGE,
            text: "ambiguous flag -dl (could be --debug-level or --dry-loop)".into()
        }
    );
    assert!(err::<Xy>(&["-q"]).text.starts_with("unknown flag -q"));
}

#[test]
fn bad_command_lines_name_the_flag_and_exit_2() {
    for (args, text) in [
        (
            &["--z=1"][..],
            "unknown flag --z (expected one of --x, --y)",
        ),
        (
            &["--x=abc"],
            "--x: invalid value \"abc\": invalid digit found in string",
        ),
        (&["--y=1"], "missing flag --x"),
        (&["--x=1", "--x=2"], "--x given twice"),
        (
            &["--x"],
            "--x: invalid value (no value): a value is required",
        ),
        (
            &["x=1"],
            "unexpected argument \"x=1\" (arguments are flags, --name=value)",
        ),
    ] {
        let e = err::<Xy>(args);
        assert_eq!(e.code, EXIT_USAGE, "{args:?}");
        assert_eq!(e.text, text, "{args:?}");
    }
    for (args, needle) in [
        (
            &["--x=1", "--debug-level=NOPE"][..],
            "--debug-level: invalid value \"NOPE\": unknown debug level",
        ),
        (
            &["--x=1", "--origin=WIDE"],
            "--origin: invalid value \"WIDE\"",
        ),
        (
            &["--x=1", "--full-output=maybe"],
            "--full-output: invalid value \"maybe\"",
        ),
        (
            &["--x=1", "--connect-to-directory=nowhere"],
            "--connect-to-directory: invalid value \"nowhere\"",
        ),
    ] {
        let e = err::<Xy>(args);
        assert_eq!(e.code, EXIT_USAGE, "{args:?}");
        assert!(e.text.starts_with(needle), "{args:?}: {}", e.text);
        assert!(!e.text.contains('\n'));
    }
    assert_eq!(err::<()>(&["--z"]).text, "unknown flag --z (expected none)");
}

#[test]
fn arguments_may_not_shadow_standard_flags() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Clash {
        full_output: bool,
    }
    let e = err::<Clash>(&[]);
    assert_eq!(e.code, EXIT_SOFTWARE);
    assert!(e.text.contains("--full-output"), "{}", e.text);
}

#[test]
fn help_lists_own_and_standard_flags() {
    // Help wins over bad arguments, so a user can always find out.
    let Ok(Parsed::Help(text)) = parse::<Xy, _>("demo", &["--help", "--z=1"]) else {
        panic!("no help");
    };
    assert!(text.starts_with("usage: demo "), "{text}");
    for needle in [
        "--x",
        "--y",
        "--debug-level=LEVEL",
        "-dl",
        "--full-output",
        "--help",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    let Ok(Parsed::Help(text)) = parse::<(), _>("demo", &["-h"]) else {
        panic!("no help");
    };
    assert!(text.contains("takes no arguments"), "{text}");
}

async fn area(_cx: Context, xy: Xy) -> Result<i64, Faulted> {
    if xy.x < 0 {
        return Err(Faulted::new("bad dimensions").with_explanation("negative x"));
    }
    Ok(xy.x * xy.y)
}

fn run_area(args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["/usr/bin/area"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(area, &argv, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn run_prints_the_value_or_the_fault() {
    assert_eq!(
        run_area(&["--x=2", "--y=3"]),
        (0, "6\n".into(), String::new())
    );
    // On one thread (a current-thread runtime) and on several.
    for threads in ["--worker-threads=1", "--worker-threads=3"] {
        assert_eq!(
            run_area(&["--x=2", "--y=3", threads]),
            (0, "6\n".into(), String::new())
        );
    }
    let (code, out, err) = run_area(&["--x=2", "--y=3", "--full-output"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out.split_whitespace().collect::<String>(),
        r#"{"value":["integer8",6,[]]}"#
    );
    assert_eq!(
        run_area(&["--x=2", "--y=3", "--full-output", "--child-process"]).1,
        "{\"value\":[\"integer8\",6,[]]}\n"
    );
    assert_eq!(
        run_area(&["--x=-1"]),
        (
            71,
            String::new(),
            "area: bad dimensions (negative x)\n".into()
        )
    );
    let (code, out, err) = run_area(&["--x=-1", "--full-output", "--child-process"]);
    assert_eq!((code, err.as_str()), (71, ""));
    assert!(
        out.starts_with(r#"{"value":["Faulted",{"kind":"Faulted","condition":"bad dimensions""#),
        "{out}"
    );
    assert_eq!(
        run_area(&["--x=a"]),
        (
            2,
            String::new(),
            "area: --x: invalid value \"a\": invalid digit found in string\n".into()
        )
    );
    let (code, out, _) = run_area(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--x"));
}

#[test]
fn run_prints_nothing_for_unit_and_honours_exit_status() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(
        |_cx: Context, (): ()| async {},
        &["quiet"],
        &mut out,
        &mut err,
    );
    assert_eq!((code, out.len(), err.len()), (0, 0, 0));
    let code = run(
        |_cx: Context, (): ()| async { Err::<(), _>(Faulted::new("custom").with_exit_status(9)) },
        &["custom"],
        &mut out,
        &mut err,
    );
    assert_eq!(code, 9);
    assert_eq!(String::from_utf8(err).unwrap(), "custom: custom\n");
}

#[test]
fn run_writes_the_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    let flag = format!("--output-file={}", path.display());
    let (code, out, err) = run_area(&["--x=2", "--y=2", "--child-process", &flag]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "4\n");
    let flag = format!("--output-file={}", dir.path().join("no/such/dir").display());
    let (code, _, err) = run_area(&["--x=2", &flag]);
    assert_eq!(code, EXIT_IO);
    assert!(err.starts_with("area: cannot write "), "{err}");
}

#[test]
fn check_settings_reads_the_flags_and_does_not_run() {
    assert!(matches!(
        parse::<Xy, _>("demo", &["--x=2", "--check-settings"]),
        Ok(Parsed::Checked)
    ));
    let bad = parse::<Xy, _>("demo", &["--x=two", "--check-settings"]).unwrap_err();
    assert_eq!(bad.code, EXIT_USAGE);
    assert!(bad.text.contains("x"), "{}", bad.text);
}

#[test]
fn dump_types_prints_the_registered_signatures_and_does_not_run() {
    // Without the main actor's arguments, like --help.
    assert!(matches!(
        parse::<Xy, _>("demo", &["--dump-types"]),
        Ok(Parsed::Types)
    ));
    let (code, out, err) = run_area(&["--dump-types"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<&str> = out.lines().collect();
    // Other tests of this binary may register types meanwhile: every line
    // is a registered signature, in order.
    for line in &lines {
        assert!(
            crate::message::registry::lookup(line).is_some(),
            "{line} is not registered"
        );
    }
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
    for built_in in ["Faulted", "Stop", "Returned", "integer8"] {
        assert!(lines.contains(&built_in), "{built_in} in {out}");
    }
    // No short form: -dt is --drain-time, and --help shows none for it.
    let (config, ()) = ok::<()>(&["-dt=3"]);
    assert_eq!(config.drain_time, Some(3));
    let Ok(Parsed::Help(text)) = parse::<(), _>("demo", &["--help"]) else {
        panic!("no help");
    };
    let line = text.lines().find(|l| l.contains("--dump-types")).unwrap();
    assert!(!line.contains("-dt"), "{line}");
    let line = text.lines().find(|l| l.contains("--drain-time")).unwrap();
    assert!(line.contains("-dt "), "{line}");
}

#[test]
fn the_directory_flags_of_the_daemons_are_not_standard_flags() {
    // A process's directory is always at PROCESS level, and only the
    // daemons listen for child directories (group-cake takes
    // --accept-directories-at as its own argument): refused, not ignored.
    for flag in [
        "--directory-scope=GROUP",
        "--accept-directories-at=127.0.0.1:0",
    ] {
        let e = err::<Xy>(&[flag]);
        assert_eq!(e.code, EXIT_USAGE, "{flag}");
        assert!(e.text.starts_with("unknown flag --"), "{flag}: {}", e.text);
    }
}

#[test]
fn max_requests_is_a_standard_flag_from_1() {
    let (config, ()) = ok::<()>(&[]);
    assert_eq!(config.max_requests, None);
    let (config, ()) = ok::<()>(&["--max-requests=5"]);
    assert_eq!(config.max_requests, Some(5));
    let (config, ()) = ok::<()>(&["-mr=7"]);
    assert_eq!(config.max_requests, Some(7));
    let e = err::<()>(&["--max-requests=0"]);
    assert_eq!(e.code, EXIT_USAGE);
    assert_eq!(
        e.text,
        "--max-requests: 0 is not from 1 to 9007199254740992"
    );
    let e = err::<()>(&["--max-requests=many"]);
    assert_eq!(e.code, EXIT_USAGE);
    assert!(e.text.contains("max-requests"), "{}", e.text);
}
