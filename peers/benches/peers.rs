//! The runtime benchmark's workloads through layer-cake and the frameworks
//! people would pick instead — ractor, kameo and actix — next to raw tokio,
//! in one run (issue 12, part 3).
//!
//! ```text
//! cd peers
//! cargo bench --bench peers             # full run
//! cargo bench --bench peers -- --quick  # smaller counts
//! ```
//!
//! The layer-cake and raw-tokio workloads are those of
//! `layer-cake/benches/runtime.rs` (same shapes, counts, capacity and
//! measurement), so their figures compare with that benchmark's; each peer
//! runs the same shape through its own public API:
//!
//! - **one-way**: a sender sends `n` `i64`s to an actor that counts them; the
//!   clock runs from the first send until the receiver has counted the last.
//! - **fan-in**: the same with [`FAN_IN`] senders, `n / FAN_IN` each.
//! - **ask**: `n` sequential request/reply round trips of an `i64` to an echo
//!   actor, each under a 10 s deadline; p50 and p99 of the samples.
//! - **idle actors**: spawn `n` actors that wait for a message, in a fresh
//!   child process per measurement: spawn rate, heap per actor (from the
//!   counting allocator the project's benchmarks share) and resident memory
//!   per actor (growth of RSS).
//!
//! Each figure is the median of several repetitions, the frameworks taking
//! turns within each repetition, after one unmeasured warm-up run of each.
//!
//! tokio-based frameworks (layer-cake, ractor, kameo, raw tokio) share one
//! multi-threaded tokio runtime with 2 worker threads. actix runs on its own
//! system: a `System` on the main thread (which only waits) and two
//! `Arbiter`s, i.e. two single-threaded tokio runtimes on two threads; the
//! receiver/echo actor lives on the first, the senders/asker on the second.
//! A second actix row puts both on one arbiter (one thread), the way actix
//! places actors by default.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use layer_cake::runtime::{self, SpawnOptions};
use layer_cake::{Stop, on};
use tokio::sync::oneshot;

/// The mailbox capacity of runtime.rs; used wherever a framework has one.
const CAPACITY: usize = 1024;
/// Senders in the fan-in workload: more than the 2 cores, so the receiver's
/// mailbox is contended, and a divisor of every message count used.
const FAN_IN: usize = 8;
/// The deadline every ask runs under (as in runtime.rs).
const DEADLINE: Duration = Duration::from_secs(10);

#[path = "../../layer-cake/benches/support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The frameworks measured, in the order they are printed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fw {
    Tokio,
    LayerCake,
    Ractor,
    Kameo,
    Actix,
    ActixOne,
}

const ALL: [Fw; 6] = [
    Fw::Tokio,
    Fw::LayerCake,
    Fw::Ractor,
    Fw::Kameo,
    Fw::Actix,
    Fw::ActixOne,
];

impl Fw {
    fn name(self) -> &'static str {
        match self {
            Fw::Tokio => "raw tokio",
            Fw::LayerCake => "layer-cake",
            Fw::Ractor => "ractor",
            Fw::Kameo => "kameo",
            Fw::Actix => "actix (2 arbiters; 1 for idle)",
            Fw::ActixOne => "actix (1 arbiter)",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Fw::Tokio => "tokio",
            Fw::LayerCake => "layer-cake",
            Fw::Ractor => "ractor",
            Fw::Kameo => "kameo",
            Fw::Actix => "actix",
            Fw::ActixOne => "actix-one",
        }
    }
    fn from_key(k: &str) -> Option<Fw> {
        ALL.into_iter().find(|f| f.key() == k)
    }
}

