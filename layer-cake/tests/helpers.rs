//! Many requests at once: `Context::concurrently` and `Context::sequentially`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use layer_cake::runtime::{self, Context};
use layer_cake::{Address, FaultKind, Faulted, Payload, Stop, on};

/// Generous: the machine is a loaded 2-core box.
const PATIENCE: Duration = Duration::from_secs(20);

async fn next(cx: &mut Context) -> Payload {
    tokio::time::timeout(PATIENCE, cx.input())
        .await
        .expect("a message within the deadline")
}

/// Answers every number with ten times it.
async fn tenfold(mut cx: Context) {
    loop {
        on!(cx.input().await, {
            i64 as n => { let _ = cx.reply(n * 10); },
            Stop as _ => return,
            _other => {},
        })
    }
}

/// Answers every request with a fault.
async fn faulty(mut cx: Context) {
    loop {
        on!(cx.input().await, {
            Stop as _ => return,
            _other => { let _ = cx.reply(Faulted::new("bad").with_explanation("on purpose")); },
        })
    }
}

fn to(n: i64, address: &Address) -> (Payload, Address) {
    (Payload::new(n), address.clone())
}

fn number(answer: Result<Payload, Faulted>) -> i64 {
    answer.unwrap().downcast::<i64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_back_in_input_order_though_they_arrive_in_reverse() {
    const N: usize = 4;
    // Worker i answers only after the workers of every later item have
    // answered: the answers arrive in exactly the reverse order.
    let answered = Arc::new(AtomicUsize::new(0));
    let workers: Vec<Address> = (0..N)
        .map(|i| {
            let answered = answered.clone();
            runtime::spawn(move |mut cx: Context| async move {
                let n = cx.input().await.downcast::<i64>().unwrap();
                while answered.load(Ordering::SeqCst) != N - 1 - i {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let _ = cx.reply(n * 10);
                answered.fetch_add(1, Ordering::SeqCst);
            })
            .address()
            .clone()
        })
        .collect();
    let mut me = Context::detached("test");
    let requests = workers
        .iter()
        .enumerate()
        .map(|(i, w)| to(i as i64, w))
        .collect();
    let answers = me.concurrently(requests, PATIENCE).await;
    let numbers: Vec<i64> = answers.into_iter().map(number).collect();
    assert_eq!(numbers, [0, 10, 20, 30]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_worker_times_out_alone_and_its_late_answer_is_discarded() {
    let quick = runtime::spawn(tenfold);
    // Holds on to its request until told to answer; then answers it and
    // says "done".
    let slow = runtime::spawn(|mut cx: Context| async move {
        let _ = cx.input().await;
        let answer = cx.return_path();
        let requester = cx.return_address().clone();
        let _ = cx.input().await; // the go-ahead
        let _ = answer.reply(99_i64);
        let _ = cx.send("done".to_string(), &requester);
    });
    let mut me = Context::detached("test");
    let requests = vec![
        to(1, quick.address()),
        to(2, slow.address()),
        to(3, quick.address()),
    ];
    let started = Instant::now();
    let mut answers = me.concurrently(requests, Duration::from_millis(300)).await;
    assert!(started.elapsed() < PATIENCE, "returned at its deadline");
    let late = answers.remove(1).unwrap_err();
    assert_eq!(late.kind, FaultKind::TimedOut);
    assert!(late.to_string().contains("no answer"), "{late}");
    let numbers: Vec<i64> = answers.into_iter().map(number).collect();
    assert_eq!(numbers, [10, 30]);

    // The late answer (sent first, on the faster lane) is discarded; "done"
    // is the next message.
    me.send("go".to_string(), slow.address()).unwrap();
    let message = next(&mut me).await;
    assert_eq!(message.downcast::<String>().unwrap(), "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_a_closed_address_and_self_fill_their_own_slots() {
    let good = runtime::spawn(tenfold);
    let bad = runtime::spawn(faulty);
    let ended = runtime::spawn(tenfold);
    let ended_address = ended.address().clone();
    ended_address.send(Stop).unwrap();
    ended.join().await.unwrap();
    let mut me = Context::detached("test");
    let myself = me.address().clone();
    let requests = vec![
        to(1, good.address()),
        to(2, bad.address()),
        to(3, &ended_address),
        to(4, &myself),
        to(5, good.address()),
    ];
    let mut answers = me.concurrently(requests, PATIENCE).await.into_iter();
    assert_eq!(number(answers.next().unwrap()), 10);
    let fault = answers.next().unwrap().unwrap_err();
    assert_eq!(fault.condition, "bad");
    assert_eq!(fault.explanation.as_deref(), Some("on purpose"));
    let not_sent = answers.next().unwrap().unwrap_err();
    assert!(not_sent.to_string().contains("ended"), "{not_sent}");
    let asked_self = answers.next().unwrap().unwrap_err();
    assert!(asked_self.to_string().contains("itself"), "{asked_self}");
    assert_eq!(number(answers.next().unwrap()), 50);
    assert!(answers.next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_messages_arriving_meanwhile_are_delivered_afterwards_in_order() {
    // Tells the requester two things before answering.
    let chatty = runtime::spawn(|mut cx: Context| async move {
        loop {
            let Ok(n) = cx.input().await.downcast::<i64>() else {
                return;
            };
            let requester = cx.return_address().clone();
            let _ = cx.send(format!("{n}: one"), &requester);
            let _ = cx.send(format!("{n}: two"), &requester);
            let _ = cx.reply(n);
        }
    });
    let mut me = Context::detached("test");
    me.send("zero".to_string(), &me.address().clone()).unwrap();
    let requests = vec![to(1, chatty.address())];
    let answers = me.concurrently(requests, PATIENCE).await;
    assert_eq!(answers.into_iter().map(number).collect::<Vec<_>>(), [1]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut me).await.downcast::<String>().unwrap());
    }
    assert_eq!(seen, ["zero", "1: one", "1: two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_answers_and_an_empty_list() {
    let good = runtime::spawn(tenfold);
    let mut me = Context::detached("test");
    let requests = vec![
        to(1, good.address()),
        (Payload::new(true), good.address().clone()),
    ];
    let short = Duration::from_millis(300);
    let answers = me.concurrently_as::<i64>(vec![to(2, good.address())], PATIENCE);
    assert_eq!(answers.await[0].as_ref().unwrap(), &20);
    // `tenfold` ignores a boolean: that slot times out.
    let answers = me.concurrently_as::<i64>(requests, short).await;
    assert_eq!(answers[0].as_ref().unwrap(), &10);
    assert_eq!(answers[1].as_ref().unwrap_err().kind, FaultKind::TimedOut);
    assert!(me.concurrently(Vec::new(), short).await.is_empty());
    assert!(me.sequentially(Vec::new(), short).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequentially_answers_in_order() {
    let good = runtime::spawn(tenfold);
    let mut me = Context::detached("test");
    let requests = (1..=3).map(|n| to(n, good.address())).collect();
    let answers = me.sequentially(requests, PATIENCE).await.unwrap();
    let numbers: Vec<i64> = answers
        .into_iter()
        .map(|a| a.downcast::<i64>().unwrap())
        .collect();
    assert_eq!(numbers, [10, 20, 30]);
}

/// Counts the requests it gets and answers each with the count so far.
fn counter() -> Address {
    runtime::spawn(|mut cx: Context| async move {
        let mut count = 0_i64;
        loop {
            on!(cx.input().await, {
                Stop as _ => return,
                _other => {
                    count += 1;
                    let _ = cx.reply(count);
                },
            })
        }
    })
    .address()
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequentially_stops_at_the_first_fault_and_sends_nothing_after_it() {
    let good = runtime::spawn(tenfold);
    let bad = runtime::spawn(faulty);
    let later = counter();
    let mut me = Context::detached("test");
    let requests = vec![to(1, good.address()), to(2, bad.address()), to(3, &later)];
    let (index, fault) = me.sequentially(requests, PATIENCE).await.unwrap_err();
    assert_eq!(index, 1);
    assert_eq!(fault.condition, "bad");
    // The probe is the first request `later` ever got.
    let count: i64 = me.ask(0_i64, &later, PATIENCE).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequentially_stops_at_a_closed_address_or_the_deadline() {
    let good = runtime::spawn(tenfold);
    let ended = runtime::spawn(tenfold);
    let ended_address = ended.address().clone();
    ended_address.send(Stop).unwrap();
    ended.join().await.unwrap();
    // Takes requests and never answers them.
    let silent = runtime::spawn(|mut cx: Context| async move {
        let mut held = Vec::new();
        loop {
            if cx.input().await.is::<Stop>() {
                return;
            }
            held.push(cx.return_path());
        }
    });
    let later = counter();
    let mut me = Context::detached("test");

    let requests = vec![to(1, good.address()), to(2, &ended_address), to(3, &later)];
    let (index, fault) = me.sequentially(requests, PATIENCE).await.unwrap_err();
    assert_eq!(index, 1);
    assert!(fault.to_string().contains("ended"), "{fault}");

    let requests = vec![
        to(1, good.address()),
        to(2, silent.address()),
        to(3, &later),
    ];
    let short = Duration::from_millis(300);
    let (index, fault) = me.sequentially(requests, short).await.unwrap_err();
    assert_eq!(index, 1);
    assert_eq!(fault.kind, FaultKind::TimedOut);

    let count: i64 = me.ask(0_i64, &later, PATIENCE).await.unwrap();
    assert_eq!(count, 1);
}
