//! Encrypted links between two hosts, next to plain links in the same run.
//!
//! ```text
//! sudo cargo bench -p layer-cake --bench secure            # full run
//! sudo cargo bench -p layer-cake --bench secure -- --quick # smaller counts
//! ```
//!
//! Two network namespaces joined by one veth pair stand for two hosts:
//! `10.77.0.1/24` and `10.77.0.2/24`, nothing else (the machine's own
//! network is never touched; both are removed at the end). A server process
//! in the first listens twice at 10.77.0.1: once with the LAN key (links are
//! encrypted and authenticated, Noise NNpsk0 with AES-GCM), once with the documented
//! opt-in `insecure_plaintext_off_host` (the plain link, as every link was
//! before the key). A client process in the second measures, alternating
//! between the two in one run:
//!
//! - one-way: `send_wait` of `i64`s over one link (best of 3 runs);
//! - ask round trip: sequential `ask`s, p50 and p99;
//! - a new link: from `connect` to `Connected` (TCP connect, the LAN
//!   handshake when secured, the native Hello), p50 and p99 over the connects.
//!
//! Without root (namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN) it says
//! SKIPPED and exits 0.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use layer_cake::net::{
    ConnectOptions, Connected, HostPort, LanKey, LinkOptions, ListenOptions, Listening,
    NotConnected,
};
use layer_cake::runtime::{self, Context};
use layer_cake::{Stop, on};

#[path = "support/child.rs"]
mod child;
#[path = "support/stats.rs"]
mod stats;

use child::Child;
use stats::pct;

const SERVER_IP: &str = "10.77.0.1";
const CLIENT_IP: &str = "10.77.0.2";
const SECURE_PORT: u16 = 7701;
const PLAIN_PORT: u16 = 7702;
/// The one-way sender's "that was all": answered with `true`.
const END: i64 = -1;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
    };
    let quick = args.iter().any(|a| a == "--quick");
    match flag("role").as_deref() {
        Some("server") => server(&PathBuf::from(flag("key").expect("--key"))),
        Some("client") => client(&PathBuf::from(flag("key").expect("--key")), quick),
        _ => coordinate(quick),
    }
}

/// Makes the two "hosts", runs the server in one and the client in the
/// other, prints the client's figures, and removes everything.
fn coordinate(quick: bool) {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED: the secure-link benchmark needs root (network namespaces)");
        return;
    }
    let stem = format!("lcb{}", std::process::id());
    let hosts = Hosts::make(&stem);
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("lan.key");
    LanKey::create(&key, false).unwrap();
    let exe = std::env::current_exe().unwrap();

    let mut server = Command::new("ip");
    server
        .args(["netns", "exec", &hosts.a])
        .arg(&exe)
        .arg("--role=server")
        .arg(format!("--key={}", key.display()));
    // Killed and reaped however `coordinate` ends.
    let (server, ready) = Child::start(server);
    assert_eq!(ready, "ready", "the server did not start");

    let mut client = Command::new("ip");
    client
        .args(["netns", "exec", &hosts.b])
        .arg(&exe)
        .arg("--role=client")
        .arg(format!("--key={}", key.display()));
    if quick {
        client.arg("--quick");
    }
    let status = client.status().expect("run the client");
    assert!(status.success(), "the client failed");
    drop(server);
    drop(hosts);
}

/// Two namespaces joined by a veth pair.
struct Hosts {
    a: String,
    b: String,
}

impl Hosts {
    fn make(stem: &str) -> Hosts {
        let hosts = Hosts {
            a: format!("{stem}-a"),
            b: format!("{stem}-b"),
        };
        ip(&["netns", "add", &hosts.a]);
        ip(&["netns", "add", &hosts.b]);
        ip(&[
            "-n", &hosts.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0",
            "netns", &hosts.b,
        ]);
        for (ns, address) in [(&hosts.a, SERVER_IP), (&hosts.b, CLIENT_IP)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "veth0",
            ]);
            ip(&["-n", ns, "link", "set", "veth0", "up"]);
        }
        hosts
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {} failed", args.join(" "));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn secure_options(key: &Path) -> LinkOptions {
    LinkOptions {
        lan_key: Some(LanKey::load(key).unwrap()),
        ..LinkOptions::default()
    }
}

fn plain_options() -> LinkOptions {
    LinkOptions {
        insecure_plaintext_off_host: true,
        ..LinkOptions::default()
    }
}

/// Listens secured and plain; counts one-way `i64`s, answers `true` to
/// [`END`], echoes asked `i64`s.
fn server(key: &Path) {
    let rt = runtime();
    rt.block_on(async {
        let mut listening = Vec::new();
        for (port, link) in [
            (SECURE_PORT, secure_options(key)),
            (PLAIN_PORT, plain_options()),
        ] {
            let (tx, rx) = tokio::sync::oneshot::channel();
            runtime::spawn(move |mut cx: Context| async move {
                cx.listen(
                    HostPort::new(SERVER_IP, port),
                    ListenOptions::native().link(link),
                );
                let mut tx = Some(tx);
                let mut seen = 0u64;
                loop {
                    on!(cx.input().await, {
                        Listening as _ => { let _ = tx.take().map(|tx| tx.send(())); },
                        i64 as v => {
                            if cx.request_id().is_some() {
                                let _ = cx.reply(v);
                            } else if v == END {
                                std::hint::black_box(seen);
                                let _ = cx.reply(true);
                            } else {
                                seen += 1;
                            }
                        },
                        Stop as _ => return,
                        _other => {},
                    })
                }
            });
            listening.push(rx);
        }
        for rx in listening {
            rx.await.expect("listening");
        }
        println!("ready");
        std::future::pending::<()>().await;
    });
}

