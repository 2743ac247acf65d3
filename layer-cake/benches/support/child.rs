//! A child process of a benchmark — most often a copy of the benchmark's
//! own binary in another role — that says on its first line of stdout where
//! it listens (or that it is ready), takes commands on stdin, and is killed
//! and reaped however the benchmark ends (also when it panics). Shared by
//! the benchmarks with `#[path = "support/child.rs"] mod child;`.

// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a child may take to print its first line.
pub(crate) const STARTUP: Duration = Duration::from_secs(60);

/// A running child process, killed (SIGKILL) and reaped when dropped.
pub(crate) struct Child {
    process: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

/// A command running this benchmark's own binary with `args`.
pub(crate) fn this_bench(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the benchmark's own path"));
    command.args(args);
    command
}

impl Child {
    /// Starts `command` with stdin and stdout piped (stderr as the command
    /// says) and waits up to [`STARTUP`] for its first line, returned
    /// trimmed. Panics, naming the command, when it cannot start, ends
    /// before saying anything, or says nothing in time; the child is
    /// killed then too.
    pub(crate) fn start(mut command: Command) -> (Child, String) {
        let what = format!("{command:?}");
        let mut process = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = process.stdout.take().expect("piped stdout");
        let stdin = process.stdin.take();
        let child = Child { process, stdin };
        // A thread reads, so that a child that hangs cannot hang the
        // benchmark: it ends with the child's stdout, when the child is
        // killed at the latest.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let read = BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(read.map(|_| first));
        });
        match rx.recv_timeout(STARTUP) {
            Ok(Ok(first)) if !first.is_empty() => (child, first.trim().to_string()),
            Ok(Ok(_)) => panic!("{what} ended before printing its first line"),
            Ok(Err(e)) => panic!("cannot read the first line of {what}: {e}"),
            Err(_) => panic!("{what} printed nothing within {STARTUP:?}"),
        }
    }

    /// Writes `line` to the child's stdin; when it was written.
    pub(crate) fn say(&mut self, line: &str) -> Instant {
        let stdin = self.stdin.as_mut().expect("the child's stdin");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot tell the child {line:?}: {e}"));
        Instant::now()
    }

    /// The child's process id.
    pub(crate) fn id(&self) -> u32 {
        self.process.id()
    }

    /// Kills the child with SIGKILL now (it is reaped when dropped).
    pub(crate) fn kill(&mut self) {
        let _ = self.process.kill();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
