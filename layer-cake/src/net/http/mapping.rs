//! From an HTTP request to a message: a pure function, so that it can be
//! tested and fuzzed without sockets.

use std::fmt;

use percent_encoding::percent_decode;

use crate::message::registry;
use crate::message::text::{Source, TextError};
use crate::message::{Faulted, Payload};
use crate::net::HttpRequest;

/// Why a request could not become a message: the HTTP status to answer with
/// and the reason, which names the offending field when there is one.
///
/// The front answers with the [`Faulted`] of [`HttpError::to_fault`] as the
/// body (its typed JSON envelope), so a client sees the same shape for every
/// error.
///
/// ```
/// use layer_cake::net::http::HttpError;
///
/// let e = HttpError::new(404, "no message named \"Nope\"");
/// assert_eq!(e.to_string(), "404 not found: no message named \"Nope\"");
/// let fault = e.to_fault();
/// assert_eq!(fault.error_code, Some(404));
/// assert_eq!(fault.condition, "not found");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status code: 400, 404, 405, 413, 415 or 501 from the mapping.
    pub status: u16,
    /// What went wrong, naming the field when a field was at fault.
    pub reason: String,
}

impl HttpError {
    /// An error with a status and a reason.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        HttpError {
            status,
            reason: reason.into(),
        }
    }

    /// The short condition for the status: `bad request`, `not found` …
    pub fn condition(&self) -> &'static str {
        condition_of(self.status)
    }

    /// This error as the fault the front answers with (condition, the reason
    /// as the explanation, the status as the error code).
    pub fn to_fault(&self) -> Faulted {
        Faulted::new(self.condition())
            .with_explanation(self.reason.clone())
            .with_error_code(i32::from(self.status))
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.condition(), self.reason)
    }
}

impl std::error::Error for HttpError {}

/// The short text of the statuses the front produces itself.
pub(crate) fn condition_of(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        404 => "not found",
        405 => "method not allowed",
        408 => "request timeout",
        413 => "payload too large",
        414 => "uri too long",
        415 => "unsupported media type",
        431 => "request header fields too large",
        500 => "internal server error",
        503 => "service unavailable",
        501 => "not implemented",
        504 => "gateway timeout",
        505 => "http version not supported",
        _ => "http error",
    }
}

/// A request's or response's headers as name and value pairs, in order
/// (a value that is not text is left out).
pub(crate) fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// The methods the front takes.
pub(crate) const METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";

/// Turns one HTTP request into the message it names.
///
/// - `accepted`: the signatures the front accepts (`HttpServer::accepted`);
/// - `method`: `GET`, `HEAD` (taken as `GET`; the response goes without
///   its body), `POST`, `PUT`, `PATCH` or `DELETE`; `OPTIONS`, `TRACE`
///   and `CONNECT` (known to HTTP, not taken here): 405; any other: 501;
/// - `target`: the request target, path and optional query
///   (`/any/prefix/Xy?x=2&y=2`);
/// - `content_type`: the `Content-Type` header, if any;
/// - `body`: the whole body (already bounded by the caller).
///
/// The rules:
///
/// 1. The last path segment, percent-decoded, names the message; it must be
///    one of `accepted` (else 404).
/// 2. The fields come from the query, *or* from a non-empty body — not both
///    (400). With neither, the message is built from no fields at all (its
///    serde defaults; a required field gives 400 `missing field x`).
/// 3. Query and `application/x-www-form-urlencoded` fields are decoded with
///    the text rules of [`message::text`](crate::message::text) (`x=2`,
///    strings verbatim, `+` is a space, `%xx` a byte; the bytes must be
///    UTF-8). A bare `name` is a field without a value (`true` for a bool).
/// 4. An `application/json` body is the class envelope `{"value":{...}}`
///    when its only key is `value`, and the bare value otherwise
///    (`{"x":1,"y":2}`). A struct refuses unknown keys. A type whose only
///    field is itself named `value` must be sent in the envelope.
/// 5. Any other content type with a body: 415.
/// 6. When `accepted` holds [`HttpRequest`]'s signature, a request that
///    names none of the others (404) or has another method (405) is
///    delivered whole, as an [`HttpRequest`].
///
/// ```
/// use layer_cake::net::http::decode_request;
///
/// let accepted = ["vector<integer8>"];
/// layer_cake::message::registry::register::<Vec<i64>>();
/// let p = decode_request(&accepted, "POST", "/vector%3Cinteger8%3E", Some("application/json"), b"[1,2]").unwrap();
/// assert_eq!(p.downcast::<Vec<i64>>().unwrap(), [1, 2]);
/// let e = decode_request(&accepted, "GET", "/Nope", None, b"").unwrap_err();
/// assert_eq!(e.status, 404);
/// ```
pub fn decode_request(
    accepted: &[&str],
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Payload, HttpError> {
    let whole = || {
        Ok(Payload::new(HttpRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            // The front fills them in; the mapping sees none.
            headers: Vec::new(),
            content_type: content_type.map(str::to_owned),
            body: body.to_vec(),
        }))
    };
    let takes_whole = accepted.contains(&HttpRequest::SIGNATURE);
    match decode_named(accepted, method, target, content_type, body) {
        Err(e) if takes_whole && matches!(e.status, 404 | 405) => whole(),
        Ok(named) if named.is::<HttpRequest>() => whole(),
        other => other,
    }
}

