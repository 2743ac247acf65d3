use std::time::Duration;

use super::load::{Pool, WINDOW, Window};
use crate::runtime::{self, Address, Context};

/// Addresses of `n` idle actors (the pool only compares addresses).
fn addresses(n: usize) -> Vec<Address> {
    (0..n)
        .map(|_| {
            runtime::spawn(|mut cx: Context| async move {
                let _ = cx.input().await;
            })
            .address()
            .clone()
        })
        .collect()
}

#[tokio::test]
async fn pick_spreads_over_idle_workers_then_fills_the_least_loaded() {
    let workers = addresses(3);
    let mut pool = Pool::new(2);
    for w in &workers {
        assert!(pool.add(w.clone()));
    }
    assert!(!pool.add(workers[0].clone()), "no worker joins twice");
    // Three idle workers: each gets one before any gets a second.
    let first: Vec<Address> = (0..3).map(|_| pool.pick().unwrap()).collect();
    for w in &workers {
        assert_eq!(first.iter().filter(|p| *p == w).count(), 1);
    }
    assert_eq!(pool.idle(), 0);
    // Worker 1 finishes: it is now the least loaded.
    pool.done(&workers[1]);
    assert_eq!(pool.pick().unwrap(), workers[1]);
    // Everyone at capacity 2 after three more picks; then nothing.
    for _ in 0..3 {
        assert!(pool.pick().is_some());
    }
    assert!(pool.pick().is_none(), "every worker is full");
    pool.done(&workers[2]);
    assert_eq!(pool.pick().unwrap(), workers[2]);
}

#[tokio::test]
async fn a_removed_worker_is_never_picked() {
    let workers = addresses(2);
    let mut pool = Pool::new(1);
    pool.add(workers[0].clone());
    pool.add(workers[1].clone());
    assert!(pool.remove(&workers[0]));
    assert!(!pool.remove(&workers[0]));
    assert_eq!(pool.pick().unwrap(), workers[1]);
    assert!(pool.pick().is_none());
    pool.done(&workers[0]); // harmless for a worker no longer in the pool
    assert!(pool.pick().is_none());
    assert_eq!(pool.len(), 1);
}

#[tokio::test]
async fn a_leaving_worker_keeps_its_load_but_gets_nothing_new() {
    let workers = addresses(2);
    let mut pool = Pool::new(1);
    pool.add(workers[0].clone());
    pool.add(workers[1].clone());
    assert_eq!(pool.pick().unwrap(), workers[0]);
    assert!(pool.leave(&workers[0]));
    assert!(!pool.leave(&workers[0]), "already leaving");
    assert!(pool.is_leaving(&workers[0]));
    assert_eq!((pool.len(), pool.leaving(), pool.idle()), (1, 1, 1));
    // Only the worker in rotation is picked, and then nobody.
    assert_eq!(pool.pick().unwrap(), workers[1]);
    assert!(pool.pick().is_none());
    // Back in rotation with its load: still full until it answers.
    pool.done(&workers[1]);
    assert!(pool.add(workers[0].clone()), "it comes back");
    assert!(!pool.add(workers[0].clone()));
    assert_eq!(pool.pick().unwrap(), workers[1]);
    assert!(pool.pick().is_none(), "worker 0 still holds its request");
    pool.done(&workers[0]);
    assert_eq!(pool.pick().unwrap(), workers[0]);
    // With every worker leaving, the pool has nobody in rotation.
    pool.leave(&workers[0]);
    pool.leave(&workers[1]);
    assert!(pool.is_empty());
    assert!(pool.contains(&workers[0]));
}

#[test]
fn the_window_averages_the_last_spans() {
    let mut window = Window::new();
    assert_eq!(window.average(), None);
    window.record(Duration::from_millis(10));
    window.record(Duration::from_millis(30));
    assert_eq!(window.average(), Some(Duration::from_millis(20)));
    // A full window of 1 ms pushes the old spans out.
    for _ in 0..WINDOW {
        window.record(Duration::from_millis(1));
    }
    assert_eq!(window.average(), Some(Duration::from_millis(1)));
}

#[test]
fn a_request_is_copied_through_the_codec() {
    let p = crate::Payload::new(7_i64);
    assert_eq!(p.try_copy().unwrap().downcast::<i64>().unwrap(), 7);
    // Registration is not needed: the copy decodes as the type it came from.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Unlisted(String);
    impl crate::Message for Unlisted {
        fn write_signature(out: &mut String) {
            out.push_str("layer_cake.tests.Unlisted");
        }
    }
    let p = crate::Payload::new(Unlisted("x".into()));
    let copy = p.try_copy().unwrap();
    assert_eq!(copy.downcast::<Unlisted>().unwrap(), Unlisted("x".into()));
}
