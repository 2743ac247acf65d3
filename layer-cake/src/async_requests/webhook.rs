//! Webhook delivery: the body, its HMAC-SHA256 signature, and the POST with
//! its retry.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sha2::Sha256;
use tokio::net::TcpStream;

/// The longest webhook URL accepted.
pub const MAX_URL: usize = 2048;

/// The signature header's value for `body` under `secret`:
/// `v1=<hex of HMAC-SHA256(secret, body)>`.
///
/// ```
/// let body = br#"{"request_id":"9876543210abcdef1234567890fedcba","model_id":"abc123","deployment_id":"def456","type":"async_request_completed","time":"2024-04-30T01:01:08.883423Z","data":{"output":"model response here"},"errors":[]}"#;
/// assert_eq!(
///     layer_cake::async_requests::signature(b"test-webhook-secret", body),
///     "v1=3213a16405f56240e656c87e7bdd444f359aa976c8ca59bad477304404c52490"
/// );
/// ```
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// One error of a request, in the record and in the webhook body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RequestError {
    /// `MODEL_INVALID_INPUT`, `MODEL_PREDICT_ERROR` …
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// The webhook's body, members in the documented order.
#[derive(Debug, Serialize)]
pub(crate) struct Body<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) model_id: &'a str,
    pub(crate) deployment_id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    pub(crate) time: String,
    pub(crate) data: Option<Output<'a>>,
    pub(crate) errors: &'a [RequestError],
}

/// `data` of a successful request: the worker's output.
#[derive(Debug, Serialize)]
pub(crate) struct Output<'a> {
    pub(crate) output: &'a serde_json::Value,
}

/// A webhook URL taken apart: `http://host[:port]/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) target: String,
    pub(crate) authority: String,
}

/// Checks a webhook URL: `http://` only (this build has no TLS client),
/// at most [`MAX_URL`] bytes, a host, a valid port.
pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
    if url.len() > MAX_URL {
        return Err(format!(
            "webhook_endpoint is {} bytes long; at most {MAX_URL} are accepted",
            url.len()
        ));
    }
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(
            "webhook_endpoint: https is not supported by this server (it has no TLS client); use http:// on a trusted network".into(),
        );
    } else {
        return Err(format!(
            "webhook_endpoint must be an http:// URL, not {url:?}"
        ));
    };
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("webhook_endpoint has no usable host: {url:?}"));
    }
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) || authority.bytes().any(|b| b <= b' ') {
        return Err("webhook_endpoint contains spaces or control characters".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("webhook_endpoint has a bad host: {url:?}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("webhook_endpoint has a bad port: {url:?}"))?,
            None if after.is_empty() => 80,
            None => return Err(format!("webhook_endpoint has a bad host: {url:?}")),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| format!("webhook_endpoint has a bad port: {url:?}"))?,
            ),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(format!("webhook_endpoint has no usable host: {url:?}"));
    }
    Ok(Url {
        host,
        port,
        target,
        authority: authority.to_string(),
    })
}

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) attempts: u32,
    pub(crate) backoff: Duration,
    pub(crate) timeout: Duration,
}

/// POSTs `body` to `url`: up to `attempts` times, `backoff` apart, each
/// within `timeout`; retried on 500, 502, 503, 504 and on a connection
/// that fails or times out. The outcome: delivered (a 2xx) or why not,
/// and how many attempts were made.
pub(crate) async fn deliver(
    delivery: &Delivery,
    url: &Url,
    request_id: &str,
    body: Bytes,
) -> (Result<(), String>, u32) {
    let signature = delivery.secret.as_deref().map(|s| signature(s, &body));
    let mut last = String::new();
    for attempt in 1..=delivery.attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(delivery.backoff).await;
        }
        let post = post(url, request_id, signature.as_deref(), body.clone());
        match tokio::time::timeout(delivery.timeout, post).await {
            Ok(Ok(status)) if (200..300).contains(&status) => return (Ok(()), attempt),
            Ok(Ok(status)) => {
                last = format!("the webhook answered {status}");
                if !matches!(status, 500 | 502 | 503 | 504) {
                    return (Err(last), attempt);
                }
            }
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = format!(
                    "the webhook did not answer within {:.1}s",
                    delivery.timeout.as_secs_f64()
                )
            }
        }
    }
    (Err(last), delivery.attempts.max(1))
}

async fn post(
    url: &Url,
    request_id: &str,
    signature: Option<&str>,
    body: Bytes,
) -> Result<u16, String> {
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect to the webhook at {}: {e}", url.authority))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("webhook handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let trace = format!("00-{request_id}-{:016x}-01", rand::random::<u64>() | 1);
    let mut request = http::Request::post(url.target.as_str())
        .header(http::header::HOST, url.authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "layer-cake")
        .header("X-BASETEN-REQUEST-ID", request_id)
        .header("traceparent", trace);
    if let Some(s) = signature {
        request = request.header("X-BASETEN-SIGNATURE", s);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("webhook request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("webhook POST: {e}"))?;
    let status = response.status().as_u16();
    // Read (and drop) the answer's body so the exchange completes.
    let _ = http_body_util::Limited::new(response.into_body(), 64 << 10)
        .collect()
        .await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_vector() {
        let body = br#"{"request_id":"9876543210abcdef1234567890fedcba","model_id":"abc123","deployment_id":"def456","type":"async_request_completed","time":"2024-04-30T01:01:08.883423Z","data":{"output":"model response here"},"errors":[]}"#;
        assert_eq!(
            signature(b"test-webhook-secret", body),
            "v1=3213a16405f56240e656c87e7bdd444f359aa976c8ca59bad477304404c52490"
        );
    }

    #[test]
    fn the_body_serializes_in_the_documented_order() {
        let output = serde_json::Value::from("model response here");
        let body = Body {
            request_id: "9876543210abcdef1234567890fedcba",
            model_id: "abc123",
            deployment_id: "def456",
            kind: "async_request_completed",
            time: "2024-04-30T01:01:08.883423Z".into(),
            data: Some(Output { output: &output }),
            errors: &[],
        };
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(
            signature(b"test-webhook-secret", &bytes),
            "v1=3213a16405f56240e656c87e7bdd444f359aa976c8ca59bad477304404c52490"
        );
    }

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:9003/webhook").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 9003, "/webhook")
        );
        let u = parse_url("http://example.org").unwrap();
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        let u = parse_url("http://[::1]:81/x?y=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 81, "/x?y=1")
        );
        assert!(
            parse_url("https://example.org/")
                .unwrap_err()
                .contains("https")
        );
        assert!(
            parse_url("ftp://example.org/")
                .unwrap_err()
                .contains("http://")
        );
        assert!(parse_url("http://:80/").is_err());
        assert!(parse_url("http://h:99999/").unwrap_err().contains("port"));
        assert!(parse_url("http://u@h/").is_err());
        assert!(
            parse_url(&format!("http://h/{}", "a".repeat(MAX_URL)))
                .unwrap_err()
                .contains("at most")
        );
    }
}
