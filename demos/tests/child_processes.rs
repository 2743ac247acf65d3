//! Child processes, with real processes: `spawn_process` from this test
//! (values, faults, signals, `Stop`, requests to a worker) and the
//! multiprocessing demos end to end (`test_server_5/6/7` over HTTP, no
//! orphans when a parent is killed).
//!
//! Every process a test starts itself is killed by a guard if the test ends
//! early; the children started through `spawn_process` are stopped by their
//! proxies (and see their lifeline close when this process exits).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use layer_cake::process::ProcessOptions;
use layer_cake::{Address, Context, FaultKind, Faulted, Payload, Returned, Stop};
use layer_cake_demos::Xy;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::block_on;

layer_cake::register!(Vec<Vec<f64>>);

/// Generous: the machine is a loaded 2-core box.
const PATIENCE: Duration = Duration::from_secs(30);

type Table = Vec<Vec<f64>>;

/// The next message, within the deadline.
async fn next(cx: &mut Context) -> Payload {
    tokio::time::timeout(PATIENCE, cx.input())
        .await
        .expect("a message within the deadline")
}

/// Waits for the `Returned` of `child`, ignoring anything else.
async fn returned_from(cx: &mut Context, child: &Address) -> Returned {
    loop {
        let message = next(cx).await;
        if cx.return_address() == child
            && let Ok(r) = message.downcast::<Returned>()
        {
            return r;
        }
    }
}

fn function_5(x: i64, y: i64) -> ProcessOptions {
    ProcessOptions::new(env!("CARGO_BIN_EXE_test_function_5"))
        .flag("x", x.to_string())
        .flag("y", y.to_string())
}

fn worker_7(role: &str) -> ProcessOptions {
    ProcessOptions::new(env!("CARGO_BIN_EXE_test_worker_7")).role_name(role)
}

/// A role name no other test uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// The state letter and parent pid of a process, from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The children of `parent` whose command line contains `needle`.
fn children_of(parent: i32, needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(state, ppid)| ppid == parent && state != 'Z'))
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// Waits for the one child of `parent` whose command line has `needle`.
fn find_child(parent: i32, needle: &str) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let [pid] = children_of(parent, needle)[..] {
            return pid;
        }
        assert!(Instant::now() < deadline, "no child process with {needle}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a process has ended (gone, or a zombie nobody reaped yet).
fn is_gone(pid: i32) -> bool {
    stat(pid).is_none_or(|(state, _)| state == 'Z' || state == 'X')
}

/// Waits (generously) for `pid` to end.
fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if is_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Kills a process by pid when dropped, if it is still running.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !is_gone(self.0) {
            let _ = signal::kill(Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }
}

fn me() -> i32 {
    std::process::id() as i32
}

#[test]
fn a_childs_value_reaches_the_parent() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let child = cx.spawn_process(function_5(3, 2));
        let table = returned_from(&mut cx, &child)
            .await
            .into_result::<Table>()
            .expect("a table");
        assert_eq!(table.len(), 2);
        assert!(table.iter().all(|row| row.len() == 3));
    });
}

#[test]
fn a_big_result_does_not_stall_the_pipe() {
    block_on(async {
        let mut cx = Context::detached("parent");
        // About a megabyte of JSON: far more than a pipe holds.
        let child = cx.spawn_process(function_5(500, 400));
        let table = returned_from(&mut cx, &child)
            .await
            .into_result::<Table>()
            .expect("a table");
        assert_eq!((table.len(), table[0].len()), (400, 500));
    });
}

#[test]
fn a_childs_fault_reaches_the_parent_as_that_fault() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let child = cx.spawn_process(function_5(-1, 2));
        let fault = returned_from(&mut cx, &child)
            .await
            .into_result::<Table>()
            .unwrap_err();
        assert_eq!(fault.condition, "bad dimensions", "{fault}");
        assert!(fault.explanation.unwrap().contains("x=-1"));
    });
}

