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
async fn an_undecodable_header_closes_the_connection() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    // Garbage where a header should be: the framing is lost.
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
    still_serving(&at, &mut cx).await;
}

/// Reads one frame from a raw socket: its header and body.
async fn read_frame(stream: &mut TcpStream) -> (Header, Vec<u8>) {
    let read = async {
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).await.unwrap();
        let mut bytes = vec![0u8; u32::from_be_bytes(length) as usize];
        stream.read_exact(&mut bytes).await.unwrap();
        let (header, body) = wire::split(&bytes).unwrap();
        (header, body.to_vec())
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a frame within the deadline")
}

/// A request from a raw peer's actor 5 to `to`.
fn request(to: u64, signature: &str, id: u64) -> MessageHeader {
    MessageHeader {
        to: WireAddr::Yours(to),
        from: WireAddr::Mine(5),
        signature: signature.into(),
        tag: 1,
        request: id,
        trace: None,
        caller: None,
        ingress: WireAddr::Null,
        book: vec![],
    }
}

/// A body that does not decode faults that one message — answered to its
/// sender when it was a request — and the link carries on: unknown types,
/// bodies that are not the type they claim, and the depth bomb of issue 11
/// (64 nested `Returned`, which used to overflow the reader's stack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_body_faults_that_message_not_the_link() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let (theirs, _) = read_frame(&mut stream).await;
    assert!(matches!(theirs.kind, Kind::Hello { .. }), "{theirs:?}");
    let to = crate::runtime::exports::export(cx.address().mailbox().unwrap());
    let bomb = crate::message::codec::binary::tests::nested_returned(64);
    let deeper = crate::message::codec::binary::tests::nested_returned(10_000);
    let bad: [(&str, &[u8], &str); 4] = [
        (
            "NoSuchType",
            &[1, 2, 3],
            "unknown type signature \"NoSuchType\"",
        ),
        ("unicode", &[0xfb, 0xff, 0xff], "cannot decode unicode"),
        ("Returned", &bomb, "nested more than"),
        ("Returned", &deeper, "nested more than"),
    ];
    for (id, (signature, body, _)) in bad.iter().enumerate() {
        stream
            .write_all(&frame(
                Kind::Message(request(to, signature, id as u64 + 1)),
                body,
            ))
            .await
            .unwrap();
    }
    for (id, (_, _, needle)) in bad.iter().enumerate() {
        let (header, body) = read_frame(&mut stream).await;
        let Kind::Message(answer) = header.kind else {
            panic!("expected an answer, got {header:?}");
        };
        assert_eq!(
            (answer.to, answer.tag, answer.request),
            (WireAddr::Yours(5), 2, id as u64 + 1)
        );
        assert_eq!(answer.signature, "Faulted");
        let fault: crate::Faulted = crate::message::codec::binary::decode(&body).unwrap();
        let why = fault.explanation.unwrap_or_default();
        assert_eq!(fault.condition, "not delivered");
        assert!(
            why.contains("undecodable body") && why.contains(needle),
            "{why}"
        );
    }
    // The same link then carries a good request, and its answer.
    let mut body = Vec::new();
    crate::message::codec::binary::encode(&41_i64, &mut body).unwrap();
    stream
        .write_all(&frame(Kind::Message(request(to, "integer8", 9)), &body))
        .await
        .unwrap();
    assert_eq!(expect::<i64>(&mut cx).await, 41);
    cx.reply(42_i64).unwrap();
    let (header, body) = read_frame(&mut stream).await;
    let Kind::Message(answer) = header.kind else {
        panic!("expected an answer, got {header:?}");
    };
    assert_eq!((answer.tag, answer.request), (2, 9));
    assert_eq!(
        crate::message::codec::binary::decode::<i64>(&body).unwrap(),
        42
    );
    drop(stream);
    // Only now does the link close, because the peer went.
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::AbandonedByRemote);
}

/// Spawns an actor that answers every request with the request itself.
fn echo() -> crate::runtime::Address {
    crate::runtime::spawn(|mut cx: Context| async move {
        loop {
            let message = cx.input().await;
            if message.is::<crate::Stop>() {
                return;
            }
            let _ = cx.reply_payload(message);
        }
    })
    .address()
    .clone()
}

