//! The JSON forms of a message: what the HTTP front, the command line and the
//! files in a home read and write.
//!
//! * The **typed envelope** names the type, so any registered message can be
//!   decoded from it: `{"value":["Xy",{"x":1,"y":2},[]]}`. The third element
//!   is the (always empty) pointer list of the original library's format.
//!   This is what `--full-output` prints and what HTTP responses carry.
//! * The **value** alone: `{"x":1,"y":2}`, what a process prints by default.
//! * The **class envelope** wraps a value whose type the reader already knows
//!   (from the URL of an HTTP `POST /Xy`): `{"value":{"x":1,"y":2}}`.
//!
//! ```
//! use layer_cake::Payload;
//! use layer_cake::message::codec::json;
//!
//! layer_cake::message::registry::register::<Vec<Vec<f64>>>();
//! let p = Payload::new(vec![vec![0.56, 0.55], vec![0.15, 0.7]]);
//! let text = json::to_typed_string(&p, false).unwrap();
//! assert_eq!(text, r#"{"value":["vector<vector<float8>>",[[0.56,0.55],[0.15,0.7]],[]]}"#);
//! assert_eq!(json::to_value_string(&p, false).unwrap(), "[[0.56,0.55],[0.15,0.7]]");
//!
//! let back = json::from_typed_str(&text).unwrap();
//! assert_eq!(back.downcast::<Vec<Vec<f64>>>().unwrap()[1], vec![0.15, 0.7]);
//! ```

use serde::Serialize;
use serde_json::Value;

use super::CodecError;
use crate::message::signature::static_signature;
use crate::message::{Message, Payload, registry};

#[derive(Serialize)]
struct Envelope<'a, T: ?Sized + Serialize> {
    value: &'a T,
}

fn write<T: ?Sized + Serialize>(
    value: &T,
    pretty: bool,
    signature: &str,
) -> Result<String, CodecError> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.map_err(|e| CodecError::encode(signature, e))
}

/// The typed envelope of a message: `{"value":["Xy",{"x":1,"y":2},[]]}`.
pub fn to_typed_string(payload: &Payload, pretty: bool) -> Result<String, CodecError> {
    write(
        &Envelope { value: payload },
        pretty,
        payload.static_signature(),
    )
}

/// The message's value alone: `{"x":1,"y":2}`.
pub fn to_value_string(payload: &Payload, pretty: bool) -> Result<String, CodecError> {
    if let Some(opaque) = payload.as_opaque() {
        return write(&opaque.value(), pretty, &opaque.signature);
    }
    write(payload.as_serialize(), pretty, payload.static_signature())
}

/// The class envelope of a message: `{"value":{"x":1,"y":2}}`.
pub fn to_class_string(payload: &Payload, pretty: bool) -> Result<String, CodecError> {
    write(
        &Envelope {
            value: payload.as_serialize(),
        },
        pretty,
        payload.static_signature(),
    )
}

/// Decodes a typed envelope, finding the type by its signature in the
/// registry.
pub fn from_typed_str(text: &str) -> Result<Payload, CodecError> {
    let inner = open_envelope(text)?;
    let Value::Array(mut items) = inner else {
        return Err(CodecError::MalformedEnvelope(format!(
            "\"value\" must be an array [signature, value, pointers], not {}",
            kind(&inner)
        )));
    };
    if !(2..=3).contains(&items.len()) {
        return Err(CodecError::MalformedEnvelope(format!(
            "\"value\" must be an array [signature, value, pointers], not an array of {}",
            items.len()
        )));
    }
    if let Some(pointers) = items.get(2)
        && !matches!(pointers, Value::Array(p) if p.is_empty())
    {
        return Err(CodecError::MalformedEnvelope(
            "pointer aliases are not supported".into(),
        ));
    }
    let value = items.swap_remove(1);
    let Value::String(signature) = &items[0] else {
        return Err(CodecError::MalformedEnvelope(format!(
            "the type signature must be a string, not {}",
            kind(&items[0])
        )));
    };
    let entry = registry::lookup(signature)
        .ok_or_else(|| CodecError::UnknownSignature(signature.clone()))?;
    entry.decode_json_value(value)
}

/// [`from_typed_str`], keeping a value of an unknown type as an
/// [`Opaque`](crate::message::Opaque) rather than failing.
pub fn from_typed_str_or_opaque(text: &str) -> Result<Payload, CodecError> {
    match from_typed_str(text) {
        Err(CodecError::UnknownSignature(signature)) => {
            let inner = open_envelope(text)?;
            let value = match inner {
                Value::Array(mut items) if items.len() >= 2 => items.swap_remove(1),
                _ => Value::Null,
            };
            Ok(Payload::new(crate::message::Opaque::new(
                signature,
                value.to_string(),
            )))
        }
        other => other,
    }
}

/// Decodes a value (no envelope) as a `T`.
pub fn decode_value<T: Message>(text: &str) -> Result<T, CodecError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| CodecError::from_path(static_signature::<T>(), e))?;
    de.end()
        .map_err(|e| CodecError::decode(static_signature::<T>(), e))?;
    Ok(value)
}

/// Decodes a class envelope `{"value":{...}}` as a `T`.
pub fn from_class_str<T: Message>(text: &str) -> Result<T, CodecError> {
    let inner = open_envelope(text)?;
    serde_path_to_error::deserialize(inner)
        .map_err(|e| CodecError::from_path(static_signature::<T>(), e))
}