/// What runs the workloads: the shared tokio runtime and the actix system.
struct Bench {
    rt: tokio::runtime::Runtime,
    sys: actix::SystemRunner,
    /// Where actix's receiving actor lives.
    arb_a: actix::Arbiter,
    /// Where actix's senders / asker run in the two-arbiter configuration.
    arb_b: actix::Arbiter,
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Bench {
    fn new() -> Bench {
        let sys = actix::System::new();
        let (arb_a, arb_b) = sys.block_on(async { (actix::Arbiter::new(), actix::Arbiter::new()) });
        Bench {
            rt: tokio_runtime(),
            sys,
            arb_a,
            arb_b,
        }
    }

    /// The arbiters for actix's receiver and senders.
    fn arbiters(&self, fw: Fw) -> (actix::ArbiterHandle, actix::ArbiterHandle) {
        let a = self.arb_a.handle();
        let b = if fw == Fw::ActixOne {
            self.arb_a.handle()
        } else {
            self.arb_b.handle()
        };
        (a, b)
    }

    /// Messages per second, `n` messages from `senders` senders to one actor.
    fn one_way(&self, fw: Fw, n: u64, senders: usize) -> f64 {
        match fw {
            Fw::Tokio => self.rt.block_on(tokio_side::one_way(n, senders)),
            Fw::LayerCake => self.rt.block_on(cake::one_way(n, senders)),
            Fw::Ractor => self.rt.block_on(ractor_side::one_way(n, senders)),
            Fw::Kameo => self.rt.block_on(kameo_side::one_way(n, senders)),
            Fw::Actix | Fw::ActixOne => {
                let (a, b) = self.arbiters(fw);
                self.sys.block_on(actix_side::one_way(n, senders, a, b))
            }
        }
    }

    /// Round-trip samples in microseconds, `n` sequential asks.
    fn ask(&self, fw: Fw, n: usize) -> Vec<f64> {
        match fw {
            Fw::Tokio => self.rt.block_on(tokio_side::ask(n)),
            Fw::LayerCake => self.rt.block_on(cake::ask(n)),
            Fw::Ractor => self.rt.block_on(ractor_side::ask(n)),
            Fw::Kameo => self.rt.block_on(kameo_side::ask(n)),
            Fw::Actix | Fw::ActixOne => {
                let (a, b) = self.arbiters(fw);
                self.sys.block_on(actix_side::ask(n, a, b))
            }
        }
    }
}

struct Counts {
    one_way: u64,
    asks: usize,
    idle: usize,
    reps: usize,
    idle_reps: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(which) = args.iter().find_map(|a| a.strip_prefix("--idle-child=")) {
        let n: usize = args
            .iter()
            .find_map(|a| a.strip_prefix("--count="))
            .and_then(|n| n.parse().ok())
            .expect("--count=N");
        let fw = Fw::from_key(which).expect("a framework's key");
        let figures = idle_child(fw, n);
        let line: Vec<String> = figures.iter().map(|f| f.to_string()).collect();
        println!("{}", line.join(" "));
        // Leave without tearing a million actors down: nothing is measured
        // after this, and each measurement has a process of its own.
        std::process::exit(0);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let counts = if quick {
        Counts {
            one_way: 1_000_000,
            asks: 20_000,
            idle: 100_000,
            reps: 3,
            idle_reps: 1,
        }
    } else {
        Counts {
            one_way: 10_000_000,
            asks: 200_000,
            idle: 200_000,
            reps: 5,
            idle_reps: 3,
        }
    };
    let only: Option<Vec<Fw>> = args
        .iter()
        .find_map(|a| a.strip_prefix("--only="))
        .map(|l| {
            l.split(',')
                .map(|k| {
                    Fw::from_key(k).expect("--only=tokio,layer-cake,ractor,kameo,actix,actix-one")
                })
                .collect()
        });
    let fws: Vec<Fw> = ALL
        .into_iter()
        .filter(|f| only.as_ref().is_none_or(|o| o.contains(f)))
        .collect();
    let workloads: Vec<String> = args
        .iter()
        .find_map(|a| a.strip_prefix("--workloads="))
        .unwrap_or("one-way,fan-in,ask,idle")
        .split(',')
        .map(str::to_string)
        .collect();

    println!(
        "peer frameworks benchmark ({} cores; tokio multi-thread with 2 workers; actix: System + 2 Arbiters){}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick { " --quick" } else { "" }
    );
    println!("versions (from Cargo.lock): {}", versions());
    println!("load average at start: {}", load_average());
    println!();
    let bench = Bench::new();

    if workloads.iter().any(|w| w == "one-way") {
        let n = counts.one_way;
        let mut figures = repeat(&fws, counts.reps, |fw, warm| {
            bench.one_way(fw, if warm { n / 10 } else { n }, 1)
        });
        table(
            &format!(
                "one-way: {n} messages from one sender to one actor, median of {}",
                counts.reps
            ),
            "M msg/s",
            &figures
                .iter_mut()
                .map(|(f, v)| (*f, median(v) / 1e6))
                .collect::<Vec<_>>(),
        );
    }
    if workloads.iter().any(|w| w == "fan-in") {
        let n = counts.one_way;
        let mut figures = repeat(&fws, counts.reps, |fw, warm| {
            bench.one_way(fw, if warm { n / 10 } else { n }, FAN_IN)
        });
        table(
            &format!(
                "fan-in: {n} messages from {FAN_IN} senders ({} each) to one actor, median of {}",
                n / FAN_IN as u64,
                counts.reps
            ),
            "M msg/s",
            &figures
                .iter_mut()
                .map(|(f, v)| (*f, median(v) / 1e6))
                .collect::<Vec<_>>(),
        );
    }
    if workloads.iter().any(|w| w == "ask") {
        let n = counts.asks;
        let reps = counts.reps.min(3);
        let figures = repeat(&fws, reps, |fw, warm| {
            let mut s = bench.ask(fw, if warm { n / 10 } else { n });
            (pct(&mut s, 50.0), pct(&mut s, 99.0))
        });
        ask_table(
            &format!("ask round trip: {n} sequential asks, median of {reps}"),
            &figures,
        );
    }
    if workloads.iter().any(|w| w == "idle") {
        let n = counts.idle;
        let mut rows = Vec::new();
        // Memory is measured in a fresh process each time (as runtime.rs
        // does), so that no measurement reuses memory another freed.
        let mut all: Vec<(Fw, Vec<Vec<f64>>)> = fws.iter().map(|f| (*f, Vec::new())).collect();
        // Both actix rows would measure the same thing here: actors started
        // on one arbiter.
        all.retain(|(f, _)| *f != Fw::ActixOne);
        for _ in 0..counts.idle_reps {
            for (fw, v) in all.iter_mut() {
                v.push(idle_in_child(*fw, n));
            }
        }
        for (fw, v) in &all {
            let col = |i: usize| median(&mut v.iter().map(|x| x[i]).collect::<Vec<_>>());
            rows.push((*fw, col(0), col(1), col(2)));
        }
        idle_table(
            &format!(
                "idle actors: {n} held at once, each measurement in a fresh process, median of {}",
                counts.idle_reps
            ),
            &rows,
        );
    }
    println!("load average at end: {}", load_average());
}

/// The locked versions of tokio and the peers, read from this package's
/// `Cargo.lock` so that the output says what was measured.
fn versions() -> String {
    let lock = include_str!("../Cargo.lock");
    let mut out = Vec::new();
    for name in ["tokio", "ractor", "kameo", "actix", "actix-rt"] {
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

/// Runs `f` once per framework unmeasured (`warm` = true), then `reps`
/// times per framework, the frameworks taking turns within each repetition.
fn repeat<T>(fws: &[Fw], reps: usize, mut f: impl FnMut(Fw, bool) -> T) -> Vec<(Fw, Vec<T>)> {
    for &fw in fws {
        f(fw, true);
    }
    let mut out: Vec<(Fw, Vec<T>)> = fws.iter().map(|f| (*f, Vec::new())).collect();
    for _ in 0..reps {
        for (fw, v) in out.iter_mut() {
            v.push(f(*fw, false));
        }
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    pct(v, 50.0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p / 100.0) as usize]
}

fn find(rows: &[(Fw, f64)], fw: Fw) -> Option<f64> {
    rows.iter().find(|(f, _)| *f == fw).map(|(_, v)| *v)
}

fn ratio(x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}×", x / b),
        _ => "–".to_string(),
    }
}

/// One markdown table: each framework's figure and its ratio to raw tokio
/// and to layer-cake.
fn table(title: &str, unit: &str, rows: &[(Fw, f64)]) {
    println!("{title}");
    println!();
    println!("| framework | {unit} | vs raw tokio | vs layer-cake |");
    println!("|---|---:|---:|---:|");
    let raw = find(rows, Fw::Tokio);
    let cake = find(rows, Fw::LayerCake);
    for (fw, v) in rows {
        println!(
            "| {} | {:.2} | {} | {} |",
            fw.name(),
            v,
            ratio(*v, raw),
            ratio(*v, cake)
        );
    }
    println!();
}

/// The ask table: the medians, over the repetitions, of each one's p50 and p99.
fn ask_table(title: &str, figures: &[(Fw, Vec<(f64, f64)>)]) {
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for (fw, v) in figures {
        let mut a: Vec<f64> = v.iter().map(|x| x.0).collect();
        let mut b: Vec<f64> = v.iter().map(|x| x.1).collect();
        p50s.push((*fw, median(&mut a)));
        p99s.push((*fw, median(&mut b)));
    }
    println!("{title}");
    println!();
    println!("| framework | p50 µs | p99 µs | p50 vs raw tokio | p50 vs layer-cake |");
    println!("|---|---:|---:|---:|---:|");
    let raw = find(&p50s, Fw::Tokio);
    let cake = find(&p50s, Fw::LayerCake);
    for ((fw, p50), (_, p99)) in p50s.iter().zip(&p99s) {
        println!(
            "| {} | {:.2} | {:.2} | {} | {} |",
            fw.name(),
            p50,
            p99,
            ratio(*p50, raw),
            ratio(*p50, cake)
        );
    }
    println!();
}

fn idle_table(title: &str, rows: &[(Fw, f64, f64, f64)]) {
    println!("{title}");
    println!();
    println!(
        "| framework | spawn k/s | heap bytes/actor | resident bytes/actor | spawn vs raw tokio | spawn vs layer-cake | heap vs raw tokio | heap vs layer-cake |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let rates: Vec<(Fw, f64)> = rows.iter().map(|r| (r.0, r.1)).collect();
    let heaps: Vec<(Fw, f64)> = rows.iter().map(|r| (r.0, r.3)).collect();
    for (fw, rate, resident, heap) in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
            fw.name(),
            rate / 1e3,
            heap,
            resident,
            ratio(*rate, find(&rates, Fw::Tokio)),
            ratio(*rate, find(&rates, Fw::LayerCake)),
            ratio(*heap, find(&heaps, Fw::Tokio)),
            ratio(*heap, find(&heaps, Fw::LayerCake)),
        );
    }
    println!();
}

/// Runs this benchmark again as a child that measures `n` idle actors of
/// `fw`; returns (spawns/s, resident bytes per actor, heap bytes per actor).
fn idle_in_child(fw: Fw, n: usize) -> Vec<f64> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(format!("--idle-child={}", fw.key()))
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
        3,
        "{} child said {text:?} {}",
        fw.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

fn heap_bytes() -> f64 {
    counting::heap_bytes() as f64
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

/// Memory before spawning, for [`idle_figures`].
struct Before {
    resident: f64,
    heap: f64,
    start: Instant,
}

fn before() -> Before {
    Before {
        resident: resident_bytes(),
        heap: heap_bytes(),
        start: Instant::now(),
    }
}

/// (spawns/s, resident bytes per actor, heap bytes per actor), after the
/// spawned actors were given 500 ms to park.
async fn idle_figures(b: Before, spawned: Duration, n: usize) -> Vec<f64> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (after, heap_after) = (resident_bytes(), heap_bytes());
    let _ = b.start;
    vec![
        n as f64 / spawned.as_secs_f64(),
        (after - b.resident) / n as f64,
        (heap_after - b.heap) / n as f64,
    ]
}

fn idle_child(fw: Fw, n: usize) -> Vec<f64> {
    match fw {
        Fw::Tokio => tokio_runtime().block_on(tokio_side::idle(n)),
        Fw::LayerCake => tokio_runtime().block_on(cake::idle(n)),
        Fw::Ractor => tokio_runtime().block_on(ractor_side::idle(n)),
        Fw::Kameo => tokio_runtime().block_on(kameo_side::idle(n)),
        Fw::Actix | Fw::ActixOne => actix_side::idle(n),
    }
}

/// Raw tokio: bounded mpsc between tasks, a oneshot for the reply.
mod tokio_side {
    use super::*;

