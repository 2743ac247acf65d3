//! The directory daemons as real processes: each starts on an ephemeral
//! port, says where it listens, exits 0 on SIGINT and SIGTERM, and refuses a
//! bad flag with one line and exit 2.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::workspace_binary;

const PATIENCE: Duration = Duration::from_secs(20);

/// A daemon, killed on drop if a test fails before it exits.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(package: &str, args: &[&str]) -> (Daemon, String) {
    start_with(
        Command::new(workspace_binary(package, package)),
        package,
        args,
    )
}

/// [`start`] with `command` (the daemon, or `setpriv` running it).
fn start_with(mut command: Command, package: &str, args: &[&str]) -> (Daemon, String) {
    // Owned by the guard from the start, so a failing test reaps it.
    let mut daemon = Daemon(
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon"),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let prefix = format!("{package}: listening on ");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{package} never said where it listens"));
        if let Some(at) = line.strip_prefix(&prefix) {
            return (daemon, at.to_string());
        }
    }
}

/// Sends `signal` and waits for the exit code.
fn stop(daemon: &mut Daemon, signal: Signal) -> i32 {
    kill(Pid::from_raw(daemon.0.id() as i32), signal).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            return status.code().expect("exited, not killed");
        }
        assert!(Instant::now() < deadline, "did not exit after {signal:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_daemon_starts_and_stops_cleanly() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "host-cake",
            &["--directory-at-host=127.0.0.1:0", "--no-lan-autoconnect"],
        ),
        ("lan-cake", &["--directory-at-lan=127.0.0.1:0"]),
        ("group-cake", &["--accept-directories-at=127.0.0.1:0"]),
    ];
    for (i, (package, args)) in cases.into_iter().enumerate() {
        let (mut daemon, at) = start(package, args);
        assert!(
            at.starts_with("127.0.0.1:") && !at.ends_with(":0"),
            "{package}: {at}"
        );
        let signal = if i % 2 == 0 {
            Signal::SIGINT
        } else {
            Signal::SIGTERM
        };
        assert_eq!(stop(&mut daemon, signal), 0, "{package} after {signal:?}");
    }
}

#[test]
fn a_bad_flag_is_one_line_and_exit_2() {
    for package in ["host-cake", "lan-cake", "group-cake"] {
        let output = Command::new(workspace_binary(package, package))
            .arg("--directory-at-host=not-an-address")
            .arg("--no-such-flag")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{package}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{package}: {stderr}");
    }
}

#[test]
fn an_unknown_allow_group_is_one_line_and_exit_2() {
    for package in ["host-cake", "lan-cake", "group-cake"] {
        let output = Command::new(workspace_binary(package, package))
            .arg("--allow-group=no-such-group-anywhere")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{package}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.trim(),
            format!(
                "{package}: --allow-group: cannot find the group \"no-such-group-anywhere\" (no such group)"
            )
        );
    }
}

/// Why this test cannot run processes as other users, if it cannot.
fn cannot_switch_users() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root: cannot run processes as other users");
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return Some("setpriv (util-linux) is not installed");
    }
    None
}

/// `setpriv` running what follows as `uid` with primary group `gid` and
/// the supplementary `groups` only; a home that does not exist, so that
/// nothing of root's is looked at.
fn as_user(uid: u32, gid: u32, groups: &[u32]) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .env("HOME", "/nonexistent/layer-cake-test")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("LAYER_CAKE_LAN_KEY");
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        command.arg(format!("--groups={}", list.join(",")));
    }
    command
}

/// The environment variable that makes [`allow_group_probe`] a process.
const PROBE: &str = "LAYER_CAKE_ALLOW_GROUP_PROBE";

/// An ordinary layer-cake process (this test binary, as another user):
/// publishes `name` at HOST scope through the directory, then waits.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ProbeArgs {
    name: String,
}

async fn probe_main(
    mut cx: layer_cake::Context,
    args: ProbeArgs,
) -> Result<(), layer_cake::Faulted> {
    cx.publish(args.name, layer_cake::directory::Scope::Host);
    loop {
        if cx.input().await.is::<layer_cake::Stop>() {
            return Ok(());
        }
    }
}

