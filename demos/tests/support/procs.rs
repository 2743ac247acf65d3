//! Processes a test starts and reads the stderr lines of: demos, daemons.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::workspace_binary;

/// How long a test waits for a line.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A running child process whose stderr lines are read as they come; killed
/// (SIGKILL) on drop if still running.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) lines: mpsc::Receiver<String>,
}

impl Proc {
    pub(crate) fn start(program: impl Into<PathBuf>, args: &[String]) -> Proc {
        let program = program.into();
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc { name, child, lines }
    }

    /// The first line from now on that contains `wanted`; panics past the
    /// deadline.
    pub(crate) fn line_with(&self, wanted: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(wanted) => return line,
                Ok(_) => {}
                Err(_) => panic!("{}: no line with {wanted:?} in time", self.name),
            }
        }
    }

    /// The port of its `listening on HOST:PORT` line.
    pub(crate) fn port(&self) -> u16 {
        let line = self.line_with("listening on ");
        line.rsplit(':').next().unwrap().trim().parse().unwrap()
    }

    /// SIGKILL, and reaped.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A host-cake on an ephemeral port, and the flag pointing processes at it.
pub(crate) fn host_cake() -> (Proc, String) {
    let host = Proc::start(
        workspace_binary("host-cake", "host-cake"),
        &[
            "--directory-at-host=127.0.0.1:0".into(),
            "--no-lan-autoconnect".into(),
        ],
    );
    let port = host.port();
    (host, format!("--connect-to-directory=127.0.0.1:{port}"))
}
