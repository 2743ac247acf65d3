//! The Redis-stream bridge (issue 15) against Debian's `redis-server`: each
//! test starts its own server on a Unix socket in a temporary folder (TCP
//! off: `--port 0`; one test also gives it a loopback port of its own and
//! has the worker connect there), talks to it with `redis-cli` and runs the
//! `redis_worker` demo as real child processes. Every process is stopped
//! when the test ends, however it ends.
//!
//! Without `redis-server` on the PATH the tests print SKIPPED and pass
//! (`.ci/run` installs it).

#![cfg(feature = "redis")]

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::procs::Proc;

const PATIENCE: Duration = Duration::from_secs(30);

/// A `redis-server` of the test's own on a Unix socket; killed and its
/// folder removed on drop.
struct Redis {
    child: Child,
    dir: tempfile::TempDir,
    /// The loopback port it also listens on, if any.
    tcp: Option<u16>,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    /// Starts one, or `None` (with a printed SKIPPED) without redis-server.
    fn start(test: &str) -> Option<Redis> {
        Redis::start_with(test, false)
    }

    /// With `tcp`, it also listens on a free loopback port (one the system
    /// gave a listener that was then closed).
    fn start_with(test: &str, tcp: bool) -> Option<Redis> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!(
                "SKIPPED {test}: redis-server is not installed (apt-get install -y redis-server)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let tcp = tcp.then(|| {
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            free.local_addr().unwrap().port()
        });
        let port = tcp.unwrap_or(0).to_string();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port, "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = Redis { child, dir, tcp };
        wait_until("redis-server answers PING", || {
            redis.cli(&["ping"]) == "PONG"
        });
        Some(redis)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Where the worker connects: the loopback port if there is one.
    fn url(&self) -> String {
        match self.tcp {
            Some(port) => format!("redis://127.0.0.1:{port}"),
            None => format!("unix://{}", self.socket().display()),
        }
    }

    /// `redis-cli -s SOCKET ARGS…`: its output, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The seed's setup: the group, and the worker hash `demo-worker:ID:h`.
    fn setup(&self, id: &str, limit: u64) {
        let _ = self.cli(&[
            "xgroup",
            "create",
            "demo-worker:req:x",
            "worker",
            "$",
            "mkstream",
        ]);
        let limit = limit.to_string();
        self.cli(&[
            "hset",
            &format!("demo-worker:{id}:h"),
            "requestStream",
            "demo-worker:req:x",
            "responseStream",
            "demo-worker:res:x",
            "consumerId",
            id,
            "requestLimit",
            &limit,
        ]);
    }

    /// `XADD demo-worker:req:x * ref REF type demo-worker data DATA`.
    fn xadd(&self, reference: &str, data: &str) {
        let time = "2021-10-03T00:00:00Z";
        let id = self.cli(&[
            "xadd",
            "demo-worker:req:x",
            "*",
            "ref",
            reference,
            "time",
            time,
            "type",
            "demo-worker",
            "data",
            data,
        ]);
        assert!(id.contains('-'), "XADD answered {id:?}");
    }

    /// `BRPOP res:REF 20`: the reply, parsed.
    fn reply(&self, reference: &str) -> Value {
        let key = format!("res:{reference}");
        let out = self.cli(&["brpop", &key, "20"]);
        let mut lines = out.lines();
        assert_eq!(
            lines.next(),
            Some(key.as_str()),
            "no reply in {key}: {out:?}"
        );
        serde_json::from_str(lines.next().unwrap()).unwrap()
    }

    /// Entries pending in the group (delivered, not acknowledged).
    fn pending(&self) -> u64 {
        let out = self.cli(&["xpending", "demo-worker:req:x", "worker"]);
        out.lines().next().unwrap().parse().unwrap()
    }

    /// The worker hash's `pid` field.
    fn pid(&self, id: &str) -> String {
        self.cli(&["hget", &format!("demo-worker:{id}:h"), "pid"])
    }
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ok() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the demo for worker `id` with FLAGS and waits until it holds the
/// hash's `pid` field.
fn worker(redis: &Redis, id: &str, flags: &[&str]) -> Proc {
    let proc = start_worker(redis, id, flags);
    let pid = proc.child.id().to_string();
    wait_until("the worker sets its pid field", || redis.pid(id) == pid);
    proc
}