/// Connects with `link` to `port`; the proxy, or the reason.
async fn connect(cx: &mut Context, port: u16, link: LinkOptions) -> layer_cake::Address {
    cx.connect(
        HostPort::new(SERVER_IP, port),
        ConnectOptions::native().link(link),
    );
    loop {
        let message = cx.input().await;
        if let Some(c) = message.downcast_ref::<Connected>() {
            return c.proxy.clone();
        }
        if let Some(n) = message.downcast_ref::<NotConnected>() {
            panic!("cannot connect: {}", n.reason);
        }
    }
}

async fn one_way(port: u16, link: LinkOptions, n: u64) -> f64 {
    let client = runtime::spawn(move |mut cx: Context| async move {
        let proxy = connect(&mut cx, port, link).await;
        let start = Instant::now();
        for i in 0..n {
            cx.send_wait(i as i64, &proxy).await.unwrap();
        }
        cx.send_wait(END, &proxy).await.unwrap();
        loop {
            if cx.input().await.is::<bool>() {
                break;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    });
    client.join().await.unwrap()
}

async fn asks(port: u16, link: LinkOptions, n: usize) -> Vec<f64> {
    let client = runtime::spawn(move |mut cx: Context| async move {
        let proxy = connect(&mut cx, port, link).await;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as i64 {
            let t = Instant::now();
            let v: i64 = cx.ask(i, &proxy, Duration::from_secs(10)).await.unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(v, i);
        }
        samples
    });
    client.join().await.unwrap()
}

/// `connect` to `Connected`, one new link (and one actor) per sample.
async fn new_links(port: u16, link: LinkOptions, n: usize) -> Vec<f64> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let link = link.clone();
        let took = runtime::spawn(move |mut cx: Context| async move {
            let t = Instant::now();
            connect(&mut cx, port, link).await;
            t.elapsed().as_secs_f64() * 1e6
        })
        .join()
        .await
        .unwrap();
        samples.push(took);
    }
    samples
}

fn client(key: &Path, quick: bool) {
    let (n_one_way, n_asks, n_links) = if quick {
        (200_000, 5_000, 200)
    } else {
        (1_000_000, 20_000, 500)
    };
    let secure = secure_options(key);
    let plain = plain_options();
    let rt = runtime();
    println!(
        "layer-cake secure-link benchmark: {CLIENT_IP} -> {SERVER_IP} across a veth pair between two network namespaces"
    );
    println!(
        "(tokio multi-thread, 2 workers in each process; secured = Noise_NNpsk0_25519_AESGCM_BLAKE2s)"
    );
    println!();
    let (mut s_rates, mut p_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        p_rates.push(rt.block_on(one_way(PLAIN_PORT, plain.clone(), n_one_way)));
        s_rates.push(rt.block_on(one_way(SECURE_PORT, secure.clone(), n_one_way)));
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (s, p) = (best(&s_rates), best(&p_rates));
    println!("one-way messages over one link ({n_one_way} per run, best of 3)");
    println!("  plain    {:>8.0} k msg/s", p / 1e3);
    println!("  secured  {:>8.0} k msg/s", s / 1e3);
    println!(
        "  secured / plain  {:>5.1} %   (target >= 70 %)",
        100.0 * s / p
    );
    println!();

    let mut p_asks = rt.block_on(asks(PLAIN_PORT, plain.clone(), n_asks));
    let mut s_asks = rt.block_on(asks(SECURE_PORT, secure.clone(), n_asks));
    let (p50p, p50s) = (pct(&mut p_asks, 50.0), pct(&mut s_asks, 50.0));
    println!("ask round trip ({n_asks} sequential asks)");
    println!(
        "  plain    p50 {:>7.1} us  p99 {:>7.1} us",
        p50p,
        pct(&mut p_asks, 99.0)
    );
    println!(
        "  secured  p50 {:>7.1} us  p99 {:>7.1} us",
        p50s,
        pct(&mut s_asks, 99.0)
    );
    println!(
        "  secured / plain p50  {:>5.2} x   (target <= 1.3 x)",
        p50s / p50p
    );
    println!();

    let mut p_links = rt.block_on(new_links(PLAIN_PORT, plain, n_links));
    let mut s_links = rt.block_on(new_links(SECURE_PORT, secure, n_links));
    println!("a new link, connect -> Connected ({n_links} connects each)");
    println!(
        "  plain    p50 {:>7.1} us  p99 {:>7.1} us",
        pct(&mut p_links, 50.0),
        pct(&mut p_links, 99.0)
    );
    println!(
        "  secured  p50 {:>7.1} us  p99 {:>7.1} us   (TCP connect + LAN handshake + Hello)",
        pct(&mut s_links, 50.0),
        pct(&mut s_links, 99.0)
    );
}
