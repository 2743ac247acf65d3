//! The ObjectSpool: dispatch, queueing, load shedding, deadlines, workers
//! that die or leave with requests, restarts and stopping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use layer_cake::runtime::{self, AskError, Context};
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

/// Never answers 1; answers everything else at once.
async fn stuck_on_one(mut cx: Context) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            i64 as n => {
                if n != 1 {
                    let _ = cx.reply(Answer::of(n, cx.address()));
                }
            },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_makes_room_for_the_queue() {
    let options = SpoolOptions::new().request_timeout(Duration::from_secs(1));
    let spool = spool::spawn(Workers::local(1, stuck_on_one), options).unwrap();
    let spool = spool.address().clone();
    let first = {
        let spool = spool.clone();
        tokio::spawn(async move { ask(&spool, 1).await })
    };
    eventually("the worker holds 1", async || {
        status(&spool).await.in_flight == 1
    })
    .await;
    // 2 queues behind it; when 1 times out, 2 goes to the worker at once,
    // long before its own deadline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = ask(&spool, 2).await;
    assert_eq!(first.await.unwrap().unwrap_err().kind, FaultKind::TimedOut);
    assert_eq!(second.unwrap().value, 20);
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
async fn external_workers_join_and_leave_and_a_leaver_s_requests_go_elsewhere() {
    let gate = Arc::new(Semaphore::new(0));
    let stuck = runtime::spawn(gated(gate.clone()));
    let good = runtime::spawn(tenfold);
    let spool = spool::spawn(Workers::external(), SpoolOptions::default()).unwrap();
    let spool = spool.address().clone();
    spool
        .send(JoinSpool {
            worker: stuck.address().clone(),
        })
        .unwrap();
    // The stuck worker takes the first request…
    let first = {
        let spool = spool.clone();
        tokio::spawn(async move { ask(&spool, 7).await })
    };
    eventually("the stuck worker holds it", async || {
        status(&spool).await.in_flight == 1
    })
    .await;
    // …a good worker joins, the stuck one leaves: the request is retried.
    spool
        .send(JoinSpool {
            worker: good.address().clone(),
        })
        .unwrap();
    spool
        .send(LeaveSpool {
            worker: stuck.address().clone(),
        })
        .unwrap();
    let answer = first.await.unwrap().unwrap();
    assert_eq!((answer.value, &answer.worker), (70, good.address()));
    // The stuck worker's late answer is discarded: one answer per request.
    gate.add_permits(1);
    eventually("the late answer is discarded", async || {
        status(&spool).await.late == 1
    })
    .await;
    let s = status(&spool).await;
    assert_eq!((s.workers, s.retried, s.answered), (1, 1, 1));
    // The last worker leaves: no prospect of another.
    spool
        .send(LeaveSpool {
            worker: good.address().clone(),
        })
        .unwrap();
    let fault = ask(&spool, 1).await.unwrap_err();
    assert_eq!(fault.kind, FaultKind::TemporarilyUnavailable);
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
