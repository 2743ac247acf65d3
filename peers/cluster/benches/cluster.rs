//! The network benchmark's workloads (`layer-cake/benches/network.rs`)
//! between two processes, through layer-cake's native link, ractor_cluster
//! and raw framed TCP, in one run (issue 12, item 3, second half).
//!
//! ```text
//! cd peers/cluster
//! cargo bench --bench cluster             # full run
//! cargo bench --bench cluster -- --quick  # smaller counts
//! ```
//!
//! Every case runs between two processes on one host: this process sends
//! and asks; the receiving side is a child process running this same
//! binary in a `--role=`, started once per transport for the whole run.
//! Both processes run a multi-threaded tokio runtime with 2 workers, as
//! network.rs does. One more row, "one process", runs the layer-cake case
//! the way network.rs does: sender and receiver in this process, on one
//! runtime, still over a native link on loopback TCP — the bridge to that
//! benchmark's figures.
//!
//! - **one-way**: `n` `i64`s to an actor in the other process; the clock
//!   runs from the first send until the sender has heard that the receiver
//!   counted the last one. Best of 3, the transports taking turns.
//!   - raw TCP: length-prefixed 8-byte frames through a `BufWriter`, read
//!     with tokio-util's `LengthDelimitedCodec` (network.rs's baseline); the
//!     reader writes one byte back after the `n`th frame.
//!   - layer-cake: `send_wait` from an actor to the peer's proxy over a
//!     native link (loopback TCP, and the abstract Unix socket that is the
//!     default on loopback); the receiver answers `true` to the `n`th
//!     (network.rs's actors).
//!   - ractor_cluster: `ActorRef::cast` from a task to the `RemoteActor`
//!     that stands for the receiver (found through a process group), two
//!     `NodeServer`s connected over loopback TCP, unencrypted; the clock
//!     stops when a `call` sent after the last cast returns the receiver's
//!     count (one node session is one ordered stream). ractor's mailboxes
//!     are unbounded: `cast` never waits.
//! - **ask**: sequential request/answer round trips of an `i64` to an echo
//!   actor in the other process, each under a 10 s deadline (`cx.ask`,
//!   ractor's `call`; raw TCP: a 12-byte frame ping-pong on one
//!   connection). After 1 000 unmeasured round trips, 3 repetitions taking
//!   turns; the median of the repetitions' p50s and of their p99s.

use std::io::BufRead;
use std::net::SocketAddr;
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

#[path = "../../../layer-cake/benches/support/child.rs"]
mod child;
#[path = "../../../layer-cake/benches/support/stats.rs"]
mod stats;

use child::Child;
use stats::pct;

/// The deadline every ask runs under (as in network.rs and peers/).
const DEADLINE: Duration = Duration::from_secs(10);
/// How long the end of a one-way run or a connection may take before the
/// benchmark fails, saying what it waited for.
const PATIENCE: Duration = Duration::from_secs(300);
/// Unmeasured round trips before each transport's asks.
const WARM_ASKS: usize = 1_000;

/// The ways across, in the order they are printed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Way {
    Raw,
    LayerCakeTcp,
    LayerCakeUnix,
    LayerCakeOneProcess,
    RactorCluster,
}

const ALL: [Way; 5] = [
    Way::Raw,
    Way::LayerCakeTcp,
    Way::LayerCakeUnix,
    Way::LayerCakeOneProcess,
    Way::RactorCluster,
];

impl Way {
    /// The name in `--only=` and `--role=`.
    fn key(self) -> &'static str {
        match self {
            Way::Raw => "raw",
            Way::LayerCakeTcp => "layer-cake",
            Way::LayerCakeUnix => "layer-cake-unix",
            Way::LayerCakeOneProcess => "layer-cake-1p",
            Way::RactorCluster => "ractor-cluster",
        }
    }

    /// The name in the tables.
    fn name(self) -> &'static str {
        match self {
            Way::Raw => "raw framed TCP",
            Way::LayerCakeTcp => "layer-cake native link, loopback TCP",
            Way::LayerCakeUnix => "layer-cake native link, Unix socket",
            Way::LayerCakeOneProcess => "layer-cake native link, loopback TCP, one process",
            Way::RactorCluster => "ractor_cluster, loopback TCP",
        }
    }

    fn from_key(key: &str) -> Option<Way> {
        ALL.into_iter().find(|w| w.key() == key)
    }
}