    pub(super) async fn one_way(n: u64, senders: usize) -> f64 {
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
        let per = n / senders as u64;
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..senders {
            let tx = tx.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per {
                    tx.send(i).await.unwrap();
                }
            }));
        }
        drop(tx);
        assert_eq!(receiver.await.unwrap(), n);
        let elapsed = start.elapsed();
        for h in handles {
            h.await.unwrap();
        }
        n as f64 / elapsed.as_secs_f64()
    }

    pub(super) async fn ask(n: usize) -> Vec<f64> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, oneshot::Sender<u64>)>(CAPACITY);
        let echo = tokio::spawn(async move {
            while let Some((v, reply)) = rx.recv().await {
                let _ = reply.send(v);
            }
        });
        let asker = tokio::spawn(async move {
            let mut samples = Vec::with_capacity(n);
            for i in 0..n as u64 {
                let t = Instant::now();
                let (reply, answer) = oneshot::channel();
                tx.send((i, reply)).await.unwrap();
                let v = tokio::time::timeout(DEADLINE, answer)
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

    /// Bare tokio tasks, each parked on a oneshot, spawned from a task.
    pub(super) async fn idle(n: usize) -> Vec<f64> {
        tokio::spawn(async move {
            let b = before();
            let mut stops = Vec::with_capacity(n);
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                let (tx, rx) = oneshot::channel::<()>();
                stops.push(tx);
                handles.push(tokio::spawn(async move {
                    let _ = rx.await;
                }));
            }
            let spawned = b.start.elapsed();
            let v = idle_figures(b, spawned, n).await;
            drop((stops, handles));
            v
        })
        .await
        .unwrap()
    }
}

/// layer-cake, exactly as in `layer-cake/benches/runtime.rs`.
mod cake {
    use super::*;
    use layer_cake::Context;

    pub(super) async fn one_way(n: u64, senders: usize) -> f64 {
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
        let per = n / senders as u64;
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..senders {
            let to = receiver.address().clone();
            handles.push(runtime::spawn(move |cx: Context| async move {
                for i in 0..per {
                    cx.send_wait(i as i64, &to).await.expect("receiver alive");
                }
            }));
        }
        assert_eq!(receiver.join().await.unwrap(), n as i64);
        let elapsed = start.elapsed();
        for h in handles {
            h.join().await.unwrap();
        }
        n as f64 / elapsed.as_secs_f64()
    }

    pub(super) async fn ask(n: usize) -> Vec<f64> {
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
                let v: i64 = cx.ask(i as i64, &to, DEADLINE).await.unwrap();
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

    async fn idle_actor(mut cx: Context) {
        loop {
            if cx.input().await.is::<Stop>() {
                return;
            }
        }
    }

    /// `n` idle children of one parent actor.
    pub(super) async fn idle(n: usize) -> Vec<f64> {
        let parent = runtime::spawn(move |mut cx: Context| async move {
            let b = before();
            for _ in 0..n {
                cx.spawn(idle_actor);
            }
            let spawned = b.start.elapsed();
            let v = idle_figures(b, spawned, n).await;
            assert_eq!(cx.working(), n);
            v
        });
        parent.join().await.unwrap()
    }
}

/// ractor 0.16: `cast` (its mailbox is unbounded: no capacity to set) and
/// `call` with a timeout.
mod ractor_side {
    use super::*;
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, rpc::CallResult};

    /// Counts `n` messages, then says so and stops.
    struct Counter;

    impl Actor for Counter {
        type Msg = i64;
        type State = (u64, u64, Option<oneshot::Sender<u64>>);
        type Arguments = (u64, oneshot::Sender<u64>);

        async fn pre_start(
            &self,
            _myself: ActorRef<i64>,
            (n, done): Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok((0, n, Some(done)))
        }

        async fn handle(
            &self,
            myself: ActorRef<i64>,
            _message: i64,
            state: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            state.0 += 1;
            if state.0 == state.1 {
                if let Some(done) = state.2.take() {
                    let _ = done.send(state.0);
                }
                myself.stop(None);
            }
            Ok(())
        }
    }

    pub(super) async fn one_way(n: u64, senders: usize) -> f64 {
        let (done, seen) = oneshot::channel();
        let (to, receiver) = Actor::spawn(None, Counter, (n, done)).await.unwrap();
        let per = n / senders as u64;
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..senders {
            let to = to.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per {
                    to.cast(i as i64).expect("receiver alive");
                }
            }));
        }
        assert_eq!(seen.await.unwrap(), n);
        let elapsed = start.elapsed();
        for h in handles {
            h.await.unwrap();
        }
        receiver.await.unwrap();
        n as f64 / elapsed.as_secs_f64()
    }

    enum EchoMsg {
        Ask(i64, RpcReplyPort<i64>),
    }

    struct Echo;

    impl Actor for Echo {
        type Msg = EchoMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<EchoMsg>,
            _: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<EchoMsg>,
            message: EchoMsg,
            _state: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            let EchoMsg::Ask(v, reply) = message;
            let _ = reply.send(v);
            Ok(())
        }
    }

    pub(super) async fn ask(n: usize) -> Vec<f64> {
        let (echo, echo_handle) = Actor::spawn(None, Echo, ()).await.unwrap();
        let to = echo.clone();
        let asker = tokio::spawn(async move {
            let mut samples = Vec::with_capacity(n);
            for i in 0..n as u64 {
                let t = Instant::now();
                let v = match to
                    .call(|reply| EchoMsg::Ask(i as i64, reply), Some(DEADLINE))
                    .await
                    .unwrap()
                {
                    CallResult::Success(v) => v,
                    _ => panic!("ractor ask timed out or was dropped"),
                };
                samples.push(t.elapsed().as_secs_f64() * 1e6);
                assert_eq!(v, i as i64);
            }
            samples
        });
        let samples = asker.await.unwrap();
        echo.stop(None);
        echo_handle.await.unwrap();
        samples
    }

    struct Idle;

    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _myself: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// `n` idle actors spawned from one task (ractor's `spawn` waits for
    /// each actor's `pre_start`), their references and join handles kept.
    pub(super) async fn idle(n: usize) -> Vec<f64> {
        tokio::spawn(async move {
            let b = before();
            let mut keep = Vec::with_capacity(n);
            for _ in 0..n {
                keep.push(Actor::spawn(None, Idle, ()).await.unwrap());
            }
            let spawned = b.start.elapsed();
            let v = idle_figures(b, spawned, n).await;
            drop(keep);
            v
        })
        .await
        .unwrap()
    }
}

