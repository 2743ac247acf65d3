//! The native transport over real loopback sockets: listen, connect,
//! location-transparent send/reply/ask, addresses inside messages, relaying
//! across hops, and how connections end.

use std::time::Duration;

use layer_cake::net::{
    Accepted, Close, Closed, ConnectOptions, Connected, EndOfTransport, HostPort, ListenOptions,
    Listening, NotConnected, NotListening,
};
use layer_cake::runtime::{self, AskError};
use layer_cake::{Address, Context, Faulted, Message, Payload, Stop, on};
use serde::{Deserialize, Serialize};

/// Generous: the machine is a loaded 2-core box.
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
            layer_cake::message::signature_of::<M>()
        )
    })
}

fn any_port() -> HostPort {
    HostPort::new("127.0.0.1", 0)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
struct Greeting {
    text: String,
    /// An address carried inside a message.
    reply_to: Address,
}

/// Listens; answers numbers with their double and greetings by sending to
/// the address inside; hands out the address of a local helper on `Ack`.
async fn server(
    mut cx: Context,
    ready: tokio::sync::oneshot::Sender<HostPort>,
) -> Result<(), Faulted> {
    cx.listen(any_port(), ListenOptions::native());
    let listening = expect::<Listening>(&mut cx).await;
    let _ = ready.send(listening.listening.clone());
    loop {
        let message = cx.input().await;
        on!(message, {
            Accepted as _ => {},
            Closed as _ => {},
            i64 as n => { let _ = cx.reply(n * 2); },
            Greeting as g => { let _ = cx.send(format!("hello {}", g.text), &g.reply_to); },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("server ignores {}", other.signature()),
        })
    }
}

async fn start_server() -> (runtime::ActorHandle<()>, HostPort) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = runtime::spawn(move |cx| server(cx, tx));
    let at = tokio::time::timeout(PATIENCE, rx).await.unwrap().unwrap();
    (handle, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reports_the_real_port_and_a_busy_port_fails() {
    let mut cx = Context::detached("test");
    cx.listen(any_port(), ListenOptions::native());
    let listening = expect::<Listening>(&mut cx).await;
    assert_ne!(listening.listening.port, 0);
    assert_eq!(listening.requested.port, 0);
    cx.listen(listening.listening.clone(), ListenOptions::native());
    let refused = expect::<NotListening>(&mut cx).await;
    assert!(
        refused.reason.to_lowercase().contains("in use"),
        "{}",
        refused.reason
    );
    assert!(cx.stop_listening(listening.id));
    let stopped = expect::<NotListening>(&mut cx).await;
    assert_eq!(stopped.reason, "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nothing_is_not_connected() {
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cx = Context::detached("test");
    cx.connect(HostPort::new("127.0.0.1", port), ConnectOptions::native());
    let failed = expect::<NotConnected>(&mut cx).await;
    assert!(
        failed.reason.to_lowercase().contains("refused"),
        "{}",
        failed.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reply_and_ask_cross_the_connection() {
    let (server, at) = start_server().await;
    let mut cx = Context::detached("client");
    cx.connect(at.clone(), ConnectOptions::native());
    let connected = expect::<Connected>(&mut cx).await;
    assert_eq!(connected.requested, at);
    assert!(connected.proxy.is_remote());

    // A plain send; the reply comes back over the same connection.
    cx.send(21_i64, &connected.proxy).unwrap();
    assert_eq!(expect::<i64>(&mut cx).await, 42);
    assert_eq!(*cx.return_address(), connected.proxy);

    // Ask, many times over one connection.
    for n in 0..100_i64 {
        let doubled: i64 = cx.ask(n, &connected.proxy, PATIENCE).await.unwrap();
        assert_eq!(doubled, 2 * n);
    }

    // An address inside a message stays usable: the server sends to it.
    let child =
        cx.spawn(|mut cx: Context| async move { cx.input().await.downcast::<String>().unwrap() });
    let greeting = Greeting {
        text: "there".into(),
        reply_to: child.clone(),
    };
    cx.send(greeting, &connected.proxy).unwrap();
    let returned = expect::<layer_cake::Returned>(&mut cx).await;
    assert_eq!(cx.return_address(), &child);
    assert_eq!(returned.into_result::<String>().unwrap(), "hello there");

    server.address().send(Stop).unwrap();
    assert!(server.join().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_actors_share_one_connection() {
    let (_server, at) = start_server().await;
    let mut cx = Context::detached("client");
    cx.connect(at, ConnectOptions::native());
    let proxy = expect::<Connected>(&mut cx).await.proxy;
    for i in 0..20_i64 {
        let proxy = proxy.clone();
        cx.spawn(move |mut cx: Context| async move {
            let mut sum = 0;
            for n in 0..50 {
                sum += cx
                    .ask::<i64, _>(i * 1000 + n, &proxy, PATIENCE)
                    .await
                    .unwrap();
            }
            sum
        });
    }
    let mut total = 0;
    while cx.working() > 0 {
        total += expect::<layer_cake::Returned>(&mut cx)
            .await
            .into_result::<i64>()
            .unwrap();
    }
    let expected: i64 = (0..20_i64)
        .flat_map(|i| (0..50).map(move |n| 2 * (i * 1000 + n)))
        .sum();
    assert_eq!(total, expected);
}

/// A middle process: listens, and for every `Ack` from a peer tells it the
/// address of the last other peer that connected — so messages to that
/// address travel two links, relayed here.
async fn middle(mut cx: Context, ready: tokio::sync::oneshot::Sender<HostPort>) {
    cx.listen(any_port(), ListenOptions::native());
    let _ = ready.send(expect::<Listening>(&mut cx).await.listening);
    let mut peers: Vec<Address> = Vec::new();
    loop {
        let message = cx.input().await;
        on!(message, {
            Accepted as a => peers.push(a.proxy),
            layer_cake::Ack as _ => {
                let asker = cx.return_address().clone();
                let other = peers.iter().find(|p| **p != asker).cloned().unwrap_or_default();
                let _ = cx.reply(Greeting { text: "other".into(), reply_to: other });
            },
            Stop as _ => return,
            _other => {},
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_crosses_two_hops_and_its_reply_finds_the_way_back() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _middle = runtime::spawn(move |cx| middle(cx, tx));
    let hub = tokio::time::timeout(PATIENCE, rx).await.unwrap().unwrap();

    // C: connects to the hub and doubles numbers for whoever asks.
    let c = runtime::spawn({
        let hub = hub.clone();
        move |mut cx: Context| async move {
            cx.connect(hub, ConnectOptions::native());
            expect::<Connected>(&mut cx).await;
            loop {
                on!(cx.input().await, {
                    i64 as n => { let _ = cx.reply(n * 2); },
                    Stop as _ => return,
                    _other => {},
                })
            }
        }
    });
    let _ = c;
    // A: connects to the hub (after C), asks for "the other peer", then asks it.
    let mut a = Context::detached("a");
    a.connect(hub, ConnectOptions::native());
    let proxy = expect::<Connected>(&mut a).await.proxy;
    let mut other = Address::NULL;
    for _ in 0..100 {
        let g: Greeting = a.ask(layer_cake::Ack, &proxy, PATIENCE).await.unwrap();
        if !g.reply_to.is_null() {
            other = g.reply_to;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(other.is_remote(), "the hub handed out C's address");
    // A → hub → C, and the answer C → hub → A.
    let doubled: i64 = a.ask(50_i64, &other, PATIENCE).await.unwrap();
    assert_eq!(doubled, 100);
}

/// A, C and a hub: C connected to the hub, A connected after it, and the
/// address of C that the hub handed A (reached over two links, relayed).
async fn two_hops() -> (Context, Address, Address, runtime::ActorHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _middle = runtime::spawn(move |cx| middle(cx, tx));
    let hub = tokio::time::timeout(PATIENCE, rx).await.unwrap().unwrap();
    let c = runtime::spawn({
        let hub = hub.clone();
        move |mut cx: Context| async move {
            cx.connect(hub, ConnectOptions::native());
            expect::<Connected>(&mut cx).await;
            loop {
                on!(cx.input().await, {
                    i64 as n => { let _ = cx.reply(n * 2); },
                    Stop as _ => return,
                    _other => {},
                })
            }
        }
    });
    let mut a = Context::detached("a");
    a.connect(hub, ConnectOptions::native());
    let proxy = expect::<Connected>(&mut a).await.proxy;
    let mut other = Address::NULL;
    for _ in 0..100 {
        let g: Greeting = a.ask(layer_cake::Ack, &proxy, PATIENCE).await.unwrap();
        if !g.reply_to.is_null() {
            other = g.reply_to;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(other.is_remote(), "the hub handed out C's address");
    let doubled: i64 = a.ask(21_i64, &other, PATIENCE).await.unwrap();
    assert_eq!(doubled, 42);
    (a, proxy, other, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_address_stops_working_when_the_far_link_closes() {
    let (mut a, _proxy, other, c) = two_hops().await;
    // C ends, and with it its link to the hub: the route the hub relays
    // for A goes too, and asking it is answered with a fault.
    c.address().send(Stop).unwrap();
    c.join().await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match a.ask::<i64, _>(1_i64, &other, PATIENCE).await {
            Err(AskError::Faulted(fault)) => {
                let fault_condition = fault.condition.clone();
                let why = fault.explanation.unwrap_or_default();
                // The route is gone, however the race between the ask and
                // C's link closing went: the hub no longer relays it ("has
                // ended", "not reachable over this link"), or it relayed the
                // ask just as the far link broke and faults what it carried
                // ("before the request was answered", "the link this request
                // was relayed over has closed"). Each is a fault that says
                // why.
                assert!(
                    !why.is_empty(),
                    "a fault without a reason: {fault_condition}"
                );
                break;
            }
            // The hub has not yet seen C's link close.
            Ok(2) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the route outlived its link"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_address_stops_working_when_the_near_link_closes() {
    let (mut a, proxy, other, c) = two_hops().await;
    a.send(Close { note: None }, &proxy).unwrap();
    expect::<Closed>(&mut a).await;
    assert!(other.is_closed());
    assert!(matches!(
        a.send(3_i64, &other),
        Err(layer_cake::runtime::SendError::Closed(3))
    ));
    c.address().send(Stop).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_on_request_ends_both_sides() {
    let mut server = Context::detached("server");
    server.listen(any_port(), ListenOptions::native());
    let at = expect::<Listening>(&mut server).await.listening;
    let mut client = Context::detached("client");
    client.connect(at, ConnectOptions::native());
    let proxy = expect::<Connected>(&mut client).await.proxy;
    expect::<Accepted>(&mut server).await;
    client
        .send(
            Close {
                note: Some("done here".into()),
            },
            &proxy,
        )
        .unwrap();
    let closed = expect::<Closed>(&mut client).await;
    assert_eq!(closed.reason, EndOfTransport::OnRequest);
    assert_eq!(closed.note, "done here");
    let other_side = expect::<Closed>(&mut server).await;
    assert_eq!(other_side.reason, EndOfTransport::AbandonedByRemote);
    assert!(other_side.note.contains("done here"), "{}", other_side.note);
    // The proxy refuses messages now, handing them back.
    assert!(matches!(
        client.send(1_i64, &proxy),
        Err(layer_cake::runtime::SendError::Closed(1))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_an_actor_that_has_ended_gets_a_fault() {
    let mut server = Context::detached("server");
    server.listen(any_port(), ListenOptions::native());
    let at = expect::<Listening>(&mut server).await.listening;
    let mut client = Context::detached("client");
    client.connect(at, ConnectOptions::native());
    let proxy = expect::<Connected>(&mut client).await.proxy;
    // The server hands out a short-lived actor's address, which then ends.
    let brief = server.spawn(|_cx: Context| async {});
    // The connection's Accepted and the child's Returned come from separate
    // tasks, in either order; both must come.
    let (mut accepted, mut returned) = (false, false);
    while !(accepted && returned) {
        let message = next(&mut server).await;
        accepted |= message.is::<Accepted>();
        returned |= message.is::<layer_cake::Returned>();
        assert!(
            message.is::<Accepted>() || message.is::<layer_cake::Returned>(),
            "unexpected {}",
            message.signature()
        );
    }
    client
        .send(
            Greeting {
                text: "x".into(),
                reply_to: client.address().clone(),
            },
            &proxy,
        )
        .unwrap();
    let greeting = expect::<Greeting>(&mut server).await;
    server
        .send(
            Greeting {
                text: "gone".into(),
                reply_to: brief,
            },
            &greeting.reply_to,
        )
        .unwrap();
    let g = expect::<Greeting>(&mut client).await;
    assert!(g.reply_to.is_remote());
    match client.ask::<i64, _>(1_i64, &g.reply_to, PATIENCE).await {
        Err(AskError::Faulted(f)) => assert_eq!(f.condition, "not delivered"),
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_connection_ends_is_answered_with_a_fault() {
    // The server takes requests but never answers; then it closes the link.
    let mut server = Context::detached("server");
    server.listen(any_port(), ListenOptions::native());
    let at = expect::<Listening>(&mut server).await.listening;
    let asker = runtime::spawn(move |mut cx: Context| async move {
        cx.connect(at, ConnectOptions::native());
        let proxy = expect::<Connected>(&mut cx).await.proxy;
        // A deadline far longer than the test: only the fault can end it.
        cx.ask::<i64, _>(1_i64, &proxy, Duration::from_secs(3600))
            .await
    });
    let client_proxy = expect::<Accepted>(&mut server).await.proxy;
    assert_eq!(expect::<i64>(&mut server).await, 1);
    server.send(Close::default(), &client_proxy).unwrap();
    let answer = tokio::time::timeout(PATIENCE, asker.join())
        .await
        .expect("answered in time");
    // The actor returns the ask's error, which becomes its fault.
    let fault = answer.expect_err("the ask failed");
    assert_eq!(fault.condition, "connection lost");
    assert!(fault.explanation.unwrap().contains("AbandonedByRemote"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_cannot_be_decoded_faults_the_ask_and_the_link_stays_up() {
    // The server answers with a constructed type nobody registered here.
    let mut server = Context::detached("server");
    server.listen(any_port(), ListenOptions::native());
    let at = expect::<Listening>(&mut server).await.listening;
    let mut client = Context::detached("client");
    client.connect(at, ConnectOptions::native());
    let proxy = expect::<Connected>(&mut client).await.proxy;
    expect::<Accepted>(&mut server).await;
    let asking = tokio::spawn(async move {
        let answer = client
            .ask_payload(Payload::new(1_i64), &proxy, Duration::from_secs(3600))
            .await;
        (answer, client, proxy)
    });
    assert_eq!(expect::<i64>(&mut server).await, 1);
    server.reply(vec![vec![7_u16]]).unwrap();
    let (answer, mut client, proxy) = tokio::time::timeout(PATIENCE, asking)
        .await
        .unwrap()
        .unwrap();
    let fault = answer
        .unwrap()
        .downcast::<Faulted>()
        .expect("a fault as the answer");
    assert_eq!(fault.condition, "not delivered");
    let why = fault.explanation.unwrap();
    assert!(
        why.contains("undecodable body") && why.contains("vector<vector<unsigned2>>"),
        "{why}"
    );
    // Only that message was lost: the link carries the next ask.
    let asking = tokio::spawn(async move {
        client
            .ask::<i64, _>(2_i64, &proxy, Duration::from_secs(3600))
            .await
    });
    assert_eq!(expect::<i64>(&mut server).await, 2);
    server.reply(3_i64).unwrap();
    let answer = tokio::time::timeout(PATIENCE, asking)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.unwrap(), 3);
}

// ---- the directory tree over these links: `Climb` ----------------------

mod climb {
    use super::*;
    use layer_cake::directory::{
        Climb, DirectoryListing, Inspect, MAX_CLIMB, MAX_INSPECT_ENTRIES, NodeOptions, Published,
        Scope, Subscribed, spawn_node,
    };

    fn fast(options: NodeOptions) -> NodeOptions {
        options.reconnect(Duration::from_millis(50), Duration::from_millis(400))
    }

    /// A node that accepts children at a loopback port of its own.
    async fn daemon(level: Scope, parent: Option<&HostPort>) -> (Address, HostPort) {
        let mut cx = Context::detached("starter");
        let mut options = fast(NodeOptions::new(level).accept_at(any_port()));
        if let Some(parent) = parent {
            options = options.parent(parent.clone());
        }
        let node = spawn_node(options, cx.address().clone());
        (node, expect::<Listening>(&mut cx).await.listening)
    }

    fn process(parent: &HostPort) -> Address {
        spawn_node(
            fast(NodeOptions::new(Scope::Process).parent(parent.clone())),
            Address::NULL,
        )
    }

    fn climb(up_to: Scope, below: &[HostPort]) -> Climb {
        Climb {
            up_to,
            below: below.to_vec(),
            climbed: 0,
        }
    }

    async fn ask(
        cx: &mut Context,
        to: &Address,
        c: Climb,
    ) -> Result<DirectoryListing, AskError<Climb>> {
        cx.ask::<DirectoryListing, _>(c, to, PATIENCE).await
    }

    /// A port nothing listens at: free a moment ago.
    fn nowhere() -> HostPort {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = free.local_addr().unwrap();
        HostPort::new("127.0.0.1", at.port())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_climb_connects_up_to_the_root_and_walks_down_from_there() {
        let (_lan, lan_at) = daemon(Scope::Lan, None).await;
        let (_host, host_at) = daemon(Scope::Host, Some(&lan_at)).await;
        // Nothing is listed anywhere: the climb itself connects the
        // process node to the host and the host to the LAN.
        let node = process(&host_at);
        let mut cx = Context::detached("asker");
        let top = ask(&mut cx, &node, climb(Scope::Lan, &[])).await.unwrap();
        assert_eq!(top.level, Scope::Lan, "{top:#?}");
        assert_eq!(top.children.len(), 1, "the host: {top:#?}");
        let host = ask(&mut cx, &node, climb(Scope::Lan, &top.children))
            .await
            .unwrap();
        assert_eq!(host.level, Scope::Host);
        assert_eq!(host.parent.as_ref(), Some(&lan_at));
        assert!(host.parent_connected);
        assert_eq!(host.children.len(), 1, "the process node: {host:#?}");
        let path = [top.children[0].clone(), host.children[0].clone()];
        let me = ask(&mut cx, &node, climb(Scope::Lan, &path)).await.unwrap();
        assert_eq!(me.level, Scope::Process);

        // No wider than HOST: the host is the top.
        let at_host = ask(&mut cx, &node, climb(Scope::Host, &[])).await.unwrap();
        assert_eq!(at_host.id, host.id);
        // A climb that has been passed on too often stops where it is.
        let mut far = climb(Scope::Lan, &[]);
        far.climbed = MAX_CLIMB;
        let here = ask(&mut cx, &node, far).await.unwrap();
        assert_eq!(here.id, me.id);
        // A path to nowhere below the top is a fault, not a hang.
        let lost = ask(&mut cx, &node, climb(Scope::Lan, &[nowhere()])).await;
        assert!(matches!(lost, Err(AskError::Faulted(_))), "{lost:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_node_asked_says_why_it_cannot_climb_and_a_node_above_is_the_top() {
        let mut cx = Context::detached("asker");
        // The process node's own parent is not there: it says so.
        let gone = nowhere();
        let node = process(&gone);
        match ask(&mut cx, &node, climb(Scope::Lan, &[])).await {
            Err(AskError::Faulted(f)) => assert!(
                f.condition
                    .starts_with(&format!("cannot reach the directory at {gone}: ")),
                "{f:?}"
            ),
            other => panic!("expected a fault, got {other:?}"),
        }
        // A host whose LAN directory is not there is the top it reaches.
        let (_host, host_at) = daemon(Scope::Host, Some(&nowhere())).await;
        let node = process(&host_at);
        let top = ask(&mut cx, &node, climb(Scope::Lan, &[])).await.unwrap();
        assert_eq!(top.level, Scope::Host, "{top:#?}");
        assert!(!top.parent_connected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_node_holding_both_sides_lists_the_route_by_tags() {
        let (_host, host_at) = daemon(Scope::Host, None).await;
        let (a, b) = (process(&host_at), process(&host_at));
        let mut publisher = Context::detached("publisher");
        publisher.publish_at(&a, "svc:1", Scope::Host);
        let published = expect::<Published>(&mut publisher).await;
        let mut subscriber = Context::detached("subscriber");
        subscriber.subscribe_at(&b, "svc:.*", Scope::Host);
        let subscribed = loop {
            if let Ok(s) = next(&mut subscriber).await.downcast::<Subscribed>() {
                break s;
            }
        };
        let mut cx = Context::detached("asker");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let host = loop {
            let host = ask(&mut cx, &a, climb(Scope::Lan, &[])).await.unwrap();
            if !host.routed.is_empty() {
                break host;
            }
            assert!(tokio::time::Instant::now() < deadline, "{host:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(host.level, Scope::Host);
        let (name, sub, publ) = &host.routed[0];
        assert_eq!(host.routed.len(), 1, "{host:#?}");
        assert_eq!(name, "svc:1");
        // Tags, the same as the listings', never the ids.
        assert_eq!(*sub, host.subscribed[0].2);
        assert_eq!(*publ, host.published[0].2);
        assert_ne!(*sub, subscribed.id);
        assert_ne!(*publ, published.id);
        assert_eq!(host.omitted, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_remote_asker_gets_a_bounded_answer_that_says_what_it_left_out() {
        let (host, host_at) = daemon(Scope::Host, None).await;
        let node = process(&host_at);
        // Three actors (each may publish 1000 names), 100 past the bound.
        let total = MAX_INSPECT_ENTRIES + 100;
        let mut publishers: Vec<Context> = (0..3).map(|_| Context::detached("p")).collect();
        for i in 0..total {
            publishers[i % 3].publish_at(&node, format!("many:{i:05}"), Scope::Host);
        }
        let mut cx = Context::detached("asker");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        // Asked from its own process, the host shows all of them.
        loop {
            let all: DirectoryListing = cx.ask(Inspect::default(), &host, PATIENCE).await.unwrap();
            if all.published.len() == total {
                assert_eq!(all.omitted, 0);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}",
                all.published.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Over a link: the first ones by name, and how many were left out.
        let seen = ask(&mut cx, &node, climb(Scope::Host, &[])).await.unwrap();
        assert_eq!(seen.published.len(), MAX_INSPECT_ENTRIES);
        assert_eq!(seen.omitted, 100);
        assert_eq!(seen.published[0].0, "many:00000");
    }
}
