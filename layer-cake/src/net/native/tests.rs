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
use crate::{Address, Context, Message, Payload};

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
    );
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

/// A trace state that is not a valid W3C list (here: a key given twice)
/// is a broken frame, as an undecodable header is: the link closes, naming
/// it, and the listener serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_trace_state_closes_the_connection() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let to = their_controller(&mut stream).await;
    let mut body = Vec::new();
    Payload::new(7_i64).encode_binary(&mut body).unwrap();
    let header = MessageHeader {
        trace_state: Some("foo=1,foo=2"),
        ..request(to, Payload::new(7_i64).static_signature(), 1)
    };
    stream
        .write_all(&frame(Kind::Message(header), &body))
        .await
        .unwrap();
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::InboundStreaming);
    assert!(closed.note.contains("tracestate"), "{}", closed.note);
    still_serving(&at, &mut cx).await;
}

/// Reads one frame from a raw socket: its header and body. (The frame is
/// leaked, so that the header, which borrows from it, outlives the read:
/// a few frames per test.)
async fn read_frame(stream: &mut TcpStream) -> (Header<'static>, Vec<u8>) {
    let read = async {
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).await.unwrap();
        let mut bytes = vec![0u8; u32::from_be_bytes(length) as usize];
        stream.read_exact(&mut bytes).await.unwrap();
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let (header, body) = wire::split(bytes).unwrap();
        (header, body.to_vec())
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a frame within the deadline")
}

/// A request from a raw peer's actor 5 to `to`.
fn request(to: u64, signature: &str, id: u64) -> MessageHeader<'_> {
    MessageHeader {
        to: WireAddr::Yours(to),
        from: WireAddr::Mine(5),
        signature,
        tag: 1,
        request: id,
        trace: None,
        caller: None,
        trace_state: None,
        ingress: WireAddr::Null,
        book: vec![],
    }
}

