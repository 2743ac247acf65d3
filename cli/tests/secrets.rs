//! Secrets in settings (docs/secrets.md), as a user runs them: a real home
//! in a temporary folder, `layer-cake secret-key`, `secret`, `list -l`,
//! and `run` with the key from a file or on stdin; the `show_secret` demo
//! role sees the plaintext; a missing or wrong key fails closed with one
//! line; the plaintext is never in `settings.json`, `list -l` or the logs;
//! an environment variable holding the key is ignored.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{PATIENCE, bin_dir, build_executables};

/// The OpenSSL vector of the Redis-worker seed (reference §2c).
const OPENSSL_KEY_LINE: &str = "worker-v0 000102030405060708090a0b0c0d0e0f";
const OPENSSL_IV: &str = "101112131415161718191a1b1c1d1e1f";
const OPENSSL_CIPHERTEXT: &str = "oRTAOOsx0X2i62YTu++uEnqHA9BsR0JdodSNItmyWBBk+A7108k3NK1vCNuMzMVF";
const OPENSSL_PLAINTEXT: &str = r#"{ "password": "hello", "type": "demo-worker" }"#;

const PLAINTEXT: &str = "correct-horse-battery-staple-42";

/// Builds the demo role too (the shared helper builds the rest).
fn build() {
    build_executables();
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let dir = bin_dir();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "layer-cake-demos"])
            .args(["--bin", "show_secret", "--target-dir"])
            .arg(dir.parent().expect("a target directory"))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        assert!(
            cargo.status().expect("cargo runs").success(),
            "show_secret builds"
        );
    });
}