/// kameo 0.22: `tell(..).await` into a bounded mailbox of the same
/// capacity, `ask(..).reply_timeout(..)`.
mod kameo_side {
    use super::*;
    use kameo::Actor;
    use kameo::actor::{ActorRef, Spawn};
    use kameo::error::Infallible;
    use kameo::mailbox;
    use kameo::message::{Context, Message};

    struct Counter {
        seen: u64,
        n: u64,
        done: Option<oneshot::Sender<u64>>,
    }

    impl Actor for Counter {
        type Args = Self;
        type Error = Infallible;

        async fn on_start(args: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(args)
        }
    }

    impl Message<i64> for Counter {
        type Reply = ();

        async fn handle(&mut self, _msg: i64, _ctx: &mut Context<Self, ()>) {
            self.seen += 1;
            if self.seen == self.n
                && let Some(done) = self.done.take()
            {
                let _ = done.send(self.seen);
            }
        }
    }

    pub(super) async fn one_way(n: u64, senders: usize) -> f64 {
        let (done, seen) = oneshot::channel();
        let to = Counter::spawn_with_mailbox(
            Counter {
                seen: 0,
                n,
                done: Some(done),
            },
            mailbox::bounded(CAPACITY),
        );
        let per = n / senders as u64;
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..senders {
            let to = to.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per {
                    to.tell(i as i64).await.expect("receiver alive");
                }
            }));
        }
        assert_eq!(seen.await.unwrap(), n);
        let elapsed = start.elapsed();
        for h in handles {
            h.await.unwrap();
        }
        to.kill();
        to.wait_for_shutdown().await;
        n as f64 / elapsed.as_secs_f64()
    }

    struct Echo;

    impl Actor for Echo {
        type Args = Self;
        type Error = Infallible;

        async fn on_start(args: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(args)
        }
    }

    impl Message<i64> for Echo {
        type Reply = i64;

        async fn handle(&mut self, msg: i64, _ctx: &mut Context<Self, i64>) -> i64 {
            msg
        }
    }

    pub(super) async fn ask(n: usize) -> Vec<f64> {
        let echo = Echo::spawn_with_mailbox(Echo, mailbox::bounded(CAPACITY));
        let to = echo.clone();
        let asker = tokio::spawn(async move {
            let mut samples = Vec::with_capacity(n);
            for i in 0..n as u64 {
                let t = Instant::now();
                let v = to.ask(i as i64).reply_timeout(DEADLINE).await.unwrap();
                samples.push(t.elapsed().as_secs_f64() * 1e6);
                assert_eq!(v, i as i64);
            }
            samples
        });
        let samples = asker.await.unwrap();
        echo.kill();
        echo.wait_for_shutdown().await;
        samples
    }

    struct Idle;

    impl Actor for Idle {
        type Args = Self;
        type Error = Infallible;

        async fn on_start(args: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(args)
        }
    }

    impl Message<()> for Idle {
        type Reply = ();

        async fn handle(&mut self, _msg: (), _ctx: &mut Context<Self, ()>) {}
    }

    /// `n` idle actors with kameo's default mailbox (bounded, 64), spawned
    /// from one task, their references kept.
    pub(super) async fn idle(n: usize) -> Vec<f64> {
        tokio::spawn(async move {
            let b = before();
            let mut keep = Vec::with_capacity(n);
            for _ in 0..n {
                keep.push(Idle::spawn(Idle));
            }
            let spawned = b.start.elapsed();
            let v = idle_figures(b, spawned, n).await;
            drop(keep);
            v
        })
        .await
        .unwrap()
    }
}

