//! Helpers shared by integration tests (`mod support;`). Each test binary
//! uses only part of them.

#![allow(dead_code)]

pub(crate) mod netns;
pub(crate) mod procs;
pub(crate) mod raw;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Where cargo put this test's executable's sibling binaries
/// (`target/<profile>`): the directory above `deps/`.
pub(crate) fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// The path of a binary of another workspace package (host-cake, lan-cake
/// …), built on first use: cargo builds only this package's binaries for
/// its tests, and a build that is up to date costs nothing.
pub(crate) fn workspace_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let dir = bin_dir();
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashSet::new);
    if !built.contains(package) {
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_string();
        let target_dir = dir.parent().expect("a target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", package])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cargo.arg("--release");
            }
            other => {
                cargo.args(["--profile", other]);
            }
        }
        match cargo.status() {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("cargo build -p {package} failed: {s}"),
            Err(e) => panic!("cannot run cargo: {e}"),
        }
        built.insert(package.to_string());
    }
    dir.join(name)
}

/// `GET target` from 127.0.0.1:`port` on a fresh connection; the status and
/// the body.
pub(crate) fn http_get(port: u16, target: &str) -> (u16, Vec<u8>) {
    http_exchange(
        port,
        &format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

/// Sends `request` (a whole HTTP request, which should ask for
/// `Connection: close`) to 127.0.0.1:`port` on a fresh connection and reads
/// the response to its end; the status and the body.
pub(crate) fn http_exchange(port: u16, request: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("a response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

/// A server demo run by a test on port 0; killed on drop if still running.
pub(crate) struct Server {
    pub(crate) child: std::process::Child,
    /// Its real port, from its `listening on` line.
    pub(crate) port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Starts `program --server-address=127.0.0.1:0 FLAGS…` and waits for
    /// its `listening on` line; the rest of its stderr is drained (and shown)
    /// in the background.
    pub(crate) fn start(program: &str, flags: &[&str]) -> Server {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = Command::new(program)
            .arg("--server-address=127.0.0.1:0")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().unwrap();
        let (found, port) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                eprintln!("{line}");
                if let Some((_, at)) = line.split_once("listening on ") {
                    let port: u16 = at.rsplit(':').next().unwrap().trim().parse().unwrap();
                    let _ = found.send(port);
                }
            }
        });
        let mut server = Server { child, port: 0 };
        server.port = port
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a listening line");
        server
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

/// One runtime for the whole test binary, as in a real process: the hub the
/// children connect back to lives on the runtime that first needed it.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime")
        })
        .block_on(future)
}