/// A body that does not decode faults that one message — answered to its
/// sender when it was a request — and the link carries on: unknown types,
/// bodies that are not the type they claim, and the depth bombs of issue 11
/// (64 nested `Returned`, and 100 000 levels of a registered recursive type,
/// which used to overflow the reader's stack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_body_faults_that_message_not_the_link() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let to = their_controller(&mut stream).await;
    use crate::message::codec::binary::{MAX_DECODE_DEPTH, tests as codec};
    let bomb = codec::nested_returned(64);
    let deeper = codec::nested_returned(10_000);
    // A registered type that contains itself: 100 000 levels in as many
    // bytes, and one level over the bound.
    let tree = codec::tree_bomb(100_000);
    let list = codec::list_bomb(MAX_DECODE_DEPTH);
    let too_deep = format!("nested deeper than {MAX_DECODE_DEPTH} levels");
    let bad: [(&str, &[u8], &str); 6] = [
        (
            "NoSuchType",
            &[1, 2, 3],
            "unknown type signature \"NoSuchType\"",
        ),
        ("unicode", &[0xfb, 0xff, 0xff], "cannot decode unicode"),
        ("Returned", &bomb, "nested more than"),
        ("Returned", &deeper, "nested more than"),
        ("test.Tree", &tree, &too_deep),
        ("test.List", &list, &too_deep),
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
/// Sends `address` to the raw peer over its link (the way a peer is given
/// an actor it may then reach) and returns the id the peer got for it.
async fn give(stream: &mut TcpStream, cx: &mut Context, peer: &Address, address: &Address) -> u64 {
    their_controller(stream).await;
    cx.send(address.clone(), peer).unwrap();
    loop {
        let (header, _) = read_frame(stream).await;
        if let Kind::Message(m) = header.kind
            && m.signature == "address"
            && let [WireAddr::Mine(id)] = m.book[..]
        {
            return id;
        }
    }
}

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
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    let peer = expect::<Accepted>(&mut cx).await.proxy;
    let to = give(&mut stream, &mut cx, &peer, &echo).await;
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
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    let peer = expect::<Accepted>(&mut cx).await.proxy;
    let to = give(&mut stream, &mut cx, &peer, &echo).await;
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
    let link = link
        .clone()
        .into_any()
        .downcast::<super::Link>()
        .expect("a native link");
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
    let link = link
        .clone()
        .into_any()
        .downcast::<super::Link>()
        .expect("a native link");
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
                        signature: signatures[rng.random_range(0..signatures.len())],
                        tag: rng.random_range(0..4),
                        request: rng.random(),
                        trace: None,
                        caller: None,
                        trace_state: None,
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

/// Reads the server's hello: the id of its controlling actor on this link.
async fn their_controller(stream: &mut TcpStream) -> u64 {
    match read_frame(stream).await.0.kind {
        Kind::Hello { controller, .. } => controller,
        other => panic!("expected a hello, got {other:?}"),
    }
}

/// A message frame from the raw client, as `Mine(1)`.
fn message(to: u64, body: Payload, tag: u8, request: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    body.encode_binary(&mut bytes).unwrap();
    let header = MessageHeader {
        to: WireAddr::Yours(to),
        from: WireAddr::Mine(1),
        signature: body.static_signature(),
        tag,
        request,
        trace: None,
        caller: None,
        trace_state: None,
        ingress: WireAddr::Null,
        book: vec![],
    };
    frame(Kind::Message(header), &bytes)
}

/// Reads message frames until the answer to `request`; returns it.
async fn answer_to(stream: &mut TcpStream, request: u64) -> Payload {
    loop {
        let (header, body) = read_frame(stream).await;
        if let Kind::Message(m) = header.kind
            && m.tag == 2
            && m.request == request
        {
            return crate::message::codec::binary::decode_payload(m.signature, &body).unwrap();
        }
    }
}

/// The fault a refused request is answered with.
async fn refused(stream: &mut TcpStream, request: u64) -> crate::Faulted {
    let answer = answer_to(stream, request).await;
    let fault = answer
        .downcast::<crate::Faulted>()
        .unwrap_or_else(|p| panic!("expected a fault, got {}", p.signature()));
    assert_eq!(fault.condition, "not delivered");
    fault
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_to_a_guessed_id_is_refused_and_the_target_lives() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let controller = their_controller(&mut stream).await;
    // Every small number, the actor's own id in this process, and the id
    // its address has as JSON: none was given over this link.
    let json = crate::runtime::exports::export(cx.address().mailbox().unwrap());
    let mut guesses: Vec<u64> = (0..=64).collect();
    guesses.extend([cx.id().0, json, controller.wrapping_add(1)]);
    guesses.retain(|g| *g != controller);
    for (n, guess) in guesses.iter().enumerate() {
        let request = 1000 + n as u64;
        stream
            .write_all(&message(*guess, Payload::new(crate::Stop), 1, request))
            .await
            .unwrap();
        let fault = refused(&mut stream, request).await;
        let why = fault.explanation.unwrap_or_default();
        assert!(why.contains("not reachable over this link"), "{why}");
    }
    // The listener never saw a Stop and still serves; the link is still up
    // and reaches the one id it was given.
    assert!(!cx.address().is_closed());
    stream
        .write_all(&message(controller, Payload::new(7_i64), 0, 0))
        .await
        .unwrap();
    assert_eq!(expect::<i64>(&mut cx).await, 7);
    still_serving(&at, &mut cx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_given_over_one_link_is_refused_over_another() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut a = raw(&at).await;
    a.write_all(&hello()).await.unwrap();
    let on_a = expect::<Accepted>(&mut cx).await.proxy;
    let controller_a = their_controller(&mut a).await;
    let mut b = raw(&at).await;
    b.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let controller_b = their_controller(&mut b).await;
    assert_ne!(
        controller_a, controller_b,
        "each link names the listener anew"
    );

    // An actor whose address the listener sends over link A only.
    let worker = cx.spawn(|mut cx: Context| async move {
        loop {
            let message = cx.input().await;
            if message.is::<crate::Stop>() {
                return;
            }
            if let Ok(n) = message.downcast::<i64>() {
                let _ = cx.reply(n + 1);
            }
        }
    });
    cx.send(worker.clone(), &on_a).unwrap();
    let (header, body) = read_frame(&mut a).await;
    let Kind::Message(m) = header.kind else {
        panic!("expected a message")
    };
    assert_eq!(m.signature, "address");
    let index: u32 = crate::message::codec::binary::decode(&body).unwrap();
    let WireAddr::Mine(given) = m.book[index as usize] else {
        panic!("expected an id on A's side, got {:?}", m.book)
    };

    // Over B that id names nothing: a Stop to it is refused.
    b.write_all(&message(given, Payload::new(crate::Stop), 1, 5))
        .await
        .unwrap();
    let why = refused(&mut b, 5).await.explanation.unwrap_or_default();
    assert!(why.contains("not reachable over this link"), "{why}");
    assert!(!worker.is_closed());
    // Over A it reaches the worker.
    a.write_all(&message(given, Payload::new(41_i64), 1, 6))
        .await
        .unwrap();
    let answer = answer_to(&mut a, 6).await;
    assert_eq!(answer.downcast::<i64>().ok(), Some(42));
    cx.send(crate::Stop, &worker).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_answer_over_another_link_is_dropped_and_the_real_one_arrives() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut asked = raw(&at).await;
    asked.write_all(&hello()).await.unwrap();
    let proxy = expect::<Accepted>(&mut cx).await.proxy;
    let mine_on_asked = their_controller(&mut asked).await;
    let mut forger = raw(&at).await;
    forger.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let mine_on_forger = their_controller(&mut forger).await;

    // The listener asks the peer on the first link.
    let asking = tokio::spawn(async move {
        cx.ask::<i64, _>(5_i64, &proxy, PATIENCE)
            .await
            .map(|n| (n, cx))
    });
    let (header, _) = read_frame(&mut asked).await;
    let Kind::Message(request) = header.kind else {
        panic!("expected the request")
    };
    assert_eq!(request.tag, 1);
    assert_eq!(request.from, WireAddr::Mine(mine_on_asked));

    // Someone who learned the request id answers first, over its own link
    // (where the asker is reachable: the hello named it).
    forger
        .write_all(&message(
            mine_on_forger,
            Payload::new(666_i64),
            2,
            request.request,
        ))
        .await
        .unwrap();
    // A request after it on the same link: once its answer is back, the
    // forged answer has been handled.
    forger
        .write_all(&message(0, Payload::new(crate::Stop), 1, 77))
        .await
        .unwrap();
    refused(&mut forger, 77).await;
    // Also over the right link, an answer to a request never sent is refused.
    asked
        .write_all(&message(
            mine_on_asked,
            Payload::new(13_i64),
            2,
            request.request ^ 1,
        ))
        .await
        .unwrap();

    // The real answer still arrives and is the one the ask returns.
    asked
        .write_all(&message(
            mine_on_asked,
            Payload::new(10_i64),
            2,
            request.request,
        ))
        .await
        .unwrap();
    let (answer, mut cx) = tokio::time::timeout(PATIENCE, asking)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, 10);
    // Neither stray answer was delivered as a message either.
    cx.send(1_i64, &cx.address().clone()).unwrap();
    assert_eq!(expect::<i64>(&mut cx).await, 1);
}

/// A peer cannot pose as one of our actors (a `Yours` sender, an address it
/// was given) or as the runtime (a `Null` sender, as runtime events carry):
/// either arrives as the peer's anonymous remote address on its link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sends_only_as_itself() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut stream = raw(&at).await;
    stream.write_all(&hello()).await.unwrap();
    let peer = expect::<Accepted>(&mut cx).await.proxy;
    let to = their_controller(&mut stream).await;
    let mut body = Vec::new();
    crate::message::codec::binary::encode(&7_i64, &mut body).unwrap();
    for from in [WireAddr::Yours(to), WireAddr::Null] {
        let header = MessageHeader {
            from,
            tag: 0,
            ..request(to, "integer8", 0)
        };
        stream
            .write_all(&frame(Kind::Message(header), &body))
            .await
            .unwrap();
        assert_eq!(expect::<i64>(&mut cx).await, 7);
        let sender = cx.return_address().clone();
        assert!(sender.is_remote(), "{from:?} arrived as {sender}");
        assert_eq!(sender.link_id(), peer.link_id(), "{from:?}");
        assert_ne!(&sender, cx.address(), "{from:?} posed as the listener");
    }
}

