//! The seed's multihosting chapter (`004_*.txt`, "Distribution With
//! Multihosting") as an executable test, step by step and in its order, on a
//! private LAN of network namespaces the test makes (`tests/support/netns.rs`).
//! Each namespace has its own loopback, so every program runs on the seed's
//! own addresses: host-cake on `127.0.0.1:54195`, the server on
//! `127.0.0.1:5050`, lan-cake on `0.0.0.0:54195`.
//!
//! Three hosts:
//!
//! | host | address | plays |
//! |---|---|---|
//! | `lan` | 10.0.0.133 | the `lan-cake` machine (the seed's example address) |
//! | `server` | 10.0.0.1 | the developer's machine of the first sections, then the server's host |
//! | `worker` | 10.0.0.2 | the workers' host |
//!
//! The LAN has no `.195` host and `LAYER_CAKE_LAN_AUTOCONNECT=off` is set for
//! every program: lan-cake is found only through the address the seed's
//! settings give (`--directory-at-lan`, `--connect-to-directory`), and no
//! packet is ever addressed to a standard LAN address. Every program holds
//! one LAN key made by the test (`LAYER_CAKE_LAN_KEY`), as every host of a
//! real LAN would.
//!
//! Each step prints the command and what it printed (run with
//! `--nocapture` to see it); `docs/demo.md` shows that transcript. Whatever
//! the test starts is stopped, and every namespace deleted, when it ends,
//! however it ends (the `Lan` and `Fg` guards).
//!
//! Needs root; otherwise it prints `SKIPPED: <reason>` and returns.
//!
//! ```text
//! cargo test -p layer-cake-demos --test seed_netns -- --nocapture
//! ```

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use layer_cake::directory::lan;
use layer_cake::net::key::LAN_KEY_ENV;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::netns::{Lan, create_lan_key};

/// How long any one thing may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The hosts, by index into the test LAN.
const LAN_HOST: usize = 0;
const SERVER_HOST: usize = 1;
const WORKER_HOST: usize = 2;

/// The environment variable that makes `http_probe` do its work: the URL.
const HTTP_PROBE_VAR: &str = "LAYER_CAKE_SEED_HTTP_GET";

/// The lan-cake address as the seed writes it in its settings (JSON form),
/// on the test's lan-cake host and lan-cake's default port.
const LAN_CAKE_AT: &str = r#"{"host": "10.0.0.133", "port": 54195}"#;

/// The seed's retry for the boot homes: restart a role 30 s after it ends.
const BOOT_RETRY: &str = r#"--retry={"regular_steps": 30.0}"#;

#[test]
fn the_seed_multihosting_chapter_runs_as_written() {
    // Dropped last: the folders outlive the processes using them.
    let root = tempfile::tempdir().expect("a folder for the test's hosts");
    let ips: [IpAddr; 3] = ["10.0.0.133", "10.0.0.1", "10.0.0.2"].map(|ip| ip.parse().unwrap());
    let mut lan = match Lan::new(&ips) {
        Ok(lan) => lan,
        Err(skip) => return skip.report(),
    };
    let key = root.path().join("lan.key");
    create_lan_key(&key);
    lan.set_env(LAN_KEY_ENV, &key);
    lan.set_env(lan::LAN_AUTOCONNECT_VAR, "off");
    let bins = Binaries::find();
    let folder = |name: &str| {
        let path = root.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    };
    let server_app = Shell::new(
        &lan,
        &bins,
        SERVER_HOST,
        "server",
        folder("server/multihosting"),
    );
    let server_ops = Shell::new(
        &lan,
        &bins,
        SERVER_HOST,
        "server",
        folder("server/operational"),
    );
    let worker_app = Shell::new(
        &lan,
        &bins,
        WORKER_HOST,
        "worker",
        folder("worker/multihosting"),
    );
    let worker_ops = Shell::new(
        &lan,
        &bins,
        WORKER_HOST,
        "worker",
        folder("worker/operational"),
    );
    let lan_ops = Shell::new(&lan, &bins, LAN_HOST, "lan", folder("lan/operational"));

    a_session_with_a_published_service(&server_app);
    let (composite, standalone) = connecting_to_multiple_instances(&server_app);
    let composite = the_boot_recipe(&server_app, &server_ops, composite);
    drop(standalone);
    a_lan_of_three_hosts(
        &[&server_app, &server_ops, &worker_app, &worker_ops, &lan_ops],
        composite,
    );
}

