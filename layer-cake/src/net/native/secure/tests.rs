//! The secured stream on loopback TCP, with `secure_loopback` standing in for
//! a peer on another host: bytes both ways, large writes split, and every
//! kind of peer without the key refused before the link reads a frame.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::net::native::wire::{self, Header, Kind, VERSION};
use crate::net::{
    Accepted, ConnectOptions, Connected, HostPort, LanKey, LinkOptions, ListenOptions, Listening,
    NotConnected,
};
use crate::{Context, Message, Payload};

const PATIENCE: Duration = Duration::from_secs(20);

fn off_host(key: Option<LanKey>) -> LinkOptions {
    LinkOptions {
        lan_key: key,
        secure_loopback: true,
        ..LinkOptions::default()
    }
}

/// An accepted and a connected stream on loopback.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(at), listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

/// Secures both ends of a fresh pair, with these keys.
async fn secured(
    client: Option<LanKey>,
    server: Option<LanKey>,
) -> (Result<Halves, String>, Result<Halves, String>) {
    let (a, b) = pair().await;
    let (client, server) = (off_host(client), off_host(server));
    tokio::join!(
        wrap(a, Side::Initiator, &client),
        wrap(b, Side::Responder, &server)
    )
}

fn native_hello() -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::frame(
        &mut bytes,
        &Header {
            version: VERSION,
            kind: Kind::Hello {
                controller: 1,
                incarnation: 7,
            },
        },
        &[],
    );
    bytes
}

/// Runs the responder's side against a raw client that sends `bytes`.
async fn respond_to_raw(bytes: &[u8], options: LinkOptions) -> (SecureError, TcpStream) {
    let (mut client, server) = pair().await;
    client.write_all(bytes).await.unwrap();
    let peer = server.peer_addr().unwrap();
    let refused = tokio::time::timeout(PATIENCE, secure(server, Side::Responder, peer, &options))
        .await
        .expect("refused in time")
        .expect_err("refused");
    (refused, client)
}

