//! Same-host links: the Unix socket beside a loopback listener, the fall
//! back to TCP, and local peers of another user refused before a frame is
//! read (a real process of another uid, started with `setpriv`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::local;
use crate::net::{
    Accepted, ConnectOptions, Connected, HostPort, LinkOptions, ListenOptions, Listening,
    NotConnected, Transport,
};
use crate::{Context, Message, Payload};

const PATIENCE: Duration = Duration::from_secs(20);

/// The environment variable that turns [`probe`] into the other user's
/// process.
const PROBE: &str = "LAYER_CAKE_TEST_PROBE";

async fn next(cx: &mut Context) -> Payload {
    tokio::time::timeout(PATIENCE, cx.input())
        .await
        .expect("a message within the deadline")
}

async fn expect<M: Message>(cx: &mut Context) -> M {
    let message = next(cx).await;
    let signature = message.signature();
    message.downcast::<M>().unwrap_or_else(|_| {
        panic!(
            "expected {}, got {signature}",
            crate::message::signature_of::<M>()
        )
    })
}

async fn listener(at: &str, link: LinkOptions) -> (Context, HostPort) {
    let mut cx = Context::detached("listener");
    cx.listen(HostPort::new(at, 0), ListenOptions::native().link(link));
    let at = expect::<Listening>(&mut cx).await.listening;
    (cx, at)
}

