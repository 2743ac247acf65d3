//! Runtime figures, each next to a baseline measured in the same run.
//!
//! ```text
//! cargo bench -p layer-cake --bench runtime            # full run
//! cargo bench -p layer-cake --bench runtime -- --quick # smaller counts
//! ```
//!
//! - one-way messages between two actors vs. a raw bounded tokio mpsc
//!   between two tasks (same capacity);
//! - in-process ask round trip (p50/p99) vs. a raw request/oneshot round trip;
//! - spawning idle actors: rate, memory per actor, and a million of them.

use std::time::{Duration, Instant};

use layer_cake::runtime::{self, Context, SpawnOptions};
use layer_cake::{Stop, on};

const CAPACITY: usize = 1024;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

fn heap_bytes() -> f64 {
    counting::heap_bytes() as f64
}

struct Counts {
    one_way: u64,
    asks: usize,
    idle: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Memory is measured in a fresh process each time, so that one
    // measurement never reuses memory another one freed.
    if let Some(which) = args.iter().find_map(|a| a.strip_prefix("--idle-child=")) {
        let n: usize = args
            .iter()
            .find_map(|a| a.strip_prefix("--count="))
            .and_then(|n| n.parse().ok())
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let figures = match which {
            "actors" => rt.block_on(idle_actors(n)),
            _ => rt.block_on(idle_tokio_tasks(n)),
        };
        let line: Vec<String> = figures.iter().map(|f| f.to_string()).collect();
        println!("{}", line.join(" "));
        return;
    }
    if args.iter().any(|a| a == "--exp") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::spawn(async {
                let n = 1_000_000;
                let mut cx = Context::detached("exp");
                let t = Instant::now();
                let mut keep = Vec::with_capacity(n);
                for _ in 0..n {
                    keep.push(cx.spawn(|_cx: Context| async {}));
                }
                println!(
                    "spawn of instantly-ending actors: {:.0} k/s",
                    n as f64 / t.elapsed().as_secs_f64() / 1e3
                );
                drop(keep);
                let t = Instant::now();
                let mut keep = Vec::with_capacity(n);
                for _ in 0..n {
                    keep.push(tokio::spawn(async {}));
                }
                println!(
                    "raw spawn of empty tasks: {:.0} k/s",
                    n as f64 / t.elapsed().as_secs_f64() / 1e3
                );
                drop(keep);
                let t = Instant::now();
                for _ in 0..n {
                    cx.spawn(idle);
                }
                println!(
                    "spawn idle (2nd time, memory warm): {:.0} k/s",
                    n as f64 / t.elapsed().as_secs_f64() / 1e3
                );
            })
            .await
            .unwrap();
        });
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let counts = if quick {
        Counts {
            one_way: 1_000_000,
            asks: 20_000,
            idle: 100_000,
        }
    } else {
        Counts {
            one_way: 10_000_000,
            asks: 200_000,
            idle: 1_000_000,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "layer-cake runtime benchmark ({} cores, tokio multi-thread, 2 workers)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();

    // Best of three for each, alternating, so both see the same machine state.
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..3 {
        raw.push(rt.block_on(one_way_tokio(counts.one_way)));
        ours.push(rt.block_on(one_way_actors(counts.one_way)));
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (o, r) = (best(&ours), best(&raw));
    println!("one-way messages ({} per run, best of 3)", counts.one_way);
    println!(
        "  actors (send_wait -> input)      {:>8.2} M msg/s",
        o / 1e6
    );
    println!(
        "  raw tokio mpsc (bounded {CAPACITY})    {:>8.2} M msg/s",
        r / 1e6
    );
    println!(
        "  ratio                            {:>8.0} %",
        100.0 * o / r
    );
    println!();

    let mut ours = rt.block_on(ask_actors(counts.asks));
    let mut raw = rt.block_on(ask_tokio(counts.asks));
    println!("ask round trip ({} asks)", counts.asks);
    println!(
        "  actors  p50 {:>6.2} us  p99 {:>6.2} us",
        pct(&mut ours, 50.0),
        pct(&mut ours, 99.0)
    );
    println!(
        "  raw     p50 {:>6.2} us  p99 {:>6.2} us   (mpsc + oneshot)",
        pct(&mut raw, 50.0),
        pct(&mut raw, 99.0)
    );
    println!(
        "  ratio of p50s {:>5.2}",
        pct(&mut ours, 50.0) / pct(&mut raw, 50.0)
    );
    println!();

    let ours = idle_in_child("actors", counts.idle);
    let raw = idle_in_child("tokio", counts.idle);
    println!(
        "idle actors ({} held at once, each measured in a fresh process)",
        counts.idle
    );
    println!(
        "  spawn rate                       {:>8.0} k/s",
        ours[0] / 1e3
    );
    println!("  heap per idle actor              {:>8.0} bytes", ours[2]);
    println!("  resident memory per idle actor   {:>8.0} bytes", ours[1]);
    println!("  stop all + collect Returned      {:>8.2} s", ours[3]);
    println!("  raw tokio::spawn of a task parked on a oneshot:");
    println!(
        "    {:.0} k/s, heap {:.0} bytes, resident {:.0} bytes each",
        raw[0] / 1e3,
        raw[2],
        raw[1]
    );
}

fn idle_in_child(which: &str, n: usize) -> Vec<f64> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(format!("--idle-child={which}"))
        .arg(format!("--count={n}"))
        .output()
        .expect("run the benchmark's own child");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(
        v.len(),
        4,
        "child said {text:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p / 100.0) as usize]
}

async fn one_way_actors(n: u64) -> f64 {
    let receiver = runtime::spawn_with(
        SpawnOptions::new().capacity(CAPACITY),
        move |mut cx: Context| async move {
            let mut seen = 0u64;
            while seen < n {
                let m = cx.input().await;
                if m.is::<i64>() {
                    seen += 1;
                }
            }
            seen as i64
        },
    );
    let to = receiver.address().clone();
    let start = Instant::now();
    let sender = runtime::spawn(move |cx: Context| async move {
        for i in 0..n {
            cx.send_wait(i as i64, &to).await.expect("receiver alive");
        }
    });
    assert_eq!(receiver.join().await.unwrap(), n as i64);
    let elapsed = start.elapsed();
    sender.join().await.unwrap();
    n as f64 / elapsed.as_secs_f64()
}

async fn one_way_tokio(n: u64) -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
    let receiver = tokio::spawn(async move {
        let mut seen = 0u64;
        while seen < n {
            if rx.recv().await.is_some() {
                seen += 1;
            }
        }
        seen
    });
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
    });
    assert_eq!(receiver.await.unwrap(), n);
    let elapsed = start.elapsed();
    sender.await.unwrap();
    n as f64 / elapsed.as_secs_f64()
}

