//! The ObjectSpool: dispatch, queueing, load shedding, deadlines, workers
//! that die or leave with requests, restarts and stopping — and
//! exactly-once: workers that count what they execute show that no request
//! runs twice on live workers, through route upgrades, leaving, a worker's
//! own `Lost`, timeouts, and that a request held by a worker that is killed
//! runs once more, once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use layer_cake::directory::{Available, Dropped, NodeOptions, Scope, spawn_node};
use layer_cake::net::{HostPort, Listening};
use layer_cake::runtime::{self, AskError, Context, SpawnOptions};
use layer_cake::spool::{
    self, InspectSpool, JoinSpool, LeaveSpool, SpoolError, SpoolOptions, SpoolStatus, Workers,
};
use layer_cake::{Address, FaultKind, Faulted, Stop, on};
use tokio::sync::Semaphore;

/// Generous: the machine is a loaded 2-core box.
const PATIENCE: Duration = Duration::from_secs(20);

/// A worker's answer: ten times the number asked, and who answered.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, layer_cake::Message,
)]
struct Answer {
    value: i64,
    worker: Address,
}

impl Answer {
    fn of(n: i64, worker: &Address) -> Self {
        Answer {
            value: n * 10,
            worker: worker.clone(),
        }
    }
}

/// Answers each number with ten times it and the worker's own address.
async fn tenfold(mut cx: Context) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            i64 as n => { let _ = cx.reply(Answer::of(n, cx.address())); },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// Asks the spool for a number's tenfold; the answer or the fault.
async fn ask(spool: &Address, n: i64) -> Result<Answer, Faulted> {
    match runtime::ask::<Answer, _>(n, spool, PATIENCE).await {
        Ok(answer) => Ok(answer),
        Err(AskError::Faulted(fault)) => Err(fault),
        Err(other) => panic!("ask {n}: {other}"),
    }
}

async fn status(spool: &Address) -> SpoolStatus {
    runtime::ask(InspectSpool, spool, PATIENCE).await.unwrap()
}

/// Polls `check` until it holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_spread_over_the_workers_and_every_one_is_answered() {
    let spool = spool::spawn(Workers::local(8, tenfold), SpoolOptions::default()).unwrap();
    let asks: Vec<_> = (0..400)
        .map(|n| {
            let spool = spool.address().clone();
            tokio::spawn(async move { (n, ask(&spool, n).await) })
        })
        .collect();
    let mut seen = std::collections::HashMap::new();
    for task in asks {
        let (n, answer) = task.await.unwrap();
        let answer = answer.unwrap();
        assert_eq!(answer.value, n * 10);
        *seen.entry(answer.worker.id()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 8, "every worker took a share: {seen:?}");
    let s = status(spool.address()).await;
    assert_eq!(
        (s.workers, s.answered, s.queued, s.in_flight),
        (8, 400, 0, 0)
    );
    let _ = spool.address().send(Stop);
    assert_eq!(spool.join().await.unwrap_err().kind, FaultKind::Aborted);
}

