//! Directory figures across real processes.
//!
//! ```text
//! cargo bench -p layer-cake --bench directory            # full run
//! cargo bench -p layer-cake --bench directory -- --quick # fewer rounds
//! ```
//!
//! The benchmark runs itself three ways: as a HOST directory node (a
//! process of its own, the same node host-cake runs), as a publisher process
//! driven by commands on its stdin, and as the subscriber (this process). It
//! measures, at the subscriber:
//!
//! - publish → `Available` (the publish command written to the publisher's
//!   stdin → `Available` received);
//! - `clear_published` → `Dropped`;
//! - the publisher actor returning normally → `Dropped`;
//! - the publisher process killed with SIGKILL → `Dropped`;
//! - with 10 000 publications and 1 000 regex subscriptions listed at the
//!   host node (in-process here, to count memory), a new publication →
//!   `Available`, and the heap those listings take.

use std::io::BufRead;
use std::time::{Duration, Instant};

use layer_cake::directory::{
    Available, DirectoryListing, Dropped, Inspect, NodeOptions, Published, Scope, Subscribed,
    spawn_node,
};
use layer_cake::net::{HostPort, Listening};
use layer_cake::{Address, Context, Stop, on};

#[path = "support/child.rs"]
mod child;
#[path = "support/counting.rs"]
mod counting;
#[path = "support/node.rs"]
mod node;
#[path = "support/stats.rs"]
mod stats;

use child::{Child, this_bench};
use node::{PATIENCE, expect, host_role};
use stats::pct;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// How long the scale setup may take to reach the host node: 11 000
/// listings on a loaded machine.
const SETUP_PATIENCE: Duration = Duration::from_secs(300);

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
    if let Some(host) = args
        .iter()
        .find_map(|a| a.strip_prefix("--role=publisher:"))
    {
        let host: HostPort = host.parse().unwrap();
        return rt.block_on(publisher_role(host));
    }
    let quick = args.iter().any(|a| a == "--quick");
    rt.block_on(subscriber(quick));
}

