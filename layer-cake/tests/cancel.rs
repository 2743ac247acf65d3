//! Request cancellation in one process, over real HTTP on 127.0.0.1: an
//! HTTP front, a server actor that forwards to a spool, and local workers
//! doing work in steps.
//!
//! - the client goes away, or the front answers 504: the worker holding the
//!   request sees its `Cancellation` (through the forward and the spool)
//!   and stops;
//! - a request still queued in the spool when it is cancelled never reaches
//!   a worker;
//! - a local worker that does not heed the cancellation keeps its slot
//!   until it answers (a local worker cannot be stopped mid-request).
//!
//! Across processes: `demos/tests/cancellation.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::runtime::{self, ActorHandle};
use layer_cake::spool::{InspectSpool, SpoolOptions, SpoolStatus, Workers};
use layer_cake::{Address, Context, Faulted, HostPort, Message, Stop, on};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const PATIENCE: Duration = Duration::from_secs(20);

/// `steps` steps of `step_ms` each; `heed`: stop when cancelled.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, Message)]
#[serde(default)]
struct Steps {
    steps: u32,
    step_ms: u64,
    heed: bool,
}

/// Held by the worker until the test's gate lets it go, cancelled or not.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, Message)]
struct Gated;

/// What the workers did.
#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    cancelled: AtomicUsize,
    finished: AtomicUsize,
}

impl Counts {
    fn get(&self) -> (usize, usize, usize) {
        (
            self.started.load(Ordering::SeqCst),
            self.cancelled.load(Ordering::SeqCst),
            self.finished.load(Ordering::SeqCst),
        )
    }
}

/// A worker: does `Steps` one step at a time, selecting on the request's
/// cancellation; holds `Gated` until the gate opens.
async fn worker(mut cx: Context, counts: Arc<Counts>, gate: Arc<Semaphore>) {
    loop {
        on!(cx.input().await, {
            Steps as s => {
                counts.started.fetch_add(1, Ordering::SeqCst);
                let signal = cx.cancellation();
                let work = async {
                    for _ in 0..s.steps {
                        tokio::time::sleep(Duration::from_millis(s.step_ms)).await;
                    }
                };
                tokio::select! {
                    () = work => {
                        counts.finished.fetch_add(1, Ordering::SeqCst);
                        let _ = cx.reply(s.steps);
                    },
                    () = signal.cancelled(), if s.heed => {
                        counts.cancelled.fetch_add(1, Ordering::SeqCst);
                        let _ = cx.reply(Faulted::timed_out("cancelled"));
                    },
                }
            },
            Gated as _ => {
                counts.started.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                counts.finished.fetch_add(1, Ordering::SeqCst);
                let _ = cx.reply(0_u32);
            },
            Stop as _ => return,
            _other => {},
        })
    }
}

/// A front, a forwarding server actor and a spool of `workers` local
/// workers.
struct Setup {
    port: u16,
    spool: Address,
    counts: Arc<Counts>,
    gate: Arc<Semaphore>,
    server: ActorHandle<()>,
}

impl Setup {
    async fn start(workers: usize, answer_within: Duration, options: SpoolOptions) -> Setup {
        let counts = Arc::new(Counts::default());
        let gate = Arc::new(Semaphore::new(0));
        let (ready, listening) = tokio::sync::oneshot::channel();
        let (c, g) = (counts.clone(), gate.clone());
        let server = runtime::spawn(move |mut cx: Context| async move {
            let pool = Workers::local(workers, move |cx| worker(cx, c.clone(), g.clone()));
            let spool = cx.spawn_spool(pool, options).expect("a spool");
            let front = HttpServer::new()
                .accept::<Steps>()
                .accept::<Gated>()
                .answer_within(answer_within);
            cx.listen(HostPort::new("127.0.0.1", 0), ListenOptions::http(front));
            let mut ready = Some(ready);
            loop {
                on!(cx.input().await, {
                    Listening as l => {
                        if let Some(r) = ready.take() { let _ = r.send((l.listening.port, spool.clone())); }
                    },
                    NotListening as n => panic!("cannot listen: {}", n.reason),
                    Stop as _ => return,
                    request => { let _ = cx.forward_payload(request, &spool); },
                })
            }
        });
        let (port, spool) = tokio::time::timeout(PATIENCE, listening)
            .await
            .unwrap()
            .unwrap();
        Setup {
            port,
            spool,
            counts,
            gate,
            server,
        }
    }

