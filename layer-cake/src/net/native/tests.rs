//! Bad input on the native port, from raw sockets: each bad connection is
//! closed with a reason and the process carries on.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::{self, Header, Kind, MessageHeader, VERSION, WireAddr};
use crate::net::{
    Accepted, Closed, ConnectOptions, Connected, EndOfTransport, HostPort, LinkOptions,
    ListenOptions, Listening,
};
use crate::{Context, Message, Payload};

const PATIENCE: Duration = Duration::from_secs(20);

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

fn frame(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::frame(
        &mut bytes,
        &Header {
            version: VERSION,
            kind,
        },
        body,
    )
    .unwrap();
    bytes
}

fn hello() -> Vec<u8> {
    frame(
        Kind::Hello {
            controller: 1,
            incarnation: 7,
        },
        &[],
    )
}

async fn listener(options: ListenOptions) -> (Context, HostPort) {
    let mut cx = Context::detached("listener");
    cx.listen(HostPort::new("127.0.0.1", 0), options);
    let at = expect::<Listening>(&mut cx).await.listening;
    (cx, at)
}

async fn raw(at: &HostPort) -> TcpStream {
    TcpStream::connect((at.host.as_str(), at.port))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; true if it did in time.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut sink = vec![0u8; 4096];
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

/// The listener still works: a well-behaved client gets through.
async fn still_serving(at: &HostPort, listener: &mut Context) {
    let mut client = Context::detached("client");
    client.connect(at.clone(), ConnectOptions::native());
    expect::<Connected>(&mut client).await;
    expect::<Accepted>(listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_the_handshake_is_refused() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut stream = raw(&at).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut stream).await);
    still_serving(&at, &mut cx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_length_prefix_closes_the_connection() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::InboundStreaming);
    assert!(closed.note.contains("frame"), "{}", closed.note);
    assert!(closed_by_server(&mut stream).await);
    still_serving(&at, &mut cx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_or_unknown_message_closes_the_connection() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    // Garbage where a header should be.
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let junk = [0xffu8; 12];
    stream
        .write_all(&(junk.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&junk).await.unwrap();
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::InboundStreaming);
    assert!(closed.note.contains("header"), "{}", closed.note);

    // A message of a type nobody registered, to the listening actor.
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let to = crate::runtime::exports::export(cx.address().mailbox().unwrap());
    let header = MessageHeader {
        to: WireAddr::Yours(to),
        from: WireAddr::Mine(1),
        signature: "NoSuchType".into(),
        tag: 0,
        request: 0,
        trace: None,
        caller: None,
        ingress: WireAddr::Null,
        book: vec![],
    };
    stream
        .write_all(&frame(Kind::Message(header.clone()), &[1, 2, 3]))
        .await
        .unwrap();
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::InboundStreaming);
    assert!(closed.note.contains("NoSuchType"), "{}", closed.note);

    // A known type with a body that does not decode as it.
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let header = MessageHeader {
        signature: "unicode".into(),
        ..header
    };
    stream
        .write_all(&frame(Kind::Message(header), &[0xfb, 0xff, 0xff]))
        .await
        .unwrap();
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::InboundStreaming);
    still_serving(&at, &mut cx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_in_the_middle_of_a_frame() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    // Take the server's hello, so that closing sends a clean FIN (unread
    // data would make it a reset, which ends the link the same way).
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await.unwrap();
    let mut theirs = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut theirs).await.unwrap();
    let whole = frame(Kind::Heartbeat, &[]);
    stream.write_all(&100u32.to_be_bytes()).await.unwrap();
    stream.write_all(&whole[4..]).await.unwrap();
    drop(stream);
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::AbandonedByRemote);
    assert!(closed.note.contains("middle of a frame"), "{}", closed.note);
    still_serving(&at, &mut cx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_goes_stale() {
    let link = LinkOptions {
        heartbeat_every: Duration::from_millis(100),
        stale_after: Duration::from_millis(800),
        heartbeat_on_loopback: true,
        ..LinkOptions::default()
    };
    let (mut cx, at) = listener(ListenOptions::native().link(link)).await;
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    // Say nothing more (but keep the socket open): the link goes stale.
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::WentStale);
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_quiet_link_alive() {
    let link = LinkOptions {
        heartbeat_every: Duration::from_millis(50),
        stale_after: Duration::from_millis(1500),
        heartbeat_on_loopback: true,
        ..LinkOptions::default()
    };
    let (mut server, at) = listener(ListenOptions::native().link(link.clone())).await;
    let mut client = Context::detached("client");
    client.connect(at, ConnectOptions::native().link(link));
    let proxy = expect::<Connected>(&mut client).await.proxy;
    expect::<Accepted>(&mut server).await;
    // Quiet for twice the stale bound: heartbeats flow both ways, so nothing
    // closes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.send(5_i64, &proxy).unwrap();
    assert_eq!(expect::<i64>(&mut server).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_limit_is_refused_at_the_sender() {
    let link = LinkOptions {
        max_frame: 1024,
        ..LinkOptions::default()
    };
    let (mut server, at) = listener(ListenOptions::native().link(link.clone())).await;
    let mut client = Context::detached("client");
    client.connect(at, ConnectOptions::native().link(link));
    let proxy = expect::<Connected>(&mut client).await.proxy;
    expect::<Accepted>(&mut server).await;
    let big = "x".repeat(4096);
    match client.send(big.clone(), &proxy) {
        Err(crate::runtime::SendError::Unencodable(back)) => assert_eq!(back, big),
        other => panic!("expected Unencodable, got {other:?}"),
    }
    // The link is fine for messages that fit.
    client.send(String::from("small"), &proxy).unwrap();
    assert_eq!(expect::<String>(&mut server).await, "small");
}
