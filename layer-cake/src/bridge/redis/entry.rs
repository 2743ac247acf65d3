//! Stream entries in (the raw replies of XREADGROUP, XAUTOCLAIM and
//! XPENDING, checked against the bounds), replies out (the JSON pushed to
//! `res:<ref>`).

use ::redis::Value;
use serde_json::{Map, json};

use crate::message::registry::Entry;
use crate::message::{Faulted, Payload};

/// Longest `ref` accepted (it becomes part of a key).
pub(crate) const MAX_REF_BYTES: usize = 128;

/// A stream entry as Redis gave it: its id and its field/value pairs, in
/// order (`None`: the entry was deleted while pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// The reply to a read did not have the shape Redis documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply shape: {0}")]
pub(crate) struct Shape(pub(crate) String);

fn bytes(value: &Value) -> Result<Vec<u8>, Shape> {
    match value {
        Value::BulkString(b) => Ok(b.clone()),
        Value::SimpleString(s) => Ok(s.clone().into_bytes()),
        other => Err(Shape(format!("expected a string, got {other:?}"))),
    }
}

fn text(value: &Value) -> Result<String, Shape> {
    String::from_utf8(bytes(value)?).map_err(|_| Shape("a stream id that is not UTF-8".into()))
}

fn array(value: &Value) -> Result<&[Value], Shape> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(Shape(format!("expected an array, got {other:?}"))),
    }
}

/// One entry: `[id, [field, value, …]]` (or `[id, nil]`).
fn entry(value: &Value) -> Result<RawEntry, Shape> {
    let parts = array(value)?;
    let [id, fields] = parts else {
        return Err(Shape(format!("an entry of {} parts", parts.len())));
    };
    let id = text(id)?;
    let fields = match fields {
        Value::Nil => None,
        other => {
            let flat = array(other)?;
            if flat.len() % 2 != 0 {
                return Err(Shape("an odd number of field/value items".into()));
            }
            Some(
                flat.chunks(2)
                    .map(|pair| Ok((bytes(&pair[0])?, bytes(&pair[1])?)))
                    .collect::<Result<Vec<_>, Shape>>()?,
            )
        }
    };
    Ok(RawEntry { id, fields })
}

fn entries(value: &Value) -> Result<Vec<RawEntry>, Shape> {
    array(value)?.iter().map(entry).collect()
}

/// The entries of an `XREADGROUP … STREAMS <one stream> >` reply (nil when
/// the block ran out).
pub(crate) fn read_reply(value: &Value) -> Result<Vec<RawEntry>, Shape> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut all = Vec::new();
            for stream in streams {
                let parts = array(stream)?;
                let [_key, list] = parts else {
                    return Err(Shape(format!("a stream of {} parts", parts.len())));
                };
                all.extend(entries(list)?);
            }
            Ok(all)
        }
        Value::Map(streams) => {
            let mut all = Vec::new();
            for (_key, list) in streams {
                all.extend(entries(list)?);
            }
            Ok(all)
        }
        other => Err(Shape(format!("XREADGROUP answered {other:?}"))),
    }
}

/// An `XAUTOCLAIM` reply: the next cursor, the claimed entries, and the ids
/// of pending entries that no longer exist (Redis 7 drops them from the
/// pending list itself).
pub(crate) fn autoclaim_reply(value: &Value) -> Result<(String, Vec<RawEntry>), Shape> {
    let parts = array(value)?;
    match parts {
        [next, claimed, ..] => Ok((text(next)?, entries(claimed)?)),
        _ => Err(Shape(format!("XAUTOCLAIM answered {} parts", parts.len()))),
    }
}

/// How many times an entry was delivered, from an
/// `XPENDING key group id id 1` reply (`None`: no longer pending).
pub(crate) fn times_delivered(value: &Value) -> Result<Option<u64>, Shape> {
    let rows = array(value)?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    match array(row)? {
        [_, _, _, Value::Int(n)] => Ok(Some((*n).max(0) as u64)),
        other => Err(Shape(format!("an XPENDING row {other:?}"))),
    }
}

