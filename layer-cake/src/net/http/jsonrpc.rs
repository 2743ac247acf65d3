//! JSON-RPC 2.0 framing: a request body becomes calls, answers become the
//! response body. Pure functions, so that the spec's vectors can be tested
//! without sockets.
//!
//! Each call is an [`RpcCall`] message, asked of the listening actor like
//! any request; its answer — an [`RpcResult`], an [`RpcError`] or a
//! [`Faulted`] — becomes the call's response member ([`outcome`]).
//!
//! ```
//! use layer_cake::net::http::jsonrpc::{self, RpcError};
//! use serde_json::json;
//!
//! let parsed = jsonrpc::parse(br#"{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}"#, 10).unwrap();
//! let jsonrpc::Entry::Call(call) = &parsed.entries[0] else { panic!() };
//! assert_eq!(call.method, "subtract");
//! let member = jsonrpc::member(call.id.clone().unwrap(), Ok(json!(19)));
//! assert_eq!(member, json!({"jsonrpc":"2.0","result":19,"id":1}));
//!
//! let refused = jsonrpc::parse(b"[]", 10).unwrap_err();
//! assert_eq!(refused, RpcError::invalid_request());
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::message::Message;
use crate::message::{FaultKind, Faulted, Payload};

/// `-32700`: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// `-32600`: the JSON is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// `-32601`: no such method (or, through a gateway, no such service).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// `-32602`: the method's parameters are wrong.
pub const INVALID_PARAMS: i64 = -32602;
/// `-32603`: the call failed inside the server (a worker's fault).
pub const INTERNAL_ERROR: i64 = -32603;
/// `-32000` (server error range): no worker could take the call now —
/// busy, overloaded, none available, or the worker was lost. Try again.
pub const UNAVAILABLE: i64 = -32000;
/// `-32001` (server error range): no answer before the deadline.
pub const TIMED_OUT: i64 = -32001;
/// `-32002` (server error range): the call needs an authenticated caller.
pub const UNAUTHORIZED: i64 = -32002;

/// One JSON-RPC call, as a message: what the HTTP front asks of the
/// listening actor for each call of a request (notifications too).
///
/// `params` and `id` travel between processes as JSON text, so any JSON
/// value crosses the binary codec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
pub struct RpcCall {
    /// The method named by the caller; a gateway strips its `service/`
    /// prefix before passing the call on.
    pub method: String,
    /// The parameters: an array, an object, or `null` when there were none.
    #[serde(with = "json_text")]
    pub params: Value,
    /// The call's id; `None` for a notification (which gets no response).
    #[serde(with = "json_text_opt")]
    pub id: Option<Value>,
    /// `<request uuid>@<service>` for each gateway hop the call has taken,
    /// the first hop first.
    pub chain: Vec<String>,
}

impl RpcCall {
    /// A call of `method` with `params` and `id`, not yet routed.
    pub fn new(method: impl Into<String>, params: Value, id: Option<Value>) -> Self {
        RpcCall {
            method: method.into(),
            params,
            id,
            chain: Vec::new(),
        }
    }

    /// The parameters as a `T`, or an [`RpcError::invalid_params`] naming
    /// what did not fit (an answer the caller sees as `-32602`).
    pub fn params_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, RpcError> {
        T::deserialize(&self.params).map_err(|e| RpcError::invalid_params(e.to_string()))
    }

    /// Whether the call is a notification (no id, no response).
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
}

/// The successful answer to an [`RpcCall`]: the `result` member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
pub struct RpcResult {
    /// The result.
    #[serde(with = "json_text")]
    pub result: Value,
}

impl RpcResult {
    /// A result.
    pub fn new(result: Value) -> Self {
        RpcResult { result }
    }
}