#[test]
fn a_bad_flag_is_a_non_standard_exit_with_the_usage_line() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let child = cx.spawn_process(function_5(1, 1).flag("z", "1"));
        let fault = returned_from(&mut cx, &child)
            .await
            .into_result::<Table>()
            .unwrap_err();
        assert_eq!(fault.condition, "non-standard process exit", "{fault}");
        assert_eq!(fault.exit_status, Some(2));
        let explanation = fault.explanation.unwrap();
        assert!(explanation.contains("unknown flag --z"), "{explanation}");
    });
}

#[test]
fn a_missing_program_is_a_fault() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let child = cx.spawn_process(ProcessOptions::new("no-such-program-anywhere"));
        let fault = returned_from(&mut cx, &child)
            .await
            .into_result::<()>()
            .unwrap_err();
        assert_eq!(fault.condition, "cannot find program", "{fault}");
    });
}

#[test]
fn a_killed_child_is_a_fault_naming_the_signal() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let role = unique("killed");
        let child = cx.spawn_process(worker_7(&role));
        // Up and connected: it answers.
        let table: Table = cx
            .ask(Xy { x: 1, y: 1 }, &child, PATIENCE)
            .await
            .expect("an answer");
        assert_eq!(table.len(), 1);
        let pid = find_child(me(), &format!("--role-name={role}"));
        let _guard = KillOnDrop(pid);
        signal::kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        let fault = returned_from(&mut cx, &child)
            .await
            .into_result::<()>()
            .unwrap_err();
        assert_eq!(fault.condition, "non-standard process exit", "{fault}");
        assert_eq!(fault.exit_status, Some(128 + 9));
        assert!(fault.explanation.unwrap().contains("SIGKILL"));
    });
}

#[test]
fn stop_interrupts_the_child_and_returns_aborted() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let role = unique("stopped");
        let child = cx.spawn_process(worker_7(&role));
        let _: Table = cx
            .ask(Xy { x: 2, y: 1 }, &child, PATIENCE)
            .await
            .expect("an answer");
        let pid = find_child(me(), &format!("--role-name={role}"));
        let _guard = KillOnDrop(pid);
        cx.send(Stop, &child).unwrap();
        let fault = returned_from(&mut cx, &child)
            .await
            .into_result::<()>()
            .unwrap_err();
        assert_eq!(fault.kind, FaultKind::Aborted, "{fault}");
        assert!(is_gone(pid), "the child process has ended");
    });
}

#[test]
fn requests_reach_a_worker_child_and_answers_come_straight_back() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let child = cx.spawn_process(worker_7(&unique("worker")));
        // Sent at once: most arrive before the child has connected back.
        let mut asked = Vec::new();
        for n in 1..=5 {
            asked.push((cx.request(Xy { x: n, y: 2 }, &child).unwrap(), n));
        }
        for _ in 0..asked.len() {
            let answer = next(&mut cx).await;
            let id = cx.answers().expect("an answer to a request");
            let (_, x) = asked.iter().find(|(i, _)| *i == id).expect("ours");
            // From the child's main actor, not through the proxy.
            assert!(cx.return_address().is_remote());
            assert_ne!(cx.return_address(), &child);
            let table = answer.downcast::<Table>().expect("a table");
            assert_eq!(table.len(), 2);
            assert!(table.iter().all(|row| row.len() == *x as usize));
        }
        // Another actor asks the same proxy and gets its own answer.
        let proxy = child.clone();
        let helper = cx.spawn(move |mut cx: Context| async move {
            cx.ask::<Table, _>(Xy { x: 4, y: 3 }, &proxy, PATIENCE)
                .await
                .map_err(|e| e.into_fault())
        });
        let table = returned_from(&mut cx, &helper)
            .await
            .into_result::<Table>()
            .unwrap();
        assert_eq!((table.len(), table[0].len()), (3, 4));
        cx.send(Stop, &child).unwrap();
        let ended = returned_from(&mut cx, &child).await;
        assert!(ended.is_fault());
    });
}