/// `layer-cake ARGS` in `dir`, `stdin` written to it; killed (with what it
/// started, which sees its lifeline close) if it runs past the patience.
fn layer_cake_with(dir: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    build();
    let mut child = Command::new(bin_dir().join("layer-cake"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("layer-cake runs");
    let mut pipe = child.stdin.take().unwrap();
    let _ = pipe.write_all(stdin.as_bytes());
    drop(pipe);
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(PATIENCE * 2).is_err() {
            // Still running: SIGKILL; its group-cake sees stdin close.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let out = child.wait_with_output().expect("layer-cake ends");
    let _ = done.send(());
    let _ = watchdog.join();
    out
}

fn layer_cake(dir: &Path, args: &[&str]) -> Output {
    layer_cake_with(dir, args, "", &[])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
fn ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = layer_cake_with(dir, args, stdin, &[]);
    assert!(
        out.status.success(),
        "layer-cake {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs a command that must fail with one line on stderr; that line.
fn fails(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = layer_cake_with(dir, args, stdin, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "layer-cake {args:?} should fail"
    );
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.trim_end().to_owned()
}

/// What `show_secret` returns for `value`.
fn shown(value: &str) -> String {
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("\"api-key: {} bytes, fnv1a64 {hash:016x}\"", value.len())
}

fn settings_json(dir: &Path, role: &str) -> String {
    let path: PathBuf = walk(dir)
        .into_iter()
        .find(|p| {
            p.ends_with("settings.json")
                && p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n == role)
        })
        .expect("the role's settings.json");
    std::fs::read_to_string(path).unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every file of the home, as text, for "the plaintext is nowhere".
fn everything(dir: &Path) -> String {
    walk(dir)
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| text(&b))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A home with the `show` role whose `--api-key` is a secret, and its key
/// file `key`.
fn home_with_secret(d: &Path) -> String {
    ok(d, &["create"], "");
    // The role is added with an empty key, then given its secret.
    ok(d, &["add", "show_secret", "show", "--api-key="], "");
    let out = ok(d, &["secret-key", "key"], "");
    assert_eq!(out, "wrote a new secret key to key\n");
    let out = ok(
        d,
        &["secret", "show", "--name=api-key", "--secret-key-file=key"],
        &format!("{PLAINTEXT}\n"),
    );
    assert_eq!(out, "stored a secret in show --api-key\n");
    std::fs::read_to_string(d.join("key")).unwrap()
}

#[test]
fn a_role_sees_its_secret_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_line = home_with_secret(d);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        key_line.starts_with("worker-v0 ") && key_line.len() == 43,
        "{key_line}"
    );

    // Stored and listed, never in clear.
    let settings = settings_json(d, "show");
    assert!(settings.contains(r#"{\"secret\":\"v1:"#), "{settings}");
    assert!(!settings.contains(PLAINTEXT));
    let listed = ok(d, &["list", "-l", "show"], "");
    assert!(listed.contains("--api-key=<secret>"), "{listed}");
    assert!(
        !listed.contains(PLAINTEXT) && !listed.contains("v1:"),
        "{listed}"
    );

    // Run with the key from the file, logging everything: the role sees
    // the plaintext; the logs never show it.
    let out = layer_cake(
        d,
        &[
            "run",
            "--main-role=show",
            "--secret-key-file=key",
            "--debug-level=DEBUG",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), shown(PLAINTEXT));
    assert!(!stderr.contains(PLAINTEXT), "{stderr}");
    assert!(!stderr.contains(key_line.trim()), "{stderr}");

    // The key on stdin instead.
    let out = layer_cake_with(
        d,
        &["run", "--main-role=show", "--secret-key-file=-"],
        &key_line,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), shown(PLAINTEXT));

    // Nothing the home keeps (settings, history, logs) holds the plaintext.
    assert!(!everything(d).contains(PLAINTEXT));
}

/// `run` whose main role fails: group-cake's status, and the role's line.
fn role_fails(d: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> String {
    let out = layer_cake_with(d, args, stdin, env);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains(PLAINTEXT), "{stderr}");
    // One line from the role itself, `[pid] show_secret: …`.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("] show_secret: "))
        .collect();
    assert_eq!(lines.len(), 1, "one line from the role: {stderr}");
    assert!(
        stderr.contains("show exited with status 78"),
        "status 78: {stderr}"
    );
    lines[0].split_once("] show_secret: ").unwrap().1.to_owned()
}

#[test]
fn a_missing_or_wrong_key_fails_closed_and_the_environment_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_line = home_with_secret(d);
    let no_key = "--api-key holds a secret and no key was given (--secret-key-file=PATH, or - for the first line of stdin)";

    // No key, even with the key in environment variables a user might try.
    let env = [
        ("LAYER_CAKE_SECRET_KEY", key_line.trim()),
        ("SECRET_KEY", key_line.trim()),
        ("LAYER_CAKE_SECRET_KEY_FILE", "key"),
    ];
    assert_eq!(
        role_fails(d, &["run", "--main-role=show"], "", &env),
        no_key
    );

    // A wrong key.
    ok(d, &["secret-key", "other-key"], "");
    assert_eq!(
        role_fails(
            d,
            &["run", "--main-role=show", "--secret-key-file=other-key"],
            "",
            &[]
        ),
        "--api-key: cannot decrypt the secret: wrong key, or the stored value was changed"
    );

    // A changed value (one character of the ciphertext).
    let path = walk(d)
        .into_iter()
        .find(|p| p.ends_with("show/settings.json"))
        .unwrap();
    let stored = std::fs::read_to_string(&path).unwrap();
    let at = stored.find("v1:").unwrap() + 10;
    let mut changed = stored.clone().into_bytes();
    changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&path, &changed).unwrap();
    assert_eq!(
        role_fails(
            d,
            &["run", "--main-role=show", "--secret-key-file=key"],
            "",
            &[]
        ),
        "--api-key: cannot decrypt the secret: wrong key, or the stored value was changed"
    );
    std::fs::write(&path, stored).unwrap();

    // Refused by `run` itself, before anything starts: one line.
    assert_eq!(
        fails(
            d,
            &["run", "--main-role=show", "--secret-key-file=-"],
            "worker-v1 000102030405060708090a0b0c0d0e0f\n"
        ),
        "layer-cake: the key line is of type \"worker-v1\", not \"worker-v0\" (expected: worker-v0 <32 hex digits>)"
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        fails(d, &["run", "--main-role=show", "--secret-key-file=key"], ""),
        "layer-cake: the secret key file key is open to other users (mode 644); chmod 600 it"
    );
}

#[test]
fn secrets_from_the_redis_worker_seed_interoperate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"], "");
    ok(d, &["add", "show_secret", "legacy", "--api-key="], "");
    let iv = format!("--worker-v0-iv={OPENSSL_IV}");
    let secret = [
        "secret",
        "legacy",
        "--name=api-key",
        "--secret-key-file=-",
        &iv,
    ];

    // The seed's ciphertext, with its key on stdin first: a wrong type and
    // a worker-v1 key line are refused, and nothing is stored.
    let stdin = format!("{OPENSSL_KEY_LINE}\n{OPENSSL_CIPHERTEXT}\n");
    let mut wrong_type = secret.to_vec();
    wrong_type.push("--worker-v0-type=other-worker");
    assert_eq!(
        fails(d, &wrong_type, &stdin),
        "layer-cake: --api-key: the decrypted secret is of type \"demo-worker\", not \"other-worker\""
    );
    let mut typed = secret.to_vec();
    typed.push("--worker-v0-type=demo-worker");
    assert_eq!(
        fails(
            d,
            &typed,
            &format!("worker-v1 000102030405060708090a0b0c0d0e0f\n{OPENSSL_CIPHERTEXT}\n")
        ),
        "layer-cake: the key line is of type \"worker-v1\", not \"worker-v0\" (expected: worker-v0 <32 hex digits>)"
    );
    assert_eq!(
        fails(
            d,
            &typed,
            &format!("worker-v0 ffffffffffffffffffffffffffffffff\n{OPENSSL_CIPHERTEXT}\n")
        ),
        "layer-cake: --api-key: cannot decrypt the secret: wrong key or corrupt value (bad PKCS7 padding)"
    );
    assert!(!settings_json(d, "legacy").contains("secret"));

    assert_eq!(
        ok(d, &typed, &stdin),
        "stored a secret in legacy --api-key\n"
    );
    let settings = settings_json(d, "legacy");
    assert!(settings.contains(OPENSSL_CIPHERTEXT), "{settings}");
    assert!(!settings.contains("hello"), "{settings}");

    // The role sees the seed's plaintext JSON.
    let out = layer_cake_with(
        d,
        &["run", "--main-role=legacy", "--secret-key-file=-"],
        &format!("{OPENSSL_KEY_LINE}\n"),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), shown(OPENSSL_PLAINTEXT));
}

