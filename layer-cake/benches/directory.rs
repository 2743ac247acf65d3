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

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use layer_cake::directory::{
    Available, DirectoryListing, Dropped, Inspect, NodeOptions, Published, Scope, Subscribed,
    spawn_node,
};
use layer_cake::net::{HostPort, Listening};
use layer_cake::{Address, Context, Message, Stop, on};

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

const PATIENCE: Duration = Duration::from_secs(20);

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

/// A HOST node in a process of its own; prints where it listens.
async fn host_role() {
    let mut cx = Context::detached("host");
    let _node = spawn_node(
        NodeOptions::new(Scope::Host).accept_at(HostPort::new("127.0.0.1", 0)),
        cx.address().clone(),
    );
    let at = expect::<Listening>(&mut cx).await.listening;
    println!("{at}");
    std::future::pending::<()>().await;
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

async fn expect<M: Message>(cx: &mut Context) -> M {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, cx.input())
            .await
            .unwrap_or_else(|_| panic!("no {} in time", layer_cake::message::signature_of::<M>()));
        if let Ok(m) = message.downcast::<M>() {
            return m;
        }
    }
}

struct Child_ {
    child: Child,
    stdin: std::process::ChildStdin,
}

impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(role: &str) -> (Child_, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (Child_ { child, stdin }, first.trim().to_string())
}

impl Child_ {
    fn say(&mut self, line: &str) -> Instant {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        Instant::now()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p / 100.0) as usize]
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
        let _ = victim.child.kill(); // SIGKILL
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
    loop {
        let listing: DirectoryListing = inspector
            .ask(Inspect::default(), &host, PATIENCE)
            .await
            .unwrap();
        if listing.published.len() == publications && listing.subscribed.len() == subscriptions + 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let heap = counting::heap_bytes() - before;
    let mut matched = Vec::new();
    for k in 0..probes {
        let t = Instant::now();
        publisher.publish_at(&p_node, format!("probe:{k}"), Scope::Host);
        loop {
            let message = tokio::time::timeout(PATIENCE, subscriber.input())
                .await
                .unwrap();
            on!(message, {
                Available as a => if a.name == format!("probe:{k}") { break },
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