async fn ask_actors(n: usize) -> Vec<f64> {
    let echo = runtime::spawn(|mut cx: Context| async move {
        loop {
            let m = cx.input().await;
            on!(m, {
                i64 as v => { let _ = cx.reply(v); },
                Stop as _ => return,
                _other => {},
            })
        }
    });
    let to = echo.address().clone();
    let asker = runtime::spawn(move |mut cx: Context| async move {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let t = Instant::now();
            let v: i64 = cx
                .ask(i as i64, &to, Duration::from_secs(10))
                .await
                .unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(v, i as i64);
        }
        cx.send(Stop, &to).unwrap();
        samples
    });
    let samples = asker.join().await.unwrap();
    echo.join().await.unwrap();
    samples
}

async fn ask_tokio(n: usize) -> Vec<f64> {
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<(u64, tokio::sync::oneshot::Sender<u64>)>(CAPACITY);
    let echo = tokio::spawn(async move {
        while let Some((v, reply)) = rx.recv().await {
            let _ = reply.send(v);
        }
    });
    let asker = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let t = Instant::now();
            let (reply, answer) = tokio::sync::oneshot::channel();
            tx.send((i, reply)).await.unwrap();
            let v = tokio::time::timeout(Duration::from_secs(10), answer)
                .await
                .unwrap()
                .unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(v, i);
        }
        samples
    });
    let samples = asker.await.unwrap();
    echo.await.unwrap();
    samples
}

fn resident_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0
}

async fn idle(mut cx: Context) {
    loop {
        if cx.input().await.is::<Stop>() {
            return;
        }
    }
}

/// Spawns `n` idle children from one parent actor; returns (spawns/s, bytes
/// per actor, time to stop them all and collect every `Returned`).
async fn idle_actors(n: usize) -> Vec<f64> {
    let parent = runtime::spawn(move |mut cx: Context| async move {
        let (before, heap_before) = (resident_bytes(), heap_bytes());
        let start = Instant::now();
        for _ in 0..n {
            cx.spawn(idle);
        }
        let spawned = start.elapsed();
        // Let every task park so its memory is counted.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (after, heap_after) = (resident_bytes(), heap_bytes());
        assert_eq!(cx.working(), n);
        let start = Instant::now();
        cx.abort();
        while cx.working() > 0 {
            cx.input().await;
        }
        let rate = n as f64 / spawned.as_secs_f64();
        format!(
            "{rate} {} {} {}",
            (after - before) / n as f64,
            (heap_after - heap_before) / n as f64,
            start.elapsed().as_secs_f64()
        )
    });
    let line = parent.join().await.unwrap();
    line.split(' ').map(|x| x.parse().unwrap()).collect()
}

/// The same shape with bare tokio tasks, each parked on a oneshot, spawned
/// from a task.
async fn idle_tokio_tasks(n: usize) -> Vec<f64> {
    tokio::spawn(async move {
        let (before, heap_before) = (resident_bytes(), heap_bytes());
        let start = Instant::now();
        let mut stops = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            stops.push(tx);
            handles.push(tokio::spawn(async move {
                let _ = rx.await;
            }));
        }
        let spawned = start.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (after, heap_after) = (resident_bytes(), heap_bytes());
        drop(stops);
        for h in handles {
            h.await.unwrap();
        }
        vec![
            n as f64 / spawned.as_secs_f64(),
            (after - before) / n as f64,
            (heap_after - heap_before) / n as f64,
            0.0,
        ]
    })
    .await
    .unwrap()
}