/// actix 0.13: `do_send` (always queued: actix has no one-way send that
/// waits for mailbox capacity) and `send(..).timeout(..)`.
mod actix_side {
    use super::*;
    use actix::{Actor, ArbiterHandle, Context, Handler};

    struct Num(i64);

    impl actix::Message for Num {
        type Result = ();
    }

    struct Counter {
        seen: u64,
        n: u64,
        done: Option<oneshot::Sender<u64>>,
    }

    impl Actor for Counter {
        type Context = Context<Self>;

        fn started(&mut self, ctx: &mut Context<Self>) {
            ctx.set_mailbox_capacity(CAPACITY);
        }
    }

    impl Handler<Num> for Counter {
        type Result = ();

        fn handle(&mut self, msg: Num, ctx: &mut Context<Self>) {
            let _: i64 = msg.0;
            self.seen += 1;
            if self.seen == self.n {
                if let Some(done) = self.done.take() {
                    let _ = done.send(self.seen);
                }
                actix::ActorContext::stop(ctx);
            }
        }
    }

    pub(super) async fn one_way(n: u64, senders: usize, a: ArbiterHandle, b: ArbiterHandle) -> f64 {
        let (done, seen) = oneshot::channel();
        let to = Counter::start_in_arbiter(&a, move |_| Counter {
            seen: 0,
            n,
            done: Some(done),
        });
        let per = n / senders as u64;
        let finished = Arc::new(AtomicU64::new(0));
        let (all_done, all_done_rx) = oneshot::channel::<()>();
        let all_done = Arc::new(std::sync::Mutex::new(Some(all_done)));
        let start = Instant::now();
        for _ in 0..senders {
            let to = to.clone();
            let finished = finished.clone();
            let all_done = all_done.clone();
            b.spawn(async move {
                for i in 0..per {
                    to.do_send(Num(i as i64));
                }
                if finished.fetch_add(1, Ordering::SeqCst) + 1 == senders as u64
                    && let Some(tx) = all_done.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
            });
        }
        assert_eq!(seen.await.unwrap(), n);
        let elapsed = start.elapsed();
        all_done_rx.await.unwrap();
        n as f64 / elapsed.as_secs_f64()
    }