/// The checks an entry goes through.
#[derive(Debug)]
pub(crate) struct Rules {
    pub(crate) worker_type: String,
    pub(crate) accepted: Vec<&'static Entry>,
    pub(crate) max_entry_bytes: usize,
    pub(crate) max_fields: usize,
}

/// An entry, checked.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A request for the spool.
    Request {
        /// Its `ref`: the answer goes to `res:<ref>`.
        reference: String,
        /// The message `data` decoded to.
        payload: Payload,
    },
    /// Not a request: answered with a 400 (when it has a usable `ref`) and
    /// acknowledged.
    Malformed {
        /// Its `ref`, when it has a usable one.
        reference: Option<String>,
        /// What is wrong, for the error reply and the log.
        reason: String,
    },
}

/// Whether `r` may name a reply list: 1 to 128 bytes of letters, digits and
/// `-_.:`.
pub(crate) fn valid_ref(r: &[u8]) -> bool {
    !r.is_empty()
        && r.len() <= MAX_REF_BYTES
        && r.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

impl Rules {
    /// Checks `raw` and decodes its `data` into the message it names.
    pub(crate) fn parse(&self, raw: &RawEntry) -> Parsed {
        let Some(fields) = &raw.fields else {
            return malformed(None, "the entry was deleted from the stream".into());
        };
        // The ref first, so that as many errors as possible can be answered.
        let mut refs = fields.iter().filter(|(f, _)| f == b"ref").map(|(_, v)| v);
        let reference = match (refs.next(), refs.next()) {
            (Some(r), None) if valid_ref(r) => String::from_utf8(r.clone()).ok(),
            _ => None,
        };
        match self.check(fields) {
            Ok(payload) => match reference {
                Some(reference) => Parsed::Request { reference, payload },
                None => malformed(None, ref_problem(fields)),
            },
            Err(reason) => malformed(reference, reason),
        }
    }

    fn check(&self, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Payload, String> {
        if fields.len() > self.max_fields {
            return Err(format!(
                "the entry has {} fields, over the limit of {}",
                fields.len(),
                self.max_fields
            ));
        }
        let size: usize = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
        if size > self.max_entry_bytes {
            return Err(format!(
                "the entry is {size} bytes, over the limit of {}",
                self.max_entry_bytes
            ));
        }
        let one = |name: &str| -> Result<Option<&[u8]>, String> {
            let mut found = fields.iter().filter(|(f, _)| f == name.as_bytes());
            match (found.next(), found.next()) {
                (Some((_, v)), None) => Ok(Some(v)),
                (None, _) => Ok(None),
                (Some(_), Some(_)) => Err(format!("the field {name} appears more than once")),
            }
        };
        one("ref")?;
        match one("type")? {
            None => return Err(format!("no type field (expected {})", self.worker_type)),
            Some(t) if t != self.worker_type.as_bytes() => {
                return Err(format!(
                    "type {} is not {}",
                    String::from_utf8_lossy(t),
                    self.worker_type
                ));
            }
            Some(_) => {}
        }
        let entry = self.message_entry(one("message")?)?;
        let data = one("data")?.ok_or_else(|| "no data field".to_string())?;
        let data = std::str::from_utf8(data).map_err(|_| "data is not UTF-8".to_string())?;
        let value: serde_json::Value =
            serde_json::from_str(data).map_err(|e| format!("data is not JSON: {e}"))?;
        if let serde_json::Value::Object(map) = &value
            && let Some(names) = entry.field_names()
            && let Some(unknown) = map.keys().find(|k| !names.contains(&k.as_str()))
        {
            return Err(format!(
                "unknown field {unknown} in data (expected one of {})",
                names.join(", ")
            ));
        }
        entry.decode_json_value(value).map_err(|e| e.to_string())
    }

    fn message_entry(&self, named: Option<&[u8]>) -> Result<&'static Entry, String> {
        let names = || {
            self.accepted
                .iter()
                .map(|e| e.signature())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match named {
            None if self.accepted.len() == 1 => Ok(self.accepted[0]),
            None => Err(format!("no message field (one of {})", names())),
            Some(name) => self
                .accepted
                .iter()
                .find(|e| e.signature().as_bytes() == name)
                .copied()
                .ok_or_else(|| {
                    format!(
                        "message {} is not accepted (one of {})",
                        String::from_utf8_lossy(name),
                        names()
                    )
                }),
        }
    }
}

fn malformed(reference: Option<String>, reason: String) -> Parsed {
    Parsed::Malformed { reference, reason }
}

fn ref_problem(fields: &[(Vec<u8>, Vec<u8>)]) -> String {
    let refs: Vec<_> = fields.iter().filter(|(f, _)| f == b"ref").collect();
    match refs.as_slice() {
        [] => "no ref field".into(),
        [_] => format!("the ref is not 1 to {MAX_REF_BYTES} bytes of letters, digits and -_.:"),
        _ => "the field ref appears more than once".into(),
    }
}

/// The current time as JavaScript's `toISOString` writes it.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The reply for an answer: `{"ref","source","type","code":200,"res",
/// "time"}`; a [`Faulted`] answer gives its status and `err.message`.
pub(crate) fn answer_reply(
    reference: &str,
    worker_type: &str,
    answer: &Payload,
) -> (u16, serde_json::Value) {
    if let Some(fault) = answer.downcast_ref::<Faulted>() {
        return fault_reply(reference, worker_type, fault);
    }
    match answer.to_json() {
        Ok(res) => {
            let mut reply = head(reference, worker_type, 200);
            reply.insert("res".into(), res);
            reply.insert("time".into(), json!(now()));
            (200, serde_json::Value::Object(reply))
        }
        Err(e) => error_reply(
            reference,
            worker_type,
            500,
            &format!("cannot encode the answer ({}): {e}", answer.signature()),
        ),
    }
}

/// The reply for a fault: its HTTP-like status (as the HTTP front maps it).
pub(crate) fn fault_reply(
    reference: &str,
    worker_type: &str,
    fault: &Faulted,
) -> (u16, serde_json::Value) {
    let (code, _) = crate::net::http::status_of(fault);
    error_reply(reference, worker_type, code, &fault.to_string())
}

/// An error reply: `{"ref","source","type","code","err":{"message"},"time"}`.
pub(crate) fn error_reply(
    reference: &str,
    worker_type: &str,
    code: u16,
    message: &str,
) -> (u16, serde_json::Value) {
    let mut reply = head(reference, worker_type, code);
    reply.insert("err".into(), json!({ "message": message }));
    reply.insert("time".into(), json!(now()));
    (code, serde_json::Value::Object(reply))
}

fn head(reference: &str, worker_type: &str, code: u16) -> Map<String, serde_json::Value> {
    let mut reply = Map::new();
    reply.insert("ref".into(), json!(reference));
    reply.insert("source".into(), json!(worker_type));
    reply.insert("type".into(), json!(format!("{worker_type}-res")));
    reply.insert("code".into(), json!(code));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::registry;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn raw(fields: &[(&str, &str)]) -> RawEntry {
        RawEntry {
            id: "1-0".into(),
            fields: Some(
                fields
                    .iter()
                    .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect(),
            ),
        }
    }

    fn rules() -> Rules {
        Rules {
            worker_type: "demo-worker".into(),
            accepted: vec![registry::register::<Vec<i64>>()],
            max_entry_bytes: 200,
            max_fields: 6,
        }
    }

    fn reason(p: Parsed) -> (Option<String>, String) {
        match p {
            Parsed::Malformed { reference, reason } => (reference, reason),
            Parsed::Request { .. } => panic!("not malformed"),
        }
    }

    #[test]
    fn replies_are_parsed() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("ref"), bulk("a")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let got = read_reply(&reply).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].fields.as_ref().unwrap()[0].1, b"a");
        assert_eq!(got[1].fields, None);
        assert!(read_reply(&Value::Nil).unwrap().is_empty());
        assert!(read_reply(&Value::Int(3)).is_err());
        let claim = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![]),
            Value::Array(vec![]),
        ]);
        assert_eq!(autoclaim_reply(&claim).unwrap(), ("0-0".into(), vec![]));
        let pending = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            bulk("c"),
            Value::Int(5),
            Value::Int(3),
        ])]);
        assert_eq!(times_delivered(&pending).unwrap(), Some(3));
        assert_eq!(times_delivered(&Value::Array(vec![])).unwrap(), None);
    }

    #[test]
    fn a_good_entry_is_a_request() {
        let p = rules().parse(&raw(&[
            ("ref", "a1"),
            ("type", "demo-worker"),
            ("time", "x"),
            ("data", "[1,2]"),
        ]));
        match p {
            Parsed::Request { reference, payload } => {
                assert_eq!(reference, "a1");
                assert_eq!(payload.downcast::<Vec<i64>>().unwrap(), vec![1, 2]);
            }
            Parsed::Malformed { reason, .. } => panic!("{reason}"),
        }
    }

    #[test]
    fn bad_entries_say_why() {
        let r = rules();
        let t = ("type", "demo-worker");
        assert_eq!(
            reason(r.parse(&raw(&[t, ("data", "[]")]))),
            (None, "no ref field".into())
        );
        assert_eq!(
            reason(r.parse(&raw(&[("ref", "a b"), t, ("data", "[]")]))).0,
            None
        );
        assert_eq!(
            reason(r.parse(&raw(&[("ref", "a"), ("ref", "b"), t, ("data", "[]")]))).1,
            "the field ref appears more than once"
        );
        assert_eq!(
            reason(r.parse(&raw(&[("ref", "a"), ("type", "other"), ("data", "[]")]))),
            (Some("a".into()), "type other is not demo-worker".into())
        );
        assert_eq!(
            reason(r.parse(&raw(&[("ref", "a"), ("data", "[]")]))).1,
            "no type field (expected demo-worker)"
        );
        assert_eq!(reason(r.parse(&raw(&[("ref", "a"), t]))).1, "no data field");
        assert!(
            reason(r.parse(&raw(&[("ref", "a"), t, ("data", "{")])))
                .1
                .starts_with("data is not JSON")
        );
        assert!(
            !reason(r.parse(&raw(&[("ref", "a"), t, ("data", "\"x\"")])))
                .1
                .is_empty()
        );
        assert!(
            reason(r.parse(&raw(&[
                ("ref", "a"),
                t,
                ("message", "Nope"),
                ("data", "[]")
            ])))
            .1
            .starts_with("message Nope is not accepted")
        );
        let many: Vec<_> = (0..7).map(|_| ("x", "y")).collect();
        assert_eq!(
            reason(r.parse(&raw(&many))).1,
            "the entry has 7 fields, over the limit of 6"
        );
        let big = "9".repeat(300);
        assert_eq!(
            reason(r.parse(&raw(&[("ref", "a"), t, ("data", &big)]))).1,
            "the entry is 323 bytes, over the limit of 200"
        );
        let deleted = RawEntry {
            id: "1-0".into(),
            fields: None,
        };
        assert_eq!(reason(r.parse(&deleted)).0, None);
    }

    #[test]
    fn refs() {
        assert!(valid_ref(b"a1b2c3"));
        assert!(valid_ref(b"0b5c2e6e-3a4f-4d2b-9a3c-1f2e3d4c5b6a"));
        assert!(!valid_ref(b""));
        assert!(!valid_ref(b"a b"));
        assert!(!valid_ref(&[b'a'; MAX_REF_BYTES + 1]));
    }

    #[test]
    fn reply_shapes() {
        let (code, reply) = answer_reply("r", "demo-worker", &Payload::new(7_i64));
        assert_eq!(code, 200);
        assert_eq!(reply["ref"], "r");
        assert_eq!(reply["source"], "demo-worker");
        assert_eq!(reply["type"], "demo-worker-res");
        assert_eq!(reply["res"], 7);
        let (code, reply) = answer_reply("r", "demo-worker", &Payload::new(Faulted::busy("slow")));
        assert_eq!(code, 503);
        assert_eq!(reply["err"]["message"], "busy (slow)");
        assert_eq!(reply["code"], 503);
    }
}