/// Connects a client to `at`; both ends' transports, after a message has
/// crossed each way.
async fn linked(server: &mut Context, at: HostPort, link: LinkOptions) -> (Transport, Transport) {
    let mut client = Context::detached("client");
    client.connect(at, ConnectOptions::native().link(link));
    let connected = expect::<Connected>(&mut client).await;
    let accepted = expect::<Accepted>(server).await;
    client.send(7_i64, &connected.proxy).unwrap();
    assert_eq!(expect::<i64>(server).await, 7);
    server.send(String::from("back"), &accepted.proxy).unwrap();
    assert_eq!(expect::<String>(&mut client).await, "back");
    (connected.transport, accepted.transport)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_listener_is_reached_over_the_unix_socket() {
    let (mut server, at) = listener("127.0.0.1", LinkOptions::default()).await;
    let both = linked(&mut server, at, LinkOptions::default()).await;
    assert_eq!(both, (Transport::Unix, Transport::Unix));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_on_every_address_is_reached_over_the_unix_socket() {
    let (mut server, at) = listener("0.0.0.0", LinkOptions::default()).await;
    let to = HostPort::new("127.0.0.1", at.port);
    let both = linked(&mut server, to, LinkOptions::default()).await;
    assert_eq!(both, (Transport::Unix, Transport::Unix));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_unix_socket_the_connect_falls_back_to_tcp() {
    // Only TCP listens: the client tries the Unix socket, finds nobody.
    let tcp_only = LinkOptions::default().unix_socket(false);
    let (mut server, at) = listener("127.0.0.1", tcp_only.clone()).await;
    let both = linked(&mut server, at.clone(), LinkOptions::default()).await;
    assert_eq!(both, (Transport::Tcp, Transport::Tcp));
    // And a client told not to use it stays on TCP where one listens.
    let (mut server, at) = listener("127.0.0.1", LinkOptions::default()).await;
    let both = linked(&mut server, at, tcp_only).await;
    assert_eq!(both, (Transport::Tcp, Transport::Tcp));
}

/// Another user, as the kernel knows it: `nobody`'s uid and primary gid.
fn other_user() -> Result<(u32, u32), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root: cannot run a process as another user".into());
    }
    if !std::path::Path::new("/usr/bin/setpriv").exists()
        && Command::new("setpriv").arg("--version").output().is_err()
    {
        return Err("setpriv (util-linux) is not installed".into());
    }
    match nix::unistd::User::from_name("nobody") {
        Ok(Some(user)) => Ok((user.uid.as_raw(), user.gid.as_raw())),
        _ => Err("there is no user nobody".into()),
    }
}

/// This test binary, run as `uid`/`gid` (no other groups) with the probe
/// doing `task`; its stdout piped, killed on drop.
struct Probe(Child, BufReader<std::process::ChildStdout>);

impl Probe {
    fn start(uid: u32, gid: u32, task: &str) -> Probe {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(exe)
            .args([
                "--exact",
                "net::native::same_host_tests::probe",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PROBE, task)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("setpriv starts");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        Probe(child, out)
    }

    /// The probe's next report, without its `PROBE ` prefix.
    fn report(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.1.read_line(&mut line).expect("the probe's output");
            assert!(read > 0, "the probe ended without a report");
            // The harness may have begun the line ("test … ... ").
            if let Some((_, report)) = line.split_once("PROBE ") {
                return report.trim().to_owned();
            }
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Blocking: the probe's reports for `dial` at `at`, `(unix, tcp)`.
fn dial_as(uid: u32, gid: u32, at: &HostPort) -> (String, String) {
    let mut probe = Probe::start(uid, gid, &format!("dial {at}"));
    (probe.report(), probe.report())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_process_of_another_user_is_refused_before_any_frame() {
    let (uid, gid) = match other_user() {
        Ok(user) => user,
        Err(why) => return println!("SKIPPED: {why}"),
    };
    let (mut server, at) = listener("127.0.0.1", LinkOptions::default()).await;
    let dial = at.clone();
    let (unix, tcp) = tokio::task::spawn_blocking(move || dial_as(uid, gid, &dial))
        .await
        .unwrap();
    // Closed without a byte from the listener: not even its hello.
    assert_eq!(unix, "unix refused", "over the Unix socket");
    assert_eq!(tcp, "tcp refused", "over loopback TCP");
    // No link came up for it, and the listener still serves its own user.
    let both = linked(&mut server, at, LinkOptions::default()).await;
    assert_eq!(both, (Transport::Unix, Transport::Unix));

    // The operator names the other user's group: admitted both ways.
    let (server, at) = listener("127.0.0.1", LinkOptions::default().allow_group(Some(gid))).await;
    let dial = at.clone();
    let (unix, tcp) = tokio::task::spawn_blocking(move || dial_as(uid, gid, &dial))
        .await
        .unwrap();
    assert_eq!(unix, "unix admitted", "over the Unix socket, in the group");
    // (It got the listener's hello; it sends none, so no `Accepted`.)
    assert_eq!(tcp, "tcp admitted", "over loopback TCP, in the group");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_of_another_user_is_refused_by_the_connecting_side() {
    let (uid, gid) = match other_user() {
        Ok(user) => user,
        Err(why) => return println!("SKIPPED: {why}"),
    };
    let (mut probe, report) = tokio::task::spawn_blocking(move || {
        let mut probe = Probe::start(uid, gid, "listen");
        let report = probe.report();
        (probe, report)
    })
    .await
    .unwrap();
    let port: u16 = report
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a port, not {report:?}"));
    let at = HostPort::new("127.0.0.1", port);
    for link in [
        LinkOptions::default(),
        LinkOptions::default().unix_socket(false),
    ] {
        let mut client = Context::detached("client");
        client.connect(at.clone(), ConnectOptions::native().link(link));
        let refused = expect::<NotConnected>(&mut client).await;
        assert!(
            refused.reason.contains(&format!("uid {uid}")),
            "{}",
            refused.reason
        );
    }
    // Allowed by group: connected (over the Unix socket).
    let mut client = Context::detached("client");
    client.connect(
        at,
        ConnectOptions::native().link(LinkOptions::default().allow_group(Some(gid))),
    );
    assert_eq!(
        expect::<Connected>(&mut client).await.transport,
        Transport::Unix
    );
    drop(probe.0.stdin.take());
}

/// The other user's side of the tests above; does nothing unless started
/// by them (with [`PROBE`] set). `dial HOST:PORT`: connect over the Unix
/// socket, then over TCP, and report for each whether the listener sent
/// anything (its hello: admitted) or closed first (refused). `listen`: a
/// native listener on 127.0.0.1, until stdin ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the other-user tests as another uid"]
async fn probe() {
    let Ok(task) = std::env::var(PROBE) else {
        return;
    };
    match task.split_once(' ') {
        Some(("dial", at)) => {
            let at: HostPort = at.parse().expect("HOST:PORT");
            match local::connect(&at).await {
                Ok(mut stream) => println!("PROBE unix {}", outcome(&mut stream).await),
                Err(e) => println!("PROBE unix cannot connect: {e}"),
            }
            match tokio::net::TcpStream::connect((at.host.as_str(), at.port)).await {
                Ok(mut stream) => println!("PROBE tcp {}", outcome(&mut stream).await),
                Err(e) => println!("PROBE tcp cannot connect: {e}"),
            }
        }
        None if task == "listen" => {
            let (_cx, at) = listener("127.0.0.1", LinkOptions::default()).await;
            println!("PROBE listening {}", at.port);
            let _ = tokio::task::spawn_blocking(|| {
                std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
            })
            .await;
        }
        _ => panic!("unknown probe task {task:?}"),
    }
}

/// Whether the listener spoke first (`admitted`) or closed (`refused`).
async fn outcome(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> &'static str {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => "refused",
        Ok(Ok(_)) => "admitted",
        Err(_) => "silent",
    }
}