#[test]
fn requests_held_for_a_child_that_never_connects_are_lost() {
    block_on(async {
        let mut cx = Context::detached("parent");
        // `true` is no layer-cake process: it exits 0 without a word.
        let child = cx.spawn_process(ProcessOptions::new("true"));
        let id = cx.request(Xy { x: 1, y: 1 }, &child).unwrap();
        let mut answered = false;
        let mut ended = None;
        while !(answered && ended.is_some()) {
            let message = next(&mut cx).await;
            if cx.answers() == Some(id) {
                let fault = message.downcast::<Faulted>().expect("a fault");
                assert_eq!(fault.kind, FaultKind::Lost, "{fault}");
                answered = true;
            } else if let Ok(r) = message.downcast::<Returned>() {
                ended = Some(r);
            }
        }
        assert!(ended.unwrap().value.is::<()>());
    });
}

use support::Server;

/// Starts a server demo on port 0 (see [`Server::start`]).
fn start(program: &str) -> Server {
    Server::start(program, &[])
}

fn check_table(port: u16, x: usize, y: usize) {
    let (status, body) = support::http_get(port, &format!("/Xy?x={x}&y={y}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["value"][0], "vector<vector<float8>>");
    let table = v["value"][1].as_array().unwrap();
    assert_eq!(table.len(), y);
    assert!(table.iter().all(|row| row.as_array().unwrap().len() == x));
}

/// SIGINT to the server: it ends (with a fault), and so do its children.
fn interrupt(mut server: Server) {
    let children = children_of(server.pid(), "--child-process");
    let _guards: Vec<KillOnDrop> = children.iter().map(|&pid| KillOnDrop(pid)).collect();
    signal::kill(Pid::from_raw(server.pid()), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ends after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "an interrupted server ends with a fault");
    for pid in children {
        assert!(wait_gone(pid), "child {pid} ended with its parent");
    }
}

#[test]
fn test_server_5_runs_a_process_per_request() {
    let server = start(env!("CARGO_BIN_EXE_test_server_5"));
    check_table(server.port, 2, 3);
    check_table(server.port, 1, 1);
    let (status, body) = support::http_get(server.port, "/Xy?x=-1&y=1");
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("bad dimensions"));
    interrupt(server);
}

#[test]
fn test_server_6_runs_processes_concurrently() {
    let server = start(env!("CARGO_BIN_EXE_test_server_6"));
    let port = server.port;
    let askers: Vec<_> = (1..=4)
        .map(|n| std::thread::spawn(move || check_table(port, n, 2)))
        .collect();
    for asker in askers {
        asker.join().expect("a table for each request");
    }
    interrupt(server);
}

#[test]
fn test_server_7_forwards_to_its_worker_process() {
    let server = start(env!("CARGO_BIN_EXE_test_server_7"));
    for n in 1..=5 {
        check_table(server.port, n, 3);
    }
    let worker = find_child(server.pid(), "test_worker_7");
    let _guard = KillOnDrop(worker);
    interrupt(server);
    assert!(is_gone(worker));
}

#[test]
fn no_orphans_when_the_parent_is_killed() {
    let mut server = start(env!("CARGO_BIN_EXE_test_server_7"));
    check_table(server.port, 2, 2);
    let worker = find_child(server.pid(), "test_worker_7");
    let _guard = KillOnDrop(worker);
    server.child.kill().unwrap();
    let _ = server.child.wait();
    assert!(
        wait_gone(worker),
        "the worker process ended after its parent was killed"
    );
}

#[test]
fn a_server_whose_worker_dies_ends_with_a_fault() {
    let mut server = start(env!("CARGO_BIN_EXE_test_server_7"));
    let worker = find_child(server.pid(), "test_worker_7");
    let _guard = KillOnDrop(worker);
    signal::kill(Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server ends with its worker");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(71));
}

/// A stand-in parent: this test listens where a hub would, and starts
/// `test_worker_7` by hand with the connect-back flag and its key as the
/// first line of a piped stdin.
/// Returns the child (killed on drop), the link's proxy and the main actor
/// the child introduced.
async fn hand_started_child(cx: &mut Context) -> (ChildGuard, Address, Address) {
    use layer_cake::net::{Accepted, ListenOptions, Listening};
    use layer_cake::process::ChildReady;
    cx.listen(
        layer_cake::HostPort::new("127.0.0.1", 0),
        ListenOptions::native(),
    );
    let at = loop {
        if let Ok(l) = next(cx).await.downcast::<Listening>() {
            break l.listening;
        }
    };
    let child = Command::new(env!("CARGO_BIN_EXE_test_worker_7"))
        .args([
            "--child-process".to_owned(),
            format!("--connect-to-parent={at}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the worker starts");
    let mut child = ChildGuard(child);
    // The key is the first line of the lifeline, never an argument.
    std::io::Write::write_all(
        child.0.stdin.as_mut().expect("a piped stdin"),
        b"0123456789abcdef\n",
    )
    .expect("the worker reads its key");
    let mut link = None;
    let mut main = None;
    while link.is_none() || main.is_none() {
        let message = next(cx).await;
        if let Some(a) = message.downcast_ref::<Accepted>() {
            link = Some(a.proxy.clone());
        } else if let Ok(ready) = message.downcast::<ChildReady>() {
            assert_eq!(ready.key, "0123456789abcdef");
            main = Some(ready.main);
        }
    }
    (child, link.unwrap(), main.unwrap())
}

/// A child started by hand; killed on drop if still running.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl ChildGuard {
    /// Waits (generously) for the child to exit; its exit status.
    async fn exited(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the child ends");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[test]
fn a_child_stops_when_its_lifeline_closes() {
    block_on(async {
        let mut cx = Context::detached("stand-in parent");
        let (mut child, _link, main) = hand_started_child(&mut cx).await;
        // Connected and serving.
        let _: Table = cx.ask(Xy { x: 1, y: 1 }, &main, PATIENCE).await.unwrap();
        // The link stays up; only stdin closes.
        drop(child.0.stdin.take());
        let status = child.exited().await;
        assert_eq!(status.code(), Some(71), "stopped: aborted");
    });
}

#[test]
fn a_child_stops_when_the_link_to_its_parent_closes() {
    block_on(async {
        let mut cx = Context::detached("stand-in parent");
        let (mut child, link, main) = hand_started_child(&mut cx).await;
        let _: Table = cx.ask(Xy { x: 1, y: 1 }, &main, PATIENCE).await.unwrap();
        // stdin stays open (the guard holds it); only the link closes.
        cx.send(
            layer_cake::net::Close {
                note: Some("test".into()),
            },
            &link,
        )
        .unwrap();
        let status = child.exited().await;
        assert_eq!(status.code(), Some(71), "stopped: aborted");
    });
}

/// Waits until `parent` has `n` children whose command line has `needle`.
fn wait_children(parent: i32, needle: &str, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = children_of(parent, needle);
        if found.len() == n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} children with {needle}, wanted {n}",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn test_server_8_spools_over_eight_worker_processes() {
    let server = start(env!("CARGO_BIN_EXE_test_server_8"));
    let workers = wait_children(server.pid(), "test_worker_7", 8);
    let _guards: Vec<KillOnDrop> = workers.iter().map(|&pid| KillOnDrop(pid)).collect();
    for n in 1..=4 {
        check_table(server.port, n, 2);
    }
    // A worker process refuses a table over the limit; the 400 crosses
    // back, and the worker serves on.
    let (status, body) = support::http_get(server.port, "/Xy?x=100000&y=100000");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at most 1000×1000"), "{text}");
    check_table(server.port, 2, 2);
    interrupt(server);
}

/// Worker processes killed with SIGKILL in the middle of a load: every
/// request is answered with its table (the requests a dead worker held go
/// to another), and each dead worker is replaced by a new process.
#[test]
fn test_server_8_answers_every_request_while_worker_processes_are_killed() {
    every_request_answered_while_workers_are_killed(&[], 8);
}

/// The same with pipelining: two workers, each sent up to four requests at
/// once, so a worker killed holds several; each is retried on the other
/// and answered exactly once.
#[test]
fn pipelined_requests_of_a_killed_worker_process_are_answered_once() {
    every_request_answered_while_workers_are_killed(
        &["--processes=2", "--worker-capacity=4", "--stand-down=0.2"],
        2,
    );
}

/// Loads `test_server_8 args` (with `workers` worker processes) from six
/// clients while two of its workers are killed: every request gets its
/// table, and both dead workers are replaced.
fn every_request_answered_while_workers_are_killed(args: &[&str], workers: usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let server = Server::start(env!("CARGO_BIN_EXE_test_server_8"), args);
    let port = server.port;
    let first = wait_children(server.pid(), "test_worker_7", workers);
    let mut guards: Vec<KillOnDrop> = first.iter().map(|&pid| KillOnDrop(pid)).collect();

    const CLIENTS: usize = 6;
    const EACH: usize = 50;
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                for i in 0..EACH {
                    check_table(port, 1 + (c + i) % 5, 1 + i % 3);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for (k, at) in [CLIENTS * EACH / 5, CLIENTS * EACH / 2]
        .into_iter()
        .enumerate()
    {
        let deadline = Instant::now() + PATIENCE;
        while done.load(Ordering::SeqCst) < at {
            assert!(Instant::now() < deadline, "the load stalled at {at}");
            std::thread::sleep(Duration::from_millis(5));
        }
        signal::kill(Pid::from_raw(first[k]), Signal::SIGKILL).unwrap();
    }
    for client in clients {
        client
            .join()
            .expect("every request answered with its table");
    }
    assert_eq!(done.load(Ordering::SeqCst), CLIENTS * EACH);
    // Both dead workers were replaced (after the stand-down).
    let now = wait_children(server.pid(), "test_worker_7", workers);
    let replaced: Vec<&i32> = now.iter().filter(|pid| !first.contains(pid)).collect();
    assert_eq!(replaced.len(), 2, "{first:?} → {now:?}");
    guards.extend(now.iter().map(|&pid| KillOnDrop(pid)));
    interrupt(server);
}

#[test]
fn no_worker_process_outlives_a_killed_spool_server() {
    let mut server = start(env!("CARGO_BIN_EXE_test_server_8"));
    let workers = wait_children(server.pid(), "test_worker_7", 8);
    let _guards: Vec<KillOnDrop> = workers.iter().map(|&pid| KillOnDrop(pid)).collect();
    check_table(server.port, 2, 2);
    server.child.kill().unwrap();
    let _ = server.child.wait();
    for pid in workers {
        assert!(
            wait_gone(pid),
            "worker {pid} ended after its parent was killed"
        );
    }
}

/// The words of a NUL-separated `/proc/<pid>/` file.
fn proc_words(pid: i32, file: &str) -> Vec<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
    bytes
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// Runs of 16 or more hex digits (the shape of a child's key) in `text`.
fn hex_runs(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|run| run.len() >= 16)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_childs_key_is_neither_on_its_command_line_nor_in_its_environment() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let role = unique("stdin-secret");
        let child = cx.spawn_process(worker_7(&role));
        // Connected back (with the key it read from stdin): it answers.
        let table: Table = cx
            .ask(Xy { x: 2, y: 2 }, &child, PATIENCE)
            .await
            .expect("the child connected back and answers");
        assert_eq!(table.len(), 2);
        let pid = find_child(me(), &role);
        let _guard = KillOnDrop(pid);
        let cmdline = proc_words(pid, "cmdline");
        let environ = proc_words(pid, "environ");
        assert!(cmdline.iter().any(|w| w.contains(&role)), "{cmdline:?}");
        assert!(!environ.is_empty(), "the environment is readable");
        assert!(
            !cmdline.iter().any(|w| w.contains("key")),
            "no key flag: {cmdline:?}"
        );
        // Nothing shaped like a key that this process did not pass on
        // itself (its own environment is inherited).
        let own: Vec<String> = proc_words(me(), "environ")
            .iter()
            .flat_map(|w| hex_runs(w))
            .collect();
        for word in cmdline.iter().chain(&environ) {
            for run in hex_runs(word) {
                assert!(own.contains(&run), "a key-like {run:?} in {word:?}");
            }
        }
        cx.send(Stop, &child).unwrap();
        assert!(returned_from(&mut cx, &child).await.is_fault());
    });
}

/// `test_worker_7` behind a shell that outlives it: `sh` runs the worker,
/// then execs `sleep 120`. Killing the worker closes its link while the
/// proxy's own child (the shell, then `sleep`) keeps running — the window in
/// which a request can reach a live proxy whose worker is gone.
fn wrapped_worker_7(role: &str) -> ProcessOptions {
    ProcessOptions::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@"; exec sleep 120"#)
        .arg(env!("CARGO_BIN_EXE_test_worker_7"))
        .role_name(role)
        .stop_grace(Duration::from_secs(2))
}

/// Kills (SIGKILL) the `test_worker_7` the shell `shell` runs, and waits
/// until it is gone; its pid.
fn kill_wrapped_worker(shell: i32) -> i32 {
    let worker = find_child(shell, "test_worker_7");
    signal::kill(Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    assert!(wait_gone(worker), "the killed worker is gone");
    worker
}

/// A caller asking a proxy whose worker has died gets a `Lost` fault at
/// once — the proxy stops what is left of the child rather than waiting for
/// it, so no one hangs — and the proxy ends.
#[test]
fn a_request_to_a_proxy_whose_worker_died_is_answered_lost_promptly() {
    block_on(async {
        let mut cx = Context::detached("parent");
        let role = unique("wrapped");
        let child = cx.spawn_process(wrapped_worker_7(&role));
        let _: Table = cx.ask(Xy { x: 1, y: 1 }, &child, PATIENCE).await.unwrap();
        let shell = find_child(me(), &format!("--role-name={role}"));
        let _shell_guard = KillOnDrop(shell);
        kill_wrapped_worker(shell);
        // Give the proxy's side of the link time to see it close, so that
        // the request finds no one to forward to (the case under test).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let asked = Instant::now();
        let fault = cx
            .ask::<Table, _>(Xy { x: 2, y: 2 }, &child, PATIENCE)
            .await
            .map_err(|e| e.into_fault())
            .unwrap_err();
        assert_eq!(fault.kind, FaultKind::Lost, "{fault}");
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "answered long before the shell's sleep would have ended"
        );
        let ended = returned_from(&mut cx, &child).await;
        assert!(ended.is_fault(), "the proxy ended with the stopped shell");
        assert!(wait_gone(shell), "the shell was stopped");
    });
}

/// A spool of worker processes where a worker is killed (SIGKILL): once
/// while idle, so that the next request reaches its still-running proxy
/// after the link has closed, and once while requests stream in. Every
/// request is answered with its table — none with "not delivered" — since a
/// request the dead worker never received goes to a live one.
#[test]
fn a_spool_of_worker_processes_retries_what_a_dead_worker_never_received() {
    use layer_cake::spool::{InspectSpool, SpoolOptions, SpoolStatus, Workers};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    block_on(async {
        let mut cx = Context::detached("parent");
        let role = unique("spooled");
        let spool = cx
            .spawn_spool(
                Workers::processes(2, wrapped_worker_7(&role)),
                SpoolOptions::new().stand_down(Some(Duration::from_secs(1))),
            )
            .unwrap();
        let slot = |n: usize| format!("--role-name={role}-{n}");
        let shells = [find_child(me(), &slot(0)), find_child(me(), &slot(1))];
        let mut guards: Vec<KillOnDrop> = shells.iter().map(|&pid| KillOnDrop(pid)).collect();

        /// `clients` tasks each asking `each` tables, counting answers in
        /// `done`; every answer is checked.
        fn stream(
            spool: &Address,
            clients: usize,
            each: usize,
            done: &Arc<AtomicUsize>,
        ) -> Vec<tokio::task::JoinHandle<()>> {
            (0..clients)
                .map(|c| {
                    let (spool, done) = (spool.clone(), Arc::clone(done));
                    tokio::spawn(async move {
                        for i in 0..each {
                            let (x, y) = (1 + (c + i) % 5, 1 + i % 3);
                            let asked = Xy {
                                x: x as i64,
                                y: y as i64,
                            };
                            let table: Table = layer_cake::runtime::ask(asked, &spool, PATIENCE)
                                .await
                                .unwrap_or_else(|e| panic!("request {c}/{i}: {e}"));
                            assert_eq!((table.len(), table[0].len()), (y, x));
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect()
        }
        async fn finish(clients: Vec<tokio::task::JoinHandle<()>>) {
            for client in clients {
                client.await.expect("every request answered with its table");
            }
        }

        // Both workers serve.
        let done = Arc::new(AtomicUsize::new(0));
        finish(stream(&spool, 3, 10, &done)).await;
        // Worker 0 dies while idle; its proxy lives on (the shell sleeps).
        kill_wrapped_worker(shells[0]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The stream goes on, and worker 1 dies in the middle of it.
        let clients = stream(&spool, 3, 40, &done);
        let deadline = Instant::now() + PATIENCE;
        while done.load(Ordering::SeqCst) < 30 + 40 {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        kill_wrapped_worker(shells[1]);
        finish(clients).await;
        assert_eq!(done.load(Ordering::SeqCst), 30 + 120);

        let status: SpoolStatus = layer_cake::runtime::ask(InspectSpool, &spool, PATIENCE)
            .await
            .unwrap();
        assert!(
            status.retried >= 1,
            "the request worker 0's proxy held was retried: {status:?}"
        );
        assert_eq!(status.lost, 0, "{status:?}");
        // The replacements are stopped with the spool.
        guards.extend(children_of(me(), &role).into_iter().map(KillOnDrop));
        cx.send(Stop, &spool).unwrap();
        let _ = returned_from(&mut cx, &spool).await;
        for shell in shells {
            assert!(wait_gone(shell), "the shell of a killed worker ended");
        }
    });
}

/// Sends `requests` tables to `spool`, `at_once` at a time, and checks
/// every answer: the number answered with a right table, and the faults.
async fn load(
    cx: &mut Context,
    spool: &Address,
    requests: i64,
    at_once: i64,
) -> (usize, Vec<String>) {
    let mut asked = std::collections::HashMap::new();
    let mut next_x = 1;
    let mut failed = Vec::new();
    let mut answered = 0;
    while answered + failed.len() < requests as usize {
        while next_x <= requests && (asked.len() as i64) < at_once {
            let x = 1 + next_x % 7;
            asked.insert(cx.request(Xy { x, y: 2 }, spool).unwrap(), x);
            next_x += 1;
        }
        let answer = next(cx).await;
        let Some(id) = cx.answers() else { continue };
        let x = asked.remove(&id).expect("an answer to one of ours");
        match answer.downcast::<Table>() {
            Ok(table) => {
                assert_eq!(table.len(), 2);
                assert!(table.iter().all(|row| row.len() == x as usize));
                answered += 1;
            }
            Err(other) => failed.push(format!("{:?}", other.downcast::<Faulted>())),
        }
    }
    (answered, failed)
}

/// A spool's own worker processes recycle: three `test_worker_7
/// --max-requests=5` under a load of 120 requests (six at a time). Each
/// retiring worker tells the spool (`Retiring`), which sends it nothing
/// new, lets it answer what it holds, and starts a fresh one as soon as it
/// exits with `Retired`. The stand-down is 60 s, longer than any request's
/// deadline: a recycle that waited for it would show as requests timing
/// out or turned away.
#[test]
fn a_spool_s_worker_processes_with_max_requests_recycle_without_a_failure() {
    use layer_cake::spool::{InspectSpool, SpoolOptions, SpoolStatus, Workers};
    const REQUESTS: i64 = 120;
    block_on(async {
        let mut cx = Context::detached("parent");
        let workers =
            Workers::processes(3, worker_7(&unique("recycled")).flag("max-requests", "5"));
        let options = SpoolOptions::new()
            .stand_down(Some(Duration::from_secs(60)))
            .request_timeout(PATIENCE);
        let spool = cx.spawn_spool(workers, options).unwrap();
        let (answered, failed) = load(&mut cx, &spool, REQUESTS, 6).await;
        let status: SpoolStatus = cx.ask(InspectSpool, &spool, PATIENCE).await.unwrap();
        eprintln!("spool after {REQUESTS} requests: {status:?}");
        assert!(failed.is_empty(), "failed: {failed:?}; {status:?}");
        assert_eq!(answered, REQUESTS as usize);
        assert_eq!(status.answered, REQUESTS as u64, "{status:?}");
        assert_eq!(
            (
                status.lost,
                status.timed_out,
                status.unavailable,
                status.busy,
                status.overloaded
            ),
            (0, 0, 0, 0, 0),
            "{status:?}"
        );
        assert!(status.recycled >= 10, "too few recycles: {status:?}");
        cx.send(Stop, &spool).unwrap();
        let ended = returned_from(&mut cx, &spool).await;
        assert!(ended.is_fault());
    });
}

/// SIGUSR1 to one of a spool's worker processes recycles it the same way:
/// it exits 0 with `Retired`, a fresh one takes its slot at once, and the
/// requests before, during and after are all answered.
#[test]
fn sigusr1_recycles_a_spool_s_worker_process() {
    use layer_cake::spool::{InspectSpool, SpoolOptions, SpoolStatus, Workers};
    block_on(async {
        let mut cx = Context::detached("parent");
        let role = unique("usr1");
        let workers = Workers::processes(2, worker_7(&role));
        let options = SpoolOptions::new()
            .stand_down(Some(Duration::from_secs(60)))
            .request_timeout(PATIENCE);
        let spool = cx.spawn_spool(workers, options).unwrap();
        let (answered, failed) = load(&mut cx, &spool, 20, 2).await;
        assert_eq!((answered, failed.len()), (20, 0), "{failed:?}");
        let pid = find_child(me(), &format!("--role-name={role}-0"));
        let _guard = KillOnDrop(pid);
        signal::kill(Pid::from_raw(pid), Signal::SIGUSR1).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let mut total = 20;
        let status = loop {
            let (answered, failed) = load(&mut cx, &spool, 10, 2).await;
            assert_eq!((answered, failed.len()), (10, 0), "{failed:?}");
            total += 10;
            let status: SpoolStatus = cx.ask(InspectSpool, &spool, PATIENCE).await.unwrap();
            if status.recycled == 1 && status.workers == 2 {
                break status;
            }
            assert!(Instant::now() < deadline, "not recycled: {status:?}");
        };
        assert!(wait_gone(pid), "the retired worker is still running");
        assert_eq!(status.answered, total, "{status:?}");
        assert_eq!((status.lost, status.restarted), (0, 1), "{status:?}");
        // The fresh worker answers too.
        let fresh = find_child(me(), &format!("--role-name={role}-0"));
        assert_ne!(fresh, pid);
        let (answered, failed) = load(&mut cx, &spool, 10, 2).await;
        assert_eq!((answered, failed.len()), (10, 0), "{failed:?}");
        cx.send(Stop, &spool).unwrap();
        let ended = returned_from(&mut cx, &spool).await;
        assert!(ended.is_fault());
    });
}