/// A JSON-RPC error object, as an answer to an [`RpcCall`] (it becomes the
/// `error` member as it is) and as what the framing reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct RpcError {
    /// The error code (`-32700` … `-32603`, `-32000` … `-32099`, or the
    /// application's own).
    pub code: i64,
    /// A short description.
    pub message: String,
    /// More about it, if anything.
    #[serde(with = "json_text_opt")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and a message, without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error with `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// `-32700 Parse error`.
    pub fn parse_error() -> Self {
        RpcError::new(PARSE_ERROR, "Parse error")
    }

    /// `-32600 Invalid Request`.
    pub fn invalid_request() -> Self {
        RpcError::new(INVALID_REQUEST, "Invalid Request")
    }

    /// `-32601 Method not found`.
    pub fn method_not_found() -> Self {
        RpcError::new(METHOD_NOT_FOUND, "Method not found")
    }

    /// `-32602 Invalid params`, with what was wrong as `data`.
    pub fn invalid_params(detail: impl Into<String>) -> Self {
        RpcError::new(INVALID_PARAMS, "Invalid params").with_data(Value::String(detail.into()))
    }

    /// `-32603 Internal error`.
    pub fn internal_error() -> Self {
        RpcError::new(INTERNAL_ERROR, "Internal error")
    }

    /// `-32002 Unauthorized`: the call needs an authenticated caller.
    pub fn unauthorized() -> Self {
        RpcError::new(UNAUTHORIZED, "Unauthorized")
    }

    /// The error object (`{"code":…,"message":…,"data":…}`).
    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("code".into(), Value::from(self.code));
        object.insert("message".into(), Value::String(self.message.clone()));
        if let Some(data) = &self.data {
            object.insert("data".into(), data.clone());
        }
        Value::Object(object)
    }
}

/// A request body, parsed: its entries in order, and whether it was a
/// batch (an array) — which decides the shape of the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Whether the body was an array of calls.
    pub batch: bool,
    /// The calls and the invalid entries, in the order of the body.
    pub entries: Vec<Entry>,
}

/// One entry of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A valid call (or notification).
    Call(RpcCall),
    /// An entry that is not a valid request object: answered with this
    /// error and `id` (null unless the entry had a usable id).
    Invalid {
        /// The id to answer with.
        id: Value,
        /// Why.
        error: RpcError,
    },
}

/// Parses a request body. `Err` is an error answered alone, with a null
/// id: not JSON ([`PARSE_ERROR`]), not an object or array, an empty
/// array, or a batch of more than `max_batch` entries
/// ([`INVALID_REQUEST`]).
pub fn parse(body: &[u8], max_batch: usize) -> Result<Parsed, RpcError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| RpcError::parse_error().with_data(Value::String(e.to_string())))?;
    match value {
        Value::Array(items) if items.is_empty() => Err(RpcError::invalid_request()),
        Value::Array(items) if items.len() > max_batch => Err(RpcError::invalid_request()
            .with_data(Value::String(format!(
                "a batch holds at most {max_batch} calls, this one {}",
                items.len()
            )))),
        Value::Array(items) => Ok(Parsed {
            batch: true,
            entries: items.into_iter().map(entry).collect(),
        }),
        other => Ok(Parsed {
            batch: false,
            entries: vec![entry(other)],
        }),
    }
}

/// One request object checked against the spec (section 4).
fn entry(value: Value) -> Entry {
    let Value::Object(mut object) = value else {
        return invalid(Value::Null, "a request must be an object");
    };
    // The id, when it is one the spec allows, is echoed even in an error.
    let id = object.remove("id");
    let id_ok = matches!(
        id,
        None | Some(Value::Null | Value::String(_) | Value::Number(_))
    );
    let echo = if id_ok {
        id.clone().unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    if !id_ok {
        return invalid(echo, "\"id\" must be a string, a number or null");
    }
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(echo, "\"jsonrpc\" must be \"2.0\"");
    }
    let Some(Value::String(method)) = object.remove("method") else {
        return invalid(echo, "\"method\" must be a string");
    };
    let params = match object.remove("params") {
        None => Value::Null,
        Some(p @ (Value::Array(_) | Value::Object(_))) => p,
        Some(_) => return invalid(echo, "\"params\" must be an array or an object"),
    };
    Entry::Call(RpcCall::new(method, params, id))
}

fn invalid(id: Value, why: impl Into<String>) -> Entry {
    Entry::Invalid {
        id,
        error: RpcError::invalid_request().with_data(Value::String(why.into())),
    }
}

