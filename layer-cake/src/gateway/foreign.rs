//! A foreign worker: a spool member reached by URL that speaks JSON-RPC
//! over HTTP. Each call is POSTed on a connection of its own (the spool's
//! `worker_capacity` bounds how many at once), with the caller context in
//! `X-WORKER-POSTAUTH` and a `traceparent` with a new span.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::{CONTENT_TYPE, HOST, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::GatewayError;
use crate::message::{Faulted, Payload, Stop};
use crate::net::HostPort;
use crate::net::http::jsonrpc::{RpcCall, RpcError, RpcResult};
use crate::on;
use crate::runtime::{Address, Context, Meta, SpawnOptions, TraceContext};

/// The header carrying the caller context to a foreign worker.
pub const POSTAUTH: &str = "x-worker-postauth";

/// The largest answer read from a foreign worker (1 MiB, as a native
/// frame); a larger one is a fault.
const MAX_ANSWER: usize = 1 << 20;

/// Where a foreign worker listens: `http://host:port/path`.
///
/// ```
/// let url: layer_cake::gateway::ForeignUrl = "http://127.0.0.1:8082/api/rpc".parse().unwrap();
/// assert_eq!(url.to_string(), "http://127.0.0.1:8082/api/rpc");
/// assert!("https://example.com/api".parse::<layer_cake::gateway::ForeignUrl>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignUrl {
    at: HostPort,
    path: String,
}

impl FromStr for ForeignUrl {
    type Err = GatewayError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| GatewayError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// is supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        let at = authority
            .parse::<HostPort>()
            .map_err(|e| bad(&e.to_string()))?;
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("the path holds spaces or control characters"));
        }
        Ok(ForeignUrl {
            at,
            path: path.to_owned(),
        })
    }
}

impl ForeignUrl {
    /// Where to connect.
    pub fn at(&self) -> &HostPort {
        &self.at
    }

    /// The request target (`/api/rpc`).
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for ForeignUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.at, self.path)
    }
}

/// Starts the foreign worker of `service` at `url` as a child of `cx`.
pub(super) fn spawn(
    cx: &mut Context,
    service: &str,
    url: ForeignUrl,
    timeout: Duration,
) -> Address {
    let options = SpawnOptions::new().name(format!("foreign-{service}"));
    cx.spawn_with(options, move |cx| run(cx, Arc::new(url), timeout))
}

async fn run(mut cx: Context, url: Arc<ForeignUrl>, timeout: Duration) -> Result<(), Faulted> {
    loop {
        let message = cx.input().await;
        on!(message, {
            RpcCall as call => {
                let answer = cx.return_path();
                let meta = cx.meta().cloned();
                let url = url.clone();
                tokio::spawn(async move {
                    let outcome = tokio::time::timeout(timeout, post(&url, &call, meta.as_ref()))
                        .await
                        .unwrap_or_else(|_| {
                            Payload::new(Faulted::timed_out(format!(
                                "the foreign worker at {url} did not answer within {timeout:?}"
                            )))
                        });
                    let _ = answer.reply_payload(outcome);
                });
            },
            Stop as _ => return Ok(()),
            other => tracing::warn!("a foreign worker ignores {}", other.signature()),
        })
    }
}

/// The JSON-RPC request for `call`: same method (already stripped of its
/// service), params and id.
fn request_body(call: &RpcCall) -> Value {
    let mut body = json!({"jsonrpc": "2.0", "method": call.method});
    if !call.params.is_null() {
        body["params"] = call.params.clone();
    }
    if let Some(id) = &call.id {
        body["id"] = id.clone();
    }
    body
}

/// `X-WORKER-POSTAUTH`: who calls and through which hops.
fn postauth(call: &RpcCall, meta: Option<&Meta>) -> HeaderValue {
    let context = json!({
        "user_id": meta.and_then(|m| m.caller.as_deref()),
        "rpc_chain": call.chain,
    });
    HeaderValue::from_str(&ascii_json(&context)).unwrap_or(HeaderValue::from_static("{}"))
}

