//! REST resources: the customer-records demo over real HTTP, its records
//! kept in a model folder across restarts, and run as a role of a home with
//! its records in the role's `model/` folder.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use support::Server;

const PATIENCE: Duration = Duration::from_secs(20);

/// One request on a fresh connection: status, headers (lowercase names),
/// body.
fn request(port: u16, method: &str, target: &str, body: Option<&str>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let body = body.unwrap_or("");
    let typed = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{typed}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

fn start(model: &std::path::Path) -> Server {
    Server::start(
        env!("CARGO_BIN_EXE_test_server_resource"),
        &[&format!("--model-path={}", model.display())],
    )
}

#[test]
fn customers_are_created_read_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let server = start(&model);
    let port = server.port;

    let (status, head, body) = request(
        port,
        "POST",
        "/customer",
        Some(r#"{"name":"Ann","age":41}"#),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(json_of(&body), json!({"identity": 1}));
    assert!(head.contains("location: /customer/1"), "{head}");
    let (status, _, body) = request(port, "POST", "/customer", Some(r#"{"name":"Bob","age":7}"#));
    assert_eq!((status, json_of(&body)), (201, json!({"identity": 2})));

    let (status, head, body) = request(port, "GET", "/customer/1", None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(json_of(&body), json!({"name": "Ann", "age": 41}));
    let (status, _, body) = request(port, "GET", "/customer", None);
    assert_eq!(status, 200);
    assert_eq!(
        json_of(&body),
        json!({"1": {"name": "Ann", "age": 41}, "2": {"name": "Bob", "age": 7}})
    );

    let (status, _, body) = request(
        port,
        "PUT",
        "/customer/2",
        Some(r#"{"name":"Bob","age":8}"#),
    );
    assert_eq!(
        (status, json_of(&body)),
        (200, json!({"name": "Bob", "age": 8}))
    );
    let (status, _, _) = request(port, "DELETE", "/customer/1", None);
    assert_eq!(status, 204);

    // Errors: each the front's fault body, naming what is wrong.
    for (method, target, body, expected, says) in [
        ("GET", "/customer/1", None, 404, "no customer 1"),
        ("DELETE", "/customer/1", None, 404, "no customer 1"),
        (
            "PUT",
            "/customer/9",
            Some(r#"{"name":"X","age":1}"#),
            404,
            "no customer 9",
        ),
        ("GET", "/order/1", None, 404, "nothing here answers"),
        (
            "GET",
            "/customer/x",
            None,
            404,
            "does not match /{resource}(/{identity})?",
        ),
        (
            "POST",
            "/customer",
            Some(r#"{"name":"X","age":"old"}"#),
            400,
            "age",
        ),
        (
            "POST",
            "/customer",
            Some(r#"{"name":"X","age":1,"extra":1}"#),
            400,
            "extra",
        ),
        ("POST", "/customer", Some("not json"), 400, "does not fit"),
    ] {
        let (status, _, text) = request(port, method, target, body);
        assert_eq!(status, expected, "{method} {target}: {text}");
        assert!(text.contains(says), "{method} {target}: {text}");
        assert!(text.contains("Faulted"), "{text}");
    }
    let (status, head, _) = request(port, "PATCH", "/customer/2", Some("{}"));
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, put, delete"), "{head}");

    // The records outlive the server.
    drop(server);
    let stored: Value = json_of(&std::fs::read_to_string(model.join("customers.json")).unwrap());
    assert_eq!(stored, json!({"2": {"name": "Bob", "age": 8}}));
    let server = start(&model);
    let (status, _, body) = request(server.port, "GET", "/customer", None);
    assert_eq!(
        (status, json_of(&body)),
        (200, json!({"2": {"name": "Bob", "age": 8}}))
    );
    let (status, _, body) = request(
        server.port,
        "POST",
        "/customer",
        Some(r#"{"name":"Cy","age":3}"#),
    );
    assert_eq!((status, json_of(&body)), (201, json!({"identity": 3})));
}

/// Run as a role of a home, the demo keeps its records in the role's
/// `model/` folder (its `--model-path` is not used).
#[test]
fn a_role_keeps_its_records_in_its_model_folder() {
    use layer_cake::home::{Home, Settings};
    let dir = tempfile::tempdir().unwrap();
    let home = Home::create(dir.path().join(".layer-cake")).unwrap();
    let program = env!("CARGO_BIN_EXE_test_server_resource");
    home.add_role("server", program, Settings::new()).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let server = Server::start(
        program,
        &[
            &format!("--home-path={}", home.path().display()),
            "--role-name=server",
            &format!("--model-path={}", elsewhere.display()),
        ],
    );
    let (status, _, _) = request(
        server.port,
        "POST",
        "/customer",
        Some(r#"{"name":"Ann","age":41}"#),
    );
    assert_eq!(status, 201);
    let file = home
        .role("server")
        .unwrap()
        .model_dir()
        .join("customers.json");
    let stored = json_of(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(stored, json!({"1": {"name": "Ann", "age": 41}}));
    assert!(!elsewhere.exists());
}