/// A response member: `{"jsonrpc":"2.0","result":…,"id":…}` or
/// `{"jsonrpc":"2.0","error":{…},"id":…}`.
pub fn member(id: Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": id}),
        Err(error) => json!({"jsonrpc": "2.0", "error": error.to_value(), "id": id}),
    }
}

/// The response body for `members` (one per entry; `None` for a
/// notification): an object for a single request, an array for a batch,
/// nothing at all (HTTP 204) when no member is left.
pub fn body(batch: bool, members: Vec<Option<Value>>) -> Option<Value> {
    let mut members: Vec<Value> = members.into_iter().flatten().collect();
    if members.is_empty() {
        None
    } else if batch {
        Some(Value::Array(members))
    } else {
        members.pop()
    }
}

/// What the answer to a call becomes: an [`RpcResult`]'s value, an
/// [`RpcError`] as it is, a [`Faulted`] mapped by [`fault_error`]; any
/// other message is an internal error naming its type.
pub fn outcome(answer: Result<Payload, Faulted>, req_uuid: &str) -> Result<Value, RpcError> {
    let answer = answer.map_err(|fault| fault_error(&fault, req_uuid))?;
    let answer = match answer.downcast::<RpcResult>() {
        Ok(result) => return Ok(result.result),
        Err(other) => other,
    };
    let answer = match answer.downcast::<RpcError>() {
        Ok(error) => return Err(error),
        Err(other) => other,
    };
    match answer.downcast::<Faulted>() {
        Ok(fault) => Err(fault_error(&fault, req_uuid)),
        Err(other) => Err(RpcError::internal_error().with_data(json!({
            "req_uuid": req_uuid,
            "detail": format!("the handler answered {}, not RpcResult or RpcError", other.signature()),
        }))),
    }
}

/// The error for a fault: [`UNAVAILABLE`] for `Busy`, `Overloaded`,
/// `TemporarilyUnavailable`, `OutOfService` and `Lost`; [`TIMED_OUT`] for
/// `TimedOut`; [`INTERNAL_ERROR`] for anything else. `data` carries the
/// request's uuid and the fault: `{"req_uuid":…,"detail":"<fault>",
/// "kind":"<FaultKind>"}`.
///
/// ```
/// use layer_cake::Faulted;
/// use layer_cake::net::http::jsonrpc::{self, TIMED_OUT};
///
/// let e = jsonrpc::fault_error(&Faulted::timed_out("no answer within 30s"), "u-1");
/// assert_eq!(e.code, TIMED_OUT);
/// assert_eq!(e.data.unwrap()["req_uuid"], "u-1");
/// ```
pub fn fault_error(fault: &Faulted, req_uuid: &str) -> RpcError {
    let (code, message) = match fault.kind {
        FaultKind::Busy
        | FaultKind::Overloaded
        | FaultKind::TemporarilyUnavailable
        | FaultKind::OutOfService
        | FaultKind::Lost => (UNAVAILABLE, "Service unavailable"),
        FaultKind::TimedOut => (TIMED_OUT, "Timed out"),
        FaultKind::Faulted | FaultKind::Aborted => (INTERNAL_ERROR, "Internal error"),
    };
    RpcError::new(code, message).with_data(json!({
        "req_uuid": req_uuid,
        "detail": fault.to_string(),
        "kind": format!("{:?}", fault.kind),
    }))
}