/// A frame from the raw client to `to` carrying one address: its own
/// actor `Mine(id)`.
fn an_address_of_mine(to: u64, id: u64) -> Vec<u8> {
    let mut body = Vec::new();
    crate::message::codec::binary::encode(&0u32, &mut body).unwrap();
    let header = MessageHeader {
        to: WireAddr::Yours(to),
        from: WireAddr::Mine(1),
        signature: "address",
        tag: 0,
        request: 0,
        trace: None,
        caller: None,
        trace_state: None,
        ingress: WireAddr::Null,
        book: vec![WireAddr::Mine(id)],
    };
    frame(Kind::Message(header), &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_routes_are_capped_per_link_while_their_links_are_open() {
    let link = LinkOptions {
        max_relayed: 8,
        ..LinkOptions::default()
    };
    let (mut cx, at) = listener(ListenOptions::native().link(link)).await;
    let mut minter = raw(&at).await;
    minter.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let controller = their_controller(&mut minter).await;
    let mut other = raw(&at).await;
    other.write_all(&hello()).await.unwrap();
    let on_other = expect::<Accepted>(&mut cx).await.proxy;
    their_controller(&mut other).await;
    let drain = tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while matches!(other.read(&mut sink).await, Ok(n) if n > 0) {}
    });

    // The minter hands the listener addresses of twenty of its actors; the
    // listener passes each on over the other link, where each would be a
    // relayed route: eight fit, the ninth is refused.
    for id in 1..=20 {
        minter
            .write_all(&an_address_of_mine(controller, id))
            .await
            .unwrap();
    }
    let mut sent = 0;
    let mut refused = 0;
    for _ in 1..=20 {
        let address = expect::<Address>(&mut cx).await;
        match cx.send(address, &on_other) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert!(
                    matches!(e, crate::runtime::SendError::Unencodable(_)),
                    "{e:?}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((sent, refused), (8, 12));
    // Known routes still go; when the minter's link closes, its routes go
    // and there is room again.
    drop(minter);
    let closed = expect::<Closed>(&mut cx).await;
    assert_eq!(closed.reason, EndOfTransport::AbandonedByRemote);
    let mut third = raw(&at).await;
    third.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let controller = their_controller(&mut third).await;
    third
        .write_all(&an_address_of_mine(controller, 99))
        .await
        .unwrap();
    let address = expect::<Address>(&mut cx).await;
    cx.send(address, &on_other)
        .expect("room once the minter's routes are gone");
    drop(third);
    drain.abort();
}

/// A request sent over a link with a request context: cancelling the
/// context sends the peer a `Cancel` frame naming the request as its
/// header did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_is_cancelled_over_the_link() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut peer = raw(&at).await;
    peer.write_all(&hello()).await.unwrap();
    let proxy = expect::<Accepted>(&mut cx).await.proxy;
    their_controller(&mut peer).await;
    cx.set_meta(crate::runtime::Meta::default());
    let signal = cx.cancellation();
    let asking = tokio::spawn(async move { cx.ask::<i64, _>(5_i64, &proxy, PATIENCE).await });
    let Kind::Message(request) = read_frame(&mut peer).await.0.kind else {
        panic!("expected the request")
    };
    signal.cancel();
    match read_frame(&mut peer).await.0.kind {
        Kind::Cancel { from, request: id } => {
            assert_eq!((from, id), (request.from, request.request));
        }
        other => panic!("expected a cancel, got {other:?}"),
    }
    asking.abort();
}

/// A `Cancel` frame from the peer cancels the context of the request it
/// sent, as the actor holding it sees it; one for a request it never sent
/// (or from another of its actors) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_the_peer_reaches_the_actor_holding_the_request() {
    let (mut cx, at) = listener(ListenOptions::native()).await;
    let mut peer = raw(&at).await;
    peer.write_all(&hello()).await.unwrap();
    expect::<Accepted>(&mut cx).await;
    let controller = their_controller(&mut peer).await;
    let mut body = Vec::new();
    let three = Payload::new(3_i64);
    three.encode_binary(&mut body).unwrap();
    let mut header = request(controller, three.static_signature(), 41);
    header.trace = Some((7, 8, 1));
    peer.write_all(&frame(Kind::Message(header), &body))
        .await
        .unwrap();
    assert_eq!(expect::<i64>(&mut cx).await, 3);
    assert!(!cx.is_cancelled());
    let signal = cx.cancellation();
    for (from, id) in [(WireAddr::Mine(5), 40), (WireAddr::Mine(6), 41)] {
        peer.write_all(&frame(Kind::Cancel { from, request: id }, &[]))
            .await
            .unwrap();
    }
    peer.write_all(&frame(
        Kind::Cancel {
            from: WireAddr::Mine(5),
            request: 41,
        },
        &[],
    ))
    .await
    .unwrap();
    tokio::time::timeout(PATIENCE, signal.cancelled())
        .await
        .expect("cancelled");
    assert!(cx.is_cancelled());
}