/// True when the other end closed (EOF or reset) without sending anything
/// we would take for data... beyond what a handshake could be.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_cross_both_ways_and_large_writes_are_split() {
    let key = LanKey::generate().unwrap();
    let (client, server) = secured(Some(key.clone()), Some(key)).await;
    let (client, server) = (client.unwrap(), server.unwrap());
    // Larger than one Noise message many times over, and not a multiple.
    let big: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let expected = big.clone();
    let Halves {
        read: mut client_read,
        write: mut client_write,
    } = client;
    let Halves {
        read: mut server_read,
        write: mut server_write,
    } = server;
    // Each direction in its own tasks: the halves share no lock.
    let up = tokio::spawn(async move {
        client_write.write_all(&big).await.unwrap();
        client_write.write_all(b"small").await.unwrap();
        client_write.shutdown().await.unwrap();
    });
    let down = tokio::spawn(async move {
        for n in 0..1000u32 {
            server_write.write_all(&n.to_be_bytes()).await.unwrap();
        }
        server_write.shutdown().await.unwrap();
    });
    let received_up = tokio::spawn(async move {
        let mut all = Vec::new();
        server_read.read_to_end(&mut all).await.unwrap();
        all
    });
    let mut down_bytes = Vec::new();
    client_read.read_to_end(&mut down_bytes).await.unwrap();
    let up_bytes = received_up.await.unwrap();
    up.await.unwrap();
    down.await.unwrap();
    assert_eq!(up_bytes.len(), expected.len() + 5);
    assert!(up_bytes[..expected.len()] == expected[..]);
    assert_eq!(&up_bytes[expected.len()..], b"small");
    let numbers: Vec<u32> = down_bytes
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(numbers, (0..1000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_carries_no_plaintext() {
    let key = LanKey::generate().unwrap();
    let (mut client, server) = pair().await;
    let peer = server.peer_addr().unwrap();
    let options = off_host(Some(key));
    let serving = {
        let options = options.clone();
        tokio::spawn(async move { secure(server, Side::Responder, peer, &options).await })
    };
    // Play the initiator by hand for the handshake, then look at the bytes
    // a secured writer puts on the wire.
    let peer_of_client = client.peer_addr().unwrap();
    let key = options.lan_key.clone().unwrap();
    let state = handshake(&mut client, Side::Initiator, peer_of_client, &key)
        .await
        .unwrap();
    let mut server = serving.await.unwrap().unwrap();
    let mut raw = Vec::new();
    let secret = b"the secret text the link carries".repeat(8);
    // The server writes through the secured half; the client reads raw.
    server.write.write_all(&secret).await.unwrap();
    server.write.shutdown().await.unwrap();
    client.read_to_end(&mut raw).await.unwrap();
    assert_eq!(raw.len(), 2 + secret.len() + TAG);
    assert!(!raw.windows(6).any(|w| w == b"secret"));
    let mut plain = vec![0u8; secret.len()];
    let n = state.read_message(0, &raw[2..], &mut plain).unwrap();
    assert_eq!(&plain[..n], &secret[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_key_is_refused() {
    let (client, server) = secured(
        Some(LanKey::generate().unwrap()),
        Some(LanKey::generate().unwrap()),
    )
    .await;
    let server = server.expect_err("the responder refuses");
    assert!(server.contains("does not hold this LAN key"), "{server}");
    let client = client.expect_err("the initiator fails");
    assert!(client.contains("LAN handshake"), "{client}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_without_a_key_is_told_how_to_make_one() {
    let (client, server) = secured(None, Some(LanKey::generate().unwrap())).await;
    let client = client.expect_err("no key, no link");
    assert!(client.contains("no LAN key"), "{client}");
    assert!(client.contains("layer-cake lan-key create"), "{client}");
    // The responder saw the connection close before a handshake message.
    assert!(server.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_native_hello_is_refused_before_any_frame_is_read() {
    let key = LanKey::generate().unwrap();
    let (refused, mut client) = respond_to_raw(&native_hello(), off_host(Some(key))).await;
    // The Hello's 4-byte length starts with two zero bytes: a 0-byte
    // handshake message.
    assert!(
        matches!(refused, SecureError::Size { got: 0, .. }),
        "{refused}"
    );
    assert!(closed(&mut client).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_are_refused() {
    let key = LanKey::generate().unwrap();
    // Random, then random with a plausible length prefix: the size check
    // and the tag check each refuse one.
    let noise: Vec<u8> = (0..200).map(|_| rand::random::<u8>()).collect();
    let (refused, mut client) = respond_to_raw(&noise, off_host(Some(key.clone()))).await;
    assert!(
        matches!(
            refused,
            SecureError::Size { .. } | SecureError::Refused { .. }
        ),
        "{refused}"
    );
    assert!(closed(&mut client).await);
    let mut plausible = (HANDSHAKE_MESSAGE as u16).to_be_bytes().to_vec();
    plausible.extend((0..HANDSHAKE_MESSAGE).map(|_| rand::random::<u8>()));
    let (refused, mut client) = respond_to_raw(&plausible, off_host(Some(key))).await;
    assert!(matches!(refused, SecureError::Refused { .. }), "{refused}");
    assert!(closed(&mut client).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_times_out() {
    let options = LinkOptions {
        handshake_timeout: Duration::from_millis(300),
        ..off_host(Some(LanKey::generate().unwrap()))
    };
    // Half a handshake message, then nothing.
    let started = std::time::Instant::now();
    let (refused, mut client) = respond_to_raw(&[0, 48, 1, 2, 3], options).await;
    assert!(matches!(refused, SecureError::Timeout { .. }), "{refused}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(closed(&mut client).await);
}

#[test]
fn loopback_stays_plain_unless_asked_and_off_host_is_secured() {
    let loopback: SocketAddr = "127.0.0.1:5".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
    let lan: SocketAddr = "10.77.0.2:5".parse().unwrap();
    let plain = LinkOptions::default();
    assert!(!must_secure(&loopback, &plain));
    assert!(!must_secure(&mapped, &plain));
    assert!(must_secure(&lan, &plain));
    assert!(must_secure(&loopback, &off_host(None)));
    let insecure = LinkOptions {
        insecure_plaintext_off_host: true,
        ..LinkOptions::default()
    };
    assert!(!must_secure(&lan, &insecure));
}

#[test]
fn refusals_are_logged_once_per_address_per_minute_in_bounded_memory() {
    let mut refusals = Refusals::default();
    let start = Instant::now();
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(refusals.should_log(a, start), Some(true));
    assert_eq!(
        refusals.should_log(a, start + Duration::from_secs(59)),
        Some(false)
    );
    assert_eq!(
        refusals.should_log(a, start + Duration::from_secs(61)),
        Some(true)
    );
    // A flood of addresses: the map stops growing and says so once.
    for i in 0..(REMEMBERED as u32 * 2) {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
        let _ = refusals.should_log(ip, start + Duration::from_secs(61));
    }
    assert!(refusals.logged.len() <= REMEMBERED);
    let later = IpAddr::from(std::net::Ipv4Addr::new(12, 0, 0, 1));
    assert_eq!(
        refusals.should_log(later, start + Duration::from_secs(62)),
        None
    );
    // A minute on, old entries make room again.
    assert_eq!(
        refusals.should_log(later, start + Duration::from_secs(200)),
        Some(true)
    );
}

// Whole links through `listen`/`connect`.

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

async fn listener(link: LinkOptions) -> (Context, HostPort) {
    let mut cx = Context::detached("listener");
    cx.listen(
        HostPort::new("127.0.0.1", 0),
        ListenOptions::native().link(link),
    );
    let at = expect::<Listening>(&mut cx).await.listening;
    (cx, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_link_carries_messages_and_refuses_strangers_without_harm() {
    let key = LanKey::generate().unwrap();
    let (mut server, at) = listener(off_host(Some(key.clone()))).await;

    // A stranger with another key, and a plaintext native client: neither
    // is accepted (no `Accepted` reaches the listener).
    let mut stranger = Context::detached("stranger");
    stranger.connect(
        at.clone(),
        ConnectOptions::native().link(off_host(Some(LanKey::generate().unwrap()))),
    );
    let refused = expect::<NotConnected>(&mut stranger).await;
    assert!(
        refused.reason.contains("LAN handshake"),
        "{}",
        refused.reason
    );
    let mut plaintext = Context::detached("plaintext");
    plaintext.connect(at.clone(), ConnectOptions::native());
    let outcome = next(&mut plaintext).await;
    assert!(
        !outcome.is::<Connected>(),
        "a plaintext client got a link: {}",
        outcome.signature()
    );

    // A client with the key: messages both ways.
    let mut client = Context::detached("client");
    client.connect(at, ConnectOptions::native().link(off_host(Some(key))));
    let proxy = expect::<Connected>(&mut client).await.proxy;
    // The first thing the listener hears is this client, not a stranger.
    let accepted = expect::<Accepted>(&mut server).await;
    client.send(5_i64, &proxy).unwrap();
    assert_eq!(expect::<i64>(&mut server).await, 5);
    let big = "x".repeat(200_000);
    server.send(big.clone(), &accepted.proxy).unwrap();
    assert_eq!(expect::<String>(&mut client).await, big);
}