#[test]
fn group_cake_keeps_the_key_for_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "create",
            r#"--retry={"first_steps": [0.2, 0.2], "step_limit": 2}"#,
        ],
        "",
    );
    ok(d, &["add", "show_secret", "show", "--api-key="], "");
    ok(d, &["secret-key", "key"], "");
    ok(
        d,
        &["secret", "show", "--name=api-key", "--secret-key-file=key"],
        PLAINTEXT,
    );
    let key_line = std::fs::read_to_string(d.join("key")).unwrap();
    // The key comes once, on stdin; the role runs three times.
    let started = Instant::now();
    let out = layer_cake_with(d, &["run", "--secret-key-file=-"], &key_line, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(started.elapsed() < PATIENCE * 2);
    let history = ok(d, &["history", "show"], "");
    assert_eq!(history.lines().count(), 3, "{history}");
    assert!(!history.contains("Faulted"), "{history}");
    // Each run returned what the plaintext gives.
    for run in 0..3 {
        let returned = ok(d, &["returned", "show", &format!("--start={run}")], "");
        assert!(returned.contains(&shown(PLAINTEXT)), "{returned}");
    }
}

#[test]
fn secret_refuses_bad_input_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create"], "");
    ok(d, &["add", "show_secret", "show", "--api-key="], "");
    ok(d, &["secret-key", "key"], "");
    let args = ["secret", "show", "--name=api-key", "--secret-key-file=key"];
    assert_eq!(
        fails(d, &args, ""),
        "layer-cake: no value on stdin (pipe it in: printf %s \"$VALUE\" | layer-cake secret ROLE --name=FLAG ...)"
    );
    assert_eq!(
        fails(d, &["secret-key", "key"], ""),
        "layer-cake: key already exists (a key is never overwritten)"
    );
    assert_eq!(
        fails(
            d,
            &[
                "secret",
                "nobody",
                "--name=api-key",
                "--secret-key-file=key"
            ],
            "x"
        ),
        fails(d, &["history", "nobody"], "")
    );
    // The executable refuses a setting it does not have: nothing stored.
    let refused = fails(
        d,
        &[
            "secret",
            "show",
            "--name=no-such-flag",
            "--secret-key-file=key",
        ],
        "x",
    );
    assert!(
        refused.contains("refuses the settings: unknown flag --no-such-flag"),
        "{refused}"
    );
    assert!(!settings_json(d, "show").contains("no-such-flag"));
    // Other settings can still be updated without the key: the executable
    // checks all but the secret.
    ok(
        d,
        &["secret", "show", "--name=api-key", "--secret-key-file=key"],
        "v",
    );
    ok(d, &["update", "show", "--debug-level=DEBUG"], "");
}

/// Stops what `start` left running in the home at `dir`, however the test
/// ends.
struct Stopped<'a>(&'a Path);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let _ = layer_cake(self.0, &["stop"]);
    }
}

#[test]
fn start_hands_the_key_to_a_background_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_line = home_with_secret(d);
    let _stopped = Stopped(d);
    let out = ok(d, &["start", "--secret-key-file=-"], &key_line);
    assert!(out.starts_with("started "), "{out}");
    // `returned --timeout` waits for a run that has started.
    let deadline = Instant::now() + PATIENCE;
    while ok(d, &["history", "show"], "").trim().is_empty() {
        assert!(Instant::now() < deadline, "show starts");
        std::thread::sleep(Duration::from_millis(100));
    }
    let returned = ok(d, &["returned", "show", "--timeout=60"], "");
    assert!(returned.contains(&shown(PLAINTEXT)), "{returned}");
    assert!(!everything(d).contains(PLAINTEXT));
}
