//! Remote messaging over loopback TCP, next to raw tokio TCP with the same
//! framing in the same run.
//!
//! ```text
//! cargo bench -p layer-cake --bench network            # full run
//! cargo bench -p layer-cake --bench network -- --quick # smaller counts
//! ```
//!
//! - one-way: an actor sends `i64`s with `send_wait` to an actor in the peer
//!   process role (over a native link on 127.0.0.1); the baseline writes the
//!   same number of length-prefixed 8-byte frames through a `BufWriter` and
//!   reads them with tokio-util's `LengthDelimitedCodec`;
//! - ask round trip: sequential `ask`s across the link; the baseline is a
//!   raw frame ping-pong on one TCP connection.
//! - same host: the same one-way and ask cases over the abstract Unix
//!   socket beside the listener (the default for a loopback link) next to
//!   loopback TCP (`LinkOptions::unix_socket(false)`), in the same run. The
//!   cases above use TCP, as they always have.
//!
//! For profiling, `-- --profile=one-way` or `-- --profile=ask` runs only the
//! actors' side of one case over loopback TCP, ten times the full count,
//! with nothing else in the process (e.g. under `perf stat`).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use layer_cake::net::{
    ConnectOptions, Connected, HostPort, LinkOptions, ListenOptions, Listening, Transport,
};
use layer_cake::runtime::{self, Context};
use layer_cake::{Stop, on};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

#[path = "support/stats.rs"]
mod stats;

