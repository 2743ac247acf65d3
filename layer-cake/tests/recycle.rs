//! Worker recycling in one process: a spool waits for the successor of a
//! worker that retired instead of turning requests away, and a process
//! whose main actor has `--max-requests` withdraws its publication after
//! that many requests (its subscriber's spool hears `Dropped` with the
//! reason [`RETIRED`]), answers what it was sent, and exits 0 with
//! [`Retired`]. The recycled processes under group-cake are in
//! `cli/tests/recycle.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use layer_cake::directory::{Available, Dropped, Published, RETIRED, Scope, Subscribed};
use layer_cake::process::Retired;
use layer_cake::runtime::{self, AskError, Context};
use layer_cake::spool::{self, JoinSpool, SpoolOptions, Workers};
use layer_cake::{Address, FaultKind, Faulted, Stop, on};

/// Generous: the machine is a loaded 2-core box.
const PATIENCE: Duration = Duration::from_secs(20);

/// Answers each number with ten times it.
async fn tenfold(mut cx: Context) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            i64 as n => { let _ = cx.reply(n * 10); },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// A `Dropped` for `worker` with `reason`.
fn dropped(worker: &Address, reason: &str) -> Dropped {
    Dropped {
        name: "worker".into(),
        scope: Scope::Host,
        subscription: uuid::Uuid::new_v4(),
        publication: uuid::Uuid::new_v4(),
        remote: worker.clone(),
        reason: reason.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_waits_for_the_successor_of_a_retired_worker() {
    let spool = spool::spawn(Workers::external(), SpoolOptions::default()).unwrap();
    let spool = spool.address().clone();
    let first = runtime::spawn(tenfold);
    spool
        .send(JoinSpool {
            worker: first.address().clone(),
        })
        .unwrap();
    let n: i64 = runtime::ask(1_i64, &spool, PATIENCE).await.unwrap();
    assert_eq!(n, 10);

    // The only worker retires: a request now waits for its successor.
    spool.send(dropped(first.address(), RETIRED)).unwrap();
    let waiting = tokio::spawn({
        let spool = spool.clone();
        async move { runtime::ask::<i64, _>(2_i64, &spool, PATIENCE).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered before any successor came");
    let second = runtime::spawn(tenfold);
    spool
        .send(JoinSpool {
            worker: second.address().clone(),
        })
        .unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 20);

    // A worker dropped for any other reason leaves no prospect.
    spool
        .send(dropped(second.address(), "publication cleared"))
        .unwrap();
    match runtime::ask::<i64, _>(3_i64, &spool, PATIENCE).await {
        Err(AskError::Faulted(fault)) => {
            assert_eq!(fault.kind, FaultKind::TemporarilyUnavailable, "{fault}")
        }
        other => panic!("expected TemporarilyUnavailable, got {other:?}"),
    }
}

/// What the subscriber in the process saw.
#[derive(Debug, Default)]
struct Seen {
    answers: Vec<i64>,
    dropped: Vec<String>,
}

/// Subscribes to the worker, feeds it to a spool and asks it `asks`
/// numbers in turn, recording the answers and why the worker was dropped.
async fn client(mut cx: Context, asks: i64, seen: Arc<Mutex<Seen>>) -> Result<(), Faulted> {
    let spool = cx.spawn_spool(Workers::external(), SpoolOptions::default())?;
    cx.subscribe("recycle-test-worker", Scope::Process);
    loop {
        on!(cx.input().await, {
            Subscribed as _ => {},
            Available as a => {
                let _ = cx.send(a, &spool);
                for n in 1..=asks {
                    let answer: i64 = cx.ask(n, &spool, PATIENCE).await.map_err(|e| Faulted::new(e.to_string()))?;
                    seen.lock().unwrap().answers.push(answer);
                }
            },
            Dropped as d => {
                seen.lock().unwrap().dropped.push(d.reason.clone());
                let _ = cx.send(d, &spool);
            },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

#[test]
fn a_main_actor_with_max_requests_retires_and_the_process_exits_0_with_retired() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watched = Arc::clone(&seen);
    let main = move |mut cx: Context, (): ()| async move {
        cx.publish("recycle-test-worker", Scope::Process);
        let mut client_started = false;
        loop {
            on!(cx.input().await, {
                Published as _ => {
                    if !client_started {
                        client_started = true;
                        let seen = Arc::clone(&watched);
                        cx.spawn(move |cx| client(cx, 3, seen));
                    }
                },
                i64 as n => { let _ = cx.reply(n * 10); },
                Stop as _ => return Err::<(), _>(Faulted::aborted()),
                _other => {},
            })
        }
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = layer_cake::process::run(main, &["worker", "--max-requests=3"], &mut out, &mut err);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(
        code,
        0,
        "stdout {out}; stderr {}",
        String::from_utf8_lossy(&err)
    );
    let retired: Retired = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        retired,
        Retired {
            requests: 3,
            reason: "max-requests".into()
        }
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.answers, [10, 20, 30]);
    assert_eq!(seen.dropped, [RETIRED], "{seen:?}");
}
