//! The HTTP front's request-to-message mapping never panics: any method,
//! target, content type and body gives a message of an accepted type or an
//! error with a 4xx/5xx status.
//!
//! The input is split as `method byte`, then `target \0 content type \0 body`.

#![no_main]

use layer_cake::Message;
use layer_cake::net::http::decode_request;
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Message)]
struct Xy {
    x: i64,
    y: i64,
}

#[derive(Debug, Default, Serialize, Deserialize, Message)]
#[serde(default)]
struct Customer {
    name: String,
    age: Option<u8>,
    tags: Vec<String>,
    vip: bool,
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    layer_cake::message::registry::register::<Vec<i64>>();
    let accepted = ["Xy", "Customer", "vector<integer8>"];
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[m as usize % METHODS.len()];
    let mut parts = rest.splitn(3, |b| *b == 0);
    let target = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let content_type = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or_default();
    match decode_request(&accepted, method, &target, content_type.as_deref(), body) {
        Ok(message) => assert!(accepted.contains(&message.signature().as_str())),
        Err(e) => assert!((400..=599).contains(&e.status) && !e.reason.is_empty()),
    }
});