/// The other user's process for the test below; does nothing unless
/// started by it (with [`PROBE`] holding its flags, one a line).
#[test]
#[ignore = "run as another uid by the allow-group test"]
fn allow_group_probe() {
    let Ok(flags) = std::env::var(PROBE) else {
        return;
    };
    let mut argv = vec!["allow-group-probe".to_owned()];
    argv.extend(flags.lines().map(str::to_owned));
    let code = layer_cake::process::run(
        probe_main,
        &argv,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}

/// A probe process; killed on drop.
struct Probe(Child);

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the probe as `uid` (in group `group` too), publishing `name`
/// through the host-cake at `at`, with `flags` besides.
fn probe(uid: u32, group: u32, at: &str, name: &str, flags: &[String]) -> Probe {
    let mut lines = vec![
        format!("--connect-to-directory={at}"),
        format!("--name={name}"),
    ];
    lines.extend(flags.iter().cloned());
    let child = as_user(uid, uid, &[group])
        .arg(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "allow_group_probe", "--ignored", "--nocapture"])
        .env(PROBE, lines.join("\n"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("setpriv starts");
    Probe(child)
}

/// What the host-cake at `at` lists as published, asked as root (which
/// admits the daemon's user through its group `gid`).
async fn published(at: &str, gid: u32) -> Vec<String> {
    use layer_cake::directory::{DirectoryListing, Inspect};
    use layer_cake::net::{ConnectOptions, Connected, LinkOptions, NotConnected};
    let mut cx = layer_cake::Context::detached("inspector");
    cx.connect(
        at.parse().expect("HOST:PORT"),
        ConnectOptions::native().link(LinkOptions::default().allow_group(Some(gid))),
    );
    let node = loop {
        let message = tokio::time::timeout(PATIENCE, cx.input())
            .await
            .expect("connected or not within the deadline");
        if let Some(c) = message.downcast_ref::<Connected>() {
            break c.proxy.clone();
        }
        if let Some(n) = message.downcast_ref::<NotConnected>() {
            panic!("cannot inspect host-cake: {}", n.reason);
        }
    };
    let listing: DirectoryListing = cx
        .ask(Inspect::default(), &node, PATIENCE)
        .await
        .expect("host-cake describes itself");
    listing
        .published
        .into_iter()
        .map(|(name, ..)| name)
        .collect()
}

/// host-cake run as `daemon` (uid and primary group) with `allow_group`
/// among its flags, on an ephemeral port; the binary is built before the
/// switch of users.
fn host_cake_as(daemon: u32, allow_group: &str) -> (Daemon, String) {
    let host_cake = workspace_binary("host-cake", "host-cake");
    let mut command = as_user(daemon, daemon, &[]);
    command.arg(host_cake);
    start_with(
        command,
        "host-cake",
        &[
            "--directory-at-host=127.0.0.1:0",
            "--no-lan-autoconnect",
            allow_group,
        ],
    )
}

/// A host-cake run as a dedicated user (as `install-service --user` does)
/// with `--allow-group` naming its group, and two processes of another user
/// in that group: host-cake admits both, but only the process that names
/// the group with its own `--allow-group` admits host-cake (a process
/// trusts only its own user and root by default), so only its listing
/// reaches host-cake.
#[test]
fn a_process_trusts_a_daemon_of_another_user_only_with_allow_group() {
    if let Some(why) = cannot_switch_users() {
        println!("SKIPPED: {why}");
        return;
    }
    // Numbers no account needs to have: the kernel checks ids, not names.
    const DAEMON: u32 = 64_101;
    const USER: u32 = 64_102;
    let group = format!("--allow-group={DAEMON}");
    let (mut daemon, at) = host_cake_as(DAEMON, &group);
    let tag = format!("{:08x}", rand::random::<u32>());
    let (without, with) = (format!("without-{tag}"), format!("with-{tag}"));
    // The one that does not trust the daemon starts first: it has had at
    // least as long when the other is seen.
    let _without = probe(USER, DAEMON, &at, &without, &[]);
    let _with = probe(USER, DAEMON, &at, &with, std::slice::from_ref(&group));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let deadline = Instant::now() + 3 * PATIENCE;
        let names = loop {
            let names = published(&at, DAEMON).await;
            if names.contains(&with) {
                break names;
            }
            assert!(
                Instant::now() < deadline,
                "the process with --allow-group never reached host-cake: {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            !names.contains(&without),
            "a process without --allow-group trusted a daemon of another user"
        );
    });
    assert_eq!(stop(&mut daemon, Signal::SIGINT), 0);
}

/// `layer-cake network` is a client of host-cake too: it trusts a daemon of
/// another user only when told the daemon's group.
#[test]
fn the_cli_trusts_a_daemon_of_another_user_only_with_allow_group() {
    if let Some(why) = cannot_switch_users() {
        println!("SKIPPED: {why}");
        return;
    }
    const DAEMON: u32 = 64_111;
    const USER: u32 = 64_112;
    let group = format!("--allow-group={DAEMON}");
    // Built before switching users.
    let cli = workspace_binary("layer-cake-cli", "layer-cake");
    let (mut daemon, at) = host_cake_as(DAEMON, &group);
    let network = |flags: &[&str]| {
        as_user(USER, USER, &[DAEMON])
            .arg(&cli)
            .args([
                "network",
                &format!("--directory-at={at}"),
                "--answer-within=5",
            ])
            .args(flags)
            .stdin(Stdio::null())
            .output()
            .expect("setpriv runs the CLI")
    };
    let refused = network(&[]);
    let refused_err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "the CLI trusted a daemon of another user without --allow-group"
    );
    assert!(
        refused_err.contains("cannot reach the directory"),
        "{refused_err}"
    );
    let trusted = network(&[&group]);
    let out = String::from_utf8_lossy(&trusted.stdout);
    assert!(
        trusted.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(out.contains("host-cake"), "{out}");
    assert_eq!(stop(&mut daemon, Signal::SIGINT), 0);
}