/// Starts the demo for worker `id` with FLAGS.
fn start_worker(redis: &Redis, id: &str, flags: &[&str]) -> Proc {
    let mut args = vec![
        format!("--redis={}", redis.url()),
        format!("--worker-key=demo-worker:{id}:h"),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    Proc::start(env!("CARGO_BIN_EXE_redis_worker"), &args)
}

fn exit_of(proc: &mut Proc) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{} did not exit", proc.name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn interrupt(proc: &Proc) {
    let pid = nix::unistd::Pid::from_raw(proc.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
}

#[test]
fn requests_through_the_stream_are_answered_in_reply_lists_that_expire() {
    let Some(redis) = Redis::start("requests_through_the_stream") else {
        return;
    };
    redis.setup("1", 0);
    let mut w = worker(&redis, "1", &["--server-address=127.0.0.1:0"]);
    // The same spool serves an HTTP front.
    let (status, body) = support::http_get(w.port(), "/DemoRequest?text=web");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"web\""));
    redis.xadd("a1b2c3", "{}");
    wait_until("res:a1b2c3 exists", || {
        redis.cli(&["exists", "res:a1b2c3"]) == "1"
    });
    let ttl: i64 = redis.cli(&["ttl", "res:a1b2c3"]).parse().unwrap();
    assert!((1..=8).contains(&ttl), "ttl {ttl}");
    let reply = redis.reply("a1b2c3");
    assert_eq!(reply["ref"], "a1b2c3");
    assert_eq!(reply["source"], "demo-worker");
    assert_eq!(reply["type"], "demo-worker-res");
    assert_eq!(reply["code"], 200);
    assert!(
        reply["res"]["worker"]
            .as_str()
            .unwrap()
            .starts_with("worker-")
    );
    assert!(reply["time"].as_str().unwrap().ends_with('Z'));

    for i in 0..40 {
        redis.xadd(&format!("r{i}"), &format!(r#"{{"text":"hello {i}"}}"#));
    }
    redis.xadd("f1", r#"{"fail":true}"#);
    for i in 0..40 {
        let reply = redis.reply(&format!("r{i}"));
        assert_eq!(reply["code"], 200, "{reply}");
        assert_eq!(reply["res"]["text"], format!("hello {i}"));
    }
    let failed = redis.reply("f1");
    assert_eq!(failed["code"], 422, "{failed}");
    assert_eq!(failed["err"]["message"], "asked to fail");
    // Acknowledged in the same MULTI as the reply.
    assert_eq!(redis.pending(), 0);
    // Each reply is recorded in the response stream too.
    assert_eq!(redis.cli(&["xlen", "demo-worker:res:x"]), "42");

    // Ctrl-C: the worker ends cleanly and gives its pid field back.
    interrupt(&w);
    let line = w.line_with("redis_worker: ended");
    assert!(line.contains("(stopped): 42 taken, 42 answered"), "{line}");
    assert!(exit_of(&mut w).success());
    assert_eq!(redis.pid("1"), "");
}

#[test]
fn a_worker_exits_after_its_request_limit_and_the_next_takes_the_rest() {
    let Some(redis) = Redis::start_with("request_limit", true) else {
        return;
    };
    redis.setup("1", 5);
    for i in 0..8 {
        redis.xadd(&format!("r{i}"), "{}");
    }
    // Entries added before the group was made are not delivered (`$`), so
    // these come after setup(): the worker finds eight waiting (and may
    // be done before its pid field could be seen).
    let mut w = start_worker(&redis, "1", &[]);
    let line = w.line_with("redis_worker: ended");
    assert!(
        line.contains("(request limit reached): 5 taken, 5 answered"),
        "{line}"
    );
    assert!(exit_of(&mut w).success());
    assert_eq!(redis.pid("1"), "", "the pid field is given back");
    assert_eq!(redis.pending(), 0);
    for i in 0..5 {
        assert_eq!(redis.reply(&format!("r{i}"))["code"], 200);
    }
    assert_eq!(redis.cli(&["exists", "res:r5"]), "0");
    // Restarted (as the seed's supervisor does), it takes the rest; a
    // --request-limit flag overrides the hash.
    let mut again = start_worker(&redis, "1", &["--request-limit=3"]);
    let line = again.line_with("redis_worker: ended");
    assert!(line.contains("3 taken, 3 answered"), "{line}");
    assert!(exit_of(&mut again).success());
    for i in 5..8 {
        assert_eq!(redis.reply(&format!("r{i}"))["code"], 200);
    }
}

#[test]
fn changing_the_pid_field_stops_the_worker_and_a_taken_field_refuses_a_start() {
    let Some(redis) = Redis::start("pid_switch") else {
        return;
    };
    redis.setup("1", 0);
    let mut w = worker(&redis, "1", &[]);
    redis.xadd("before", "{}");
    assert_eq!(redis.reply("before")["code"], 200);
    // A second worker on the same hash is refused while the first holds it.
    let mut second = start_worker(&redis, "1", &[]);
    let line = second.line_with("already has a pid field");
    assert!(line.contains("demo-worker:1:h"), "{line}");
    assert!(!exit_of(&mut second).success());
    // The stop switch.
    redis.cli(&["hset", "demo-worker:1:h", "pid", "0"]);
    let line = w.line_with("redis_worker: ended");
    assert!(line.contains("pid field changed to Some(\"0\")"), "{line}");
    assert!(exit_of(&mut w).success());
    // Left as the operator set it.
    assert_eq!(redis.pid("1"), "0");
    redis.xadd("after", "{}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(redis.cli(&["exists", "res:after"]), "0", "nobody reads now");
}

#[test]
fn a_killed_consumers_pending_entries_are_claimed_and_answered_by_another() {
    let Some(redis) = Redis::start("claim") else {
        return;
    };
    redis.setup("1", 0);
    redis.setup("2", 0);
    let a = worker(&redis, "1", &[]);
    for i in 0..6 {
        redis.xadd(&format!("k{i}"), r#"{"work_ms":4000}"#);
    }
    wait_until("consumer 1 holds six entries", || redis.pending() == 6);
    // SIGKILL: no chance to answer, acknowledge or give the pid back.
    a.kill();
    assert_eq!(redis.cli(&["exists", "res:k0"]), "0");
    assert_eq!(redis.pending(), 6);
    let mut b = worker(
        &redis,
        "2",
        &["--claim-min-idle=2", "--request-timeout=1.4"],
    );
    // 4 s of work each would pass b's 1.4 s timeout: claimed entries are
    // answered, if late, with the outcome b saw (504), never lost.
    for i in 0..6 {
        let reply = redis.reply(&format!("k{i}"));
        assert_eq!(reply["ref"], format!("k{i}"));
        assert_eq!(reply["code"], 504, "{reply}");
    }
    assert_eq!(redis.pending(), 0);
    // And fresh entries still go through b.
    redis.xadd("fresh", r#"{"text":"x"}"#);
    assert_eq!(redis.reply("fresh")["code"], 200);
    interrupt(&b);
    let line = b.line_with("redis_worker: ended");
    assert!(
        line.contains("7 taken, 7 answered, 0 malformed, 6 claimed"),
        "{line}"
    );
    assert!(exit_of(&mut b).success());
}

#[test]
fn claimed_entries_are_served_by_the_claiming_workers() {
    let Some(redis) = Redis::start("claim_served") else {
        return;
    };
    redis.setup("1", 0);
    redis.setup("2", 0);
    let a = worker(&redis, "1", &[]);
    for i in 0..4 {
        redis.xadd(&format!("s{i}"), r#"{"work_ms":3000,"text":"t"}"#);
    }
    wait_until("consumer 1 holds four entries", || redis.pending() == 4);
    a.kill();
    let mut b = worker(&redis, "2", &["--claim-min-idle=5", "--request-timeout=4"]);
    for i in 0..4 {
        let reply = redis.reply(&format!("s{i}"));
        assert_eq!(reply["code"], 200, "{reply}");
        assert_eq!(reply["res"]["text"], "t");
    }
    assert_eq!(redis.pending(), 0);
    interrupt(&b);
    let line = b.line_with("redis_worker: ended");
    assert!(
        line.contains("4 taken, 4 answered, 0 malformed, 4 claimed"),
        "{line}"
    );
    assert!(exit_of(&mut b).success());
}

#[test]
fn an_entry_delivered_too_often_is_answered_with_an_error() {
    let Some(redis) = Redis::start("given_up") else {
        return;
    };
    redis.setup("2", 0);
    redis.xadd("poison", "{}");
    // A ghost consumer takes it, and it is claimed again and again (as by
    // consumers that each died holding it): six deliveries.
    let read = redis.cli(&[
        "xreadgroup",
        "group",
        "worker",
        "ghost",
        "count",
        "1",
        "streams",
        "demo-worker:req:x",
        ">",
    ]);
    let id = read.lines().nth(1).unwrap().to_string();
    for _ in 0..5 {
        redis.cli(&["xclaim", "demo-worker:req:x", "worker", "ghost", "0", &id]);
    }
    let mut b = worker(&redis, "2", &["--claim-min-idle=2", "--request-timeout=1"]);
    let reply = redis.reply("poison");
    assert_eq!(reply["code"], 500, "{reply}");
    let message = reply["err"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("delivered 7 times without an answer"),
        "{message}"
    );
    assert_eq!(redis.pending(), 0);
    interrupt(&b);
    let line = b.line_with("redis_worker: ended");
    assert!(line.contains("1 claimed, 1 given up"), "{line}");
    assert!(exit_of(&mut b).success());
}

#[test]
fn malformed_entries_are_answered_and_acknowledged_and_never_block_the_stream() {
    let Some(redis) = Redis::start("malformed") else {
        return;
    };
    redis.setup("1", 0);
    let mut w = worker(
        &redis,
        "1",
        &["--max-entry-bytes=4096", "--max-reply-bytes=1000"],
    );
    let x = |args: &[&str]| {
        let mut all = vec!["xadd", "demo-worker:req:x", "*"];
        all.extend_from_slice(args);
        assert!(redis.cli(&all).contains('-'));
    };
    let t = ["type", "demo-worker"];
    x(&["ref", "m1", "type", "other-worker", "data", "{}"]);
    x(&["ref", "m2", t[0], t[1]]);
    x(&["ref", "m3", t[0], t[1], "data", "{not json"]);
    x(&["ref", "m4", t[0], t[1], "data", r#"{"nope":1}"#]);
    x(&["ref", "m5", t[0], t[1], "data", r#"{"work_ms":"soon"}"#]);
    x(&["ref", "m6", "data", "{}"]);
    x(&["ref", "m7", t[0], t[1], "message", "Other", "data", "{}"]);
    let mut many = vec!["ref", "m8", t[0], t[1], "data", "{}"];
    let fields: Vec<String> = (0..14).map(|i| format!("f{i}")).collect();
    for f in &fields {
        many.extend([f.as_str(), "v"]);
    }
    x(&many);
    let big = format!(r#"{{"text":"{}"}}"#, "y".repeat(5000));
    x(&["ref", "m9", t[0], t[1], "data", &big]);
    let long = format!(r#"{{"text":"{}"}}"#, "z".repeat(2000));
    x(&["ref", "m10", t[0], t[1], "data", &long]);
    // No usable ref: nowhere to reply but the response stream.
    x(&[t[0], t[1], "data", "{}"]);
    x(&["ref", "has space", t[0], t[1], "data", "{}"]);
    // And a good one after them all.
    redis.xadd("good", "{}");

    let expect = [
        ("m1", 400, "type other-worker is not demo-worker"),
        ("m2", 400, "no data field"),
        (
            "m3",
            400,
            "data is not JSON: key must be a string at line 1 column 2",
        ),
        (
            "m4",
            400,
            "unknown field nope in data (expected one of text, work_ms, fail)",
        ),
        (
            "m5",
            400,
            r#"cannot decode DemoRequest: field "work_ms": invalid type: string "soon", expected u64"#,
        ),
        ("m6", 400, "no type field (expected demo-worker)"),
        (
            "m7",
            400,
            "message Other is not accepted (one of DemoRequest)",
        ),
        ("m8", 400, "the entry has 17 fields, over the limit of 16"),
    ];
    for (r, code, message) in expect {
        let reply = redis.reply(r);
        assert_eq!(reply["code"], code, "{reply}");
        assert_eq!(reply["err"]["message"], message, "{reply}");
    }
    let m9 = redis.reply("m9");
    assert_eq!(m9["code"], 400);
    assert_eq!(
        m9["err"]["message"],
        "the entry is 5035 bytes, over the limit of 4096"
    );
    let m10 = redis.reply("m10");
    assert_eq!(m10["code"], 500);
    let message = m10["err"]["message"].as_str().unwrap();
    // The reply's size depends on the worker's name and the time's width.
    assert!(
        message.starts_with("the reply is 21")
            && message.ends_with(" bytes, over the limit of 1000"),
        "{message}"
    );
    assert_eq!(redis.reply("good")["code"], 200);
    assert_eq!(redis.pending(), 0, "every entry acknowledged");
    // The two without a usable ref are in the response stream, with why.
    let recorded = redis.cli(&["xrange", "demo-worker:res:x", "-", "+"]);
    assert!(
        recorded.contains(r#""message":"no ref field""#),
        "{recorded}"
    );
    assert!(
        recorded.contains("the ref is not 1 to 128 bytes of letters, digits and -_.:"),
        "{recorded}"
    );
    interrupt(&w);
    let line = w.line_with("redis_worker: ended");
    assert!(
        line.contains("13 taken, 2 answered, 11 malformed"),
        "{line}"
    );
    assert!(exit_of(&mut w).success());
}
