//! The actor runtime, exercised through its public API.

use std::time::Duration;

use layer_cake::runtime::{
    self, AskError, Context, Machine, RetryPolicy, SendError, SpawnOptions, Step,
};
use layer_cake::{Ack, FaultKind, Faulted, Payload, Restarted, Returned, Start, Stop, on};

/// Generous: the machine is a loaded 2-core box.
const PATIENCE: Duration = Duration::from_secs(20);

async fn next(cx: &mut Context) -> Payload {
    tokio::time::timeout(PATIENCE, cx.input())
        .await
        .expect("a message within the deadline")
}

async fn echo(mut cx: Context) -> Result<(), Faulted> {
    loop {
        let m = cx.input().await;
        on!(m, {
            Stop as _ => return Err(Faulted::aborted()),
            i64 as n => { let _ = cx.reply(n); },
            String as s => { let _ = cx.reply(s); },
            other => { let _ = cx.reply(other.signature()); },
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_value_reaches_parent_as_typed_returned() {
    let mut cx = Context::detached("test");
    let child = cx.spawn(|_cx| async { 7_i64 });
    assert_eq!(cx.working(), 1);
    let returned = next(&mut cx).await.downcast::<Returned>().unwrap();
    assert_eq!(*cx.return_address(), child);
    assert_eq!(returned.into_result::<i64>().unwrap(), 7);
    assert_eq!(cx.working(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_child_is_faulted_at_parent() {
    let mut cx = Context::detached("test");
    cx.spawn(|_cx| async {
        if true {
            panic!("worker exploded");
        }
        1_i64
    });
    let fault = next(&mut cx)
        .await
        .downcast::<Returned>()
        .unwrap()
        .into_result::<i64>()
        .unwrap_err();
    assert_eq!(fault.condition, "actor panicked");
    assert_eq!(fault.explanation.as_deref(), Some("worker exploded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_error_is_faulted_at_parent() {
    let mut cx = Context::detached("test");
    cx.spawn(|_cx| async { Err::<i64, _>(Faulted::busy("try later").with_error_code(503)) });
    let fault = next(&mut cx)
        .await
        .downcast::<Returned>()
        .unwrap()
        .into_result::<i64>()
        .unwrap_err();
    assert_eq!(fault.kind, FaultKind::Busy);
    assert_eq!(fault.error_code, Some(503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_level_handle_joins_value_and_fault() {
    let ok = runtime::spawn(|_cx| async { String::from("done") });
    assert_eq!(ok.join().await.unwrap(), "done");
    let bad = runtime::spawn(|_cx| async { Err::<(), _>(Faulted::new("nope")) });
    assert_eq!(bad.join().await.unwrap_err().condition, "nope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_reply() {
    let worker = runtime::spawn(echo);
    let mut cx = Context::detached("test");
    cx.send(5_i64, worker.address()).unwrap();
    assert_eq!(next(&mut cx).await.downcast::<i64>().unwrap(), 5);
    assert_eq!(cx.return_address(), worker.address());
    worker.address().send(Stop).unwrap();
    assert_eq!(worker.join().await.unwrap_err().kind, FaultKind::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_keeps_the_original_return_address() {
    let last = runtime::spawn(echo);
    let last_address = last.address().clone();
    // A middleman that forwards everything: the answer skips it.
    let middle = runtime::spawn(move |mut cx: Context| async move {
        loop {
            let m = cx.input().await;
            on!(m, {
                Stop as _ => return,
                i64 as n => { cx.forward(n * 10, &last_address).unwrap(); },
                _other => {},
            })
        }
    });
    let mut cx = Context::detached("test");
    let answer: i64 = cx.ask(4_i64, middle.address(), PATIENCE).await.unwrap();
    assert_eq!(answer, 40);
    cx.send(9_i64, middle.address()).unwrap();
    assert_eq!(next(&mut cx).await.downcast::<i64>().unwrap(), 90);
    assert_eq!(
        cx.return_address(),
        last.address(),
        "the reply came straight from the last actor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_errors() {
    let mut cx = Context::detached("test");
    // Asking oneself is refused at once, with the message handed back.
    let me = cx.address().clone();
    match cx.ask::<i64, _>(1_i64, &me, PATIENCE).await {
        Err(AskError::AskedSelf(m)) => assert_eq!(m, 1),
        other => panic!("expected AskedSelf, got {other:?}"),
    }
    // An actor that never answers: timeout.
    let silent = runtime::spawn(|mut cx: Context| async move {
        loop {
            if cx.input().await.is::<Stop>() {
                return;
            }
        }
    });
    let r = cx
        .ask::<i64, _>(1_i64, silent.address(), Duration::from_millis(50))
        .await;
    assert!(matches!(r, Err(AskError::TimedOut)), "{r:?}");
    // A fault as the answer.
    let faulty = runtime::spawn(|mut cx: Context| async move {
        let _ = cx.input().await;
        let _ = cx.reply(Faulted::overloaded("queue full"));
    });
    match cx.ask::<i64, _>(1_i64, faulty.address(), PATIENCE).await {
        Err(AskError::Faulted(f)) => assert_eq!(f.kind, FaultKind::Overloaded),
        other => panic!("expected a fault, got {other:?}"),
    }
    // An answer of the wrong type.
    let echo = runtime::spawn(echo);
    match cx
        .ask::<i64, _>(String::from("x"), echo.address(), PATIENCE)
        .await
    {
        Err(AskError::Unexpected(p)) => assert_eq!(p.downcast::<String>().unwrap(), "x"),
        other => panic!("expected Unexpected, got {other:?}"),
    }
    // Asking an actor that has ended hands the message back.
    let ended = silent.address().clone();
    ended.send(Stop).unwrap();
    silent.join().await.unwrap();
    match cx.ask::<i64, _>(3_i64, &ended, PATIENCE).await {
        Err(AskError::Send(SendError::Closed(3))) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_during_an_ask_are_kept_in_order() {
    let mut cx = Context::detached("test");
    let me = cx.address().clone();
    // Sends the asker three messages before answering.
    let chatty = runtime::spawn(move |mut cx: Context| async move {
        let _ = cx.input().await;
        for i in 0..3_i64 {
            cx.send(i, &me).unwrap();
        }
        cx.reply(String::from("answer")).unwrap();
    });
    let answer: String = cx.ask(Ack, chatty.address(), PATIENCE).await.unwrap();
    assert_eq!(answer, "answer");
    for i in 0..3_i64 {
        assert_eq!(next(&mut cx).await.downcast::<i64>().unwrap(), i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_refuses_and_hands_the_message_back() {
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let sleeper = runtime::spawn_with(
        SpawnOptions::new().capacity(2),
        move |mut cx: Context| async move {
            let _ = release_rx.await;
            let mut seen = Vec::new();
            loop {
                let m = cx.input().await;
                on!(m, {
                    i64 as n => seen.push(n),
                    Stop as _ => return seen,
                    _other => {},
                })
            }
        },
    );
    let to = sleeper.address().clone();
    to.send(1_i64).unwrap();
    to.send(2_i64).unwrap();
    match to.send(3_i64) {
        Err(SendError::Full(m)) => assert_eq!(m, 3),
        other => panic!("expected Full, got {other:?}"),
    }
    // An ask waits for room within its deadline, then hands the message back.
    match runtime::ask::<i64, _>(9_i64, &to, Duration::from_millis(50)).await {
        Err(AskError::Send(SendError::Full(m))) => assert_eq!(m, 9),
        other => panic!("expected Full, got {other:?}"),
    }
    // The control lane still takes Stop, and Stop is read before queued user
    // messages.
    to.send(Stop).unwrap();
    release_tx.send(()).unwrap();
    assert_eq!(sleeper.join().await.unwrap(), Vec::<i64>::new());
    match to.send(4_i64) {
        Err(SendError::Closed(m)) => assert_eq!(m, 4),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(matches!(
        layer_cake::Address::NULL.send(5_i64),
        Err(SendError::NoAddress(5))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_wait_waits_for_room() {
    let counter = runtime::spawn_with(
        SpawnOptions::new().capacity(4),
        |mut cx: Context| async move {
            let mut total = 0_i64;
            loop {
                let m = cx.input().await;
                on!(m, {
                    i64 as n => total += n,
                    Ack as _ => { let _ = cx.reply(total); },
                    Stop as _ => return total,
                    _other => {},
                })
            }
        },
    );
    let mut cx = Context::detached("test");
    for i in 1..=1000_i64 {
        cx.send_wait(i, counter.address()).await.unwrap();
    }
    // User messages from one sender stay in order: Ack comes after all numbers.
    let total: i64 = cx.ask(Ack, counter.address(), PATIENCE).await.unwrap();
    assert_eq!(total, 500_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_left_in_an_ended_actor_are_answered_with_a_fault() {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let quitter = runtime::spawn(move |_cx: Context| async move {
        let _ = go_rx.await;
    });
    let to = quitter.address().clone();
    let asking = tokio::spawn(async move { runtime::ask::<i64, _>(1_i64, &to, PATIENCE).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    go_tx.send(()).unwrap();
    match asking.await.unwrap() {
        Err(AskError::Faulted(f)) => assert_eq!(f.condition, "not answered"),
        // The ask may also have raced the actor's end and found it closed.
        Err(AskError::Send(SendError::Closed(1))) => {}
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Tick;
impl layer_cake::Message for Tick {
    fn write_signature(out: &mut String) {
        out.push_str("Tick");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_repeat_restart_and_cancel() {
    let mut cx = Context::detached("test");
    // One-shot.
    cx.start_timer(Tick, Duration::from_millis(5));
    assert!(next(&mut cx).await.is::<Tick>());
    // Repeating: several ticks, then cancel.
    cx.start_repeating_timer(Tick, Duration::from_millis(5));
    for _ in 0..3 {
        assert!(next(&mut cx).await.is::<Tick>());
    }
    assert!(cx.cancel_timer::<Tick>());
    assert!(!cx.cancel_timer::<Tick>());
    // A restart resets a pending timer: a long one restarted short fires once.
    cx.start_timer(Tick, Duration::from_secs(3600));
    cx.start_timer(Tick, Duration::from_millis(5));
    assert!(next(&mut cx).await.is::<Tick>());
    // A timer that already fired but was cancelled before being read is never
    // delivered.
    cx.start_timer(Tick, Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cx.cancel_timer::<Tick>());
    let me = cx.address().clone();
    me.send(Ack).unwrap();
    assert!(
        next(&mut cx).await.is::<Ack>(),
        "the stale tick was discarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_stops_every_child_and_working_counts_down() {
    let mut cx = Context::detached("test");
    for _ in 0..5 {
        cx.spawn(echo);
    }
    assert_eq!(cx.working(), 5);
    assert_eq!(cx.abort(), 5);
    let mut faults = 0;
    while cx.working() > 0 {
        let r = next(&mut cx).await.downcast::<Returned>().unwrap();
        assert_eq!(r.into_result::<()>().unwrap_err().kind, FaultKind::Aborted);
        faults += 1;
    }
    assert_eq!(faults, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_the_child() {
    let mut cx = Context::detached("test");
    let child = cx.spawn(echo);
    let returned = cx.stop(&child, PATIENCE).await.unwrap();
    assert_eq!(
        returned.into_result::<()>().unwrap_err().kind,
        FaultKind::Aborted
    );
    assert_eq!(cx.working(), 0);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warming,
    Ready,
}

/// Saves numbers until it sees `Ack`, then sums everything.
struct Summer {
    sum: i64,
    log: Vec<String>,
}

impl Machine for Summer {
    type State = Phase;
    type Output = Vec<String>;
    const INITIAL: Phase = Phase::Warming;

    fn received(
        &mut self,
        cx: &mut Context,
        state: Phase,
        message: Payload,
    ) -> Step<Phase, Vec<String>> {
        if state == Phase::Warming && message.is::<i64>() {
            return Step::Save(message);
        }
        on!(message, {
            Start as _ => { self.log.push("start".into()); Step::Stay },
            Ack as _ => { self.log.push("ready".into()); Step::Go(Phase::Ready) },
            i64 as n => { self.sum += n; self.log.push(format!("add {n}")); let _ = cx.reply(self.sum); Step::Stay },
            Stop as _ => Step::Complete(std::mem::take(&mut self.log)),
            _other => Step::Stay,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_machine_saves_until_the_state_changes() {
    let mut cx = Context::detached("test");
    let summer = cx.spawn_machine(Summer {
        sum: 0,
        log: vec![],
    });
    cx.send(1_i64, &summer).unwrap();
    cx.send(2_i64, &summer).unwrap();
    cx.send(Ack, &summer).unwrap();
    assert_eq!(next(&mut cx).await.downcast::<i64>().unwrap(), 1);
    assert_eq!(next(&mut cx).await.downcast::<i64>().unwrap(), 3);
    cx.send(Stop, &summer).unwrap();
    let log = next(&mut cx)
        .await
        .downcast::<Returned>()
        .unwrap()
        .into_result::<Vec<String>>()
        .unwrap();
    assert_eq!(log, ["start", "ready", "add 1", "add 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_child_restarts_from_its_factory() {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut cx = Context::detached("test");
    let policy = RetryPolicy {
        first_steps: vec![0.01, 0.01, 0.01],
        ..Default::default()
    };
    let counter = runs.clone();
    let child = cx.spawn_supervised(
        SpawnOptions::new().name("flaky"),
        policy,
        move |mut cx: Context| {
            let run = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move {
                if run < 3 {
                    return Err(Faulted::new(format!("run {run} failed")));
                }
                // The third run answers the message queued before the restarts.
                let n = cx.input().await.downcast::<i64>().unwrap();
                Ok(n + 100)
            }
        },
    );
    cx.send(1_i64, &child).unwrap();
    for attempt in 1..=2 {
        let restarted = next(&mut cx).await.downcast::<Restarted>().unwrap();
        assert_eq!(restarted.attempt, attempt);
        assert_eq!(restarted.address, child);
        assert_eq!(restarted.fault.condition, format!("run {attempt} failed"));
    }
    let value = next(&mut cx)
        .await
        .downcast::<Returned>()
        .unwrap()
        .into_result::<i64>()
        .unwrap();
    assert_eq!(value, 101);
    assert_eq!(cx.return_address(), &child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervision_gives_up_when_the_policy_is_spent() {
    let mut cx = Context::detached("test");
    let policy = RetryPolicy {
        regular_steps: Some(0.01),
        step_limit: Some(2),
        ..Default::default()
    };
    cx.spawn_supervised(SpawnOptions::new(), policy, |_cx: Context| async {
        Err::<(), _>(Faulted::new("always"))
    });
    assert!(next(&mut cx).await.is::<Restarted>());
    assert!(next(&mut cx).await.is::<Restarted>());
    let fault = next(&mut cx)
        .await
        .downcast::<Returned>()
        .unwrap()
        .into_result::<()>()
        .unwrap_err();
    assert_eq!(fault.condition, "always");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_restart_delay_ends_the_child() {
    let mut cx = Context::detached("test");
    let policy = RetryPolicy {
        regular_steps: Some(3600.0),
        ..Default::default()
    };
    let child = cx.spawn_supervised(SpawnOptions::new(), policy, |_cx: Context| async {
        Err::<(), _>(Faulted::new("always"))
    });
    assert!(next(&mut cx).await.is::<Restarted>());
    cx.send(Stop, &child).unwrap();
    let fault = next(&mut cx)
        .await
        .downcast::<Returned>()
        .unwrap()
        .into_result::<()>()
        .unwrap_err();
    assert_eq!(fault.kind, FaultKind::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_actors() {
    let mut cx = Context::detached("test");
    let n = 100_000;
    for _ in 0..n {
        cx.spawn(echo);
    }
    assert_eq!(cx.working(), n);
    cx.abort();
    while cx.working() > 0 {
        next(&mut cx).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_hears_when_an_actor_ends() {
    let mut cx = Context::detached("test");
    let worker = runtime::spawn(echo);
    let target = worker.address().clone();
    assert!(cx.watch(&target));
    target.send(Stop).unwrap();
    let ended = next(&mut cx).await.downcast::<runtime::Ended>().unwrap();
    assert_eq!(ended.address, target);
    // Watching an actor that has already ended says so at once.
    assert!(!cx.watch(&target));
}
