//! A private LAN made of Linux network namespaces, for tests that need
//! several "hosts" with real private-range addresses (the LAN directory's
//! standard address, `10.0.0.195`, among them) without ever touching the
//! machine's real network.
//!
//! [`Lan::new`] makes one *hub* namespace holding a bridge, and one namespace
//! per host, each joined to the bridge by a veth pair whose host end is
//! `eth0`. A host has `lo` up, the one address the test chose (with the
//! prefix of its private class: `/8`, `/12` or `/16`) and a default route out
//! of `eth0` — like a real host, so the UDP-connect trick finds its primary
//! IP. The bridge leads nowhere: a packet for any address not on the test's
//! LAN is simply lost. Everything is created inside the new namespaces; the
//! caller's own namespace gets nothing.
//!
//! Names are `lc<pid>-<k>-<n>` (`<k>` counts the LANs of this process, `<n>`
//! is the host index; the hub is `lc<pid>-<k>-hub`), so tests may run in
//! parallel, in one process or several. [`Lan::spawn`] runs a program in a
//! host (`ip netns exec`). Dropping the `Lan` — also while a test panics —
//! kills every process still inside its namespaces and deletes them, which
//! takes the veth pairs and the bridge with them. Namespaces left by a test
//! process that was killed outright are swept by the next [`Lan::new`].
//!
//! Making namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the
//! `ip` command (iproute2). Without them [`Lan::new`] returns a [`Skip`] and
//! the test must say so and return:
//!
//! ```ignore
//! let lan = match Lan::new(&["10.0.0.1".parse().unwrap()]) {
//!     Ok(lan) => lan,
//!     Err(skip) => return skip.report(), // prints "SKIPPED: <reason>"
//! };
//! ```
//!
//! Only a missing permission or facility is a skip; any other failure while
//! setting up panics. With `LAYER_CAKE_NETNS_REQUIRED=1` in the environment
//! a skip panics too, for CI machines that must run these tests.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Set to `1` to turn a [`Skip`] into a failure.
pub(crate) const REQUIRED_VAR: &str = "LAYER_CAKE_NETNS_REQUIRED";

/// Why a namespace test cannot run on this machine.
#[derive(Debug)]
#[must_use = "a skipped test must say so: call report()"]
pub(crate) struct Skip(pub(crate) String);

impl Skip {
    /// Prints `SKIPPED: <reason>` on stderr, for the test to return.
    pub(crate) fn report(self) {
        eprintln!("SKIPPED: {}", self.0);
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One test host.
#[derive(Debug)]
struct Host {
    namespace: String,
    ip: IpAddr,
}

/// A private LAN of namespaces; see the module documentation.
#[derive(Debug)]
pub(crate) struct Lan {
    hub: String,
    hosts: Vec<Host>,
    /// Every namespace made so far, for `Drop`.
    made: Vec<String>,
    /// Environment every program started in a host gets (the LAN key).
    env: Vec<(String, std::ffi::OsString)>,
}

/// How an `ip` command went wrong.
enum IpError {
    /// Not permitted or not available here: a reason to skip.
    Unavailable(String),
    /// Anything else: a reason to fail.
    Failed(String),
}

/// Which LAN of this process is being made.
static NEXT_LAN: AtomicUsize = AtomicUsize::new(0);

/// CAP_NET_ADMIN and CAP_SYS_ADMIN, as bits of `CapEff`.
const NEEDED_CAPS: u64 = (1 << 12) | (1 << 21);

impl Lan {
    /// A LAN with one host per address, host `n` having `ips[n]`.
    pub(crate) fn new(ips: &[IpAddr]) -> Result<Lan, Skip> {
        match Lan::make(ips) {
            Ok(lan) => Ok(lan),
            Err(reason) if std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "1") => {
                panic!("{REQUIRED_VAR}=1 but network namespaces are unavailable: {reason}")
            }
            Err(reason) => Err(Skip(reason)),
        }
    }

    /// Makes the LAN; `Err` only for a permission or facility that is
    /// missing, a panic for anything else.
    fn make(ips: &[IpAddr]) -> Result<Lan, String> {
        check_capabilities()?;
        assert!(
            ips.iter().all(IpAddr::is_ipv4),
            "the test LAN is IPv4: {ips:?}"
        );
        sweep_abandoned();
        let stem = format!(
            "lc{}-{}",
            std::process::id(),
            NEXT_LAN.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = Lan {
            hub: format!("{stem}-hub"),
            hosts: Vec::new(),
            made: Vec::new(),
            env: Vec::new(),
        };
        // From here on a failure drops `lan`, which removes what was made.
        let hub = lan.hub.clone();
        let unavailable = |e| match e {
            IpError::Unavailable(reason) => reason,
            IpError::Failed(message) => panic!("making the test LAN: {message}"),
        };
        lan.add_namespace(&hub).map_err(unavailable)?;
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", "br0", "type", "bridge"],
            &["link", "set", "br0", "up"],
        ] {
            ip_in(&hub, args).map_err(unavailable)?;
        }
        for (n, ip) in ips.iter().enumerate() {
            let namespace = format!("{stem}-{n}");
            lan.add_namespace(&namespace).map_err(unavailable)?;
            let port = format!("p{n}");
            let address = format!("{ip}/{}", prefix_len(*ip));
            ip_in(
                &hub,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                    &namespace,
                ],
            )
            .map_err(unavailable)?;
            ip_in(&hub, &["link", "set", &port, "master", "br0", "up"]).map_err(unavailable)?;
            for args in [
                &["link", "set", "lo", "up"][..],
                &["addr", "add", &address, "dev", "eth0"],
                &["link", "set", "eth0", "up"],
                &["route", "add", "default", "dev", "eth0"],
            ] {
                ip_in(&namespace, args).map_err(unavailable)?;
            }
            lan.hosts.push(Host { namespace, ip: *ip });
        }
        Ok(lan)
    }