    struct Ask(i64);

    impl actix::Message for Ask {
        type Result = i64;
    }

    struct Echo;

    impl Actor for Echo {
        type Context = Context<Self>;
    }

    impl Handler<Ask> for Echo {
        type Result = i64;

        fn handle(&mut self, msg: Ask, _ctx: &mut Context<Self>) -> i64 {
            msg.0
        }
    }

    pub(super) async fn ask(n: usize, a: ArbiterHandle, b: ArbiterHandle) -> Vec<f64> {
        let echo = Echo::start_in_arbiter(&a, |_| Echo);
        let (tx, rx) = oneshot::channel();
        b.spawn(async move {
            let mut samples = Vec::with_capacity(n);
            for i in 0..n as u64 {
                let t = Instant::now();
                let v = echo.send(Ask(i as i64)).timeout(DEADLINE).await.unwrap();
                samples.push(t.elapsed().as_secs_f64() * 1e6);
                assert_eq!(v, i as i64);
            }
            // Dropping the last address stops the echo actor.
            drop(echo);
            let _ = tx.send(samples);
        });
        rx.await.unwrap()
    }

    struct Idle;

    impl Actor for Idle {
        type Context = Context<Self>;
    }

    /// `n` idle actors started on one arbiter (the system's), their
    /// addresses kept.
    pub(super) fn idle(n: usize) -> Vec<f64> {
        let sys = actix::System::new();
        sys.block_on(async move {
            let b = before();
            let mut keep = Vec::with_capacity(n);
            for _ in 0..n {
                keep.push(Idle.start());
            }
            let spawned = b.start.elapsed();
            let v = idle_figures(b, spawned, n).await;
            drop(keep);
            v
        })
    }
}