/// The receiving side of one way across — a child process, or for
/// [`Way::LayerCakeOneProcess`] an actor in this one — and how this
/// process reaches it.
struct Peer {
    way: Way,
    _child: Option<Child>,
    at: Target,
}

enum Target {
    Raw(SocketAddr),
    LayerCake(HostPort, Transport),
    Cluster(cluster::Remote),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(name).map(String::from))
    };
    let quick = args.iter().any(|a| a == "--quick");
    let (one_way, asks) = if quick {
        (200_000u64, 5_000usize)
    } else {
        (2_000_000, 50_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(role) = arg("--role=") {
        let n: u64 = arg("--n=")
            .and_then(|v| v.parse().ok())
            .expect("--n=COUNT with --role=");
        exit_with_parent();
        match Way::from_key(&role) {
            Some(Way::Raw) => rt.block_on(raw_role(n)),
            Some(Way::LayerCakeTcp) => rt.block_on(layer_cake_role(n, Transport::Tcp)),
            Some(Way::LayerCakeUnix) => rt.block_on(layer_cake_role(n, Transport::Unix)),
            Some(Way::RactorCluster) => rt.block_on(cluster::role()),
            Some(Way::LayerCakeOneProcess) | None => {
                panic!("--role={role}: expected raw, layer-cake, layer-cake-unix or ractor-cluster")
            }
        }
        return;
    }
    let ways: Vec<Way> = match arg("--only=") {
        Some(list) => list
            .split(',')
            .map(|k| {
                Way::from_key(k)
                    .expect("--only=raw,layer-cake,layer-cake-unix,layer-cake-1p,ractor-cluster")
            })
            .collect(),
        None => ALL.to_vec(),
    };
    let workloads = arg("--workloads=").unwrap_or_else(|| "one-way,ask".into());
    let workloads: Vec<&str> = workloads.split(',').collect();

    println!(
        "layer-cake network benchmark next to ractor_cluster: two processes on one host, \
         tokio multi-thread runtime with 2 workers in each"
    );
    println!("versions: {}", versions());
    println!("load average at start: {}", load_average());
    println!();

    let mut peers: Vec<Peer> = ways
        .iter()
        .map(|&way| start_peer(&rt, way, one_way))
        .collect();

    if workloads.contains(&"one-way") {
        let mut rates: Vec<(Way, f64)> = peers.iter().map(|p| (p.way, 0.0)).collect();
        for _ in 0..3 {
            for (peer, best) in peers.iter_mut().zip(rates.iter_mut()) {
                let rate = rt.block_on(one_way_run(&mut peer.at, one_way));
                best.1 = best.1.max(rate);
            }
        }
        one_way_table(
            &format!("one-way: {one_way} `i64`s per run, best of 3"),
            &rates,
        );
    }
    if workloads.contains(&"ask") {
        for peer in peers.iter_mut() {
            rt.block_on(ask_run(&mut peer.at, WARM_ASKS));
        }
        let mut reps: Vec<(Way, Vec<f64>, Vec<f64>)> = peers
            .iter()
            .map(|p| (p.way, Vec::new(), Vec::new()))
            .collect();
        for _ in 0..3 {
            for (peer, (_, p50s, p99s)) in peers.iter_mut().zip(reps.iter_mut()) {
                let mut samples = rt.block_on(ask_run(&mut peer.at, asks));
                p50s.push(pct(&mut samples, 50.0));
                p99s.push(pct(&mut samples, 99.0));
            }
        }
        let rows: Vec<(Way, f64, f64)> = reps
            .iter_mut()
            .map(|(w, p50s, p99s)| (*w, pct(p50s, 50.0), pct(p99s, 50.0)))
            .collect();
        ask_table(
            &format!(
                "ask round trip: {asks} sequential asks per repetition, median of 3 repetitions' p50 and p99"
            ),
            &rows,
        );
    }
    println!("load average at end: {}", load_average());
}

/// Starts the receiving side of `way` and connects to it.
fn start_peer(rt: &tokio::runtime::Runtime, way: Way, n: u64) -> Peer {
    if way == Way::LayerCakeOneProcess {
        // network.rs's arrangement: the receiver in this process, its
        // runtime shared with the sender; it lives as long as the runtime.
        let (_receiver, at) = rt.block_on(layer_cake_receiver(n, Transport::Tcp));
        return Peer {
            way,
            _child: None,
            at: Target::LayerCake(at, Transport::Tcp),
        };
    }
    let (child, first) = Child::start(child::this_bench(&[
        &format!("--role={}", way.key()),
        &format!("--n={n}"),
    ]));
    let at = match way {
        Way::Raw => Target::Raw(first.parse().expect("the raw peer's address")),
        Way::LayerCakeTcp | Way::LayerCakeOneProcess => {
            Target::LayerCake(first.parse().expect("a host:port"), Transport::Tcp)
        }
        Way::LayerCakeUnix => {
            Target::LayerCake(first.parse().expect("a host:port"), Transport::Unix)
        }
        Way::RactorCluster => Target::Cluster(rt.block_on(cluster::Remote::connect(&first))),
    };
    Peer {
        way,
        _child: Some(child),
        at,
    }
}

/// One one-way run of `n` messages to `at`; messages per second.
async fn one_way_run(at: &mut Target, n: u64) -> f64 {
    match at {
        Target::Raw(a) => one_way_raw(*a, n).await,
        Target::LayerCake(a, t) => one_way_layer_cake(a.clone(), *t, n).await,
        Target::Cluster(remote) => remote.one_way(n).await,
    }
}

/// `n` sequential asks to `at`; each round trip in microseconds.
async fn ask_run(at: &mut Target, n: usize) -> Vec<f64> {
    match at {
        Target::Raw(a) => ask_raw(*a, n).await,
        Target::LayerCake(a, t) => ask_layer_cake(a.clone(), *t, n).await,
        Target::Cluster(remote) => remote.ask(n).await,
    }
}

fn one_way_table(title: &str, rows: &[(Way, f64)]) {
    let of = |w: Way| rows.iter().find(|r| r.0 == w).map(|r| r.1);
    println!("{title}");
    println!();
    println!("| way across | k msg/s | vs raw TCP | vs ractor_cluster |");
    println!("|---|---:|---:|---:|");
    for &(way, rate) in rows {
        println!(
            "| {} | {:.0} | {} | {} |",
            way.name(),
            rate / 1e3,
            ratio(Some(rate), of(Way::Raw)),
            ratio(Some(rate), of(Way::RactorCluster)),
        );
    }
    println!();
    if let (Some(ours), Some(theirs)) = (of(Way::LayerCakeTcp), of(Way::RactorCluster)) {
        let x = ours / theirs;
        println!(
            "layer-cake (loopback TCP) one-way is {x:.1}x ractor_cluster's: target >= 15x {}",
            if x >= 15.0 { "met" } else { "MISSED" }
        );
        println!();
    }
}

fn ask_table(title: &str, rows: &[(Way, f64, f64)]) {
    let of = |w: Way| rows.iter().find(|r| r.0 == w).map(|r| r.1);
    println!("{title}");
    println!();
    println!("| way across | p50 µs | p99 µs | p50 vs raw TCP | p50 vs ractor_cluster |");
    println!("|---|---:|---:|---:|---:|");
    for &(way, p50, p99) in rows {
        println!(
            "| {} | {p50:.1} | {p99:.1} | {} | {} |",
            way.name(),
            ratio(Some(p50), of(Way::Raw)),
            ratio(Some(p50), of(Way::RactorCluster)),
        );
    }
    println!();
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

/// The locked versions of tokio and the peer, read from this package's
/// `Cargo.lock` so that the output says what was measured.
fn versions() -> String {
    let lock = include_str!("../Cargo.lock");
    let mut out = Vec::new();
    for name in ["tokio", "ractor", "ractor_cluster", "prost"] {
        let mut lines = lock.lines();
        while let Some(line) = lines.next() {
            if line == format!("name = \"{name}\"") {
                if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = ")) {
                    out.push(format!("{name} {}", v.trim_matches('"')));
                }
                break;
            }
        }
    }
    out.join(", ")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// In a child: ends the process when the benchmark closes its stdin (when
/// it ends, however it ends), so that no peer outlives it.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.lock().read_line(&mut line).is_ok_and(|read| read > 0) {
            line.clear();
        }
        std::process::exit(0);
    });
}