/// A publisher process: `publish NAME`, `clear`, `end` on stdin.
async fn publisher_role(host: HostPort) {
    let node = spawn_node(NodeOptions::new(Scope::Process).parent(host), Address::NULL);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    println!("ready");
    let mut actor: Option<(Address, tokio::sync::mpsc::UnboundedSender<String>)> = None;
    while let Some(line) = rx.recv().await {
        if actor.as_ref().is_none_or(|(a, _)| a.is_closed()) {
            let (to_actor, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
            let node = node.clone();
            let handle = layer_cake::runtime::spawn(move |mut cx: Context| async move {
                let mut last = None;
                while let Some(command) = commands.recv().await {
                    if let Some(name) = command.strip_prefix("publish ") {
                        cx.publish_at(&node, name.to_string(), Scope::Host);
                        last = Some(expect::<Published>(&mut cx).await.id);
                    } else if command == "clear" {
                        if let Some(id) = last.take() {
                            cx.clear_published_at(&node, id);
                        }
                    } else if command == "end" {
                        return;
                    }
                }
            });
            actor = Some((handle.address().clone(), to_actor));
        }
        if let Some((_, to_actor)) = &actor {
            let _ = to_actor.send(line);
        }
    }
}

/// Starts this benchmark's binary in `role`; its first line.
fn start(role: &str) -> (Child, String) {
    Child::start(this_bench(&[role]))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(label: &str, target: &str, v: &mut [f64]) {
    println!(
        "  {label:<46} p50 {:>7.3} ms  p99 {:>7.3} ms  (n={}, target {target})",
        pct(v, 50.0),
        pct(v, 99.0),
        v.len()
    );
}

async fn subscriber(quick: bool) {
    let rounds = if quick { 30 } else { 200 };
    let kills = if quick { 5 } else { 20 };
    println!(
        "layer-cake directory benchmark (subscriber, publisher and host node in three processes)"
    );
    let (_host, host_at) = start("--role=host");
    let host: HostPort = host_at.parse().unwrap();
    let node = spawn_node(
        NodeOptions::new(Scope::Process).parent(host.clone()),
        Address::NULL,
    );
    let mut cx = Context::detached("subscriber");
    cx.subscribe_at(&node, "bench:.*", Scope::Host);
    expect::<Subscribed>(&mut cx).await;

    let (mut publisher, _) = start(&format!("--role=publisher:{host}"));
    let mut available = Vec::new();
    let mut cleared = Vec::new();
    let mut ended = Vec::new();
    for i in 0..rounds {
        let t = publisher.say(&format!("publish bench:{i}"));
        expect::<Available>(&mut cx).await;
        available.push(ms(t.elapsed()));
        let t = if i % 2 == 0 {
            publisher.say("clear")
        } else {
            publisher.say("end")
        };
        expect::<Dropped>(&mut cx).await;
        if i % 2 == 0 {
            cleared.push(ms(t.elapsed()));
        } else {
            ended.push(ms(t.elapsed()));
        }
    }
    drop(publisher);

    let mut killed = Vec::new();
    for i in 0..kills {
        let (mut victim, _) = start(&format!("--role=publisher:{host}"));
        victim.say(&format!("publish bench:kill:{i}"));
        expect::<Available>(&mut cx).await;
        let t = Instant::now();
        victim.kill(); // SIGKILL
        expect::<Dropped>(&mut cx).await;
        killed.push(ms(t.elapsed()));
    }
    println!();
    println!("sessions between two processes through a HOST node");
    report("publish -> Available", "<= 2 ms", &mut available);
    report("clear_published -> Dropped", "<= 3 ms", &mut cleared);
    report(
        "publisher returns normally -> Dropped",
        "<= 10 ms",
        &mut ended,
    );
    report(
        "publisher killed with SIGKILL -> Dropped",
        "<= 3 ms",
        &mut killed,
    );

    scale(quick).await;
}

/// A host node holding 10 000 publications and 1 000 regex subscriptions.
async fn scale(quick: bool) {
    let (publications, subscriptions) = (10_000, 1_000);
    let probes = if quick { 20 } else { 100 };
    let before = counting::heap_bytes();
    let mut starter = Context::detached("starter");
    let host = spawn_node(
        NodeOptions::new(Scope::Host).accept_at(HostPort::new("127.0.0.1", 0)),
        starter.address().clone(),
    );
    let at = expect::<Listening>(&mut starter).await.listening;
    // Spread over two publisher processes and actors of at most 1 000
    // listings each: a node takes at most 1 000 listings from one actor and
    // 10 000 over one link (docs/directory.md, "Limits").
    let p_nodes: Vec<Address> = (0..2)
        .map(|_| {
            spawn_node(
                NodeOptions::new(Scope::Process).parent(at.clone()),
                Address::NULL,
            )
        })
        .collect();
    let s_node = spawn_node(NodeOptions::new(Scope::Process).parent(at), Address::NULL);
    let mut publishers: Vec<Context> = (0..publications / 1_000)
        .map(|_| Context::detached("publisher"))
        .collect();
    for i in 0..publications {
        publishers[i / 1_000].publish_at(
            &p_nodes[i / 1_000 % 2],
            format!("load:{i:05}:{}", i * 7919 % 10_007),
            Scope::Host,
        );
    }
    let p_node = p_nodes[0].clone();
    let mut publisher = Context::detached("publisher");
    let mut subscriber = Context::detached("subscriber");
    let mut others = Context::detached("subscriber");
    for i in 0..subscriptions {
        let who = if i % 2 == 0 {
            &mut subscriber
        } else {
            &mut others
        };
        who.subscribe_at(&s_node, format!("nomatch:{i}:[a-z]+"), Scope::Host);
    }
    subscriber.subscribe_at(&s_node, "probe:[0-9]+", Scope::Host);
    // Wait until the host node holds them all.
    let mut inspector = Context::detached("inspector");
    let deadline = Instant::now() + SETUP_PATIENCE;
    loop {
        let listing: DirectoryListing = inspector
            .ask(Inspect::default(), &host, PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("the host node did not answer Inspect: {e}"));
        if listing.published.len() == publications && listing.subscribed.len() == subscriptions + 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the host node did not come to hold {publications} publications and {} subscriptions within {SETUP_PATIENCE:?} (it holds {} and {})",
            subscriptions + 1,
            listing.published.len(),
            listing.subscribed.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let heap = counting::heap_bytes() - before;
    let mut matched = Vec::new();
    for k in 0..probes {
        let t = Instant::now();
        let name = format!("probe:{k}");
        publisher.publish_at(&p_node, name.clone(), Scope::Host);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let message = tokio::time::timeout_at(deadline, subscriber.input())
                .await
                .unwrap_or_else(|_| panic!("no Available for {name} within {PATIENCE:?}"));
            on!(message, {
                Available as a => if a.name == name { break },
                _other => {},
            })
        }
        matched.push(ms(t.elapsed()));
    }
    println!();
    println!(
        "a host node holding {publications} publications and {} regex subscriptions",
        subscriptions + 1
    );
    report("new publication -> Available", "<= 5 ms", &mut matched);
    println!(
        "  heap for the whole setup (every node's copies of the listings, connections): {:.1} MiB, {:.0} bytes per listing",
        heap as f64 / (1 << 20) as f64,
        heap as f64 / (publications + subscriptions) as f64
    );
    for node in [host, p_nodes[0].clone(), p_nodes[1].clone(), s_node] {
        let _ = node.send(Stop);
    }
}
