//! The seed scenario end to end, with real processes: a home with a
//! `test_server_10` and eight `test_worker_10`s, `layer-cake run`, HTTP
//! requests answered with tables, the group under host-cake in `layer-cake
//! network`, a hand-started worker joining the pool, a worker killed under
//! load and restarted with no request failing, and Ctrl-C stopping
//! everything. host-cake runs on an ephemeral port (never the standard
//! one, never the LAN). Whatever the test started is killed when it ends,
//! however it ends.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

mod support;

use support::{
    HomeGuard, PATIENCE, Proc, bin_dir, cli, exchange, free_port, get_table, host_cake, ok,
    running, seed_home,
};

#[test]
fn the_seed_scenario_runs_a_server_and_eight_workers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    let port = free_port();

    seed_home(d, &host_at, port);
    let listed = ok(d, &["list", "--long-listing"]);
    assert_eq!(listed.lines().count(), 9, "{listed}");

    let _guard = HomeGuard(d.join(".layer-cake"));
    let mut run = cli(d);
    run.arg("run");
    let started = Instant::now();
    let mut run = Proc::start(run);

    // The first table.
    let deadline = Instant::now() + PATIENCE;
    while get_table(port, 2, 2) != (200, true) {
        assert!(Instant::now() < deadline, "no table in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "first table {:.2}s after `layer-cake run`",
        started.elapsed().as_secs_f64()
    );
    run.line_with("(8 in all)");
    assert_eq!(running(d).len(), 10, "the group and its 9 roles");
    assert_origins(d, "RUN");

    // The group sits under host-cake.
    let tree = ok(d, &["network", &format!("--directory-at={host_at}")]);
    assert!(tree.contains("GROUP"), "{tree}");

    // A worker started by hand, through host-cake, joins the pool.
    let mut extra = Command::new(bin_dir().join("test_worker_10"));
    extra.arg(format!("--connect-to-directory={host_at}"));
    let _extra = Proc::start(extra);
    run.line_with("(9 in all)");

    // A worker killed under load: no request fails, and it comes back.
    let victim = running(d)
        .into_iter()
        .find(|(r, _)| r == "worker-3")
        .unwrap()
        .1;
    let load: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                (0..60)
                    .map(|i| get_table(port, 1 + (c + i) % 4, 2))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    signal::kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    for client in load {
        for answer in client.join().unwrap() {
            assert_eq!(answer, (200, true));
        }
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let back = running(d)
            .into_iter()
            .any(|(r, pid)| r == "worker-3" && pid != victim);
        if back {
            break;
        }
        assert!(Instant::now() < deadline, "worker-3 was not restarted");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "worker-3 restarted {:.2}s after SIGKILL (retry 1 s)",
        killed.elapsed().as_secs_f64()
    );
    // The new process locks its role (which `running` reads) a moment
    // before it records its start in the history.
    let deadline = Instant::now() + PATIENCE;
    let history = loop {
        let history = ok(d, &["history", "worker-3"]);
        if history.lines().count() >= 2 || Instant::now() >= deadline {
            break history;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(history.lines().count(), 2, "{history}");
    assert!(
        history.lines().next().unwrap().contains("(Faulted)"),
        "{history}"
    );

    // Ctrl-C stops everything.
    let pids: Vec<i32> = running(d).into_iter().map(|(_, pid)| pid).collect();
    let status = run.interrupt_and_wait();
    assert!(
        !status.success(),
        "an interrupted run ends with the group's Aborted"
    );
    let out = cli(d).arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is running"));
    for pid in pids {
        assert!(
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z")),
            "process {pid} outlived the run"
        );
    }
}

#[test]
fn start_runs_in_the_background_with_logs_and_stop_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    ok(d, &["create", &format!("--directory-at-host={host_at}")]);
    ok(d, &["add", "test_worker_10", "worker", "--role-count=2"]);
    let _guard = HomeGuard(d.join(".layer-cake"));

    let started = ok(d, &["start", "--debug-level=CONSOLE"]);
    assert!(started.starts_with("started "), "{started}");
    let out = cli(d).args(["start"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    // Both workers run, and what they log lands in the home.
    let deadline = Instant::now() + PATIENCE;
    while running(d).len() < 3 || !ok(d, &["log", "worker-1"]).contains("published") {
        assert!(Instant::now() < deadline, "the workers never logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = ok(d, &["log", "worker-0", "--back=10m"]);
    assert!(
        log.lines().all(|l| l.starts_with('[')),
        "every line has its pid: {log}"
    );
    assert!(
        !log.contains("worker-10:") || log.contains("published"),
        "{log}"
    );
    let console = ok(d, &["log", "worker-0", "--back=10m", "--tags=^"]);
    assert!(
        console.lines().all(|l| l.get(35..36) == Some("^")),
        "{console}"
    );
    // A running role cannot change.
    let out = cli(d)
        .args(["update", "worker-0", "--scope=LAN"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is running"));

    assert_origins(d, "START");
    let pids: Vec<i32> = running(d).into_iter().map(|(_, pid)| pid).collect();
    assert_eq!(
        ok(d, &["stop"]).trim(),
        format!("stopped {}", ".layer-cake")
    );
    let out = cli(d).arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is running"));
    for pid in pids {
        let deadline = Instant::now() + PATIENCE;
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
        {
            assert!(Instant::now() < deadline, "process {pid} outlived stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let history = ok(d, &["history", "worker-0", "--long-listing"]);
    assert!(
        history.contains("Faulted"),
        "stopped roles return Aborted: {history}"
    );
}

/// The boot recipe for admins, on an ephemeral port: host-cake as the role
/// of a home started in the background, restarted when it dies.
#[test]
fn the_boot_recipe_keeps_host_cake_running() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let at = format!("--directory-at-host=127.0.0.1:{port}");
    ok(d, &["create", &at]);
    ok(d, &["add", "host-cake", &at, "--no-lan-autoconnect"]);
    ok(d, &["update", "group", r#"--retry={"regular_steps": 1.0}"#]);
    let _guard = HomeGuard(d.join(".layer-cake"));
    ok(d, &["start"]);
    let network = || {
        cli(d)
            .args(["network", &format!("--directory-at=127.0.0.1:{port}")])
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = network();
        let tree = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && tree.contains("[HOST] host-cake") {
            break;
        }
        assert!(Instant::now() < deadline, "host-cake answers: {tree}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = running(d)
        .into_iter()
        .find(|(r, _)| r == "host-cake")
        .unwrap()
        .1;
    signal::kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !running(d)
        .into_iter()
        .any(|(r, pid)| r == "host-cake" && pid != first)
    {
        assert!(Instant::now() < deadline, "host-cake was not restarted");
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(d, &["stop"]);

    // And the unit that does this at boot.
    let units = tempfile::tempdir().unwrap();
    let unit_dir = format!("--unit-dir={}", units.path().display());
    let said = ok(d, &["install-service", "home", &unit_dir]);
    assert!(
        said.contains("systemctl enable --now layer-cake-home-"),
        "{said}"
    );
    let file = std::fs::read_dir(units.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let unit = std::fs::read_to_string(file).unwrap();
    assert!(
        unit.contains("--home-path=") && unit.contains(" run\n"),
        "{unit}"
    );
}

/// Runs `layer-cake run ARGS` to the end (killed past the deadline); its
/// status and stdout.
/// group-cake was started with `--origin=ORIGIN` (`RUN` or `START`), and
/// gave each of its roles `--origin=ORIGIN_CHILD`.
fn assert_origins(dir: &Path, origin: &str) {
    for (name, pid) in running(dir) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let wanted = if name == "group" {
            format!("--origin={origin}")
        } else {
            format!("--origin={origin}_CHILD")
        };
        assert!(args.contains(&wanted), "{name} (pid {pid}): {args:?}");
    }
}

fn run_to_end(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = cli(dir)
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("layer-cake run did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (status.code().unwrap_or(-1), out)
}

/// With a main role the composite ends with that role's value, stopping
/// the others; without one it ends when every role has, with all values.
#[test]
fn a_run_ends_with_the_main_role_or_with_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    ok(
        d,
        &["create", &format!("--directory-at-host=127.0.0.1:{port}")],
    );
    ok(d, &["add", "test_function_5", "table", "--x=3", "--y=2"]);
    ok(d, &["add", "test_function_5", "other", "--x=1", "--y=1"]);
    ok(d, &["add", "test_worker_10", "worker"]);
    let _guard = HomeGuard(d.join(".layer-cake"));

    let (code, out) = run_to_end(d, &["--main-role=table"]);
    assert_eq!(code, 0, "{out}");
    let table: serde_json::Value = serde_json::from_str(&out).expect("the main role's value");
    assert_eq!(table.as_array().unwrap().len(), 2, "{out}");
    // The worker was stopped on the way out; its history says so.
    let history = ok(d, &["history", "worker"]);
    assert!(history.contains("(Faulted)"), "{history}");
    let returned = ok(d, &["returned", "table"]);
    assert!(returned.contains("vector<vector<float8>>"), "{returned}");

    // Without a main role, and without the never-ending worker: the run
    // ends once both functions have, with both values by role.
    let (code, out) = run_to_end(d, &["table", "other"]);
    assert_eq!(code, 0, "{out}");
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(all["roles"]["other"][0], "vector<vector<float8>>", "{out}");
    assert_eq!(
        all["roles"]["table"][1].as_array().unwrap().len(),
        2,
        "{out}"
    );
    assert_eq!(ok(d, &["history", "table"]).lines().count(), 2);

    let out = cli(d).args(["run", "nobody"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no role matches nobody"));
}

/// Killing `layer-cake run` itself (SIGKILL, no chance to clean up) still
/// ends group-cake and every role: group-cake's stdin is the command's
/// lifeline.
#[test]
fn killing_the_run_command_ends_everything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    let port = free_port();
    seed_home(d, &host_at, port);
    let _guard = HomeGuard(d.join(".layer-cake"));
    let mut run = cli(d);
    run.arg("run");
    let mut run = Proc::start(run);
    run.line_with("(8 in all)");
    let pids: Vec<i32> = running(d).into_iter().map(|(_, pid)| pid).collect();
    assert_eq!(pids.len(), 10);
    run.child.kill().unwrap();
    let _ = run.child.wait();
    for pid in pids {
        let deadline = Instant::now() + PATIENCE;
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
        {
            assert!(
                Instant::now() < deadline,
                "process {pid} outlived the killed run"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A history that cannot be read (a crash mid-write on an old version, a
/// hand edit) does not keep its role from running: it is moved aside with
/// a warning and a fresh one is started.
#[test]
fn a_corrupt_history_is_moved_aside_and_the_role_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    ok(
        d,
        &["create", &format!("--directory-at-host=127.0.0.1:{port}")],
    );
    ok(d, &["add", "test_function_5", "table", "--x=2", "--y=2"]);
    let _guard = HomeGuard(d.join(".layer-cake"));
    let role_dir = d.join(".layer-cake/role/table");
    std::fs::write(role_dir.join("history.json"), "[{\"start\": \"tru").unwrap();
    // Reading it says what is wrong, in one line.
    let out = cli(d).args(["history", "table"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("history.json"), "{err}");

    let (code, out) = run_to_end(d, &["table"]);
    assert_eq!(code, 0, "{out}");
    let moved: Vec<String> = std::fs::read_dir(&role_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("history.json.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read_to_string(role_dir.join(&moved[0])).unwrap(),
        "[{\"start\": \"tru",
        "the corrupt history is kept as it was"
    );
    // The run is in the fresh history, with what it returned.
    let history = ok(d, &["history", "table"]);
    assert_eq!(history.lines().count(), 1, "{history}");
    assert!(history.contains("vector<vector<float8>>"), "{history}");
}

/// `--debug-level=DEBUG` tells the seed's story: the CLI says which home
/// and command, and which group-cake it starts (its command line and pid);
/// group-cake says which role it starts with which executable, the pid each
/// got, and each restart; the directories say where they connect up, that
/// they are connected, and each child directory they accept. A child
/// process of a role runs as its sub-role, `server.worker`, shown by
/// `status --sub-roles`, with a history of its own.
#[test]
fn debug_level_tells_the_story_and_a_role_s_child_is_its_sub_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    let port = free_port();
    ok(
        d,
        &[
            "create",
            &format!("--directory-at-host={host_at}"),
            r#"--retry={"regular_steps": 1.0}"#,
        ],
    );
    let server_address = format!("--server-address=127.0.0.1:{port}");
    // test_server_7 starts one test_worker_7 child process, "worker".
    ok(d, &["add", "test_server_7", "server", &server_address]);
    ok(d, &["add", "test_worker_10", "worker"]);
    let home = std::fs::canonicalize(d).unwrap().join(".layer-cake");
    let _guard = HomeGuard(home.clone());
    let mut run = cli(d);
    run.args(["run", "--debug-level=DEBUG"]);
    let mut run = Proc::start(run);

    // The worker's process directory connects to the group's, which
    // accepts it and connects up to host-cake for the worker's HOST name.
    let mut seen = run.lines_until("Accepted a child directory from");
    let deadline = Instant::now() + PATIENCE;
    let pids = loop {
        let pids = running(d);
        if pids.len() == 4 {
            break pids;
        }
        assert!(Instant::now() < deadline, "not all running: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = |role: &str| pids.iter().find(|(r, _)| r == role).unwrap().1;
    // The server's child is its sub-role: hidden unless asked for.
    let status = ok(d, &["status"]);
    assert_eq!(status, "server\nworker\n");
    let status = ok(d, &["status", "--sub-roles", "-ll"]);
    assert!(
        status.contains(&format!(
            "server.worker  pid {:<8} up ",
            pid("server.worker")
        )),
        "{status}"
    );
    assert_eq!(
        ok(d, &["list", "--sub-roles"]),
        "server\nserver.worker\nworker\n"
    );
    // A request crosses to the sub-role's process.
    let (status, _) = exchange(
        port,
        "GET /Xy?x=2&y=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    seen.extend(run.lines_until("<00000001>server.worker - Computing a texture"));
    // A restart.
    signal::kill(Pid::from_raw(pid("worker")), Signal::SIGKILL).unwrap();
    seen.extend(run.lines_until("Restarting role worker"));

    assert!(!run.interrupt_and_wait().success());
    seen.extend(run.rest_of_lines());
    let text = seen.join("\n");
    let has = |wanted: &str| {
        assert!(
            seen.iter().any(|l| l.contains(wanted)),
            "no line with {wanted:?} in:\n{text}"
        )
    };
    // The CLI.
    has(&format!(" ~ - layer-cake run (home={})", home.display()));
    has(&format!(
        " ~ - Starting group-cake: {} --home-path={} --role-name=group --origin=RUN --debug-level=DEBUG",
        bin_dir().join("group-cake").display(),
        home.display()
    ));
    has(&format!(
        " ~ - Started group-cake in the foreground (pid={})",
        pid("group")
    ));
    // group-cake: each role, its executable, its pid; the restart.
    let exe = |name: &str| std::fs::canonicalize(bin_dir().join(name)).unwrap();
    has(&format!(
        "group - Starting role server (role=server,executable={})",
        exe("test_server_7").display()
    ));
    has(&format!(
        "server - Started a child process (pid={},program={},role=server)",
        pid("server"),
        exe("test_server_7").display()
    ));
    has(&format!(
        "worker - Started a child process (pid={},program={},role=worker)",
        pid("worker"),
        exe("test_worker_10").display()
    ));
    has("group - Role worker ended; restarting it in 1.0s (role=worker)");
    has("group - Restarting role worker (role=worker)");
    // The directories.
    has(&format!(
        " - Connecting to the parent directory at {host_at} (level=GROUP)"
    ));
    has(&format!(
        " - Connected to the parent directory at {host_at} (level=GROUP)"
    ));
    has(
        " - Accepted a child directory from a process of this host (Unix socket) (level=GROUP,link=",
    );
    has("directory[PROCESS] - Connected to the parent directory at 127.0.0.1:");
    // The sub-role's run is in its own history.
    let history = ok(d, &["history", "server.worker"]);
    assert_eq!(history.lines().count(), 1, "{history}");
    assert!(history.contains("(Faulted)"), "{history}");
}

/// Under `start`, a role's lines and its sub-role's land in the group's
/// logs: `log --sample=request` reads the server's request log as
/// tab-separated columns, and `log server.worker --start=-1` the lines of
/// the latest run of the server's child process.
#[test]
fn start_keeps_the_request_log_as_samples_and_the_sub_role_s_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    let port = free_port();
    ok(d, &["create", &format!("--directory-at-host={host_at}")]);
    let server_address = format!("--server-address=127.0.0.1:{port}");
    ok(d, &["add", "test_server_7", "server", &server_address]);
    let _guard = HomeGuard(d.join(".layer-cake"));
    ok(d, &["start", "--debug-level=CONSOLE"]);
    let request = |x: u32| {
        exchange(
            port,
            &format!("GET /Xy?x={x}&y=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .0
    };
    let deadline = Instant::now() + PATIENCE;
    while request(1) != 200 {
        assert!(Instant::now() < deadline, "no answer in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((request(2), request(3)), (200, 200));
    // The lines reach the files as they are written: wait for all three.
    let deadline = Instant::now() + PATIENCE;
    let samples = loop {
        let samples = ok(d, &["log", "server", "--sample=request"]);
        if samples.lines().count() >= 4 {
            break samples;
        }
        assert!(Instant::now() < deadline, "no request log: {samples}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut lines = samples.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("time\tduration_ms\thttp_method\thttp_path\t"),
        "{samples}"
    );
    for row in lines {
        assert!(row.contains("\tGET\t/Xy\t"), "{samples}");
        assert!(
            row.split('\t').nth(1).unwrap().parse::<f64>().is_ok(),
            "{samples}"
        );
    }
    let worker = ok(d, &["log", "server.worker", "--start=-1"]);
    for x in 1..=3 {
        assert!(
            worker.contains(&format!(
                " ^ <00000001>server.worker - Computing a texture (x={x},y=2)"
            )),
            "{worker}"
        );
    }
    assert!(ok(d, &["stop"]).starts_with("stopped "));
}

/// Ctrl-C at a terminal signals the whole foreground process group. It
/// must reach group-cake once (through `run`), not twice: a second SIGINT
/// would make it exit at once instead of draining its roles.
#[test]
fn ctrl_c_at_a_terminal_drains_the_composite_once() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_host, host_at) = host_cake();
    let port = free_port();
    seed_home(d, &host_at, port);
    let _guard = HomeGuard(d.join(".layer-cake"));
    // `run` as a terminal's foreground job: a process group of its own,
    // which the "terminal" (this test) signals as a whole.
    let mut run = cli(d);
    run.arg("run").process_group(0);
    let mut run = Proc::start(run);
    run.line_with("(8 in all)");
    let pids: Vec<i32> = running(d).into_iter().map(|(_, pid)| pid).collect();
    assert_eq!(pids.len(), 10, "the group and its 9 roles");
    signal::killpg(Pid::from_raw(run.child.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "`run` ends after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = run.rest_of_lines();
    assert!(
        !lines.iter().any(|l| l.contains("a second signal")),
        "group-cake saw Ctrl-C twice:\n{}",
        lines.join("\n")
    );
    assert!(
        !status.success(),
        "an interrupted run ends with the group's Aborted"
    );
    for pid in pids {
        assert!(
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z")),
            "process {pid} outlived the run"
        );
    }
}