    /// `ip netns add`, recorded for `Drop`.
    fn add_namespace(&mut self, name: &str) -> Result<(), IpError> {
        ip(&["netns", "add", name])?;
        self.made.push(name.to_owned());
        Ok(())
    }

    /// The address of host `n`.
    pub(crate) fn ip(&self, n: usize) -> IpAddr {
        self.hosts[n].ip
    }

    /// The namespace of host `n`.
    pub(crate) fn namespace(&self, n: usize) -> &str {
        &self.hosts[n].namespace
    }

    /// Every program started in a host from now on gets `name=value` in
    /// its environment (`ip netns exec` passes it on).
    pub(crate) fn set_env(&mut self, name: &str, value: impl AsRef<OsStr>) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.as_ref().to_owned()));
    }

    /// A command that runs `program` inside host `n`; add arguments, set up
    /// its stdio and spawn it. `Drop` kills it if it is still running.
    pub(crate) fn command(&self, n: usize, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.namespace(n)])
            .arg(program)
            .envs(self.env.iter().map(|(n, v)| (n, v)));
        command
    }

    /// Starts `program args…` inside host `n` with stdin and stdout null and
    /// stderr piped (see [`StderrLines`]). `Drop` kills it if it is still
    /// running.
    pub(crate) fn spawn<S: AsRef<OsStr>>(
        &self,
        n: usize,
        program: impl AsRef<OsStr>,
        args: &[S],
    ) -> Child {
        self.spawn_with(n, program, args, &[])
    }

    /// [`spawn`](Lan::spawn) with `env` added to (or replacing) the LAN's
    /// environment.
    pub(crate) fn spawn_with<S: AsRef<OsStr>>(
        &self,
        n: usize,
        program: impl AsRef<OsStr>,
        args: &[S],
        env: &[(&str, &OsStr)],
    ) -> Child {
        let program = program.as_ref();
        self.command(n, program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program:?} in {}: {e}", self.namespace(n)))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for namespace in self.made.iter().rev() {
            kill_everything_in(namespace);
            if let Err(IpError::Failed(message) | IpError::Unavailable(message)) =
                ip(&["netns", "del", namespace])
            {
                eprintln!("test LAN: could not delete namespace {namespace}: {message}");
            }
        }
    }
}

/// Fails with the reason when this process cannot make namespaces.
fn check_capabilities() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("network namespaces need Linux (/proc/self/status: {e})"))?;
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or("cannot read CapEff from /proc/self/status")?;
    if effective & NEEDED_CAPS != NEEDED_CAPS {
        return Err(
            "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run the tests as root to include them".into(),
        );
    }
    match Command::new("ip").arg("-V").output() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("the `ip` command (iproute2) is not installed".into())
        }
        Err(e) => Err(format!("cannot run `ip`: {e}")),
    }
}

/// Runs `ip args…`, sorting a failure into "unavailable" or "failed".
fn ip(args: &[&str]) -> Result<(), IpError> {
    let output = match Command::new("ip").args(args).stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IpError::Unavailable(
                "the `ip` command (iproute2) is not installed".into(),
            ));
        }
        Err(e) => return Err(IpError::Failed(format!("ip {}: {e}", args.join(" ")))),
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let message = format!("`ip {}` failed: {stderr}", args.join(" "));
    let unavailable = [
        "Operation not permitted",
        "Permission denied",
        "Operation not supported",
        "Unknown device type",
        "Read-only file system",
    ];
    if unavailable.iter().any(|s| stderr.contains(s)) {
        Err(IpError::Unavailable(format!(
            "network namespaces are not available here: {message}"
        )))
    } else {
        Err(IpError::Failed(message))
    }
}

/// Runs `ip -n <namespace> args…`.
fn ip_in(namespace: &str, args: &[&str]) -> Result<(), IpError> {
    let mut all = vec!["-n", namespace];
    all.extend_from_slice(args);
    ip(&all)
}

/// The prefix of the private class `ip` is in, so that every address of the
/// class is on the test LAN.
fn prefix_len(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) => match v4.octets() {
            [10, ..] => 8,
            [172, 16..=31, ..] => 12,
            [192, 168, ..] => 16,
            _ => 24,
        },
        IpAddr::V6(_) => 64,
    }
}