// ---------------------------------------------------------------- raw TCP

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(1 << 20)
        .new_codec()
}

/// The raw peer: per connection, a first byte says the case: `o` reads
/// `n` frames and writes one byte back, `a` echoes 12-byte frames.
async fn raw_role(n: u64) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap());
    loop {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        tokio::spawn(async move {
            let mut case = [0u8; 1];
            if stream.read_exact(&mut case).await.is_err() {
                return;
            }
            if case[0] == b'o' {
                let (read, mut write) = stream.into_split();
                let mut frames = FramedRead::new(read, codec());
                for _ in 0..n {
                    match frames.next().await {
                        Some(Ok(frame)) => {
                            std::hint::black_box(u64::from_le_bytes(frame[..8].try_into().unwrap()))
                        }
                        _ => return,
                    };
                }
                let _ = write.write_all(&[1]).await;
            } else {
                let mut frame = [0u8; 12];
                while stream.read_exact(&mut frame).await.is_ok() {
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

async fn raw_connect(at: SocketAddr, case: u8) -> TcpStream {
    let mut stream = TcpStream::connect(at).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(&[case]).await.unwrap();
    stream
}

async fn one_way_raw(at: SocketAddr, n: u64) -> f64 {
    // On a worker thread, like the actors.
    tokio::spawn(async move {
        let (mut read, write) = raw_connect(at, b'o').await.into_split();
        let start = Instant::now();
        let mut writer = BufWriter::with_capacity(256 * 1024, write);
        for i in 0..n {
            writer.write_all(&8u32.to_be_bytes()).await.unwrap();
            writer.write_all(&i.to_le_bytes()).await.unwrap();
        }
        writer.flush().await.unwrap();
        let mut done = [0u8; 1];
        tokio::time::timeout(PATIENCE, read.read_exact(&mut done))
            .await
            .expect("the raw peer's count within PATIENCE")
            .unwrap();
        n as f64 / start.elapsed().as_secs_f64()
    })
    .await
    .unwrap()
}

async fn ask_raw(at: SocketAddr, n: usize) -> Vec<f64> {
    // On a worker thread, like the actors.
    tokio::spawn(async move {
        let mut stream = raw_connect(at, b'a').await;
        let mut samples = Vec::with_capacity(n);
        let mut frame = [0u8; 12];
        for i in 0..n as u64 {
            let t = Instant::now();
            frame[..4].copy_from_slice(&8u32.to_be_bytes());
            frame[4..].copy_from_slice(&i.to_le_bytes());
            stream.write_all(&frame).await.unwrap();
            stream.read_exact(&mut frame).await.unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(frame[4..], i.to_le_bytes());
        }
        samples
    })
    .await
    .unwrap()
}

// ------------------------------------------------------------- layer-cake

/// The link settings for `transport`: the Unix socket (the default on
/// loopback) or TCP only.
fn link(transport: Transport) -> LinkOptions {
    LinkOptions::default().unix_socket(transport == Transport::Unix)
}

/// The layer-cake peer: network.rs's listener in a process of its own;
/// prints where it listens.
async fn layer_cake_role(n: u64, transport: Transport) {
    let (handle, at) = layer_cake_receiver(n, transport).await;
    println!("{at}");
    let _ = handle.join().await;
}

/// network.rs's listener: an actor listening on loopback over `transport`
/// that counts `i64`s and answers `true` to every `n`th, and echoes the
/// `i64`s it is asked; where it listens.
async fn layer_cake_receiver(n: u64, transport: Transport) -> (runtime::ActorHandle<()>, HostPort) {
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
                        if seen.is_multiple_of(n) {
                            let _ = cx.reply(true);
                        }
                    }
                },
                Stop as _ => return,
                _other => {},
            })
        }
    });
    (handle, rx.await.expect("the receiver's listening address"))
}

