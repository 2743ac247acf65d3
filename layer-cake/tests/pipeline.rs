//! Pipelines (issue 13): stages in a row behind an HTTP front, a stage
//! passing work on or answering early through the ingress; the front's
//! whole-request delivery and its health check.

use std::time::Duration;

use layer_cake::directory::{Available, Dropped, Scope};
use layer_cake::net::http::decode_request;
use layer_cake::net::{
    HttpRequest, HttpResponse, HttpServer, ListenOptions, Listening, NotListening,
};
use layer_cake::spool::{InspectSpool, NextStage, SpoolOptions, SpoolStatus, Workers, pass};
use layer_cake::{Address, Context, Faulted, HostPort, Message, Stop, on, runtime};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const PATIENCE: Duration = Duration::from_secs(20);

/// What the first stage passes on.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
struct Word {
    text: String,
}

/// The first stage: a path `/say/<word>` goes on to the second stage; `/`
/// alone is answered 400 at once; `/hold` is never answered.
/// Each test names its stages `<test>:first` and `<test>:second`, as
/// the tests of this binary share one process's directory.
async fn first(mut cx: Context, test: &'static str) -> Result<(), Faulted> {
    cx.publish(
        format!("{test}:first:{}", uuid::Uuid::new_v4()),
        Scope::Process,
    );
    let mut next = NextStage::find(&mut cx, format!("{test}:second"), Scope::Process);
    loop {
        on!(cx.input().await, {
            HttpRequest as r => match r.path().strip_prefix("/say/") {
                Some(word) => { let _ = next.pass(&cx, Word { text: word.to_owned() }); },
                None if r.path() == "/hold" => {},
                None => { let _ = cx.reply(HttpResponse::text(400, "say what?")); },
            },
            Available as a => { next.available(&a); },
            Dropped as d => { next.dropped(&d); },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// The second stage: answers each word in capitals.
async fn second(mut cx: Context, test: &'static str) -> Result<(), Faulted> {
    cx.publish(
        format!("{test}:second:{}", uuid::Uuid::new_v4()),
        Scope::Process,
    );
    loop {
        on!(cx.input().await, {
            Word as w => { let _ = cx.reply(HttpResponse::text(200, w.text.to_uppercase())); },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// The front: stages of `workers` workers each, and every request to the
/// first.
async fn front(
    mut cx: Context,
    test: &'static str,
    workers: usize,
    ready: oneshot::Sender<(HostPort, Address, Address)>,
) -> Result<(), Faulted> {
    let one = cx.spawn_stage(format!("{test}:first"), Scope::Process, SpoolOptions::new())?;
    let two = cx.spawn_stage(
        format!("{test}:second"),
        Scope::Process,
        SpoolOptions::new(),
    )?;
    for _ in 0..workers {
        cx.spawn(move |cx| first(cx, test));
        cx.spawn(move |cx| second(cx, test));
    }
    let http = HttpServer::new()
        .accept::<HttpRequest>()
        .health_check("/health", "fine");
    cx.listen(HostPort::new("127.0.0.1", 0), ListenOptions::http(http));
    let mut ready = Some(ready);
    loop {
        on!(cx.input().await, {
            Listening as l => {
                if let Some(r) = ready.take() {
                    let _ = r.send((l.listening, one.clone(), two.clone()));
                }
            },
            NotListening as n => return Err(n.into_fault()),
            HttpRequest as r => { let _ = cx.forward(r, &one); },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// `GET target` on a fresh connection: the status and the body.
async fn get(at: &HostPort, target: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect((at.host.as_str(), at.port))
        .await
        .unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut raw))
        .await
        .expect("a response in time")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), body.to_owned())
}

async fn start(test: &'static str, workers: usize) -> (HostPort, Address, Address) {
    let (tx, rx) = oneshot::channel();
    runtime::spawn(move |cx| front(cx, test, workers, tx));
    let started = tokio::time::timeout(PATIENCE, rx).await.unwrap().unwrap();
    // Until the workers have been found through the directory: 503.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while get(&started.0, "/say/hi").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started
}

async fn status(spool: &Address) -> SpoolStatus {
    runtime::ask(InspectSpool, spool, PATIENCE).await.unwrap()
}

#[tokio::test]
async fn a_stage_passes_work_on_or_answers_early() {
    let (at, first, second) = start("early", 2).await;
    let before = status(&second).await.answered;
    assert_eq!(get(&at, "/say/hello").await, (200, "HELLO".into()));
    assert_eq!(get(&at, "/").await, (400, "say what?".into()));
    assert_eq!(get(&at, "/nothing/here").await, (400, "say what?".into()));
    // The early answers never reached the second stage.
    assert_eq!(status(&second).await.answered, before + 1);
    // Passing work on freed the first stage's workers.
    let one = status(&first).await;
    assert_eq!((one.in_flight, one.queued, one.idle), (0, 0, 2));
}

#[tokio::test]
async fn the_health_check_is_answered_by_the_front_while_every_worker_is_busy() {
    let (at, first, _) = start("health", 1).await;
    // The one worker of the first stage holds a request it never answers,
    // and another waits in the queue.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let at = at.clone();
            tokio::spawn(async move { get(&at, "/hold").await })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while status(&first).await.queued == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&at, "/health").await, (200, "fine".into()));
    assert_eq!(get(&at, "/health?deep=1").await, (200, "fine".into()));
    assert!(held.iter().all(|h| !h.is_finished()));
}

#[test]
fn a_front_taking_http_requests_delivers_what_names_nothing_else_whole() {
    layer_cake::message::registry::register::<HttpRequest>();
    let accepted = ["Word", HttpRequest::SIGNATURE];
    for (method, target, body) in [
        ("GET", "/is_prime?possible_prime=7", ""),
        ("OPTIONS", "/Word", ""),
        ("POST", "/anything", "12"),
        ("GET", "/", ""),
    ] {
        let p = decode_request(
            &accepted,
            method,
            target,
            Some("text/plain"),
            body.as_bytes(),
        )
        .unwrap();
        let r = p.downcast::<HttpRequest>().unwrap();
        assert_eq!(
            (r.method.as_str(), r.target.as_str(), r.body.as_slice()),
            (method, target, body.as_bytes())
        );
    }
    // A message named by its path is still that message.
    let p = decode_request(&accepted, "GET", "/Word?text=hi", None, b"").unwrap();
    assert_eq!(p.downcast::<Word>().unwrap().text, "hi");
    // Without HttpRequest accepted, nothing changes: 404 and 405.
    assert_eq!(
        decode_request(&["Word"], "GET", "/x", None, b"")
            .unwrap_err()
            .status,
        404
    );
    assert_eq!(
        decode_request(&["Word"], "OPTIONS", "/Word", None, b"")
            .unwrap_err()
            .status,
        405
    );
}

/// Passes every request on to itself.
async fn passer(mut cx: Context) -> Result<(), Faulted> {
    loop {
        on!(cx.input().await, {
            Word as w => { let me = cx.address().clone(); let _ = pass(&cx, w, &me); },
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

#[tokio::test]
async fn work_without_an_ingress_is_not_passed_on() {
    // Not from an HTTP front: nothing would take the final answer.
    let spool = layer_cake::spool::spawn(Workers::local(1, passer), SpoolOptions::new()).unwrap();
    let word = Word { text: "x".into() };
    let answer: Result<Word, _> = runtime::ask(word, spool.address(), PATIENCE).await;
    let fault = answer.unwrap_err().into_fault();
    assert_eq!(fault.condition, "no ingress");
    assert_eq!(fault.error_code, Some(500));
}