use stats::pct;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (one_way, asks) = if quick {
        (200_000, 5_000)
    } else {
        (2_000_000, 50_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(case) =
        std::env::args().find_map(|a| a.strip_prefix("--profile=").map(String::from))
    {
        match case.as_str() {
            "one-way" => {
                let rate = rt.block_on(one_way_actors(10 * one_way, Transport::Tcp));
                println!("one-way {:.0} k msg/s", rate / 1e3);
            }
            "ask" => {
                let mut times = rt.block_on(ask_actors(10 * asks, Transport::Tcp));
                println!("ask p50 {:.1} us", pct(&mut times, 50.0));
            }
            other => eprintln!("--profile={other}: expected one-way or ask"),
        }
        return;
    }
    println!("layer-cake network benchmark (loopback TCP, tokio multi-thread, 2 workers)");
    println!();
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..3 {
        raw.push(rt.block_on(one_way_raw(one_way)));
        ours.push(rt.block_on(one_way_actors(one_way, Transport::Tcp)));
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (o, r) = (best(&ours), best(&raw));
    println!("one-way messages over a native link ({one_way} per run, best of 3)");
    println!(
        "  actors (send_wait -> input)      {:>8.0} k msg/s",
        o / 1e3
    );
    println!(
        "  raw tokio TCP, same framing      {:>8.0} k msg/s",
        r / 1e3
    );
    println!(
        "  ratio                            {:>8.0} %",
        100.0 * o / r
    );
    println!();
    let mut ours = rt.block_on(ask_actors(asks, Transport::Tcp));
    let mut raw = rt.block_on(ask_raw(asks));
    println!("ask round trip over a native link ({asks} asks)");
    println!(
        "  actors  p50 {:>7.1} us  p99 {:>7.1} us",
        pct(&mut ours, 50.0),
        pct(&mut ours, 99.0)
    );
    println!(
        "  raw     p50 {:>7.1} us  p99 {:>7.1} us   (frame ping-pong)",
        pct(&mut raw, 50.0),
        pct(&mut raw, 99.0)
    );
    println!();
    let mut unix = Vec::new();
    let mut tcp = Vec::new();
    for _ in 0..3 {
        tcp.push(rt.block_on(one_way_actors(one_way, Transport::Tcp)));
        unix.push(rt.block_on(one_way_actors(one_way, Transport::Unix)));
    }
    let (u, t) = (best(&unix), best(&tcp));
    println!(
        "same host: Unix-socket link vs loopback TCP link ({one_way} one-way per run, best of 3; {asks} asks)"
    );
    println!(
        "  one-way  Unix socket  {:>8.0} k msg/s   loopback TCP {:>8.0} k msg/s   ratio {:>4.0} %",
        u / 1e3,
        t / 1e3,
        100.0 * u / t
    );
    let mut unix = rt.block_on(ask_actors(asks, Transport::Unix));
    let mut tcp = rt.block_on(ask_actors(asks, Transport::Tcp));
    let (u50, t50) = (pct(&mut unix, 50.0), pct(&mut tcp, 50.0));
    println!(
        "  ask      Unix socket  p50 {:>6.1} us p99 {:>6.1} us   loopback TCP p50 {:>6.1} us p99 {:>6.1} us   p50 ratio {:.2}x",
        u50,
        pct(&mut unix, 99.0),
        t50,
        pct(&mut tcp, 99.0),
        u50 / t50
    );
}

/// The link settings for `transport`: the Unix socket (the default on
/// loopback) or TCP only.
fn link(transport: Transport) -> LinkOptions {
    LinkOptions::default().unix_socket(transport == Transport::Unix)
}

/// Connects to `at` over `transport`; the peer's proxy.
async fn connect(cx: &mut Context, at: HostPort, transport: Transport) -> layer_cake::Address {
    cx.connect(at, ConnectOptions::native().link(link(transport)));
    loop {
        if let Ok(c) = cx.input().await.downcast::<Connected>() {
            assert_eq!(c.transport, transport);
            break c.proxy;
        }
    }
}

/// A listening actor that counts `i64`s up to `n`, echoes them when asked,
/// and answers `true` once it has counted `n`.
async fn listener(n: u64, transport: Transport) -> (runtime::ActorHandle<()>, HostPort) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = runtime::spawn(move |mut cx: Context| async move {
        cx.listen(
            HostPort::new("127.0.0.1", 0),
            ListenOptions::native().link(link(transport)),
        );
        let mut seen = 0u64;
        let mut tx = Some(tx);
        loop {
            on!(cx.input().await, {
                Listening as l => { let _ = tx.take().map(|tx| tx.send(l.listening)); },
                i64 as v => {
                    if cx.request_id().is_some() {
                        let _ = cx.reply(v);
                    } else {
                        seen += 1;
                        if seen == n {
                            let _ = cx.reply(true);
                        }
                    }
                },
                Stop as _ => return,
                _other => {},
            })
        }
    });
    (handle, rx.await.unwrap())
}

async fn one_way_actors(n: u64, transport: Transport) -> f64 {
    let (server, at) = listener(n, transport).await;
    let client = runtime::spawn(move |mut cx: Context| async move {
        let proxy = connect(&mut cx, at, transport).await;
        let start = Instant::now();
        for i in 0..n {
            cx.send_wait(i as i64, &proxy).await.unwrap();
        }
        loop {
            if cx.input().await.is::<bool>() {
                break;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    });
    let rate = client.join().await.unwrap();
    server.address().send(Stop).unwrap();
    rate
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(1 << 20)
        .new_codec()
}

async fn one_way_raw(n: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut frames = FramedRead::new(stream, codec());
        let mut seen = 0u64;
        while seen < n {
            let frame = frames.next().await.unwrap().unwrap();
            std::hint::black_box(u64::from_le_bytes(frame[..8].try_into().unwrap()));
            seen += 1;
        }
    });
    // On a worker thread, like the actors.
    tokio::spawn(async move {
        let stream = TcpStream::connect(at).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let start = Instant::now();
        let mut writer = BufWriter::with_capacity(256 * 1024, stream);
        for i in 0..n {
            writer.write_all(&8u32.to_be_bytes()).await.unwrap();
            writer.write_all(&i.to_le_bytes()).await.unwrap();
        }
        writer.flush().await.unwrap();
        reader.await.unwrap();
        n as f64 / start.elapsed().as_secs_f64()
    })
    .await
    .unwrap()
}

async fn ask_actors(n: usize, transport: Transport) -> Vec<f64> {
    let (server, at) = listener(u64::MAX, transport).await;
    let client = runtime::spawn(move |mut cx: Context| async move {
        let proxy = connect(&mut cx, at, transport).await;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as i64 {
            let t = Instant::now();
            let v: i64 = cx.ask(i, &proxy, Duration::from_secs(10)).await.unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(v, i);
        }
        samples
    });
    let samples = client.join().await.unwrap();
    server.address().send(Stop).unwrap();
    samples
}

async fn ask_raw(n: usize) -> Vec<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut frame = [0u8; 12];
        while stream.read_exact(&mut frame).await.is_ok() {
            if stream.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    // On a worker thread, like the actors.
    tokio::spawn(async move {
        let mut stream = TcpStream::connect(at).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut samples = Vec::with_capacity(n);
        let mut frame = [0u8; 12];
        for i in 0..n as u64 {
            let t = Instant::now();
            frame[..4].copy_from_slice(&8u32.to_be_bytes());
            frame[4..].copy_from_slice(&i.to_le_bytes());
            stream.write_all(&frame).await.unwrap();
            stream.read_exact(&mut frame).await.unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        samples
    })
    .await
    .unwrap()
}