/// "A Session With A Published Service": the composite process of
/// test_server_9 and test_worker_9, with no other directory component.
fn a_session_with_a_published_service(app: &Shell) {
    step("A Session With A Published Service");
    // $ layer-cake create
    // $ layer-cake add test_server_9.py server
    // $ layer-cake add test_worker_9.py worker
    app.layer_cake(&["create"]);
    app.layer_cake(&["add", "test_server_9", "server"]);
    app.layer_cake(&["add", "test_worker_9", "worker"]);

    // $ layer-cake run --debug-level=DEBUG
    let run = app.spawn_cli(&["run", "--debug-level=DEBUG"]);
    // "layer-cake starting group-cake and then group-cake starting the
    // server and worker processes" ...
    let started_server = run.wait_line("role=server)");
    let started_worker = run.wait_line("role=worker)");
    assert!(
        started_server.contains("Started a child process"),
        "{started_server}"
    );
    assert!(
        started_worker.contains("Started a child process"),
        "{started_worker}"
    );
    // ... "the server has found the worker and the worker is being put to
    // use by the spool".
    let available = run.wait_line("server - Received Available from");
    run.wait_line("test_server_9: worker available");
    show_lines(&[&started_server, &started_worker, &available]);

    // $ curl -s 'http://127.0.0.1:5050/Xy?x=2&y=2'
    assert_table(&app.curl("http://127.0.0.1:5050/Xy?x=2&y=2"), 2, 2);

    // (Ctrl-C; the next section starts with `destroy`, which a running home
    // refuses.)
    let status = run.interrupt();
    assert!(!status.success(), "a run stopped by Ctrl-C ends Aborted");
}

/// "Connecting To Multiple Instances Of A Service", then the first half of
/// "Connecting To Multiple Hosts": host-cake added under the running
/// composite, and a standalone worker joining the pool. Returns the running
/// composite and the standalone worker.
fn connecting_to_multiple_instances(app: &Shell) -> (Fg, Fg) {
    step("Connecting To Multiple Instances Of A Service");
    // $ layer-cake destroy
    // $ layer-cake create
    // $ layer-cake add test_server_10.py server
    // $ layer-cake add test_worker_10.py worker --role-count=8
    app.layer_cake(&["destroy"]);
    app.layer_cake(&["create"]);
    app.layer_cake(&["add", "test_server_10", "server"]);
    app.layer_cake(&["add", "test_worker_10", "worker", "--role-count=8"]);

    // $ layer-cake list --long-listing
    let listing = app.layer_cake(&["list", "--long-listing"]);
    let roles: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut expected = vec!["server".to_owned()];
    expected.extend((0..8).map(|n| format!("worker-{n}")));
    assert_eq!(roles, expected, "{listing}");
    assert!(
        listing
            .lines()
            .skip(1)
            .all(|l| l.ends_with("/test_worker_10")),
        "{listing}"
    );

    // $ layer-cake run --debug-level=DEBUG
    let run = app.spawn_cli(&["run", "--debug-level=DEBUG"]);
    // "The logs show the server() being notified of the presence of a
    // worker() and the information being passed onto the spool. This
    // process is repeated the expected number of times."
    run.wait_line("(8 in all)");
    show_lines(&run.lines_containing("test_server_10: "));
    assert_table(&app.curl("http://127.0.0.1:5050/Xy?x=2&y=2"), 2, 2);

    step("Connecting To Multiple Hosts: host-cake");
    // $ host-cake --debug-level=DEBUG
    // "The existing group-cake process automatically connects to the new
    // host-cake process."
    let host_cake = app.spawn(&app.bins.host_cake, &["--debug-level=DEBUG"]);
    host_cake.wait_line("host-cake: listening on 127.0.0.1:54195");
    let composite_tree = "\
[HOST] host-cake
+   [PROCESS] layer-cake
+   [GROUP] group-cake
+   +   [PROCESS] test_server_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
";
    app.network_until(&[], composite_tree);

    // $ python3 test_worker_10.py --debug-level=DEBUG
    // "The new worker() instance is immediately added to the pool."
    let standalone = app.spawn(&app.bins.test_worker_10, &["--debug-level=DEBUG"]);
    standalone.wait_line("test_worker_10: published ");
    show_lines(&[&run.wait_line("(9 in all)")]);

    // $ layer-cake network
    let with_standalone = format!("{composite_tree}+   [PROCESS] test_worker_10\n");
    app.network_until(&[], &with_standalone);

    // The hand-started host-cake goes; the boot recipe takes its place.
    let status = host_cake.interrupt();
    assert!(status.success(), "host-cake exits 0 on SIGINT: {status}");
    (run, standalone)
}

