//! A hostile peer against real daemons (issue 11): each test starts a
//! `host-cake` on an ephemeral loopback port, attacks it with a raw socket
//! speaking the native protocol (see `support/raw.rs`), and then checks the
//! two things that matter: the daemon is still there, serving well-behaved
//! clients, and its memory stayed bounded.
//!
//! The attacker here runs as the same user as the daemon, so it gets past
//! the credentials check of a same-host link; what it may then do is what a
//! link is given (`docs/security.md`). Attacks from another user and from a
//! LAN peer without the key are in `netns.rs` and the library's own tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use layer_cake::Stop;
use layer_cake::message::codec::binary;

mod support;

use support::raw::{self, Raw, WireAddr};
use support::workspace_binary;

/// A daemon started by a test; killed on drop, however the test ends.
struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// host-cake on 127.0.0.1:0, never connecting to a LAN.
    fn host_cake() -> Daemon {
        Daemon::start(
            workspace_binary("host-cake", "host-cake"),
            &["--directory-at-host=127.0.0.1:0", "--no-lan-autoconnect"],
        )
    }

    fn start(program: PathBuf, args: &[&str]) -> Daemon {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stderr = child.stderr.take().unwrap();
        let (found, port) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                eprintln!("daemon: {line}");
                if let Some((_, at)) = line.split_once("listening on ") {
                    let port: u16 = at.rsplit(':').next().unwrap().trim().parse().unwrap();
                    let _ = found.send(port);
                }
            }
        });
        let mut daemon = Daemon { child, port: 0 };
        daemon.port = port
            .recv_timeout(Duration::from_secs(30))
            .expect("the daemon's listening line");
        daemon
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Its resident set, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the daemon's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// A well-behaved client: a fresh connection whose `Inspect` is
    /// answered with the node's listing.
    fn serves(&mut self) -> bool {
        if !self.running() {
            return false;
        }
        let mut client = Raw::connect(self.port);
        let to = WireAddr::Yours(client.controller);
        client.write(&raw::message(to, "Inspect", 1, 77, &inspect()));
        client.answer_to(77).as_deref() == Some("DirectoryListing")
    }
}

/// The body of an `Inspect` of the asked node itself.
fn inspect() -> Vec<u8> {
    body(&layer_cake::directory::Inspect::default())
}

/// A body in the binary codec.
fn body<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    binary::encode(value, &mut out).expect("encodes");
    out
}

#[test]
fn a_stop_sent_to_any_id_does_not_end_the_daemon() {
    let mut daemon = Daemon::host_cake();
    let mut attacker = Raw::connect(daemon.port);
    let stop = body(&Stop);
    // The endpoint the hello names, then every small id a sequential table
    // would have handed out.
    let mut targets = vec![attacker.controller];
    targets.extend(1..=4096);
    for id in targets {
        if !attacker.write(&raw::message(WireAddr::Yours(id), "Stop", 0, 0, &stop)) {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.running(), "host-cake ended after a peer's Stop");
    assert!(
        daemon.serves(),
        "host-cake stopped answering after a peer's Stop"
    );
}

/// `Returned` nested `levels` deep, as a message body, written byte by
/// byte: a payload is its signature then its value, so the bomb is the
/// signature "Returned" `levels` times and then a plain integer. (Building
/// it as values would recurse once per level here too.)
fn nested_returned(levels: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..levels {
        binary::encode("Returned", &mut out).expect("encodes");
    }
    binary::encode("integer8", &mut out).expect("encodes");
    binary::encode(&0_i64, &mut out).expect("encodes");
    out
}

#[test]
fn a_depth_bomb_is_one_refused_message() {
    let mut daemon = Daemon::host_cake();
    for levels in [64, 10_000] {
        let mut attacker = Raw::connect(daemon.port);
        let bomb = nested_returned(levels);
        let to = WireAddr::Yours(attacker.controller);
        attacker.write(&raw::message(to, "Returned", 1, 5, &bomb));
        // Answered with a fault, or the link closed: either way the
        // process lives.
        let _ = attacker.answer_to(5);
        assert!(
            daemon.running(),
            "host-cake died of {levels} nested payloads"
        );
        assert!(
            daemon.serves(),
            "host-cake stopped answering after {levels} nested payloads"
        );
    }
}

#[test]
fn garbage_and_truncated_frames_close_only_that_connection() {
    let mut daemon = Daemon::host_cake();
    let inspect = raw::message(WireAddr::Yours(1), "Inspect", 1, 1, &inspect());
    let attacks: Vec<Vec<u8>> = vec![
        // Random-looking bytes with a plausible length.
        [&12u32.to_be_bytes()[..], &[0xff; 12]].concat(),
        // A length far over the frame limit.
        u32::MAX.to_be_bytes().to_vec(),
        // A frame cut off in the middle.
        inspect[..inspect.len() - 3].to_vec(),
        // A body for an unknown signature.
        raw::message(WireAddr::Yours(1), "NoSuchType", 1, 2, &[1, 2, 3]),
    ];
    for attack in attacks {
        let mut attacker = Raw::connect(daemon.port);
        attacker.write(&attack);
        let _ = attacker.stream.shutdown(std::net::Shutdown::Write);
        let _ = attacker.closed_by_peer();
        assert!(
            daemon.serves(),
            "host-cake stopped answering after {attack:02x?}"
        );
    }
}

#[test]
fn a_peer_that_never_reads_cannot_grow_the_daemon() {
    let mut daemon = Daemon::host_cake();
    assert!(daemon.serves());
    let before = daemon.rss_kib();
    let mut attacker = Raw::connect(daemon.port);
    attacker
        .stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let to = WireAddr::Yours(attacker.controller);
    // Small requests whose answers are larger, never read.
    let mut batch = Vec::new();
    let inspect = inspect();
    for n in 0..1000u64 {
        batch.extend(raw::message(to, "Inspect", 1, 1000 + n, &inspect));
    }
    let flood_until = Instant::now() + Duration::from_secs(10);
    let mut served_during = 0;
    let mut cut_off = false;
    while Instant::now() < flood_until {
        if !attacker.write(&batch) {
            // Refused further writes: a reset, or the daemon stopped
            // reading this connection. Either is the daemon defending.
            cut_off = true;
            break;
        }
    }
    if daemon.serves() {
        served_during += 1;
    }
    let grown_kib = daemon.rss_kib().saturating_sub(before);
    eprintln!("rss grew by {grown_kib} KiB; cut off: {cut_off}");
    assert!(daemon.running(), "host-cake died under a slow-reader flood");
    assert_eq!(served_during, 1, "host-cake did not serve during the flood");
    assert!(
        grown_kib <= 16 * 1024,
        "host-cake grew by {grown_kib} KiB under a peer that never reads"
    );
    drop(attacker);
    assert!(
        daemon.serves(),
        "host-cake stopped answering after the flood"
    );
}
