//! From an answer (a message, a fault, an `HttpResponse`) to an HTTP
//! response.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, SERVER};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::mapping::{HttpError, METHODS};
use crate::message::codec::json;
use crate::message::{FaultKind, Faulted, Payload};
use crate::net::HttpResponse;

/// The response body type of the front.
pub(crate) type Body = Full<Bytes>;

/// Seconds a client is asked to wait before trying again (`Retry-After`).
pub(crate) const RETRY_AFTER_SECONDS: u32 = 1;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The HTTP status for a fault, and whether the client should be asked to
/// retry later (`Retry-After`).
///
/// | fault | status |
/// |---|---|
/// | `Busy`, `Overloaded` | 503 with `Retry-After` |
/// | `TimedOut` | 504 |
/// | `TemporarilyUnavailable`, `OutOfService` | 503 with `Retry-After` |
/// | `Lost` | 502 |
/// | any other with an `error_code` in 400..=599 | that code |
/// | anything else | 500 |
///
/// ```
/// use layer_cake::Faulted;
/// use layer_cake::net::http::status_of;
///
/// assert_eq!(status_of(&Faulted::busy("slow")), (503, true));
/// assert_eq!(status_of(&Faulted::temporarily_unavailable("no worker")), (503, true));
/// assert_eq!(status_of(&Faulted::timed_out("late")), (504, false));
/// assert_eq!(status_of(&Faulted::new("no such customer").with_error_code(404)), (404, false));
/// assert_eq!(status_of(&Faulted::new("oops")), (500, false));
/// assert_eq!(status_of(&Faulted::lost("not answered", "the worker ended")), (502, false));
/// ```
pub fn status_of(fault: &Faulted) -> (u16, bool) {
    match fault.kind {
        FaultKind::Busy | FaultKind::Overloaded => (503, true),
        FaultKind::TimedOut => (504, false),
        FaultKind::TemporarilyUnavailable | FaultKind::OutOfService => (503, true),
        FaultKind::Lost => (502, false),
        FaultKind::Faulted | FaultKind::Aborted => match fault.error_code {
            Some(code @ 400..=599) => (code as u16, false),
            _ => (500, false),
        },
    }
}

/// The response for an actor's answer.
pub(crate) fn from_answer(answer: Payload) -> Response<Body> {
    let answer = match answer.downcast::<HttpResponse>() {
        Ok(custom) => return passthrough(custom),
        Err(answer) => answer,
    };
    let (status, retry) = match answer.downcast_ref::<Faulted>() {
        Some(fault) => status_of(fault),
        None => (200, false),
    };
    match json::to_typed_string(&answer, false) {
        Ok(text) => json_response(status, retry, text),
        Err(e) => fault_response(
            Faulted::new("cannot encode the answer")
                .with_explanation(e.to_string())
                .with_error_code(500),
        ),
    }
}

/// The front's own answer to its health-check path: 200, `text/plain`.
pub(crate) fn health(body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(SERVER, HeaderValue::from_static("layer-cake"));
    response
}

/// The response for a fault made by the front itself.
pub(crate) fn fault_response(fault: Faulted) -> Response<Body> {
    let (status, retry) = status_of(&fault);
    let text = json::to_typed_string(&Payload::new(fault), false)
        .unwrap_or_else(|_| r#"{"value":["Faulted",null,[]]}"#.to_string());
    json_response(status, retry, text)
}

/// The response for a request that did not map to a message.
pub(crate) fn error_response(error: &HttpError) -> Response<Body> {
    let mut response = fault_response(error.to_fault());
    if error.status == 405 {
        response
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static(METHODS));
    }
    response
}

/// A whole HTTP/1 answer that the front writes on a socket itself, outside
/// hyper (a connection past the cap, a request hyper could not parse): the
/// fault's status and typed envelope, `Content-Type`, `Content-Length`,
/// `Retry-After` where [`status_of`] asks for it, and `Connection: close`
/// (the connection is closed after it).
pub(crate) fn raw_answer(version: &str, fault: Faulted) -> Vec<u8> {
    let (status, retry) = status_of(&fault);
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = json::to_typed_string(&Payload::new(fault), false)
        .unwrap_or_else(|_| r#"{"value":["Faulted",null,[]]}"#.to_string());
    let retry = if retry || status == 503 {
        format!("retry-after: {RETRY_AFTER_SECONDS}\r\n")
    } else {
        String::new()
    };
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    format!(
        "{version} {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\nserver: layer-cake\r\ndate: {date}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_response(status: u16, retry: bool, text: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, JSON);
    // Every 503 the front writes asks the client to come back later, also
    // one from an `error_code` of 503.
    if retry || status == 503 {
        headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

/// An `HttpResponse` as it is. A status that is not 100-999, or a header
/// that is not valid HTTP, gives 500 instead (naming the problem). A body
/// without a content type (neither `content_type` nor a `Content-Type`
/// header) goes as `application/octet-stream`.
fn passthrough(custom: HttpResponse) -> Response<Body> {
    let invalid = |why: String| {
        fault_response(
            Faulted::new("invalid HttpResponse")
                .with_explanation(why)
                .with_error_code(500),
        )
    };
    let Ok(status) = StatusCode::from_u16(custom.status) else {
        return invalid(format!("status {}", custom.status));
    };
    let has_body = !custom.body.is_empty();
    let mut response = Response::new(Full::new(Bytes::from(custom.body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in &custom.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => return invalid(format!("header {name:?}: {value:?}")),
        }
    }
    if let Some(content_type) = &custom.content_type {
        match HeaderValue::from_str(content_type) {
            Ok(v) => {
                headers.insert(CONTENT_TYPE, v);
            }
            Err(_) => return invalid(format!("content type {content_type:?}")),
        }
    } else if has_body && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(content_type: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            content_type: content_type.map(str::to_owned),
            body: body.to_vec(),
        }
    }

    fn content_type(response: &Response<Body>) -> Option<&str> {
        response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap())
    }

    #[test]
    fn a_passthrough_body_always_has_a_content_type() {
        let bare = passthrough(custom(None, &[], b"raw"));
        assert_eq!(content_type(&bare), Some("application/octet-stream"));
        let typed = passthrough(custom(Some("text/csv"), &[], b"a,b"));
        assert_eq!(content_type(&typed), Some("text/csv"));
        let by_header = passthrough(custom(None, &[("Content-Type", "image/png")], b"png"));
        assert_eq!(content_type(&by_header), Some("image/png"));
        // No body, nothing to type (a 204, say).
        assert_eq!(content_type(&passthrough(custom(None, &[], b""))), None);
    }

    #[test]
    fn a_raw_answer_is_a_whole_json_response() {
        let text = String::from_utf8(raw_answer("HTTP/1.1", Faulted::overloaded("full"))).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        for line in [
            "content-type: application/json",
            "retry-after: 1",
            "connection: close",
            "server: layer-cake",
        ] {
            assert!(head.contains(line), "{head}");
        }
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["value"][1]["kind"], "Overloaded");
    }
}