/// Decodes a class envelope `{"value":{...}}` as the type registered under
/// `signature` (the HTTP front's `POST /Xy`).
pub fn from_class_str_as(signature: &str, text: &str) -> Result<Payload, CodecError> {
    let entry = registry::lookup(signature)
        .ok_or_else(|| CodecError::UnknownSignature(signature.to_owned()))?;
    entry.decode_json_value(open_envelope(text)?)
}

/// Parses `{"value": ...}` and returns what is inside. A `"pointer"` key is
/// accepted only when empty; other keys are refused.
fn open_envelope(text: &str) -> Result<Value, CodecError> {
    let outer: Value =
        serde_json::from_str(text).map_err(|e| CodecError::MalformedEnvelope(e.to_string()))?;
    let Value::Object(mut map) = outer else {
        return Err(CodecError::MalformedEnvelope(format!(
            "expected an object {{\"value\": ...}}, not {}",
            kind(&outer)
        )));
    };
    let value = map
        .remove("value")
        .ok_or_else(|| CodecError::MalformedEnvelope("no \"value\" key".into()))?;
    for (key, extra) in &map {
        match (key.as_str(), extra) {
            ("pointer", Value::Array(p)) if p.is_empty() => {}
            ("pointer", _) => {
                return Err(CodecError::MalformedEnvelope(
                    "pointer aliases are not supported".into(),
                ));
            }
            (other, _) => {
                return Err(CodecError::MalformedEnvelope(format!(
                    "unexpected key \"{other}\""
                )));
            }
        }
    }
    Ok(value)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Faulted;

    #[test]
    fn typed_round_trip_of_a_fault() {
        let p = Payload::new(Faulted::new("bad").with_explanation("why"));
        let text = to_typed_string(&p, false).unwrap();
        assert_eq!(
            text,
            r#"{"value":["Faulted",{"kind":"Faulted","condition":"bad","explanation":"why","error_code":null,"exit_status":null},[]]}"#
        );
        let back = from_typed_str(&text)
            .unwrap()
            .downcast::<Faulted>()
            .unwrap();
        assert_eq!(back.explanation.as_deref(), Some("why"));
        let pretty = to_typed_string(&p, true).unwrap();
        assert!(pretty.contains('\n'));
        assert_eq!(from_typed_str(&pretty).unwrap().signature(), "Faulted");
    }

    #[test]
    fn malformed_envelopes() {
        for (text, needle) in [
            ("[1]", "expected an object"),
            ("{}", "no \"value\" key"),
            (r#"{"value":5}"#, "must be an array"),
            (r#"{"value":[1,2,[]]}"#, "must be a string"),
            (r#"{"value":["Ack",{},["1:x"]]}"#, "pointer aliases"),
            (r#"{"value":["Ack",{}],"other":1}"#, "unexpected key"),
            ("{", "malformed envelope"),
        ] {
            let e = from_typed_str(text).unwrap_err();
            assert!(matches!(e, CodecError::MalformedEnvelope(_)), "{text}: {e}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
        assert_eq!(
            from_typed_str(r#"{"value":["Ack",null]}"#)
                .unwrap()
                .signature(),
            "Ack"
        );
    }

    fn nested_returned_json(levels: usize) -> String {
        let mut text = String::from(r#"{"value":"#);
        for _ in 0..levels {
            text.push_str(r#"["Returned",{"value":"#);
        }
        text.push_str(r#"["integer8",7,[]]"#);
        for _ in 0..levels {
            text.push_str("},[]]");
        }
        text.push('}');
        text
    }

    /// Nesting in JSON is bounded twice: serde_json refuses more than 128
    /// levels of arrays and objects, and payloads are refused beyond
    /// [`MAX_PAYLOAD_DEPTH`](crate::message::MAX_PAYLOAD_DEPTH) — neither
    /// overflows a 2 MiB worker stack, even in a debug build.
    #[test]
    fn nesting_is_bounded() {
        use crate::message::MAX_PAYLOAD_DEPTH;
        crate::message::codec::binary::tests::on_worker_stack(|| {
            let fine = from_typed_str(&nested_returned_json(MAX_PAYLOAD_DEPTH - 1)).unwrap();
            assert_eq!(fine.signature(), "Returned");
            for levels in [MAX_PAYLOAD_DEPTH + 1, 40] {
                let e = from_typed_str(&nested_returned_json(levels)).unwrap_err();
                assert!(
                    e.to_string()
                        .contains(&format!("nested more than {MAX_PAYLOAD_DEPTH} levels")),
                    "{levels}: {e}"
                );
            }
            for levels in [64, 10_000] {
                let e = from_typed_str(&nested_returned_json(levels)).unwrap_err();
                assert!(e.to_string().contains("recursion limit"), "{levels}: {e}");
            }
            // Plain arrays up to serde_json's limit decode into a value
            // without overflowing; past it they are refused.
            crate::message::registry::register::<Vec<i64>>();
            let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
            assert!(
                registry::lookup("vector<integer8>")
                    .unwrap()
                    .decode_json(&deep(127))
                    .is_err()
            );
            let e = registry::lookup("vector<integer8>")
                .unwrap()
                .decode_json(&deep(200))
                .unwrap_err();
            assert!(e.to_string().contains("recursion limit"), "{e}");
        });
    }

    #[test]
    fn class_envelope() {
        let text = to_class_string(&Payload::new(7_i64), false).unwrap();
        assert_eq!(text, r#"{"value":7}"#);
        assert_eq!(from_class_str::<i64>(&text).unwrap(), 7);
        assert_eq!(
            from_class_str_as("integer8", &text)
                .unwrap()
                .downcast::<i64>()
                .unwrap(),
            7
        );
        let e = from_class_str_as("integer8", r#"{"value":"x"}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot decode integer8: invalid type"),
            "{e}"
        );
    }
}