/// [`decode_request`] for the messages named in the path.
fn decode_named(
    accepted: &[&str],
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Payload, HttpError> {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" => {}
        // Known to HTTP (RFC 9110) but not taken by the front.
        "OPTIONS" | "TRACE" | "CONNECT" => {
            return Err(HttpError::new(
                405,
                format!("method {method:?} is not taken here (use one of {METHODS})"),
            ));
        }
        _ => {
            return Err(HttpError::new(
                501,
                format!("method {method:?} is not known to this server (it takes {METHODS})"),
            ));
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    // A fragment never reaches a server, but a raw client may send one.
    let path = path.split('#').next().unwrap_or(path);
    let Some(rest) = path.strip_prefix('/') else {
        return Err(HttpError::new(
            400,
            format!("the request target {path:?} does not start with \"/\""),
        ));
    };
    let raw_name = rest.rsplit('/').next().unwrap_or(rest);
    let name = percent_decode(raw_name.as_bytes())
        .decode_utf8()
        .map_err(|_| HttpError::new(404, "the message name is not UTF-8"))?;
    let Some(signature) = accepted.iter().find(|s| **s == name) else {
        return Err(HttpError::new(
            404,
            format!(
                "no message named {:?} here (expected one of {})",
                &*name,
                accepted.join(", ")
            ),
        ));
    };
    let entry = registry::lookup(signature)
        .ok_or_else(|| HttpError::new(500, format!("the type {signature:?} is not registered")))?;

    let media = content_type.map(media_type);
    if !body.is_empty() {
        if query.is_some() {
            return Err(HttpError::new(
                400,
                "the fields come in the query or in the body, not both",
            ));
        }
        return match media.as_deref() {
            Some("application/x-www-form-urlencoded") => decode_fields(entry, &parse_fields(body)?),
            Some("application/json") => decode_json(entry, body),
            Some(other) => Err(HttpError::new(
                415,
                format!(
                    "unexpected content type {other:?} (send application/json or \
                     application/x-www-form-urlencoded)"
                ),
            )),
            None => Err(HttpError::new(
                415,
                "a body without a content type (send application/json or \
                 application/x-www-form-urlencoded)",
            )),
        };
    }
    match query {
        Some(query) => decode_fields(entry, &parse_fields(query.as_bytes())?),
        None => decode_fields(entry, &[]),
    }
}

impl HttpRequest {
    /// The signature the front recognises (`HttpRequest`).
    pub const SIGNATURE: &'static str = "HttpRequest";

    /// The path: the target without its query (`/is_prime`).
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }

    /// The query's fields, percent-decoded, in order (`a=1&b=x+y&flag` is
    /// `[("a", Some("1")), ("b", Some("x y")), ("flag", None)]`); a name or
    /// value that is not UTF-8 once decoded is a 400 error.
    ///
    /// ```
    /// use layer_cake::net::HttpRequest;
    ///
    /// let r = HttpRequest { method: "GET".into(), target: "/is_prime?possible_prime=7&x".into(), headers: vec![], content_type: None, body: vec![] };
    /// assert_eq!(r.path(), "/is_prime");
    /// assert_eq!(r.query().unwrap(), [("possible_prime".to_string(), Some("7".to_string())), ("x".to_string(), None)]);
    /// ```
    pub fn query(&self) -> Result<Vec<(String, Option<String>)>, HttpError> {
        let query = self.target.split('#').next().unwrap_or("");
        match query.split_once('?') {
            Some((_, query)) => parse_fields(query.as_bytes()),
            None => Ok(Vec::new()),
        }
    }
}

/// `application/json; charset=utf-8` → `application/json`.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

type Fields = Vec<(String, Option<String>)>;

/// Splits `a=1&b=x+y&flag` into fields, percent-decoding names and values.
pub(crate) fn parse_fields(text: &[u8]) -> Result<Fields, HttpError> {
    let mut fields = Vec::new();
    for piece in text.split(|b| *b == b'&') {
        if piece.is_empty() {
            continue;
        }
        let (name, value) = match piece.iter().position(|b| *b == b'=') {
            Some(at) => (&piece[..at], Some(&piece[at + 1..])),
            None => (piece, None),
        };
        let name = unescape(name).ok_or_else(|| {
            HttpError::new(
                400,
                format!(
                    "a field name is not UTF-8 ({:?})",
                    String::from_utf8_lossy(name)
                ),
            )
        })?;
        let value =
            match value {
                Some(v) => Some(unescape(v).ok_or_else(|| {
                    HttpError::new(400, format!("{name}: the value is not UTF-8"))
                })?),
                None => None,
            };
        fields.push((name, value));
    }
    Ok(fields)
}

/// `+` is a space, `%xx` a byte; the result must be UTF-8.
fn unescape(text: &[u8]) -> Option<String> {
    // Most names and values have nothing to unescape: one copy, no buffers.
    if !text.iter().any(|b| matches!(b, b'+' | b'%')) {
        return std::str::from_utf8(text).ok().map(str::to_owned);
    }
    let spaced: Vec<u8> = text
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(bytes).ok()
}

fn decode_fields(
    entry: &registry::Entry,
    fields: &[(String, Option<String>)],
) -> Result<Payload, HttpError> {
    entry
        .decode_text(fields, Source::Query)
        .map_err(|e| match e {
            TextError::Other(reason) => HttpError::new(
                400,
                format!(
                    "{} cannot be built from query or form fields ({reason}); POST it as JSON",
                    entry.signature()
                ),
            ),
            other => HttpError::new(400, other.to_string()),
        })
}

fn decode_json(entry: &registry::Entry, body: &[u8]) -> Result<Payload, HttpError> {
    let bad = |reason: String| HttpError::new(400, reason);
    let text =
        std::str::from_utf8(body).map_err(|_| bad("the JSON body is not UTF-8".to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let value = match value {
        serde_json::Value::Object(mut map) if map.len() == 1 && map.contains_key("value") => {
            map.remove("value").unwrap_or(serde_json::Value::Null)
        }
        other => other,
    };
    if let serde_json::Value::Object(map) = &value
        && let Some(names) = entry.field_names()
        && let Some(unknown) = map.keys().find(|k| !names.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown field {unknown} (expected one of {})",
            names.join(", ")
        )));
    }
    entry
        .decode_json_value(value)
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unescaped() {
        let f = parse_fields(b"a=1&b=x+y%21&&flag&c=").unwrap();
        assert_eq!(
            f,
            [
                ("a".to_string(), Some("1".to_string())),
                ("b".to_string(), Some("x y!".to_string())),
                ("flag".to_string(), None),
                ("c".to_string(), Some(String::new())),
            ]
        );
        let e = parse_fields(b"name=%ff").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.reason.starts_with("name:"), "{}", e.reason);
    }

    #[test]
    fn media_types() {
        assert_eq!(
            media_type("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert_eq!(media_type(""), "");
    }
}