/// The boot recipe: host-cake as the role of a home in an operational
/// folder, restarted 30 s after it ends; the running composite and the
/// standalone worker find it with no configuration.
fn the_boot_recipe(app: &Shell, ops: &Shell, composite: Fg) -> Fg {
    step("Connecting To Multiple Hosts: host-cake at boot");
    // $ cd <operational-folder>
    // $ layer-cake create
    // $ layer-cake add host-cake
    // $ layer-cake update group --retry='{"regular_steps": 30.0}'
    ops.layer_cake(&["create"]);
    ops.layer_cake(&["add", "host-cake"]);
    ops.layer_cake(&["update", "group", BOOT_RETRY]);
    // At boot-time:
    // $ cd <operational-folder>
    // $ layer-cake start
    ops.layer_cake(&["start"]);
    let deadline = Instant::now() + PATIENCE;
    while ops.pid_of("host-cake").is_none() {
        assert!(
            Instant::now() < deadline,
            "the boot home never ran host-cake"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ops.layer_cake(&["status", "--long-listing"]);
    let tree = "\
[HOST] host-cake
+   [PROCESS] layer-cake
+   [GROUP] group-cake
+   +   [PROCESS] test_server_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   +   [PROCESS] test_worker_10
+   [PROCESS] test_worker_10
";
    app.network_until(&[], tree);

    // "The update command is used to configure a restart of host-cake in 30
    // seconds, in the event that it terminates."
    let first = ops.pid_of("host-cake").expect("host-cake runs");
    kill(Pid::from_raw(first), Signal::SIGKILL).expect("kill host-cake");
    let killed = Instant::now();
    let second = loop {
        match ops.pid_of("host-cake") {
            Some(pid) if pid != first => break pid,
            _ => {}
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30) + PATIENCE,
            "host-cake was not restarted"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = killed.elapsed();
    println!(
        "# host-cake (pid {first}) killed; restarted as pid {second} after {:.1} s",
        took.as_secs_f64()
    );
    // A lower bound only: the policy waits its 30 s, never less (a loaded
    // machine may take longer).
    assert!(took >= Duration::from_secs(29), "restarted after {took:?}");
    // And the composite and the standalone worker are back under it.
    app.network_until(&[], tree);
    composite
}

/// The LAN: lan-cake on its own host at an address that is not the
/// standard one, the host-cakes told where it is, the server on one host
/// and eight workers on another, `curl` answered across hosts, and
/// `layer-cake network` printing the whole tree from the LAN root.
fn a_lan_of_three_hosts(shells: &[&Shell; 5], composite: Fg) {
    let [server_app, server_ops, worker_app, worker_ops, lan_ops] = *shells;

    step("Connecting To Multiple Hosts: lan-cake");
    // "If the standard layer-cake LAN IP cannot be used then every
    // connecting process must be started with a command like;"
    // $ python3 test_worker_10.py --connect-to-directory='{"host": "10.0.0.133", "port": 29101}'
    // (here on the worker host, at LAN scope so it is seen beyond lan-cake;
    // lan-cake does not run yet: pubsub takes the parts in any order).
    let direct = worker_app.spawn(
        &worker_app.bins.test_worker_10,
        &[
            &format!("--connect-to-directory={LAN_CAKE_AT}"),
            "--scope=LAN",
        ],
    );

    // "Installing and configuring host-cake appropriately on every
    // operational host":
    // $ layer-cake update host-cake --directory-at-lan='{"host": "10.0.0.133", "port": 29101}'
    // The server host's boot home runs: stop it, update, start it again.
    let directory_at_lan = format!("--directory-at-lan={LAN_CAKE_AT}");
    server_ops.layer_cake(&["stop"]);
    server_ops.layer_cake(&["update", "host-cake", &directory_at_lan]);
    server_ops.layer_cake(&["start"]);
    // The worker host gets the boot recipe with the same setting.
    worker_ops.layer_cake(&["create"]);
    worker_ops.layer_cake(&["add", "host-cake"]);
    worker_ops.layer_cake(&["update", "host-cake", &directory_at_lan]);
    worker_ops.layer_cake(&["update", "group", BOOT_RETRY]);
    worker_ops.layer_cake(&["start"]);

    // The designated lan-cake machine:
    // $ cd <operational-folder>
    // $ layer-cake create
    // $ layer-cake add lan-cake
    // $ layer-cake update group --retry='{"regular_steps": 30.0}'
    // At boot-time:
    // $ layer-cake start
    lan_ops.layer_cake(&["create"]);
    lan_ops.layer_cake(&["add", "lan-cake"]);
    lan_ops.layer_cake(&["update", "group", BOOT_RETRY]);
    lan_ops.layer_cake(&["start"]);

    step("A Distributed, Hierarchical Directory");
    // The server on its host, the workers on theirs. The composite of the
    // previous sections loses its workers and publishes and subscribes for
    // the whole LAN: scope LAN (the default is HOST, which the seed says
    // stops at the host), and the server listens on every address so
    // other hosts can reach it too.
    let status = composite.interrupt();
    assert!(!status.success(), "a run stopped by Ctrl-C ends Aborted");
    server_app.layer_cake(&["delete", "worker"]);
    server_app.layer_cake(&[
        "update",
        "server",
        "--scope=LAN",
        "--server-address=0.0.0.0:5050",
    ]);
    worker_app.layer_cake(&["create"]);
    worker_app.layer_cake(&["add", "test_worker_10", "worker", "--role-count=8"]);
    worker_app.layer_cake(&["update", "worker", "--scope=LAN"]);
    let workers = worker_app.spawn_cli(&["run"]);
    let server = server_app.spawn_cli(&["run"]);
    // Eight workers of the composite on the worker host, and the one
    // connected straight to lan-cake.
    server.wait_line("(9 in all)");
    show_lines(&server.lines_containing("test_server_10: "));
    direct.wait_line("test_worker_10: published ");
    workers.wait_line("test_worker_10: published ");

    // curl on the server's host, and from another host (the lan-cake
    // machine) to the server's LAN address: tables computed on the worker
    // host.
    assert_table(&server_app.curl("http://127.0.0.1:5050/Xy?x=2&y=2"), 2, 2);
    assert_table(&lan_ops.curl("http://10.0.0.1:5050/Xy?x=3&y=2"), 3, 2);

    // $ layer-cake network — on the lan-cake machine, whose default
    // directory address (127.0.0.1:54195) is lan-cake's own: the whole tree
    // from the LAN root.
    let whole_lan = "\
[LAN] lan-cake
+   [PROCESS] layer-cake
+   [HOST] host-cake
+   +   [GROUP] group-cake
+   +   +   [PROCESS] test_server_10
+   [HOST] host-cake
+   +   [GROUP] group-cake
+   +   +   [PROCESS] test_worker_10
+   +   +   [PROCESS] test_worker_10
+   +   +   [PROCESS] test_worker_10
+   +   +   [PROCESS] test_worker_10
+   +   +   [PROCESS] test_worker_10
+   +   +   [PROCESS] test_worker_10
+   +   +   [PROCESS] test_worker_10
+   +   +   [PROCESS] test_worker_10
+   [PROCESS] test_worker_10
";
    lan_ops.network_until(&[], whole_lan);
    // The same tree from an application host: named explicitly, lan-cake
    // answers with the whole LAN (over a link secured with the LAN key) ...
    server_app.network_until(&["--directory-at=10.0.0.133:54195"], whole_lan);
    // ... and with no flags, as the seed types it.
    let from_server_host = server_app.network(&[]);
    server_app.prompt("layer-cake network");
    print!("{from_server_host}");
    expect_network_tree(&from_server_host, whole_lan);

    // Every part ends in order: the composites with Ctrl-C, the boot homes
    // with `layer-cake stop` (the Lan would kill what is left anyway).
    for (name, run) in [("server", server), ("workers", workers)] {
        let status = run.interrupt();
        assert!(!status.success(), "the {name} run ends Aborted on Ctrl-C");
    }
    drop(direct);
    for ops in [server_ops, worker_ops, lan_ops] {
        ops.layer_cake(&["stop"]);
    }
}

/// What `layer-cake network` with no flags prints on an application host
/// (the server's) once lan-cake is up and both host-cakes are under it: the
/// whole tree from the LAN root, as on the lan-cake machine (`whole_lan`),
/// but with the CLI itself under this host's host-cake, the node it
/// connected to.
fn expect_network_tree(tree: &str, whole_lan: &str) {
    let cli = "+   [PROCESS] layer-cake\n";
    let server_host =
        "+   [HOST] host-cake\n+   +   [GROUP] group-cake\n+   +   +   [PROCESS] test_server_10\n";
    assert!(whole_lan.contains(cli) && whole_lan.contains(server_host));
    let expected = whole_lan.replacen(cli, "", 1).replacen(
        server_host,
        &format!("{server_host}+   +   [PROCESS] layer-cake\n"),
        1,
    );
    assert_eq!(canonical(tree), canonical(&expected), "{tree}");
}

/// Prints a section heading in the transcript.
fn step(title: &str) {
    println!("\n## {title}\n");
}

/// Prints lines a process logged, in the transcript.
fn show_lines<S: AsRef<str>>(lines: &[S]) {
    for line in lines {
        println!("{}", line.as_ref());
    }
}

/// `body` is the seed's answer: `{"value": ["vector<vector<float8>>",
/// [[…], …], []]}` with `y` rows of `x` numbers.
fn assert_table(body: &str, x: usize, y: usize) {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(value["value"][0], "vector<vector<float8>>", "{body}");
    let rows = value["value"][1].as_array().expect("rows");
    assert_eq!(rows.len(), y, "{body}");
    for row in rows {
        let row = row.as_array().expect("a row");
        assert_eq!(row.len(), x, "{body}");
        assert!(row.iter().all(serde_json::Value::is_f64), "{body}");
    }
    assert_eq!(value["value"][2], serde_json::json!([]), "{body}");
}

/// A `layer-cake network` tree with the node ids taken out and every node's
/// children sorted, so that two trees compare equal when they have the same
/// shape (siblings are printed ordered by id, which changes every run).
fn canonical(tree: &str) -> String {
    /// A node: its line (without the id) and its children.
    struct Node {
        label: String,
        children: Vec<Node>,
    }
    fn render(node: &Node, depth: usize, out: &mut String) {
        out.push_str(&"+   ".repeat(depth));
        out.push_str(&node.label);
        out.push('\n');
        let mut children: Vec<String> = node
            .children
            .iter()
            .map(|c| {
                let mut s = String::new();
                render(c, depth + 1, &mut s);
                s
            })
            .collect();
        children.sort();
        out.extend(children);
    }
    let mut roots: Vec<Node> = Vec::new();
    for line in tree.lines().filter(|l| !l.trim().is_empty()) {
        let mut depth = 0;
        let mut rest = line;
        while let Some(r) = rest.strip_prefix("+   ") {
            depth += 1;
            rest = r;
        }
        // `[LEVEL] program (id)`: the id goes.
        let label = match rest.rsplit_once(" (") {
            Some((label, id)) if id.ends_with(')') && rest.starts_with('[') => label,
            _ => rest,
        };
        let mut level = &mut roots;
        for _ in 0..depth {
            level = &mut level
                .last_mut()
                .unwrap_or_else(|| panic!("a line deeper than its parent: {tree}"))
                .children;
        }
        level.push(Node {
            label: label.to_owned(),
            children: Vec::new(),
        });
    }
    let mut out = String::new();
    for root in &roots {
        render(root, 0, &mut out);
    }
    out
}

/// The programs, from the test build's own target folder: the demos cargo
/// built for this test, the other packages built on first use.
struct Binaries {
    layer_cake: PathBuf,
    host_cake: PathBuf,
    test_worker_10: PathBuf,
}

impl Binaries {
    fn find() -> Binaries {
        // `layer-cake add NAME` finds group-cake, host-cake, lan-cake and
        // the demos next to layer-cake: all of them are in target/<profile>.
        let _ = support::workspace_binary("group-cake", "group-cake");
        let _ = support::workspace_binary("lan-cake", "lan-cake");
        let layer_cake = support::workspace_binary("layer-cake-cli", "layer-cake");
        let host_cake = support::workspace_binary("host-cake", "host-cake");
        for demo in [
            env!("CARGO_BIN_EXE_test_server_9"),
            env!("CARGO_BIN_EXE_test_worker_9"),
            env!("CARGO_BIN_EXE_test_server_10"),
        ] {
            assert_eq!(
                Path::new(demo).parent(),
                layer_cake.parent(),
                "the demos are beside layer-cake"
            );
        }
        Binaries {
            layer_cake,
            host_cake,
            test_worker_10: env!("CARGO_BIN_EXE_test_worker_10").into(),
        }
    }
}

/// A shell on one host of the test LAN, in one folder: what a person
/// following the seed types there.
struct Shell<'a> {
    lan: &'a Lan,
    bins: &'a Binaries,
    host: usize,
    /// The host's name in the transcript.
    name: &'static str,
    dir: PathBuf,
}

impl<'a> Shell<'a> {
    fn new(
        lan: &'a Lan,
        bins: &'a Binaries,
        host: usize,
        name: &'static str,
        dir: PathBuf,
    ) -> Shell<'a> {
        Shell {
            lan,
            bins,
            host,
            name,
            dir,
        }
    }

    /// The transcript's prompt: host and folder.
    fn prompt(&self, command: &str) {
        let folder = self.dir.file_name().unwrap().to_string_lossy();
        println!("{}:{folder}$ {command}", self.name);
    }

    /// `layer-cake ARGS` here, which must succeed; its stdout (printed).
    fn layer_cake(&self, args: &[&str]) -> String {
        self.prompt(&shell_line("layer-cake", args));
        let output = self
            .lan
            .command(self.host, &self.bins.layer_cake)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run layer-cake in the namespace");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        print!("{stdout}");
        assert!(
            output.status.success(),
            "layer-cake {args:?} failed on the {} host ({}): {stderr}{stdout}",
            self.name,
            output.status
        );
        stdout
    }

    /// `layer-cake network ARGS` here, once; its output (not printed).
    fn network(&self, args: &[&str]) -> String {
        let output = self
            .lan
            .command(self.host, &self.bins.layer_cake)
            .arg("network")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run layer-cake network in the namespace");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            text
        } else {
            format!("{text}{}", String::from_utf8_lossy(&output.stderr))
        }
    }

    /// `layer-cake network ARGS` until the tree has the shape of
    /// `expected` (it fills in as links come up); printed, and returned.
    fn network_until(&self, args: &[&str], expected: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let tree = self.network(args);
            if canonical(&tree) == canonical(expected) {
                self.prompt(&shell_line("layer-cake", &[&["network"], args].concat()));
                print!("{tree}");
                return tree;
            }
            assert!(
                Instant::now() < deadline,
                "`layer-cake network` on the {} host never showed\n{expected}last:\n{tree}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `curl -s URL` here (real curl when installed, otherwise this test's
    /// own HTTP client run inside the host); the body (printed).
    fn curl(&self, url: &str) -> String {
        self.prompt(&format!("curl -s '{url}'"));
        let curl_installed = std::process::Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let output = if curl_installed {
            self.lan
                .command(self.host, "curl")
                .args(["-s", "--max-time", "30", url])
                .stdin(Stdio::null())
                .output()
                .expect("run curl in the namespace")
        } else {
            self.lan
                .command(self.host, std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "http_probe",
                    "--ignored",
                    "--nocapture",
                    "--quiet",
                ])
                .env(HTTP_PROBE_VAR, url)
                .stdin(Stdio::null())
                .output()
                .expect("run the HTTP probe in the namespace")
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let body = if curl_installed {
            stdout.into_owned()
        } else {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix("body="))
                .unwrap_or_default()
                .to_owned()
        };
        println!("{body}");
        assert!(
            output.status.success(),
            "GET {url} on the {} host failed ({}): {}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        body
    }

    /// Starts `program ARGS` here in the background (another shell, in the
    /// seed's words), its output read line by line.
    fn spawn(&self, program: &Path, args: &[&str]) -> Fg {
        let name = program.file_name().unwrap().to_string_lossy().into_owned();
        self.prompt(&format!("{} &", shell_line(&name, args)));
        let child = self
            .lan
            .command(self.host, program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} on the {} host: {e}", self.name));
        Fg::new(format!("{name} on the {} host", self.name), child)
    }

    /// `layer-cake ARGS` in the background (`run`).
    fn spawn_cli(&self, args: &[&str]) -> Fg {
        self.spawn(&self.bins.layer_cake, args)
    }

    /// The pid of `role` of this folder's home while it runs
    /// (`layer-cake status --long-listing`).
    fn pid_of(&self, role: &str) -> Option<i32> {
        let output = self
            .lan
            .command(self.host, &self.bins.layer_cake)
            .args(["status", "--long-listing"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run layer-cake status");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                (words.first() == Some(&role) && words.get(1) == Some(&"pid"))
                    .then(|| words.get(2)?.parse().ok())
                    .flatten()
            })
            .filter(|pid| *pid > 0)
    }
}

/// `program args…` as a person types it (arguments with spaces or quotes
/// in single quotes).
fn shell_line(program: &str, args: &[&str]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        line.push(' ');
        match arg.split_once('=') {
            Some((flag, value)) if value.contains([' ', '"', '{']) => {
                line.push_str(&format!("{flag}='{value}'"));
            }
            _ => line.push_str(arg),
        }
    }
    line
}

/// A program running in the background, every line it writes (stdout and
/// stderr) kept. Dropped while still running, it is killed and reaped; the
/// `Lan` kills whatever it started.
struct Fg {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Fg {
    fn new(name: String, mut child: Child) -> Fg {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for reader in readers {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        Fg { name, child, lines }
    }

    /// Every line so far containing `needle`.
    fn lines_containing(&self, needle: &str) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// The first line (since the start) containing `needle`, waiting for
    /// it; panics with the last lines past the deadline.
    fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.lines_containing(needle).into_iter().next() {
                return line;
            }
            if Instant::now() >= deadline {
                let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                panic!(
                    "{}: no line with {needle:?} in time; last lines:\n{tail}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ctrl-C (SIGINT), and its exit status (SIGKILL past the deadline).
    fn interrupt(mut self) -> ExitStatus {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("{} did not end after SIGINT", self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Fg {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // A failing test shows what each program said last.
        if std::thread::panicking() {
            let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("--- the last lines of {} ---", self.name);
            for line in lines.iter().skip(lines.len().saturating_sub(300)) {
                eprintln!("{line}");
            }
        }
    }
}

/// Not a test on its own: the HTTP client `curl` stands for when curl is
/// not installed, run inside a host by the test above with the URL in
/// `LAYER_CAKE_SEED_HTTP_GET`. Prints `body=<the response body>` and fails
/// unless the status is 200.
#[test]
#[ignore = "run inside a test namespace by the_seed_multihosting_chapter_runs_as_written"]
fn http_probe() {
    use std::io::Write;
    let Ok(url) = std::env::var(HTTP_PROBE_VAR) else {
        return;
    };
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("a response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole response");
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .get("transfer-encoding")
            .is_some_and(|t| t.contains("chunked")),
        "the probe reads whole bodies only: {head}"
    );
    println!("body={}", body.trim_end());
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn trees_compare_by_shape() {
    let a = "[HOST] host-cake (ab1b75b7)\n+   [PROCESS] b (2)\n+   [GROUP] g (1)\n+   +   [PROCESS] x (3)\n";
    let b = "[HOST] host-cake (00000000)\n+   [GROUP] g (9)\n+   +   [PROCESS] x (8)\n+   [PROCESS] b (7)\n";
    assert_eq!(canonical(a), canonical(b));
    assert_ne!(
        canonical(a),
        canonical(
            "[HOST] host-cake (1)\n+   [GROUP] g (9)\n+   [PROCESS] x (8)\n+   [PROCESS] b (7)\n"
        )
    );
    assert_eq!(
        shell_line("layer-cake", &["update", "group", BOOT_RETRY]),
        r#"layer-cake update group --retry='{"regular_steps": 30.0}'"#
    );
    assert_eq!(
        shell_line("host-cake", &["--debug-level=DEBUG"]),
        "host-cake --debug-level=DEBUG"
    );
}
