//! Same-host links: abstract Unix-domain sockets beside loopback listeners,
//! and the peer check every local link passes before any frame is read.
//!
//! A native listener on a loopback address (or on `0.0.0.0`/`::`, which
//! include loopback) also listens on the Linux *abstract* Unix socket named
//! after the TCP address, `\0layer-cake/127.0.0.1:54195`. Abstract names
//! belong to the network namespace, like loopback itself, and leave no file
//! behind. A native connect to a loopback `host:port` tries that socket first
//! and falls back to TCP when nothing listens there.
//!
//! Whichever way a local peer arrives, its owner is known from the kernel:
//! `SO_PEERCRED` on a Unix socket; the owning `uid` of the peer's socket in
//! `/proc/net/tcp{,6}` for loopback TCP (what identd reads). A peer is
//! admitted when it runs as the same user, as root, or in the group the
//! operator names ([`LinkOptions::allowed_group`](crate::net::LinkOptions));
//! anyone else is dropped before a frame is read.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};

use crate::net::HostPort;

use crate::net::Transport;

/// The prefix of every abstract socket name layer-cake binds.
const PREFIX: &str = "layer-cake/";

/// How often one uid's refusals are logged at most (the rest are counted).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The abstract socket name beside the TCP listener at `at`.
pub(crate) fn socket_name(at: &HostPort) -> String {
    format!("{PREFIX}{at}")
}

/// The addresses whose abstract sockets a TCP listener at `listening` also
/// binds: itself when on loopback, the loopback addresses it includes when
/// unspecified, none otherwise.
pub(crate) fn unix_names(listening: SocketAddr) -> Vec<HostPort> {
    let port = listening.port();
    match listening.ip().to_canonical() {
        ip if ip.is_loopback() => vec![HostPort::new(ip.to_string(), port)],
        IpAddr::V4(ip) if ip.is_unspecified() => {
            vec![HostPort::new(Ipv4Addr::LOCALHOST.to_string(), port)]
        }
        IpAddr::V6(ip) if ip.is_unspecified() => vec![
            HostPort::new(Ipv6Addr::LOCALHOST.to_string(), port),
            HostPort::new(Ipv4Addr::LOCALHOST.to_string(), port),
        ],
        _ => Vec::new(),
    }
}

/// Binds the abstract socket for the TCP listener at `at`.
pub(crate) fn bind(at: &HostPort) -> io::Result<UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(socket_name(at))?;
    UnixListener::bind_addr(&address.into())
}

/// Connects to the abstract socket beside the TCP listener at `at`. An
/// error of kind `ConnectionRefused` means nobody listens there.
pub(crate) async fn connect(at: &HostPort) -> io::Result<UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(socket_name(at))?;
    UnixStream::connect_addr(&address.into()).await
}

/// Who is at the other end of a local link, as the kernel attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The user the peer's socket belongs to.
    pub(crate) uid: u32,
    /// `SO_PEERCRED`'s primary group and process, when the link is a Unix
    /// socket (the TCP socket table names only the owner).
    pub(crate) process: Option<(u32, i32)>,
}

/// Why a local peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// The kernel names a user that is neither this one, nor root, nor in
    /// the allowed group.
    #[error(
        "a local peer of uid {uid} ({how}) is not this user ({ours}), root or in the allowed group{group}"
    )]
    Stranger {
        /// The peer's uid.
        uid: u32,
        /// This process's uid.
        ours: u32,
        /// How the uid was learnt.
        how: &'static str,
        /// ` (gid N)` when a group is allowed.
        group: String,
    },
    /// The peer's owner could not be learnt: refused, since it could be
    /// anyone.
    #[error("cannot tell which user the local peer at {peer} is ({why})")]
    Unknown {
        /// The peer's address.
        peer: String,
        /// What failed.
        why: String,
    },
}

impl Refused {
    /// The uid to rate-limit this refusal's log line by.
    fn uid(&self) -> Option<u32> {
        match self {
            Refused::Stranger { uid, .. } => Some(*uid),
            Refused::Unknown { .. } => None,
        }
    }
}