/// A worker that holds each request until the shared gate lets it go.
fn gated(
    gate: Arc<Semaphore>,
) -> impl Fn(Context) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static
{
    move |mut cx: Context| {
        let gate = Arc::clone(&gate);
        Box::pin(async move {
            loop {
                on!(cx.input().await, {
                    i64 as n => {
                        let answer = cx.return_path();
                        let address = cx.address().clone();
                        let gate = Arc::clone(&gate);
                        // Answer from a task so that Stop still gets through.
                        tokio::spawn(async move {
                            gate.acquire().await.unwrap().forget();
                            let _ = answer.reply(Answer::of(n, &address));
                        });
                    },
                    Stop as _ => return,
                    _other => {},
                })
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_overloaded_and_the_rest_are_served_in_order() {
    let gate = Arc::new(Semaphore::new(0));
    let options = SpoolOptions::new().size_of_queue(3).responsiveness(None);
    let spool = spool::spawn(Workers::local(1, gated(gate.clone())), options).unwrap();
    let spool = spool.address().clone();
    // One in the worker, three queued.
    let mut held = Vec::new();
    for n in 0..4 {
        let to = spool.clone();
        held.push(tokio::spawn(async move { ask(&to, n).await }));
        let want = n as usize;
        eventually("the request arrives", async || {
            let s = status(&spool).await;
            s.in_flight + s.queued == want + 1
        })
        .await;
    }
    // The fifth finds the queue full.
    let fault = ask(&spool, 99).await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::Overloaded, "{fault}");
    assert!(fault.to_string().contains("3 pending"), "{fault}");
    gate.add_permits(4);
    for (n, task) in held.into_iter().enumerate() {
        assert_eq!(task.await.unwrap().unwrap().value, n as i64 * 10);
    }
    let s = status(&spool).await;
    assert_eq!((s.answered, s.overloaded), (4, 1));
}

/// Sleeps `ms` before answering each request with the number.
async fn slow(mut cx: Context, ms: u64) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            i64 as n => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let _ = cx.reply(Answer::of(n, cx.address()));
            },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_spool_sheds_load_with_busy_but_lets_every_kth_through() {
    let options = SpoolOptions::new()
        .responsiveness(Some(Duration::from_millis(20)))
        .busy_pass_rate(4);
    let spool = spool::spawn(Workers::local(1, |cx| slow(cx, 40)), options).unwrap();
    let spool = spool.address().clone();
    // The first answer makes the average 40 ms, over the 20 ms threshold.
    assert_eq!(ask(&spool, 1).await.unwrap().value, 10);
    let mut outcomes = Vec::new();
    for n in 0..12 {
        outcomes.push(ask(&spool, n).await.map(|a| a.value));
    }
    let busy = outcomes
        .iter()
        .filter(|o| matches!(o, Err(f) if f.kind == FaultKind::Busy))
        .count();
    let passed = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!((busy, passed), (9, 3), "{outcomes:?}");
    // Every fourth passes.
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.is_ok(), (i + 1) % 4 == 0, "request {i}: {o:?}");
    }
    let Err(fault) = &outcomes[0] else {
        unreachable!()
    };
    assert!(
        fault.to_string().contains("average response time"),
        "{fault}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_and_no_prospect_is_temporarily_unavailable() {
    let spool = spool::spawn(Workers::external(), SpoolOptions::default()).unwrap();
    let fault = ask(spool.address(), 1).await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::TemporarilyUnavailable, "{fault}");
    assert_eq!(status(spool.address()).await.unavailable, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_is_answered_timed_out() {
    let gate = Arc::new(Semaphore::new(0));
    let options = SpoolOptions::new().request_timeout(Duration::from_millis(300));
    let spool = spool::spawn(Workers::local(1, gated(gate.clone())), options).unwrap();
    let spool = spool.address().clone();
    // One held by the worker, one queued: both time out.
    let (a, b) = tokio::join!(ask(&spool, 1), ask(&spool, 2));
    for fault in [a.unwrap_err(), b.unwrap_err()] {
        assert_eq!(fault.kind, FaultKind::TimedOut, "{fault}");
    }
    // The late answer is discarded, and the worker is free again.
    gate.add_permits(1);
    eventually("the late answer is discarded", async || {
        status(&spool).await.late == 1
    })
    .await;
    gate.add_permits(1);
    assert_eq!(ask(&spool, 3).await.unwrap().value, 30);
    assert_eq!(status(&spool).await.timed_out, 2);
}

/// Ends without answering on `0` (always) and on `-1` (the first time
/// anyone sees it); answers everything else.
async fn fragile(mut cx: Context, once: Arc<AtomicBool>) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            i64 as n => {
                if n == 0 || (n == -1 && !once.swap(true, Ordering::SeqCst)) {
                    return Err(Faulted::new("poisoned"));
                }
                let _ = cx.reply(Answer::of(n, cx.address()));
            },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// Asks `ns` all at once; the answers in order.
async fn ask_all(
    spool: &Address,
    ns: impl Iterator<Item = i64>,
) -> Vec<(i64, Result<Answer, Faulted>)> {
    let asks: Vec<_> = ns
        .map(|n| {
            let spool = spool.clone();
            tokio::spawn(async move { (n, ask(&spool, n).await) })
        })
        .collect();
    let mut answers = Vec::new();
    for task in asks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_held_by_a_worker_that_dies_are_retried_on_another() {
    let once = Arc::new(AtomicBool::new(false));
    let options = SpoolOptions::new()
        .worker_capacity(4)
        .stand_down(Some(Duration::from_millis(50)));
    let workers = Workers::local(2, move |cx| fragile(cx, Arc::clone(&once)));
    let spool = spool::spawn(workers, options).unwrap();
    let spool = spool.address().clone();
    // `-1` kills the worker that takes it, with whatever else it holds;
    // every one of those is sent again and answered, once.
    let answers = ask_all(&spool, std::iter::once(-1).chain(1..40)).await;
    for (n, answer) in answers {
        assert_eq!(answer.unwrap().value, n * 10);
    }
    let s = status(&spool).await;
    assert_eq!((s.lost, s.answered), (0, 40), "{s:?}");
    assert!(s.retried >= 1, "{s:?}");
    // The dead worker comes back after standing down.
    eventually("the worker restarted", async || {
        status(&spool).await.restarted == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_kills_its_retry_worker_too_is_answered_lost() {
    let options = SpoolOptions::new().stand_down(Some(Duration::from_millis(50)));
    let workers = Workers::local(2, |cx| fragile(cx, Arc::new(AtomicBool::new(true))));
    let spool = spool::spawn(workers, options).unwrap();
    let spool = spool.address().clone();
    let answers = ask_all(&spool, 0..20).await;
    for (n, answer) in answers {
        if n == 0 {
            let fault = answer.unwrap_err();
            assert_eq!(fault.kind, FaultKind::Lost, "{fault}");
            assert!(fault.to_string().contains("second worker"), "{fault}");
        } else {
            assert_eq!(answer.unwrap().value, n * 10);
        }
    }
    let s = status(&spool).await;
    assert_eq!((s.lost, s.retried, s.answered), (1, 1, 19), "{s:?}");
    // Both workers come back after standing down.
    eventually("both workers restarted", async || {
        status(&spool).await.restarted == 2
    })
    .await;
    assert_eq!(ask(&spool, 5).await.unwrap().value, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_answers_everything_held_with_aborted() {
    let gate = Arc::new(Semaphore::new(0));
    let spool = spool::spawn(Workers::local(2, gated(gate)), SpoolOptions::default()).unwrap();
    let address = spool.address().clone();
    let asks: Vec<_> = (0..5)
        .map(|n| {
            let spool = address.clone();
            tokio::spawn(async move { ask(&spool, n).await })
        })
        .collect();
    eventually("all five arrive", async || {
        let s = status(&address).await;
        s.in_flight + s.queued == 5
    })
    .await;
    address.send(Stop).unwrap();
    for task in asks {
        assert_eq!(task.await.unwrap().unwrap_err().kind, FaultKind::Aborted);
    }
    assert_eq!(spool.join().await.unwrap_err().kind, FaultKind::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_asks_through_a_spool_and_many_at_once() {
    let handle = runtime::spawn(|mut cx: Context| async move {
        let spool = cx.spawn_spool(Workers::local(3, tenfold), SpoolOptions::default())?;
        let one = cx
            .ask::<Answer, _>(4_i64, &spool, PATIENCE)
            .await
            .map_err(|e| e.into_fault())?
            .value;
        let many = cx
            .concurrently_as::<Answer>(
                (1..=6)
                    .map(|n| (layer_cake::Payload::new(n as i64), spool.clone()))
                    .collect(),
                PATIENCE,
            )
            .await;
        let mut all = vec![one];
        for answer in many {
            all.push(answer?.value);
        }
        Ok::<_, Faulted>(all)
    });
    assert_eq!(
        handle.join().await.unwrap(),
        vec![40, 10, 20, 30, 40, 50, 60]
    );
}

#[test]
fn bad_options_are_refused_before_anything_starts() {
    let e = SpoolOptions::new()
        .size_of_queue(0)
        .validate(&Workers::external())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad spool option size_of_queue: must be at least 1"
    );
    let e = SpoolOptions::new()
        .validate(&Workers::local(0, tenfold))
        .unwrap_err();
    assert!(
        matches!(
            e,
            SpoolError::BadOption {
                option: "workers",
                ..
            }
        ),
        "{e}"
    );
    let e = SpoolOptions::new()
        .busy_pass_rate(0)
        .validate(&Workers::external())
        .unwrap_err();
    assert!(
        matches!(
            e,
            SpoolError::BadOption {
                option: "busy_pass_rate",
                ..
            }
        ),
        "{e}"
    );
}

// ---- exactly-once ----------------------------------------------------------

/// How often workers started and finished each request number, and how many
/// requests the busiest moment had in hand: the evidence for exactly-once.
#[derive(Debug, Default)]
struct Tally {
    started: Mutex<HashMap<i64, usize>>,
    finished: Mutex<HashMap<i64, usize>>,
    busy: AtomicUsize,
    most_busy: AtomicUsize,
}

impl Tally {
    fn start(&self, n: i64) {
        *self.started.lock().unwrap().entry(n).or_default() += 1;
        let busy = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_busy.fetch_max(busy, Ordering::SeqCst);
    }

    fn finish(&self, n: i64) {
        *self.finished.lock().unwrap().entry(n).or_default() += 1;
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    fn started(&self, n: i64) -> usize {
        self.started.lock().unwrap().get(&n).copied().unwrap_or(0)
    }

    fn finished(&self, n: i64) -> usize {
        self.finished.lock().unwrap().get(&n).copied().unwrap_or(0)
    }
}

/// A counting worker's answer: ten times the number, and who finished it.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, layer_cake::Message,
)]
struct Done {
    value: i64,
    by: String,
}

/// A worker that counts every request it starts and finishes in `tally`.
/// A negative number is answered at once with a `Lost` fault of the
/// worker's own ("no such record"); any other is answered `Done` — at once,
/// or, with a `gate`, once a permit comes (from a task, so that `Stop`
/// still gets through). `publish` (directory node, name, scope) publishes
/// first.
async fn counting(
    mut cx: Context,
    tally: Arc<Tally>,
    gate: Option<Arc<Semaphore>>,
    publish: Option<(Address, &'static str, Scope)>,
) {
    if let Some((node, name, scope)) = publish {
        cx.publish_at(&node, name, scope);
    }
    loop {
        on!(cx.input().await, {
            i64 as n => {
                tally.start(n);
                if n < 0 {
                    tally.finish(n);
                    let _ = cx.reply(Faulted::lost("no such record", format!("{} has no {n}", cx.name())));
                } else {
                    let path = cx.return_path();
                    let (tally, gate, by) = (Arc::clone(&tally), gate.clone(), cx.name().to_owned());
                    tokio::spawn(async move {
                        if let Some(gate) = gate {
                            gate.acquire().await.unwrap().forget();
                        }
                        tally.finish(n);
                        let _ = path.reply(Done { value: n * 10, by });
                    });
                }
            },
            Stop as _ => return,
            _other => {},
        })
    }
}

/// A counting worker named `name`, on its own (see [`counting`]).
fn counter(
    name: &str,
    tally: &Arc<Tally>,
    gate: Option<&Arc<Semaphore>>,
    publish: Option<(Address, &'static str, Scope)>,
) -> runtime::ActorHandle<()> {
    let (tally, gate) = (Arc::clone(tally), gate.cloned());
    runtime::spawn_with(SpawnOptions::new().name(name.to_owned()), move |cx| {
        counting(cx, tally, gate, publish)
    })
}

/// Asks the spool for `n` from a counting worker.
async fn ask_done(spool: &Address, n: i64) -> Result<Done, Faulted> {
    match runtime::ask::<Done, _>(n, spool, PATIENCE).await {
        Ok(done) => Ok(done),
        Err(AskError::Faulted(fault)) => Err(fault),
        Err(other) => panic!("ask {n}: {other}"),
    }
}

/// [`ask_done`] in the background.
fn ask_later(spool: &Address, n: i64) -> tokio::task::JoinHandle<Result<Done, Faulted>> {
    let spool = spool.clone();
    tokio::spawn(async move { ask_done(&spool, n).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_leaves_keeps_and_answers_what_it_holds() {
    let tally = Arc::new(Tally::default());
    let gate = Arc::new(Semaphore::new(0));
    let slow = counter("slow", &tally, Some(&gate), None);
    let quick = counter("quick", &tally, None, None);
    let spool = spool::spawn(Workers::external(), SpoolOptions::default()).unwrap();
    let spool = spool.address().clone();
    spool
        .send(JoinSpool {
            worker: slow.address().clone(),
        })
        .unwrap();
    let first = ask_later(&spool, 7);
    eventually("the slow worker holds 7", async || tally.started(7) == 1).await;
    // Another worker joins and the slow one leaves while working on 7.
    spool
        .send(JoinSpool {
            worker: quick.address().clone(),
        })
        .unwrap();
    spool
        .send(LeaveSpool {
            worker: slow.address().clone(),
        })
        .unwrap();
    eventually("the slow worker is out of rotation", async || {
        let s = status(&spool).await;
        (s.workers, s.leaving, s.in_flight) == (1, 1, 1)
    })
    .await;
    // New requests go to the worker in rotation; 7 is not sent again.
    let second = ask_done(&spool, 8).await.unwrap();
    assert_eq!(second.by, "quick");
    gate.add_permits(1);
    let first = first.await.unwrap().unwrap();
    assert_eq!((first.value, first.by.as_str()), (70, "slow"));
    assert_eq!((tally.started(7), tally.finished(7)), (1, 1));
    // Having answered all it held, the leaver is let go.
    eventually("the leaver is let go", async || {
        status(&spool).await.leaving == 0
    })
    .await;
    let s = status(&spool).await;
    assert_eq!(
        (s.workers, s.retried, s.lost, s.late, s.answered),
        (1, 0, 0, 0, 2),
        "{s:?}"
    );
    // It can come back.
    spool
        .send(JoinSpool {
            worker: slow.address().clone(),
        })
        .unwrap();
    eventually("the slow worker is back", async || {
        status(&spool).await.workers == 2
    })
    .await;
    // The last worker in rotation leaves: no prospect of another.
    for worker in [&slow, &quick] {
        spool
            .send(LeaveSpool {
                worker: worker.address().clone(),
            })
            .unwrap();
    }
    let fault = ask_done(&spool, 1).await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::TemporarilyUnavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_fault_a_worker_answers_itself_is_an_answer() {
    let tally = Arc::new(Tally::default());
    let workers = {
        let tally = Arc::clone(&tally);
        Workers::local(2, move |cx| counting(cx, Arc::clone(&tally), None, None))
    };
    let spool = spool::spawn(workers, SpoolOptions::default()).unwrap();
    let spool = spool.address().clone();
    let fault = ask_done(&spool, -3).await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::Lost);
    assert!(fault.to_string().contains("has no -3"), "{fault}");
    assert_eq!(tally.started(-3), 1, "not retried");
    // The worker that answered it is still in rotation: both serve.
    let answers = futures_all(&spool, 1..=20).await;
    let by: std::collections::HashSet<String> = answers.into_iter().map(|d| d.by).collect();
    assert_eq!(by.len(), 2, "{by:?}");
    let s = status(&spool).await;
    assert_eq!(
        (s.workers, s.retried, s.lost, s.restarted, s.answered),
        (2, 0, 0, 0, 21),
        "{s:?}"
    );
}

/// Asks `ns` at once; every answer must be a `Done`.
async fn futures_all(spool: &Address, ns: impl Iterator<Item = i64>) -> Vec<Done> {
    let tasks: Vec<_> = ns.map(|n| (n, ask_later(spool, n))).collect();
    let mut all = Vec::new();
    for (n, task) in tasks {
        let done = task.await.unwrap().unwrap();
        assert_eq!(done.value, n * 10);
        all.push(done);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_keeps_its_busy_worker_s_slot() {
    let tally = Arc::new(Tally::default());
    let gate = Arc::new(Semaphore::new(0));
    let workers = {
        let (tally, gate) = (Arc::clone(&tally), Arc::clone(&gate));
        Workers::local(1, move |cx| {
            counting(cx, Arc::clone(&tally), Some(Arc::clone(&gate)), None)
        })
    };
    let options = SpoolOptions::new().request_timeout(Duration::from_millis(500));
    let spool = spool::spawn(workers, options).unwrap();
    let spool = spool.address().clone();
    // 1 times out while the worker is still on it…
    let fault = ask_done(&spool, 1).await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::TimedOut, "{fault}");
    let s = status(&spool).await;
    assert_eq!((s.overdue, s.in_flight, s.idle), (1, 0, 0), "{s:?}");
    // …so 2 is not handed to it: it waits, and times out in the queue.
    let fault = ask_done(&spool, 2).await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::TimedOut, "{fault}");
    assert_eq!(tally.started(2), 0, "2 went to a busy worker");
    assert_eq!(tally.most_busy.load(Ordering::SeqCst), 1);
    // The worker finishes 1: its answer is discarded, and its slot is free.
    gate.add_permits(1);
    eventually("the late answer is discarded", async || {
        let s = status(&spool).await;
        (s.late, s.overdue, s.idle) == (1, 0, 1)
    })
    .await;
    gate.add_permits(1);
    assert_eq!(ask_done(&spool, 3).await.unwrap().value, 30);
    assert_eq!((tally.started(1), tally.finished(1)), (1, 1));
    assert_eq!(tally.most_busy.load(Ordering::SeqCst), 1);
    let s = status(&spool).await;
    assert_eq!((s.timed_out, s.retried, s.answered), (2, 0, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_requests_run_once_more_and_once_only() {
    // Spawned workers: `-…` are not used here; 0 kills nobody. `once`
    // makes the first worker to take -1 end with everything it holds.
    let once = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let workers = {
        let (once, tally) = (Arc::clone(&once), Arc::clone(&tally));
        Workers::local(2, move |cx| {
            counting_fragile(cx, Arc::clone(&tally), Arc::clone(&once))
        })
    };
    let options = SpoolOptions::new()
        .worker_capacity(4)
        .stand_down(Some(Duration::from_millis(50)));
    let spool = spool::spawn(workers, options).unwrap();
    let spool = spool.address().clone();
    let answers = futures_all(&spool, std::iter::once(1000).chain(1..40)).await;
    assert_eq!(answers.len(), 40);
    // The killing request ran on the worker it killed and once more; every
    // other ran once (those queued in the dead worker's mailbox had not
    // started); every one finished once.
    assert_eq!(tally.started(1000), 2);
    for n in std::iter::once(1000).chain(1..40) {
        assert_eq!(tally.finished(n), 1, "request {n}");
        if n != 1000 {
            assert_eq!(tally.started(n), 1, "request {n}");
        }
    }
    let s = status(&spool).await;
    assert_eq!((s.lost, s.answered), (0, 40), "{s:?}");
    assert!(s.retried >= 1, "{s:?}");

    // An external worker stopped while it holds a request (its `Ended`
    // tells the spool): the request runs once more, on the other worker.
    let tally = Arc::new(Tally::default());
    let stuck = counter("stuck", &tally, Some(&Arc::new(Semaphore::new(0))), None);
    let spare = counter("spare", &tally, None, None);
    let spool = spool::spawn(Workers::external(), SpoolOptions::default()).unwrap();
    let spool = spool.address().clone();
    spool
        .send(JoinSpool {
            worker: stuck.address().clone(),
        })
        .unwrap();
    let held = ask_later(&spool, 5);
    eventually("the stuck worker holds 5", async || tally.started(5) == 1).await;
    spool
        .send(JoinSpool {
            worker: spare.address().clone(),
        })
        .unwrap();
    stuck.address().send(Stop).unwrap();
    let done = held.await.unwrap().unwrap();
    assert_eq!((done.value, done.by.as_str()), (50, "spare"));
    assert_eq!((tally.started(5), tally.finished(5)), (2, 1));
    let s = status(&spool).await;
    assert_eq!((s.workers, s.retried, s.answered), (1, 1, 1), "{s:?}");
}

/// A counting worker that ends, with whatever it holds, on the first 1000
/// anyone sees.
async fn counting_fragile(mut cx: Context, tally: Arc<Tally>, once: Arc<AtomicBool>) {
    loop {
        on!(cx.input().await, {
            i64 as n => {
                tally.start(n);
                if n == 1000 && !once.swap(true, Ordering::SeqCst) {
                    return;
                }
                tally.finish(n);
                let _ = cx.reply(Done { value: n * 10, by: cx.name().to_owned() });
            },
            Stop as _ => return,
            _other => {},
        })
    }
}

// ---- through the directory, over real connections -------------------------

fn fast(options: NodeOptions) -> NodeOptions {
    options.reconnect(Duration::from_millis(50), Duration::from_millis(400))
}

/// A host directory listening on an ephemeral loopback port.
async fn host() -> (Address, HostPort) {
    let mut cx = Context::detached("starter");
    let node = spawn_node(
        fast(NodeOptions::new(Scope::Host).accept_at(HostPort::new("127.0.0.1", 0))),
        cx.address().clone(),
    );
    let listening = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(l) = cx.input().await.downcast::<Listening>() {
                return l.listening;
            }
        }
    })
    .await
    .expect("the host directory listens");
    (node, listening)
}

/// A process directory under the host at `at` (a process of its own, as far
/// as the directory is concerned: its own connections).
fn process(at: &HostPort) -> Address {
    spawn_node(
        fast(NodeOptions::new(Scope::Process).parent(at.clone())),
        Address::NULL,
    )
}

/// A server in front of an external spool, fed by a subscription to
/// `pattern` through `node`, as `test_server_10` does; the spool's address.
async fn front(node: Address, pattern: &'static str) -> (Address, runtime::ActorHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = runtime::spawn(move |mut cx: Context| async move {
        let options = SpoolOptions::new().responsiveness(None);
        let Ok(spool) = cx.spawn_spool(Workers::external(), options) else {
            return;
        };
        let _ = tx.send(spool.clone());
        cx.subscribe_at(&node, pattern, Scope::Host);
        loop {
            on!(cx.input().await, {
                Available as a => { let _ = cx.send(a, &spool); },
                Dropped as d => { let _ = cx.send(d, &spool); },
                Stop as _ => return,
                _other => {},
            })
        }
    });
    (rx.await.unwrap(), handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_upgrade_does_not_run_a_request_twice() {
    let (_host, host_at) = host().await;
    let (far_node, near_node) = (process(&host_at), process(&host_at));
    let tally = Arc::new(Tally::default());
    let gate = Arc::new(Semaphore::new(0));
    // A publisher of "svc" in another process, holding what it gets.
    let _far = counter(
        "far",
        &tally,
        Some(&gate),
        Some((far_node, "svc", Scope::Host)),
    );
    let (spool, _front) = front(near_node.clone(), "svc").await;
    eventually("the far worker joins", async || {
        status(&spool).await.workers == 1
    })
    .await;
    let first = ask_later(&spool, 1);
    eventually("the far worker holds 1", async || tally.started(1) == 1).await;
    // A nearer publisher of the same name (in the front's own process, at
    // PROCESS scope: another at HOST would be refused): the directory drops
    // the far route (`Dropped`, "a nearer route") and offers the near one,
    // while the far worker is still on 1.
    let _near = counter(
        "near",
        &tally,
        None,
        Some((near_node, "svc", Scope::Process)),
    );
    eventually("the near route replaces the far one", async || {
        let s = status(&spool).await;
        (s.workers, s.leaving) == (1, 1)
    })
    .await;
    assert_eq!(ask_done(&spool, 2).await.unwrap().by, "near");
    // The far worker finishes 1: its answer reaches the caller; 1 never ran
    // anywhere else.
    gate.add_permits(1);
    let first = first.await.unwrap().unwrap();
    assert_eq!((first.value, first.by.as_str()), (10, "far"));
    assert_eq!((tally.started(1), tally.finished(1)), (1, 1));
    eventually("the far worker is let go", async || {
        status(&spool).await.leaving == 0
    })
    .await;
    let s = status(&spool).await;
    assert_eq!(
        (s.workers, s.retried, s.lost, s.late, s.answered),
        (1, 0, 0, 0, 2),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_process_goes_has_its_request_run_once_more() {
    let (_host, host_at) = host().await;
    let (doomed_node, other_node, front_node) =
        (process(&host_at), process(&host_at), process(&host_at));
    let tally = Arc::new(Tally::default());
    let _doomed = counter(
        "doomed",
        &tally,
        Some(&Arc::new(Semaphore::new(0))),
        Some((doomed_node.clone(), "svc-doomed", Scope::Host)),
    );
    let (spool, _front) = front(front_node, "svc-.*").await;
    eventually("the doomed worker joins", async || {
        status(&spool).await.workers == 1
    })
    .await;
    let held = ask_later(&spool, 5);
    eventually("the doomed worker holds 5", async || tally.started(5) == 1).await;
    let _other = counter(
        "other",
        &tally,
        None,
        Some((other_node, "svc-other", Scope::Host)),
    );
    eventually("the other worker joins", async || {
        status(&spool).await.workers == 2
    })
    .await;
    // The doomed worker's process goes, and its connections with it: the
    // request it held runs once more, on the other worker.
    doomed_node.send(Stop).unwrap();
    let done = held.await.unwrap().unwrap();
    assert_eq!((done.value, done.by.as_str()), (50, "other"));
    assert_eq!((tally.started(5), tally.finished(5)), (2, 1));
    let s = status(&spool).await;
    assert_eq!((s.retried, s.lost, s.answered), (1, 0, 1), "{s:?}");
}