/// Connects to `at` over `transport`; the peer's proxy.
async fn connect(cx: &mut Context, at: HostPort, transport: Transport) -> layer_cake::Address {
    cx.connect(at, ConnectOptions::native().link(link(transport)));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, cx.input())
            .await
            .expect("Connected within PATIENCE");
        if let Ok(c) = message.downcast::<Connected>() {
            assert_eq!(c.transport, transport);
            break c.proxy;
        }
    }
}

async fn one_way_layer_cake(at: HostPort, transport: Transport, n: u64) -> f64 {
    let client = runtime::spawn(move |mut cx: Context| async move {
        let proxy = connect(&mut cx, at, transport).await;
        let start = Instant::now();
        for i in 0..n {
            cx.send_wait(i as i64, &proxy).await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let message = tokio::time::timeout_at(deadline, cx.input())
                .await
                .expect("the peer's count within PATIENCE");
            if message.is::<bool>() {
                break;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    });
    client.join().await.unwrap()
}

async fn ask_layer_cake(at: HostPort, transport: Transport, n: usize) -> Vec<f64> {
    let client = runtime::spawn(move |mut cx: Context| async move {
        let proxy = connect(&mut cx, at, transport).await;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as i64 {
            let t = Instant::now();
            let v: i64 = cx.ask(i, &proxy, DEADLINE).await.unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(v, i);
        }
        samples
    });
    client.join().await.unwrap()
}

// --------------------------------------------------------- ractor_cluster

/// ractor_cluster 0.16: two `NodeServer`s, one per process, connected over
/// loopback TCP without encryption (`IncomingEncryptionMode::Raw`, the
/// default); the receiver joins a process group, which the node session
/// reflects into this process as a `RemoteActor`.
mod cluster {
    use super::*;
    use ractor::rpc::CallResult;
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
    use ractor_cluster::{NodeServer, NodeServerMessage, RactorClusterMessage};

    /// The process group the receiver joins.
    const GROUP: &str = "layer-cake-bench";
    /// The nodes' shared secret (ractor_cluster's authentication).
    const COOKIE: &str = "layer-cake-bench";

    /// What the receiver takes: values to count, echoes, and its count.
    #[derive(RactorClusterMessage)]
    pub(super) enum SinkMsg {
        Value(i64),
        #[rpc]
        Echo(i64, RpcReplyPort<i64>),
        #[rpc]
        Seen(RpcReplyPort<u64>),
    }

    /// Counts values, echoes, and says how many it has counted.
    struct Sink;

    impl Actor for Sink {
        type Msg = SinkMsg;
        type State = u64;
        type Arguments = ();

        async fn pre_start(
            &self,
            myself: ActorRef<SinkMsg>,
            _: (),
        ) -> Result<u64, ActorProcessingErr> {
            ractor::pg::join(GROUP.to_string(), vec![myself.get_cell()]);
            Ok(0)
        }

        async fn handle(
            &self,
            _myself: ActorRef<SinkMsg>,
            message: SinkMsg,
            seen: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            match message {
                SinkMsg::Value(v) => {
                    std::hint::black_box(v);
                    *seen += 1;
                }
                SinkMsg::Echo(v, reply) => {
                    let _ = reply.send(v);
                }
                SinkMsg::Seen(reply) => {
                    let _ = reply.send(*seen);
                }
            }
            Ok(())
        }
    }

    /// A free loopback port: ractor_cluster's listener binds the port it is
    /// given, and does not say which one the system chose for port 0.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port()
    }

    /// A node named `name` listening on 127.0.0.1:`port`.
    fn node(name: &str, port: u16) -> NodeServer {
        NodeServer::new(
            port,
            COOKIE.to_string(),
            name.to_string(),
            "127.0.0.1".to_string(),
            None,
            None,
        )
        .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// The receiving node: a `NodeServer` and the receiver in its group;
    /// prints where the node listens.
    pub(super) async fn role() {
        let port = free_port();
        let (_server, server_handle) = Actor::spawn(None, node("receiver", port), ())
            .await
            .unwrap();
        let (_sink, _sink_handle) = Actor::spawn(None, Sink, ()).await.unwrap();
        println!("127.0.0.1:{port}");
        let _ = server_handle.await;
    }

    /// This process's node, connected to the receiver's.
    pub(crate) struct Remote {
        _server: ActorRef<NodeServerMessage>,
        sink: ActorRef<SinkMsg>,
        /// Values cast so far, to check the receiver's count against.
        sent: u64,
    }

    impl Remote {
        /// Starts a node here, connects it to the node at `at` and waits
        /// until the receiver shows up in the group as a remote actor.
        pub(crate) async fn connect(at: &str) -> Remote {
            let (server, _) = Actor::spawn(None, node("sender", free_port()), ())
                .await
                .unwrap();
            let deadline = Instant::now() + PATIENCE;
            // The receiver's listener binds after it printed its port.
            while let Err(e) = ractor_cluster::client_connect(&server, at).await {
                assert!(
                    Instant::now() < deadline,
                    "cannot connect to the ractor_cluster node at {at}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let sink = loop {
                let remote = ractor::pg::get_members(&GROUP.to_string())
                    .into_iter()
                    .find(|cell| !cell.get_id().is_local());
                if let Some(cell) = remote {
                    break ActorRef::<SinkMsg>::from(cell);
                }
                assert!(
                    Instant::now() < deadline,
                    "the remote receiver never joined {GROUP} here"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            Remote {
                _server: server,
                sink,
                sent: 0,
            }
        }

        pub(crate) async fn one_way(&mut self, n: u64) -> f64 {
            let sink = self.sink.clone();
            // On a worker thread, like the actors.
            let (rate, seen) = tokio::spawn(async move {
                let start = Instant::now();
                for i in 0..n {
                    sink.cast(SinkMsg::Value(i as i64))
                        .expect("the remote receiver alive");
                }
                let seen = match sink.call(SinkMsg::Seen, Some(PATIENCE)).await {
                    Ok(CallResult::Success(seen)) => seen,
                    Ok(_) => panic!("ractor_cluster: no count within PATIENCE"),
                    Err(e) => panic!("ractor_cluster: {e}"),
                };
                (n as f64 / start.elapsed().as_secs_f64(), seen)
            })
            .await
            .unwrap();
            self.sent += n;
            assert_eq!(seen, self.sent, "ractor_cluster lost messages");
            rate
        }

        pub(crate) async fn ask(&mut self, n: usize) -> Vec<f64> {
            let sink = self.sink.clone();
            // On a worker thread, like the actors.
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(n);
                for i in 0..n as i64 {
                    let t = Instant::now();
                    let v = match sink
                        .call(|reply| SinkMsg::Echo(i, reply), Some(DEADLINE))
                        .await
                    {
                        Ok(CallResult::Success(v)) => v,
                        Ok(_) => panic!("ractor_cluster ask timed out or was dropped"),
                        Err(e) => panic!("ractor_cluster: {e}"),
                    };
                    samples.push(t.elapsed().as_secs_f64() * 1e6);
                    assert_eq!(v, i);
                }
                samples
            })
            .await
            .unwrap()
        }
    }
}