/// The rule a local peer must pass: same user, root, or the allowed group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admission {
    ours: u32,
    allowed_group: Option<u32>,
}

impl Admission {
    /// The rule for this process, admitting `allowed_group` too.
    pub(crate) fn new(allowed_group: Option<u32>) -> Self {
        Admission {
            ours: nix::unistd::geteuid().as_raw(),
            allowed_group,
        }
    }

    /// `Ok` when `peer` may speak to this process. `how` says where the
    /// uid came from, for the refusal.
    pub(crate) fn check(&self, peer: Peer, how: &'static str) -> Result<(), Refused> {
        if peer.uid == self.ours || peer.uid == 0 {
            return Ok(());
        }
        if let Some(gid) = self.allowed_group
            && groups_of(peer).contains(&gid)
        {
            return Ok(());
        }
        Err(Refused::Stranger {
            uid: peer.uid,
            ours: self.ours,
            how,
            group: self
                .allowed_group
                .map(|g| format!(" (gid {g})"))
                .unwrap_or_default(),
        })
    }
}

/// The groups `peer` is in: for a process known by `SO_PEERCRED`, its
/// primary group and the supplementary groups the kernel lists for it in
/// `/proc/<pid>/status` (only while that pid still belongs to the same
/// uid); for a TCP peer, the groups the group database gives its user.
fn groups_of(peer: Peer) -> Vec<u32> {
    match peer.process {
        Some((gid, pid)) => {
            let mut groups = vec![gid];
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                groups.extend(status_groups(&status, peer.uid));
            }
            groups
        }
        None => user_groups(peer.uid),
    }
}

/// The `Groups:` of a `/proc/<pid>/status`, when its real uid is `uid`
/// (otherwise the pid was reused by another user's process: none).
fn status_groups(status: &str, uid: u32) -> Vec<u32> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::split_whitespace)
    };
    let real_uid = field("Uid:").and_then(|mut w| w.next()?.parse::<u32>().ok());
    if real_uid != Some(uid) {
        return Vec::new();
    }
    field("Groups:")
        .map(|words| words.filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_default()
}

/// The groups the group database lists for the user `uid` (its primary
/// group included); none when the user is unknown.
fn user_groups(uid: u32) -> Vec<u32> {
    use nix::unistd::{Uid, User, getgrouplist};
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return vec![user.gid.as_raw()];
    };
    getgrouplist(&name, user.gid)
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![user.gid.as_raw()])
}

/// The peer of a Unix-socket link, by `SO_PEERCRED`.
pub(crate) fn unix_peer(stream: &UnixStream) -> Result<Peer, Refused> {
    let credentials = stream.peer_cred().map_err(|e| Refused::Unknown {
        peer: "a Unix socket".into(),
        why: format!("SO_PEERCRED: {e}"),
    })?;
    Ok(Peer {
        uid: credentials.uid(),
        process: credentials.pid().map(|pid| (credentials.gid(), pid)),
    })
}

/// One socket in the kernel's TCP table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    state: u8,
    uid: u32,
    inode: u64,
}

/// `TCP_LISTEN` in the table's `st` column.
const LISTEN: u8 = 0x0A;

/// The kernel's TCP sockets of this network namespace, IPv4 and IPv6.
fn tcp_table() -> io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut read_any = false;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                read_any = true;
                rows.extend(text.lines().skip(1).filter_map(parse_row));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if !read_any {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "neither /proc/net/tcp nor /proc/net/tcp6 exists",
        ));
    }
    Ok(rows)
}