/// SIGKILL to every process in `namespace`.
fn kill_everything_in(namespace: &str) {
    let Ok(output) = Command::new("ip")
        .args(["netns", "pids", namespace])
        .output()
    else {
        return;
    };
    for pid in String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Deletes the namespaces of test processes that no longer exist (a test
/// killed before its `Drop` ran).
fn sweep_abandoned() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let listing = String::from_utf8_lossy(&output.stdout);
    for name in listing.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = owner_pid(name) else { continue };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            kill_everything_in(name);
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The test process that made namespace `name` (`lc<pid>-<k>-<n|hub>`), if
/// it is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix("lc")?.split('-');
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<usize>().ok()?;
    let last = parts.next()?;
    (parts.next().is_none() && (last == "hub" || last.parse::<usize>().is_ok())).then_some(pid)
}

/// A new LAN key at `path`, made the way an operator makes one:
/// `layer-cake lan-key create --path PATH`.
pub(crate) fn create_lan_key(path: &std::path::Path) {
    let cli = super::workspace_binary("layer-cake-cli", "layer-cake");
    let output = Command::new(cli)
        .args(["lan-key", "create", "--path"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run layer-cake lan-key create");
    assert!(
        output.status.success(),
        "layer-cake lan-key create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The stderr of a spawned program, line by line, with deadlines.
#[derive(Debug)]
pub(crate) struct StderrLines {
    lines: mpsc::Receiver<String>,
    /// Everything read so far, for failure messages.
    seen: Vec<String>,
}

impl StderrLines {
    /// Takes `child`'s piped stderr and reads it on a thread.
    pub(crate) fn of(child: &mut Child) -> StderrLines {
        let stderr = child.stderr.take().expect("stderr is piped");
        StderrLines::from_reader(stderr)
    }

    fn from_reader(reader: impl Read + Send + 'static) -> StderrLines {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        StderrLines {
            lines,
            seen: Vec::new(),
        }
    }

    /// Every line said so far that no wait has returned (the lines a wait
    /// skipped, and those not read yet), without waiting for more.
    pub(crate) fn said_so_far(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Waits up to `patience` for a line containing `needle`; returns it.
    /// Panics, showing what was said, when none comes.
    pub(crate) fn wait_containing(&mut self, needle: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(e) => panic!(
                    "no line containing {needle:?} within {patience:?} ({e}); it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits up to `patience` for a line starting with `prefix`; returns the
    /// rest of it. Panics, showing what was said, when none comes.
    pub(crate) fn wait_for(&mut self, prefix: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                    self.seen.push(line);
                }
                Err(e) => panic!(
                    "no line starting {prefix:?} within {patience:?} ({e}); it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

#[test]
fn namespace_names_are_recognised() {
    assert_eq!(owner_pid("lc123-0-hub"), Some(123));
    assert_eq!(owner_pid("lc123-4-17"), Some(123));
    for other in [
        "lc123",
        "lc123-0",
        "lc-0-1",
        "lc123-x-1",
        "lc123-0-1-2",
        "blue",
        "lc1-0-hubx",
    ] {
        assert_eq!(owner_pid(other), None, "{other}");
    }
}

#[test]
fn prefixes_cover_the_class() {
    assert_eq!(prefix_len("10.0.0.1".parse().unwrap()), 8);
    assert_eq!(prefix_len("172.20.0.1".parse().unwrap()), 12);
    assert_eq!(prefix_len("192.168.3.1".parse().unwrap()), 16);
}

/// Three hosts; the third owns the standard LAN directory address
/// (`10.0.0.195`), which exists only inside the test's LAN.
pub(crate) fn three_hosts() -> [IpAddr; 3] {
    ["10.0.0.1", "10.0.0.2", "10.0.0.195"].map(|ip| ip.parse().unwrap())
}

/// A test LAN whose programs all hold one new LAN key (in the returned
/// folder, removed when it drops).
pub(crate) fn keyed_lan(ips: &[IpAddr]) -> Result<(Lan, tempfile::TempDir), Skip> {
    let mut lan = Lan::new(ips)?;
    let keys = tempfile::tempdir().expect("a folder for the LAN key");
    let key = keys.path().join("lan.key");
    create_lan_key(&key);
    lan.set_env(layer_cake::net::key::LAN_KEY_ENV, &key);
    Ok((lan, keys))
}

/// A program spawned in a host, killed (and reaped) when the test ends,
/// however it ends; the `Lan` would kill it too, but this reaps it.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) stderr: StderrLines,
}

impl Running {
    pub(crate) fn start(lan: &Lan, host: usize, program: &str, args: &[String]) -> Running {
        let mut child = lan.spawn(host, program, args);
        let stderr = StderrLines::of(&mut child);
        Running { child, stderr }
    }

    pub(crate) fn start_with(
        lan: &Lan,
        host: usize,
        program: &str,
        args: &[String],
        env: &[(&str, &OsStr)],
    ) -> Running {
        let mut child = lan.spawn_with(host, program, args, env);
        let stderr = StderrLines::of(&mut child);
        Running { child, stderr }
    }

    /// SIGKILL, and reaped.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