/// Every example of the JSON-RPC 2.0 specification's section 7: a request
/// body and the response expected (`None`: no response, HTTP 204), for
/// conformance tests of a handler that implements the examples' methods
/// (`subtract`, `sum`, `get_data`, `update`, `notify_hello`, `notify_sum`).
/// Error objects are shown without `data`, which a server may add.
pub const SPEC_EXAMPLES: &[(&str, Option<&str>)] = &[
    (
        r#"{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}"#,
        Some(r#"{"jsonrpc":"2.0","result":19,"id":1}"#),
    ),
    (
        r#"{"jsonrpc":"2.0","method":"subtract","params":[23,42],"id":2}"#,
        Some(r#"{"jsonrpc":"2.0","result":-19,"id":2}"#),
    ),
    (
        r#"{"jsonrpc":"2.0","method":"subtract","params":{"subtrahend":23,"minuend":42},"id":3}"#,
        Some(r#"{"jsonrpc":"2.0","result":19,"id":3}"#),
    ),
    (
        r#"{"jsonrpc":"2.0","method":"subtract","params":{"minuend":42,"subtrahend":23},"id":4}"#,
        Some(r#"{"jsonrpc":"2.0","result":19,"id":4}"#),
    ),
    (
        r#"{"jsonrpc":"2.0","method":"update","params":[1,2,3,4,5]}"#,
        None,
    ),
    (r#"{"jsonrpc":"2.0","method":"foobar"}"#, None),
    (
        r#"{"jsonrpc":"2.0","method":"foobar","id":"1"}"#,
        Some(r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"1"}"#),
    ),
    (
        r#"{"jsonrpc":"2.0","method":"foobar, "params":"bar","baz]"#,
        Some(r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#),
    ),
    (
        r#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#,
        Some(r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#),
    ),
    (
        r#"[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method"]"#,
        Some(r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#),
    ),
    (
        "[]",
        Some(r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#),
    ),
    (
        "[1]",
        Some(
            r#"[{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}]"#,
        ),
    ),
    (
        "[1,2,3]",
        Some(
            r#"[{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},
                {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},
                {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}]"#,
        ),
    ),
    (
        r#"[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},
            {"jsonrpc":"2.0","method":"notify_hello","params":[7]},
            {"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":"2"},
            {"foo":"boo"},
            {"jsonrpc":"2.0","method":"foo.get","params":{"name":"myself"},"id":"5"},
            {"jsonrpc":"2.0","method":"get_data","id":"9"}]"#,
        Some(
            r#"[{"jsonrpc":"2.0","result":7,"id":"1"},
                {"jsonrpc":"2.0","result":19,"id":"2"},
                {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},
                {"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"5"},
                {"jsonrpc":"2.0","result":["hello",5],"id":"9"}]"#,
        ),
    ),
    (
        r#"[{"jsonrpc":"2.0","method":"notify_sum","params":[1,2,4]},
            {"jsonrpc":"2.0","method":"notify_hello","params":[7]}]"#,
        None,
    ),
];

/// [`SPEC_EXAMPLES`] with `prefix` put before every method name (`calc/`
/// for a worker behind a gateway), each expected response parsed.
///
/// ```
/// let examples = layer_cake::net::http::jsonrpc::spec_examples("calc/");
/// assert!(examples[0].0.contains(r#""method":"calc/subtract""#));
/// assert_eq!(examples[0].1.as_ref().unwrap()["result"], 19);
/// ```
pub fn spec_examples(prefix: &str) -> Vec<(String, Option<Value>)> {
    SPEC_EXAMPLES
        .iter()
        .map(|(request, expected)| {
            let request = request.replace("\"method\":\"", &format!("\"method\":\"{prefix}"));
            let expected = expected.map(|e| serde_json::from_str(e).unwrap_or(Value::Null));
            (request, expected)
        })
        .collect()
}

/// A response (a member or a batch of them) without the `data` of its
/// error objects, to compare with [`SPEC_EXAMPLES`], which show none.
pub fn without_data(mut response: Value) -> Value {
    if let Value::Array(members) = response {
        return Value::Array(members.into_iter().map(without_data).collect());
    }
    if let Some(error) = response.get_mut("error").and_then(Value::as_object_mut) {
        error.remove("data");
    }
    response
}

/// `serde_json::Value` as JSON text, so that it crosses the binary codec.
mod json_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use serde_json::Value;

    pub(super) fn serialize<S: Serializer>(value: &Value, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}

/// `Option<serde_json::Value>` as optional JSON text.
mod json_text_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use serde_json::Value;

    pub(super) fn serialize<S: Serializer>(value: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_some(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| serde_json::from_str(&text).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's section 7 methods, answered without any actor.
    fn calc(call: &RpcCall) -> Result<Value, RpcError> {
        let numbers = |p: &Value| -> Vec<i64> {
            p.as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default()
        };
        match call.method.as_str() {
            "subtract" => match &call.params {
                Value::Array(a) => Ok(json!(a[0].as_i64().unwrap() - a[1].as_i64().unwrap())),
                p => Ok(json!(
                    p["minuend"].as_i64().unwrap() - p["subtrahend"].as_i64().unwrap()
                )),
            },
            "sum" => Ok(json!(numbers(&call.params).iter().sum::<i64>())),
            "get_data" => Ok(json!(["hello", 5])),
            "update" | "notify_hello" | "notify_sum" => Ok(Value::Null),
            _ => Err(RpcError::method_not_found()),
        }
    }

    /// What the front does, with `calc` in place of the actor.
    fn answer(request: &str) -> Option<Value> {
        let parsed = match parse(request.as_bytes(), 100) {
            Ok(parsed) => parsed,
            Err(error) => return Some(member(Value::Null, Err(error))),
        };
        let members = parsed
            .entries
            .iter()
            .map(|entry| match entry {
                Entry::Call(call) => {
                    let outcome = calc(call);
                    call.id.clone().map(|id| member(id, outcome))
                }
                Entry::Invalid { id, error } => Some(member(id.clone(), Err(error.clone()))),
            })
            .collect();
        body(parsed.batch, members)
    }

    #[test]
    fn the_specs_section_7_examples() {
        for (request, expected) in spec_examples("") {
            assert_eq!(
                answer(&request).map(without_data),
                expected,
                "for {request}"
            );
        }
    }

    #[test]
    fn a_batch_over_the_limit_is_refused_whole() {
        let calls = vec![json!({"jsonrpc":"2.0","method":"sum","id":1}); 3];
        let body = serde_json::to_vec(&calls).unwrap();
        assert_eq!(parse(&body, 3).unwrap().entries.len(), 3);
        let e = parse(&body, 2).unwrap_err();
        assert_eq!(e.code, INVALID_REQUEST);
        assert!(e.data.unwrap().as_str().unwrap().contains("at most 2"));
    }

    #[test]
    fn ids_are_echoed_when_usable_and_null_otherwise() {
        let Entry::Invalid { id, .. } = entry(json!({"jsonrpc":"1.0","method":"x","id":7})) else {
            panic!()
        };
        assert_eq!(id, json!(7));
        let Entry::Invalid { id, .. } = entry(json!({"jsonrpc":"2.0","method":"x","id":[1]}))
        else {
            panic!()
        };
        assert_eq!(id, Value::Null);
        // `"id": null` is a call (answered with a null id), not a notification.
        let Entry::Call(call) = entry(json!({"jsonrpc":"2.0","method":"x","id":null})) else {
            panic!()
        };
        assert_eq!(call.id, Some(Value::Null));
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse(deep.as_bytes(), 10).unwrap_err().code, PARSE_ERROR);
    }

    #[test]
    fn calls_cross_the_binary_codec() {
        let call = RpcCall {
            method: "one_shot_msg".into(),
            params: json!({"data": {"prompt": "why", "n": [1, 2.5, null]}}),
            id: Some(json!("abc")),
            chain: vec!["u@gateway".into()],
        };
        let copy = Payload::new(call.clone()).try_copy().unwrap();
        assert_eq!(copy.downcast::<RpcCall>().unwrap(), call);
        let note = RpcCall::new("n", Value::Null, None);
        let copy = Payload::new(note.clone()).try_copy().unwrap();
        assert_eq!(copy.downcast::<RpcCall>().unwrap(), note);
    }

    #[test]
    fn answers_become_outcomes() {
        let ok = outcome(Ok(Payload::new(RpcResult::new(json!(1)))), "u");
        assert_eq!(ok, Ok(json!(1)));
        let e = outcome(Ok(Payload::new(RpcError::method_not_found())), "u");
        assert_eq!(e, Err(RpcError::method_not_found()));
        let f = outcome(Err(Faulted::new("boom")), "u").unwrap_err();
        assert_eq!(
            (f.code, f.data.unwrap()["req_uuid"].clone()),
            (INTERNAL_ERROR, json!("u"))
        );
        let busy = outcome(Ok(Payload::new(Faulted::busy("slow"))), "u").unwrap_err();
        assert_eq!(busy.code, UNAVAILABLE);
        let odd = outcome(Ok(Payload::new(7_i64)), "u").unwrap_err();
        assert_eq!(odd.code, INTERNAL_ERROR);
    }
}