/// A raw peer that sends requests of `size` bytes to `to` and never reads
/// an answer, until the server hangs up or `total` bytes were sent.
async fn flood_without_reading(mut stream: TcpStream, to: u64, size: usize, total: usize) {
    let mut body = Vec::new();
    crate::message::codec::binary::encode(&"x".repeat(size), &mut body).unwrap();
    let mut sent = 0;
    let mut id = 0;
    while sent < total {
        id += 1;
        let bytes = frame(Kind::Message(request(to, "unicode", id)), &body);
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
        sent += bytes.len();
    }
    // Keep the socket open (and unread) until the server closes it.
    let _ = tokio::time::timeout(PATIENCE, async {
        let mut one = [0u8; 1];
        // Only to notice the end: nothing is read while flooding.
        let _ = stream.peek(&mut one).await;
        std::future::pending::<()>().await
    })
    .await;
}

/// A peer that never reads its answers pushes the send queue past its hard
/// bound: it is disconnected with a reason, and the server carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_is_cut_off_at_the_hard_bound() {
    let link = LinkOptions {
        send_queue_bytes: 64 * 1024,
        send_queue_hard_bytes: 256 * 1024,
        ..LinkOptions::default()
    };
    let (mut cx, at) = listener(ListenOptions::native().link(link)).await;
    let echo = echo();
    let to = crate::runtime::exports::export(echo.mailbox().unwrap());
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    // Far more answers than the socket buffers and the hard bound hold.
    let flood = tokio::spawn(flood_without_reading(stream, to, 16 * 1024, 256 << 20));
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::OutboundStreaming);
    assert!(
        closed.note.contains("not reading") && closed.note.contains("hard bound"),
        "{}",
        closed.note
    );
    flood.abort();
    still_serving(&at, &mut cx).await;
    let _ = echo.send(crate::Stop);
}

/// A peer that lets the queue sit over its soft bound (but under the hard
/// one) for longer than `stale_after` is cut off too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stays_over_the_soft_bound_is_cut_off() {
    let link = LinkOptions {
        send_queue_bytes: 64 * 1024,
        send_queue_hard_bytes: 512 << 20,
        stale_after: Duration::from_millis(500),
        ..LinkOptions::default()
    };
    let (mut cx, at) = listener(ListenOptions::native().link(link)).await;
    let echo = echo();
    let to = crate::runtime::exports::export(echo.mailbox().unwrap());
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    // More than the socket buffers hold, far less than the hard bound.
    let flood = tokio::spawn(flood_without_reading(stream, to, 16 * 1024, 48 << 20));
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::OutboundStreaming);
    assert!(
        closed.note.contains("waited to be sent for"),
        "{}",
        closed.note
    );
    flood.abort();
    still_serving(&at, &mut cx).await;
    let _ = echo.send(crate::Stop);
}

/// Sends of user messages are refused with `Full` at the soft bound, in
/// bytes, and the queue never holds much more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_sends_are_refused_at_the_soft_bound() {
    let link = LinkOptions {
        send_queue_bytes: 256 * 1024,
        ..LinkOptions::default()
    };
    // A server that says hello and then never reads.
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let (mut stream, _) = server.accept().await.unwrap();
        stream.write_all(&hello()).await.unwrap();
        std::future::pending::<()>().await;
        drop(stream);
    });
    let mut client = Context::detached("client");
    client.connect(
        HostPort::new("127.0.0.1", port),
        ConnectOptions::native().link(link),
    );
    let proxy = expect::<Connected>(&mut client).await.proxy;
    let crate::runtime::RouteRef::Remote(link, _) = proxy.route() else {
        panic!("a remote proxy");
    };
    let chunk = "y".repeat(32 * 1024);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let refused = loop {
        match client.send(chunk.clone(), &proxy) {
            // The queue never holds more than the bound and one frame.
            Ok(()) => assert!(
                link.queued_bytes() < 256 * 1024 + 33 * 1024,
                "{} bytes queued",
                link.queued_bytes()
            ),
            Err(crate::runtime::SendError::Full(back)) => break back,
            Err(other) => panic!("expected Full, got {other:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::task::yield_now().await;
    };
    assert_eq!(refused, chunk);
    silent.abort();
}

/// Asks over a link that time out leave nothing behind in the link's table
/// of requests awaiting an answer; requests that are never waited for are
/// swept once `outstanding_for` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_end_leave_no_outstanding_entries() {
    let link = LinkOptions {
        outstanding_for: Duration::from_millis(400),
        ..LinkOptions::default()
    };
    let (mut server, at) = listener(ListenOptions::native().link(link.clone())).await;
    let mut client = Context::detached("client");
    client.connect(at, ConnectOptions::native().link(link));
    let proxy = expect::<Connected>(&mut client).await.proxy;
    expect::<Accepted>(&mut server).await;
    let crate::runtime::RouteRef::Remote(link, _) = proxy.route() else {
        panic!("a remote proxy");
    };
    // The server never answers.
    for n in 0..200_i64 {
        let asked = client
            .ask::<i64, i64>(n, &proxy, Duration::from_millis(5))
            .await;
        assert!(
            matches!(asked, Err(crate::runtime::AskError::TimedOut)),
            "{asked:?}"
        );
    }
    assert_eq!(link.outstanding_len(), 0);
    // Requests sent without waiting stay until their answer or the sweep.
    for n in 0..100_i64 {
        client.request(n, &proxy).unwrap();
    }
    assert_eq!(link.outstanding_len(), 100);
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.request(-1_i64, &proxy).unwrap();
    assert_eq!(link.outstanding_len(), 1);
    // The late answers to the abandoned asks are discarded, not delivered.
    for _ in 0..300 {
        let _ = next(&mut server).await;
        server.reply(0_i64).unwrap();
    }
}