/// One line of `/proc/net/tcp{,6}`:
/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`.
fn parse_row(line: &str) -> Option<Row> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 10 {
        return None;
    }
    Some(Row {
        local: parse_address(words[1])?,
        remote: parse_address(words[2])?,
        state: u8::from_str_radix(words[3], 16).ok()?,
        uid: words[7].parse().ok()?,
        inode: words[9].parse().ok()?,
    })
}

/// `0100007F:D3B3` (IPv4) or 32 hex digits and a port (IPv6): the address
/// as the kernel prints it, each 32-bit word in this machine's byte order.
/// An IPv4-mapped IPv6 address comes back as IPv4.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| {
        u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
            .ok()
            .map(u32::to_ne_bytes)
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// The peer of a loopback TCP connection this process *accepted*: the owner
/// of the peer's socket (local address `peer`, remote address `ours`) in the
/// kernel's table. A socket no file holds any more (inode 0: closed, in
/// TIME_WAIT, whose uid the kernel prints as 0) does not count.
pub(crate) fn tcp_peer(ours: SocketAddr, peer: SocketAddr) -> Result<Peer, Refused> {
    let (ours, peer) = (canonical(ours), canonical(peer));
    let unknown = |why: String| Refused::Unknown {
        peer: peer.to_string(),
        why,
    };
    let rows = tcp_table().map_err(|e| unknown(format!("cannot read the socket table: {e}")))?;
    rows.iter()
        .find(|r| r.local == peer && r.remote == ours && r.inode != 0)
        .map(|r| Peer {
            uid: r.uid,
            process: None,
        })
        .ok_or_else(|| unknown("its socket is not in /proc/net/tcp".into()))
}

/// The owner of the listener a loopback TCP connection of this process
/// reached at `server`: the listening socket on that port, bound to that
/// address or to the unspecified one.
pub(crate) fn tcp_listener(server: SocketAddr) -> Result<Peer, Refused> {
    let server = canonical(server);
    let unknown = |why: String| Refused::Unknown {
        peer: server.to_string(),
        why,
    };
    let rows = tcp_table().map_err(|e| unknown(format!("cannot read the socket table: {e}")))?;
    rows.iter()
        .find(|r| {
            r.state == LISTEN
                && r.local.port() == server.port()
                && (r.local.ip() == server.ip() || r.local.ip().is_unspecified())
        })
        .map(|r| Peer {
            uid: r.uid,
            process: None,
        })
        .ok_or_else(|| unknown("no listening socket on its port in /proc/net/tcp".into()))
}

/// Logs refused local peers, at most one line per uid per minute (the
/// refusals in between are counted into the next line). One per listener.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    /// Per uid (`None`: the owner was unknown): when its last line was
    /// logged, and the refusals since.
    last: Mutex<HashMap<Option<u32>, Logged>>,
}

/// When a uid's last refusal line was logged, and the refusals since.
type Logged = (Option<Instant>, u64);

impl RefusalLog {
    /// Records one refusal on `listening`; logs it unless this uid was
    /// logged less than a minute ago. True when it logged.
    pub(crate) fn refused(
        &self,
        listening: &HostPort,
        transport: Transport,
        why: &Refused,
    ) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        // Forget uids not seen for a while, so the map stays small.
        if last.len() > 1024 {
            last.retain(|_, (at, _)| at.is_some_and(|at| now.duration_since(at) < LOG_EVERY));
        }
        let entry = last.entry(why.uid()).or_insert((None, 0));
        entry.1 += 1;
        if entry.0.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
            return false;
        }
        let count = std::mem::take(&mut entry.1);
        entry.0 = Some(now);
        tracing::warn!(
            %listening, ?transport, refused = count,
            "refused a local peer before reading anything: {why}"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_addresses() {
        let v4 = parse_address(&format!("{:08X}:D3B3", u32::from_ne_bytes([127, 0, 0, 1])));
        assert_eq!(v4, Some("127.0.0.1:54195".parse().unwrap()));
        let words: String = Ipv6Addr::LOCALHOST
            .octets()
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes(c.try_into().unwrap())))
            .collect();
        assert_eq!(
            parse_address(&format!("{words}:0050")),
            Some("[::1]:80".parse().unwrap())
        );
        let mapped: String = "::ffff:127.0.0.2"
            .parse::<Ipv6Addr>()
            .unwrap()
            .octets()
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes(c.try_into().unwrap())))
            .collect();
        assert_eq!(
            parse_address(&format!("{mapped}:0001")),
            Some("127.0.0.2:1".parse().unwrap())
        );
        for bad in ["", "0100007F", "0100007F:ZZZZ", "01007F:0050", "x:1"] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_a_row() {
        let line = "   0: 0100007F:D3B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0";
        let row = parse_row(line).unwrap();
        assert_eq!(row.local, "127.0.0.1:54195".parse().unwrap());
        assert_eq!(row.state, LISTEN);
        assert_eq!(row.uid, 1000);
        assert_eq!(row.inode, 123456);
        assert_eq!(parse_row("  sl  local_address rem_address"), None);
    }

    #[test]
    fn names_beside_a_listener() {
        let names = |a: &str| unix_names(a.parse().unwrap());
        assert_eq!(names("127.0.0.1:5"), [HostPort::new("127.0.0.1", 5)]);
        assert_eq!(names("0.0.0.0:5"), [HostPort::new("127.0.0.1", 5)]);
        assert_eq!(
            names("[::]:5"),
            [HostPort::new("::1", 5), HostPort::new("127.0.0.1", 5)]
        );
        assert_eq!(names("[::1]:5"), [HostPort::new("::1", 5)]);
        assert!(names("10.1.2.3:5").is_empty());
        assert_eq!(socket_name(&HostPort::new("::1", 5)), "layer-cake/[::1]:5");
    }

    #[test]
    fn the_rule() {
        let me = Admission::new(None);
        let mine = Peer {
            uid: me.ours,
            process: None,
        };
        assert!(me.check(mine, "test").is_ok());
        assert!(
            me.check(
                Peer {
                    uid: 0,
                    process: None
                },
                "test"
            )
            .is_ok()
        );
        let stranger = Peer {
            uid: 4_000_000_000,
            process: Some((4_000_000_001, i32::MAX)),
        };
        if me.ours != stranger.uid {
            assert!(matches!(
                me.check(stranger, "test"),
                Err(Refused::Stranger { .. })
            ));
            // The primary group SO_PEERCRED names admits it.
            assert!(
                Admission::new(Some(4_000_000_001))
                    .check(stranger, "test")
                    .is_ok()
            );
            assert!(
                Admission::new(Some(4_000_000_002))
                    .check(stranger, "test")
                    .is_err()
            );
        }
    }

    #[test]
    fn status_groups_need_the_same_uid() {
        let status = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nGroups:\t4 27 100 \n";
        assert_eq!(status_groups(status, 1000), [4, 27, 100]);
        assert!(status_groups(status, 1001).is_empty());
        assert!(status_groups("Uid:\t1000\n", 1000).is_empty());
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_uid() {
        let log = RefusalLog::default();
        let at = HostPort::new("127.0.0.1", 1);
        let stranger = |uid| Refused::Stranger {
            uid,
            ours: 0,
            how: "test",
            group: String::new(),
        };
        assert!(log.refused(&at, Transport::Unix, &stranger(7)));
        assert!(!log.refused(&at, Transport::Tcp, &stranger(7)));
        assert!(log.refused(&at, Transport::Unix, &stranger(8)));
        assert!(!log.refused(&at, Transport::Unix, &stranger(8)));
    }

    #[tokio::test]
    async fn finds_both_ends_of_a_loopback_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(server).await.unwrap();
        let (accepted, from) = listener.accept().await.unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(from, client.local_addr().unwrap());
        let peer = tcp_peer(accepted.local_addr().unwrap(), from).unwrap();
        assert_eq!(peer.uid, me);
        assert_eq!(tcp_listener(server).unwrap().uid, me);
        // A port nobody uses: refused, not guessed.
        drop((client, accepted));
        assert!(matches!(
            tcp_peer(server, "127.0.0.1:1".parse().unwrap()),
            Err(Refused::Unknown { .. })
        ));
    }
}
