//! A slow-reader flood against a directory daemon (issue 11, part 4).
//!
//! ```text
//! cargo bench -p layer-cake --bench flood                  # 30 s of flood
//! cargo bench -p layer-cake --bench flood -- --seconds=5   # shorter
//! ```
//!
//! The benchmark starts itself as a HOST directory node in a process of its
//! own (the node host-cake runs, behind a native listener on an ephemeral
//! loopback port). Then, for the given time, a raw TCP client floods it with
//! `Inspect` requests built byte for byte in the wire format, and never
//! reads an answer; whenever the daemon cuts it off, it connects again. A
//! well-behaved client asks `Inspect` over its own link every 10 ms. It
//! reports the daemon's resident memory (from `/proc`) before, at its peak
//! and after the flood, how often the flooder was cut off, and the
//! well-behaved client's ask latency (p50, p99, max) quiet and under flood.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use layer_cake::Context;
use layer_cake::directory::{DirectoryListing, Inspect};
use layer_cake::net::native::raw;
use layer_cake::net::{ConnectOptions, Connected, HostPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/child.rs"]
mod child;
#[path = "support/node.rs"]
mod node;

use child::{Child, this_bench};
use node::{expect, host_role};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if args.iter().any(|a| a == "--role=host") {
        return rt.block_on(host_role());
    }
    let seconds = args
        .iter()
        .find_map(|a| a.strip_prefix("--seconds="))
        .map_or(30, |s| s.parse().expect("--seconds=N"));
    rt.block_on(flood(Duration::from_secs(seconds)));
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    format!(
        "n={} p50={:.2?} p99={:.2?} max={:.2?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    )
}

/// Asks `Inspect` every 10 ms until `stop`; the latencies, and how many
/// asks failed.
async fn well_behaved(
    cx: &mut Context,
    proxy: &layer_cake::Address,
    stop: Instant,
) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    while Instant::now() < stop {
        let started = Instant::now();
        match cx
            .ask::<DirectoryListing, Inspect>(Inspect::default(), proxy, Duration::from_secs(5))
            .await
        {
            Ok(_) => latencies.push(started.elapsed()),
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (latencies, failed)
}

/// Connects again and again until `stop`, each time sending `Inspect`
/// requests as fast as the daemon takes them and never reading.
async fn flooder(
    at: HostPort,
    stop: Instant,
    sent: Arc<AtomicU64>,
    cut_off: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
) {
    while Instant::now() < stop {
        let Ok(mut stream) = tokio::net::TcpStream::connect((at.host.as_str(), at.port)).await
        else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // The daemon's hello names its node: that is who is asked.
        let mut length = [0u8; 4];
        if stream.read_exact(&mut length).await.is_err() {
            continue;
        }
        let mut hello = vec![0u8; u32::from_be_bytes(length) as usize];
        if stream.read_exact(&mut hello).await.is_err() {
            continue;
        }
        let Some(node) = raw::hello_controller(&hello) else {
            continue;
        };
        if stream.write_all(&raw::hello(1)).await.is_err() {
            continue;
        }
        let mut id = 0;
        let mut batch = Vec::new();
        loop {
            batch.clear();
            for _ in 0..1000 {
                id += 1;
                batch.extend_from_slice(&raw::request(node, 1, id, &Inspect::default()).unwrap());
            }
            let write = tokio::time::timeout_at(stop.into(), stream.write_all(&batch)).await;
            match write {
                Ok(Ok(())) => {
                    sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Ok(Err(_)) => {
                    cut_off.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(_) => break,
            }
        }
    }
    done.store(true, Ordering::Release);
}

async fn flood(length: Duration) {
    let mut command = this_bench(&["--role=host"]);
    command.stderr(Stdio::null());
    // The daemon process, killed when dropped (also when the bench panics).
    let (daemon, first) = Child::start(command);
    let pid = daemon.id();
    let at: HostPort = first.parse().unwrap();

    let mut cx = Context::detached("client");
    cx.connect(at.clone(), ConnectOptions::native());
    let proxy = expect::<Connected>(&mut cx).await.proxy;
    // Warm up, then the quiet figures.
    well_behaved(&mut cx, &proxy, Instant::now() + Duration::from_secs(1)).await;
    let (quiet, quiet_failed) =
        well_behaved(&mut cx, &proxy, Instant::now() + Duration::from_secs(3)).await;
    let before = rss_kib(pid);

    let stop = Instant::now() + length;
    let sent = Arc::new(AtomicU64::new(0));
    let cut_off = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn(flooder(
        at,
        stop,
        sent.clone(),
        cut_off.clone(),
        done.clone(),
    ));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        let done = done.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (flooded, flooded_failed) = well_behaved(&mut cx, &proxy, stop).await;
    let _ = flood.await;
    let _ = sampler.await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let peak = peak.load(Ordering::Relaxed);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("flood: {length:?} of Inspect requests from a client that never reads");
    println!(
        "  sent {:.1} MiB of requests; the daemon cut the flooder off {} times",
        sent.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
        cut_off.load(Ordering::Relaxed)
    );
    println!(
        "  daemon RSS: before {:.1} MiB, peak {:.1} MiB (+{:.1}), after {:.1} MiB (+{:.1})",
        mib(before),
        mib(peak),
        mib(peak.saturating_sub(before)),
        mib(after),
        mib(after.saturating_sub(before))
    );
    println!(
        "  well-behaved ask, quiet:       {} failed={quiet_failed}",
        summary(quiet)
    );
    println!(
        "  well-behaved ask, under flood: {} failed={flooded_failed}",
        summary(flooded)
    );
    drop(daemon);
}