/// A long-lived owner that accepts many short connections keeps a short
/// list of watchers: each closed connection takes its own away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connections_leave_no_watchers_behind() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mailbox = cx.address().mailbox().unwrap().clone();
    let before = mailbox.watcher_count();
    for _ in 0..50 {
        let mut stream = raw(&at).await;
        stream.write_all(&hello()).await.unwrap();
        expect::<Accepted>(&mut cx).await;
        drop(stream);
        let closed = expect::<Closed>(&mut cx).await;
        assert_eq!(closed.reason, EndOfTransport::AbandonedByRemote);
    }
    // Closed is sent after the watcher is dropped.
    assert!(
        mailbox.watcher_count() <= before + 1,
        "{} watchers, {before} before",
        mailbox.watcher_count()
    );
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

/// The property the `link_reader` fuzz target checks, run in CI: streams of
/// well-formed, mutated and garbage frames through a real link reader end in
/// a refusal or a closed link, never a panic or a hang. (Addressed to an id
/// nobody has, so that the frames cannot reach other tests' actors.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_reader_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x11_4ead);
    let signatures = crate::message::registry::signatures();
    for _ in 0..150 {
        let mut stream = hello();
        for _ in 0..rng.random_range(0..6) {
            let body: Vec<u8> = (0..rng.random_range(0..40)).map(|_| rng.random()).collect();
            match rng.random_range(0..4) {
                // Garbage: a header that cannot be version 1.
                0 => {
                    let mut junk: Vec<u8> = body.clone();
                    junk.insert(0, rng.random_range(2..=255));
                    stream.extend_from_slice(&(junk.len() as u32).to_be_bytes());
                    stream.extend_from_slice(&junk);
                }
                kind => {
                    let header = MessageHeader {
                        to: WireAddr::Yours(u64::MAX - rng.random_range(0..4)),
                        from: WireAddr::Mine(rng.random_range(0..4)),
                        signature: signatures[rng.random_range(0..signatures.len())].into(),
                        tag: rng.random_range(0..4),
                        request: rng.random(),
                        trace: None,
                        caller: None,
                        ingress: WireAddr::Null,
                        book: (0..rng.random_range(0..3))
                            .map(|_| WireAddr::Mine(rng.random_range(0..4)))
                            .collect(),
                    };
                    let mut bytes = frame(Kind::Message(header), &body);
                    // Now and then a byte of the body flipped (not of the
                    // header: that could name another test's actor).
                    if kind == 3 && !body.is_empty() {
                        let at = rng.random_range(bytes.len() - body.len()..bytes.len());
                        bytes[at] ^= rng.random::<u8>() | 1;
                    }
                    stream.extend_from_slice(&bytes);
                }
            }
        }
        if rng.random_bool(0.2) {
            stream.truncate(rng.random_range(0..=stream.len()));
        }
        tokio::time::timeout(PATIENCE, super::link::read_stream(&stream))
            .await
            .expect("the reader ends");
    }
}
