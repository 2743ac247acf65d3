//! A portable image, end to end: a home with an HTTP server role, its
//! resources and its model data is written to a `.tar.gz`, unpacked into
//! a fresh folder and run from there with an environment that holds
//! nothing but `PATH=/usr/bin:/bin` — none of the project's programs —
//! and the server answers over real HTTP with the records packed with it.
//! host-cake runs on an ephemeral port (never the standard one). Every
//! process started is stopped when the test ends, however it ends.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::{HomeGuard, PATIENCE, Proc, bin_dir, exchange, free_port, host_cake, ok};

/// Builds, once, the demo the image runs beside what `support` builds.
fn build_demos() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    support::build_executables();
    BUILT.call_once(|| {
        let dir = bin_dir();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "layer-cake-demos"])
            .args(["--bin", "test_server_resource"])
            .arg("--target-dir")
            .arg(dir.parent().expect("a target directory"))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        assert!(
            cargo.status().expect("cargo runs").success(),
            "the demo builds"
        );
    });
}

/// Unpacks `archive` into `into`: the names it holds, in order.
fn unpack(archive: &Path, into: &Path) -> Vec<String> {
    let names: Vec<String> = {
        let file = std::fs::File::open(archive).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        tar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    };
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.set_preserve_permissions(true);
    tar.unpack(into).unwrap();
    names
}

/// `layer-cake` from the unpacked image, with nothing of the project on
/// PATH and nothing else in the environment.
fn bare(dir: &Path) -> Command {
    let mut command = Command::new(dir.join("bin/layer-cake"));
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(dir);
    command
}

#[test]
fn an_unpacked_image_runs_with_nothing_else_installed() {
    build_demos();
    let dir = tempfile::tempdir().unwrap();
    let d = &std::fs::canonicalize(dir.path()).unwrap();
    let (source, fresh) = (d.join("source"), d.join("fresh"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&fresh).unwrap();
    let (_host, host_at) = host_cake();
    let port = free_port();

    // The home: a records server with model data and a resource folder.
    ok(
        &source,
        &[
            "create",
            "--home-path=app",
            &format!("--directory-at-host={host_at}"),
        ],
    );
    fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--home-path=app"][..], args].concat()
    }
    ok(
        &source,
        &with(&[
            "add",
            "test_server_resource",
            "server",
            &format!("--server-address=127.0.0.1:{port}"),
        ]),
    );
    std::fs::write(
        source.join("customers.json"),
        r#"{"1": {"name": "Ann", "age": 41}}"#,
    )
    .unwrap();
    ok(
        &source,
        &with(&["model", "server", "customers.json", "--make-changes"]),
    );
    std::fs::create_dir_all(source.join("pages")).unwrap();
    std::fs::write(source.join("pages/index.html"), "<p>hi</p>").unwrap();
    ok(
        &source,
        &with(&[
            "resource",
            "test_server_resource",
            "pages",
            "--make-changes",
        ]),
    );
    // Files of this machine's runs stay out of the image.
    std::fs::write(source.join("app/role/server/tmp/scratch"), "x").unwrap();
    std::fs::write(source.join("app/role/server/logs/old.log"), "x").unwrap();

    // Refused inside the home; written outside it.
    let out = support::cli(&source)
        .args(with(&["image", "--output=app/resource/image.tar.gz"]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("write the image outside the home"), "{err}");
    let archive = d.join("app.tar.gz");
    let said = ok(
        &source,
        &with(&[
            "image",
            &format!("--output={}", archive.display()),
            "--with-model",
        ]),
    );
    assert!(
        said.starts_with(&format!("wrote {} (", archive.display()))
            && said.contains("programs: layer-cake group-cake test_server_resource"),
        "{said}"
    );

    // Without --with-model: the model/ folders, empty.
    let bare_archive = d.join("bare.tar.gz");
    ok(
        &source,
        &with(&["image", &format!("--output={}", bare_archive.display())]),
    );
    let names = unpack(&bare_archive, &d.join("bare"));
    assert!(
        names.iter().any(|n| n == ".layer-cake/role/server/model"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with("customers.json")),
        "{names:?}"
    );

    let names = unpack(&archive, &fresh);
    for wanted in [
        "bin/layer-cake",
        ".layer-cake/script/group-cake",
        ".layer-cake/script/test_server_resource",
        ".layer-cake/role/group/executable.json",
        ".layer-cake/role/server/settings.json",
        ".layer-cake/role/server/model/customers.json",
        ".layer-cake/resource/test_server_resource/pages/index.html",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    for unwanted in ["history.json", "/lock", "home.lock", "scratch", "old.log"] {
        assert!(
            !names.iter().any(|n| n.ends_with(unwanted)),
            "{unwanted} in {names:?}"
        );
    }
    let stored =
        std::fs::read_to_string(fresh.join(".layer-cake/role/server/executable.json")).unwrap();
    assert_eq!(stored.trim(), r#""script/test_server_resource""#);

    // Run from the unpacked folder with nothing else installed.
    let _guard = HomeGuard(fresh.join(".layer-cake"));
    let listed = bare(&fresh).args(["list", "-l"]).output().unwrap();
    assert!(listed.status.success());
    let mut run = bare(&fresh);
    run.arg("run");
    let mut run = Proc::start(run);
    let request = "GET /customer/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let deadline = Instant::now() + PATIENCE;
    let (status, body) = loop {
        let (status, body) = exchange(port, request);
        if status != 0 {
            break (status, body);
        }
        assert!(Instant::now() < deadline, "no answer in time");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 200, "{body}");
    let record: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(record, serde_json::json!({"name": "Ann", "age": 41}));

    // The role runs the image's copy.
    let server = support::pid_of(&fresh, "server").expect("server runs");
    let exe = std::fs::read_link(format!("/proc/{server}/exe")).unwrap();
    assert_eq!(exe, fresh.join(".layer-cake/script/test_server_resource"));
    let group = support::pid_of(&fresh, "group").expect("group runs");
    let exe = std::fs::read_link(format!("/proc/{group}/exe")).unwrap();
    assert_eq!(exe, fresh.join(".layer-cake/script/group-cake"));

    // Stopped, everything ends.
    run.interrupt_and_wait();
    let deadline = Instant::now() + PATIENCE;
    while !support::running(&fresh).is_empty() {
        assert!(Instant::now() < deadline, "still running after the stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