    /// A connection with `GET target` sent on it.
    async fn send(&self, target: &str) -> TcpStream {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream
    }

    /// `GET target`: the status.
    async fn status_of(&self, target: &str) -> u16 {
        let mut stream = self.send(target).await;
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let raw = String::from_utf8_lossy(&raw);
        raw.split(' ').nth(1).unwrap().parse().unwrap()
    }

    async fn spool_status(&self) -> SpoolStatus {
        runtime::ask(InspectSpool, &self.spool, PATIENCE)
            .await
            .unwrap()
    }

    /// Waits until the workers' counts are (started, cancelled, finished).
    async fn counts_reach(&self, want: (usize, usize, usize)) {
        eventually(&format!("counts {want:?}"), async || {
            self.counts.get() == want
        })
        .await;
    }

    async fn stop(self) {
        let _ = self.server.address().send(Stop);
        let _ = tokio::time::timeout(PATIENCE, self.server.join()).await;
    }
}

/// Polls `check` until it holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const LONG: &str = "/Steps?steps=2000&step_ms=10&heed=true";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_stops_the_worker() {
    let setup = Setup::start(2, PATIENCE, SpoolOptions::new()).await;
    let stream = setup.send(LONG).await;
    setup.counts_reach((1, 0, 0)).await;
    drop(stream);
    setup.counts_reach((1, 1, 0)).await;
    // The worker is free again and serves the next request.
    assert_eq!(setup.status_of("/Steps?steps=1&step_ms=1").await, 200);
    setup.counts_reach((2, 1, 1)).await;
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_from_the_front_stops_the_worker() {
    let setup = Setup::start(1, Duration::from_secs(1), SpoolOptions::new()).await;
    assert_eq!(setup.status_of(LONG).await, 504);
    setup.counts_reach((1, 1, 0)).await;
    assert_eq!(setup.status_of("/Steps?steps=1&step_ms=1").await, 200);
    setup.stop().await;
}

/// A request cancelled while it waits in the spool's queue never reaches a
/// worker; the spool counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_in_the_queue_never_runs() {
    let setup = Setup::start(1, PATIENCE, SpoolOptions::new()).await;
    let busy = setup.send("/Gated").await;
    setup.counts_reach((1, 0, 0)).await;
    let queued = setup.send(LONG).await;
    eventually("queued", async || setup.spool_status().await.queued == 1).await;
    drop(queued);
    eventually("dropped from the queue", async || {
        let s = setup.spool_status().await;
        s.queued == 0 && s.cancelled == 1
    })
    .await;
    setup.gate.add_permits(1);
    setup.counts_reach((1, 0, 1)).await;
    drop(busy);
    assert_eq!(setup.status_of("/Steps?steps=1&step_ms=1").await, 200);
    // The cancelled request was never started.
    setup.counts_reach((2, 0, 2)).await;
    setup.stop().await;
}

/// A local worker that does not heed the cancellation cannot be stopped:
/// the spool answers for it and keeps its slot until it answers (the late
/// answer is discarded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_worker_that_does_not_heed_keeps_its_slot_until_it_answers() {
    let options = SpoolOptions::new().overrun_grace(Some(Duration::from_millis(100)));
    let setup = Setup::start(1, PATIENCE, options).await;
    let held = setup.send("/Gated").await;
    setup.counts_reach((1, 0, 0)).await;
    drop(held);
    eventually("the spool saw the cancellation", async || {
        let s = setup.spool_status().await;
        (s.cancelled, s.overdue, s.idle, s.workers) == (1, 1, 0, 1)
    })
    .await;
    // Well past the grace: a local worker is not stopped.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = setup.spool_status().await;
    assert_eq!(
        (s.stopped_overrunning, s.overdue, s.workers),
        (0, 1, 1),
        "{s:?}"
    );
    setup.gate.add_permits(1);
    eventually("the slot is free", async || {
        let s = setup.spool_status().await;
        (s.late, s.overdue, s.idle) == (1, 0, 1)
    })
    .await;
    assert_eq!(setup.status_of("/Steps?steps=1&step_ms=1").await, 200);
    setup.stop().await;
}