/// JSON text with every non-ASCII character written `\uXXXX`, as a header
/// value must be visible ASCII.
fn ascii_json(value: &Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// POSTs one call and makes an answer of the response.
async fn post(url: &ForeignUrl, call: &RpcCall, meta: Option<&Meta>) -> Payload {
    let unavailable = |why: String| {
        Payload::new(Faulted::temporarily_unavailable(format!(
            "the foreign worker at {url}: {why}"
        )))
    };
    let stream = match TcpStream::connect(url.at.to_string()).await {
        Ok(stream) => stream,
        Err(e) => return unavailable(format!("cannot connect ({e})")),
    };
    let (mut sender, connection) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => return unavailable(e.to_string()),
    };
    // Ends with the sender (when this call is done) or the server.
    tokio::spawn(connection);
    let trace = meta
        .and_then(|m| m.trace)
        .map(|t| t.child())
        .unwrap_or_else(TraceContext::new_root);
    let mut request = Request::post(url.path.as_str())
        .header(HOST, url.at.to_string())
        .header(CONTENT_TYPE, "application/json")
        .header(crate::net::http::TRACEPARENT, trace.to_string())
        .header(POSTAUTH, postauth(call, meta));
    if let Some(state) = meta.and_then(|m| m.trace_state.as_ref()) {
        request = request.header(crate::net::http::TRACESTATE, state.as_str());
    }
    let request = request.body(Full::new(Bytes::from(request_body(call).to_string())));
    let request = match request {
        Ok(request) => request,
        Err(e) => return Payload::new(Faulted::from_error("cannot build the request", &e)),
    };
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(e) => return unavailable(e.to_string()),
    };
    let status = response.status();
    let body = match Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => return unavailable(format!("cannot read the answer ({e})")),
    };
    if call.id.is_none() && status.is_success() {
        // A notification: nothing (or nothing useful) comes back.
        return Payload::new(RpcResult::new(Value::Null));
    }
    answer_of(&body).unwrap_or_else(|why| {
        Payload::new(
            Faulted::new("a bad answer from a foreign worker")
                .with_explanation(format!("{url} answered {status}: {why}")),
        )
    })
}

/// A JSON-RPC response body as the answer to the call.
fn answer_of(body: &[u8]) -> Result<Payload, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    if let Some(result) = value.get("result") {
        return Ok(Payload::new(RpcResult::new(result.clone())));
    }
    let Some(error) = value.get("error") else {
        return Err("neither a result nor an error".into());
    };
    let code = error.get("code").and_then(Value::as_i64);
    let message = error.get("message").and_then(Value::as_str);
    match (code, message) {
        (Some(code), Some(message)) => {
            let mut e = RpcError::new(code, message);
            e.data = error.get("data").cloned();
            Ok(Payload::new(e))
        }
        _ => Err("an error without a code and a message".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url: ForeignUrl = "http://localhost:8081".parse().unwrap();
        assert_eq!(url.path, "/");
        for bad in [
            "ftp://x:1/",
            "http://nohost/",
            "http://x:99999/",
            "http://x:1/a b",
        ] {
            assert!(bad.parse::<ForeignUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn answers() {
        let ok = answer_of(br#"{"jsonrpc":"2.0","result":"pong","id":1}"#).unwrap();
        assert_eq!(ok.downcast::<RpcResult>().unwrap().result, json!("pong"));
        let e = answer_of(
            br#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}"#,
        )
        .unwrap();
        assert_eq!(
            e.downcast::<RpcError>().unwrap(),
            RpcError::method_not_found()
        );
        assert!(answer_of(b"<html>").is_err());
        assert!(answer_of(br#"{"error":{"code":"x"}}"#).is_err());
    }

    #[test]
    fn the_caller_context_is_an_ascii_header() {
        let call = RpcCall::new("x", Value::Null, None);
        let meta = Meta {
            caller: Some("zoë 😀".into()),
            ..Meta::default()
        };
        let header = postauth(&call, Some(&meta));
        let back: Value = serde_json::from_slice(header.as_bytes()).unwrap();
        assert_eq!(back["user_id"], "zoë 😀");
    }

    #[test]
    fn the_request_keeps_id_and_params() {
        let call = RpcCall::new("ping", Value::Null, Some(json!(7)));
        assert_eq!(
            request_body(&call),
            json!({"jsonrpc":"2.0","method":"ping","id":7})
        );
        let note = RpcCall::new("n", json!([1]), None);
        assert_eq!(
            request_body(&note),
            json!({"jsonrpc":"2.0","method":"n","params":[1]})
        );
    }
}
