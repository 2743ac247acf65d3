//! The registry from type signature to decoder.
//!
//! Whatever arrives from outside the process — a binary frame, a JSON
//! envelope, an HTTP request `/Xy?x=2&y=2`, command-line flags — names its type
//! by signature. The registry maps the signature to an [`Entry`] that decodes
//! the value into a [`Payload`] of the right Rust type.
//!
//! It is filled from:
//!
//! * the runtime's standard messages (`Start`, `Stop`, `Ack`, `Nak`,
//!   `Returned`, `Restarted`, `Faulted`) and `Address` (`address`);
//! * the primitive types (`null`, `boolean`, `byte`, `integer2/4/8`,
//!   `unsigned2/4/8`, `float4/8`, `rune`, `unicode`, `uuid`, `world`, `span`;
//!   `integer8` and `unsigned8` decode as `i64` and `u64`);
//! * every `#[derive(Message)]` type, automatically;
//! * constructed types named statically with [`register!`](crate::register)
//!   or at run time with [`register`].
//!
//! The table is built on first use and is cheap to read afterwards (one
//! read lock and a hash lookup).
//!
//! **Conflicts.** Two different Rust types may claim one signature (two
//! `Xy` structs in different modules, or `HashMap<String, i64>` and
//! `BTreeMap<String, i64>`, both `map<unicode,integer8>`). The first
//! registration wins — built-in types first, then the static registrations in
//! order of signature and Rust type name, then run-time registrations in call
//! order — and every refused registration is logged with `tracing::warn!`,
//! recorded in [`conflicts`], and reported as an error by [`try_register`].
//!
//! A generic type cannot derive `Message` (a signature names one concrete
//! type); the derive refuses it at compile time:
//!
//! ```compile_fail
//! #[derive(serde::Serialize, serde::Deserialize, layer_cake::Message)]
//! struct Wrapper<T> { inner: T }
//! ```
//!
//! ```
//! use layer_cake::message::registry;
//!
//! registry::register::<Vec<Vec<f64>>>();
//! let entry = registry::lookup("vector<vector<float8>>").unwrap();
//! let p = entry.decode_json("[[0.5,1.5]]").unwrap();
//! assert_eq!(p.downcast::<Vec<Vec<f64>>>().unwrap(), vec![vec![0.5, 1.5]]);
//! ```

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::{OnceLock, RwLock};

use super::codec::CodecError;
use super::signature::static_signature;
use super::text::{self, Source, TextError};
use super::{Ack, Faulted, Message, Nak, Payload, Restarted, Returned, Start, Stop};

/// How to decode one registered type, found by its signature.
pub struct Entry {
    signature: &'static str,
    type_name: &'static str,
    type_id: TypeId,
    json: fn(serde_json::Value, &'static str) -> Result<Payload, CodecError>,
    binary: fn(&[u8], &'static str) -> Result<Payload, CodecError>,
    erased: ErasedDecode,
    text: TextDecode,
    field_names: fn() -> Option<Vec<&'static str>>,
}

type TextDecode = fn(&[(String, Option<String>)], Source) -> Result<Payload, TextError>;

type ErasedDecode =
    for<'de> fn(&mut dyn erased_serde::Deserializer<'de>) -> Result<Payload, erased_serde::Error>;

impl Entry {
    /// The entry for `T`.
    pub fn of<T: Message>() -> Entry {
        Entry {
            signature: static_signature::<T>(),
            type_name: std::any::type_name::<T>(),
            type_id: TypeId::of::<T>(),
            json: decode_json_value::<T>,
            binary: decode_binary::<T>,
            erased: decode_erased::<T>,
            text: decode_text::<T>,
            field_names: text::field_names::<T>,
        }
    }

    /// The type signature, e.g. `Xy`.
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    /// The Rust type's name, as `std::any::type_name` gives it.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The Rust type's id.
    pub fn type_id(&self) -> TypeId {
        self.type_id
    }

    /// Decodes the value (not an envelope) from JSON text.
    pub fn decode_json(&self, json: &str) -> Result<Payload, CodecError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| CodecError::decode(self.signature, e))?;
        self.decode_json_value(value)
    }

    /// Decodes the value (not an envelope) from a parsed JSON tree.
    pub fn decode_json_value(&self, value: serde_json::Value) -> Result<Payload, CodecError> {
        (self.json)(value, self.signature)
    }

    /// Decodes the value from the binary codec; the bytes must hold exactly
    /// one value.
    pub fn decode_binary(&self, bytes: &[u8]) -> Result<Payload, CodecError> {
        (self.binary)(bytes, self.signature)
    }

    /// Decodes the value from text fields: command-line flags or the fields of
    /// a URL query (see [`text`]).
    pub fn decode_text(
        &self,
        fields: &[(String, Option<String>)],
        source: Source,
    ) -> Result<Payload, TextError> {
        (self.text)(fields, source)
    }

    /// The names of the type's fields, when it is a struct (for `--help`).
    pub fn field_names(&self) -> Option<Vec<&'static str>> {
        (self.field_names)()
    }

    /// Decodes the value from any serde deserializer (used by `Payload`'s own
    /// `Deserialize`).
    pub(crate) fn decode_erased<'de>(
        &self,
        d: &mut dyn erased_serde::Deserializer<'de>,
    ) -> Result<Payload, erased_serde::Error> {
        (self.erased)(d)
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("signature", &self.signature)
            .field("type_name", &self.type_name)
            .finish_non_exhaustive()
    }
}

fn decode_json_value<T: Message>(
    value: serde_json::Value,
    signature: &'static str,
) -> Result<Payload, CodecError> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map(Payload::new)
        .map_err(|e| CodecError::from_path(signature, e))
}

fn decode_binary<T: Message>(bytes: &[u8], signature: &'static str) -> Result<Payload, CodecError> {
    super::codec::binary::decode_named::<T>(bytes, signature).map(Payload::new)
}

fn decode_erased<T: Message>(
    d: &mut dyn erased_serde::Deserializer<'_>,
) -> Result<Payload, erased_serde::Error> {
    erased_serde::deserialize::<T>(d).map(Payload::new)
}

fn decode_text<T: Message>(
    fields: &[(String, Option<String>)],
    source: Source,
) -> Result<Payload, TextError> {
    text::from_fields::<T>(fields, source).map(Payload::new)
}

/// A static registration, submitted through `inventory` by
/// `#[derive(Message)]` and [`register!`](crate::register).
#[derive(Debug)]
pub struct Registration {
    make: fn() -> Entry,
}

impl Registration {
    /// The registration of `T`.
    pub const fn of<T: Message>() -> Registration {
        Registration {
            make: Entry::of::<T>,
        }
    }
}

inventory::collect!(Registration);

/// Registers constructed types statically, so they can be decoded by
/// signature from the first message on.
///
/// Derived message types register themselves; this is for the types a
/// program sends that have no derive of their own, such as
/// `Vec<Vec<f64>>`. Use it at item level (outside any function):
///
/// ```
/// use std::collections::BTreeMap;
///
/// layer_cake::register!(Vec<Vec<f64>>, BTreeMap<String, Vec<i32>>);
///
/// # fn main() {
/// let entry = layer_cake::message::registry::lookup("map<unicode,vector<integer4>>").unwrap();
/// assert_eq!(entry.signature(), "map<unicode,vector<integer4>>");
/// # }
/// ```
#[macro_export]
macro_rules! register {
    ($($t:ty),+ $(,)?) => {
        $(
            $crate::__private::inventory::submit! {
                $crate::message::registry::Registration::of::<$t>()
            }
        )+
    };
}

/// Two Rust types claimed one signature; the second was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "type signature \"{signature}\" is claimed by both {registered} (kept) and {refused} (refused)"
)]
pub struct Conflict {
    /// The contested signature.
    pub signature: &'static str,
    /// The Rust type registered first, which decodes the signature.
    pub registered: &'static str,
    /// The Rust type that was refused.
    pub refused: &'static str,
}

#[derive(Default)]
struct Table {
    by_signature: HashMap<&'static str, &'static Entry>,
    conflicts: Vec<Conflict>,
}

impl Table {
    fn add(&mut self, entry: Entry) -> Result<&'static Entry, Conflict> {
        if let Some(existing) = self.by_signature.get(entry.signature) {
            if existing.type_id == entry.type_id {
                return Ok(existing);
            }
            let conflict = Conflict {
                signature: entry.signature,
                registered: existing.type_name,
                refused: entry.type_name,
            };
            tracing::warn!(
                signature = conflict.signature,
                kept = conflict.registered,
                refused = conflict.refused,
                "{conflict}"
            );
            self.conflicts.push(conflict.clone());
            return Err(conflict);
        }
        let entry: &'static Entry = Box::leak(Box::new(entry));
        self.by_signature.insert(entry.signature, entry);
        Ok(entry)
    }
}

fn builtins() -> Vec<Entry> {
    vec![
        // The runtime's standard messages.
        Entry::of::<Start>(),
        Entry::of::<Stop>(),
        Entry::of::<Ack>(),
        Entry::of::<Nak>(),
        Entry::of::<Returned>(),
        Entry::of::<Restarted>(),
        Entry::of::<Faulted>(),
        Entry::of::<crate::runtime::Address>(),
        // Primitives. `isize` and `usize` share `integer8` / `unsigned8` with
        // `i64` / `u64`, which are the types those signatures decode to.
        Entry::of::<()>(),
        Entry::of::<bool>(),
        Entry::of::<u8>(),
        Entry::of::<i16>(),
        Entry::of::<i32>(),
        Entry::of::<i64>(),
        Entry::of::<u16>(),
        Entry::of::<u32>(),
        Entry::of::<u64>(),
        Entry::of::<f32>(),
        Entry::of::<f64>(),
        Entry::of::<char>(),
        Entry::of::<String>(),
        Entry::of::<uuid::Uuid>(),
        Entry::of::<chrono::DateTime<chrono::Utc>>(),
        Entry::of::<std::time::Duration>(),
    ]
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Table::default();
        for entry in builtins() {
            let _ = table.add(entry);
        }
        // Sorted, so the winner of a conflict does not depend on link order.
        let mut submitted: Vec<Entry> = inventory::iter::<Registration>()
            .map(|r| (r.make)())
            .collect();
        submitted.sort_by(|a, b| (a.signature, a.type_name).cmp(&(b.signature, b.type_name)));
        for entry in submitted {
            let _ = table.add(entry);
        }
        RwLock::new(table)
    })
}

/// The entry registered under `signature`, if any.
///
/// Every frame a link reads is decoded through this, so each thread keeps
/// the entries it found last in a short list of its own (no lock, no cache
/// line shared with other threads). Entries are never removed or replaced,
/// so a hit stays right; a miss is not remembered, as the type may be
/// registered later.
pub fn lookup(signature: &str) -> Option<&'static Entry> {
    /// How many entries each thread keeps at hand.
    const PER_THREAD: usize = 32;
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<&'static Entry>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let recent = RECENT.with_borrow(|recent| {
        recent
            .iter()
            .find(|entry| entry.signature == signature)
            .copied()
    });
    if recent.is_some() {
        return recent;
    }
    let found = table()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .by_signature
        .get(signature)
        .copied();
    if let Some(entry) = found {
        RECENT.with_borrow_mut(|recent| {
            if recent.len() < PER_THREAD {
                recent.push(entry);
            }
        });
    }
    found
}

/// Registers `T` at run time and returns the entry that now decodes its
/// signature.
///
/// Registering a type twice is harmless. When another Rust type already holds
/// the signature, that one is kept (and returned), and the refusal is logged
/// and recorded in [`conflicts`]; use [`try_register`] to treat it as an
/// error.
pub fn register<T: Message>() -> &'static Entry {
    match try_register::<T>() {
        Ok(entry) => entry,
        Err(conflict) => lookup(conflict.signature).expect("the conflicting entry is registered"),
    }
}

/// Registers `T` at run time, failing when another Rust type already holds
/// its signature.
pub fn try_register<T: Message>() -> Result<&'static Entry, Conflict> {
    let signature = static_signature::<T>();
    if let Some(existing) = lookup(signature)
        && existing.type_id == TypeId::of::<T>()
    {
        return Ok(existing);
    }
    table()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .add(Entry::of::<T>())
}

/// Whether `T` is the type registered under its signature.
pub fn is_registered<T: Message>() -> bool {
    lookup(static_signature::<T>()).is_some_and(|e| e.type_id == TypeId::of::<T>())
}

/// Every registered signature, sorted (what `--dump-types` prints).
pub fn signatures() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = table()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .by_signature
        .keys()
        .copied()
        .collect();
    all.sort_unstable();
    all
}

/// Every registration refused so far because its signature was taken.
pub fn conflicts() -> Vec<Conflict> {
    table()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .conflicts
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    // `register!` works inside this crate too (for the runtime's own types).
    crate::register!(Vec<Vec<u32>>);

    #[test]
    fn builtins_are_registered() {
        for sig in [
            "Start",
            "Stop",
            "Ack",
            "Nak",
            "Returned",
            "Restarted",
            "Faulted",
            "integer8",
            "unicode",
            "span",
        ] {
            assert_eq!(lookup(sig).map(Entry::signature), Some(sig));
        }
        assert_eq!(lookup("integer8").unwrap().type_id(), TypeId::of::<i64>());
        assert!(is_registered::<Faulted>());
        assert!(!is_registered::<isize>());
        assert!(lookup("nothing-here").is_none());
        assert!(signatures().contains(&"boolean"));
        assert!(signatures().contains(&"address"));
        assert!(lookup("vector<vector<unsigned4>>").is_some());
    }

    /// The property the `decode_by_signature` fuzz target checks, run in
    /// CI: every registered signature, fed random bodies and mutations of
    /// bodies that decoded — in the binary codec and as JSON — gives a value
    /// or an error, never a panic, and never overflows a worker's stack.
    #[test]
    fn every_signature_survives_random_and_mutated_bodies() {
        use rand::{Rng, SeedableRng};
        crate::message::codec::binary::tests::on_worker_stack(|| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0011);
            let signatures = signatures();
            assert!(signatures.len() > 20, "{signatures:?}");
            for signature in signatures {
                let entry = lookup(signature).unwrap();
                // Bodies that decoded, re-encoded: mutated in later rounds.
                let mut seeds: Vec<Vec<u8>> = Vec::new();
                let mut texts: Vec<String> = Vec::new();
                for round in 0..400 {
                    let input: Vec<u8> = if round % 2 == 0 || seeds.is_empty() {
                        let n = rng.random_range(0..48);
                        (0..n).map(|_| rng.random()).collect()
                    } else {
                        let mut m = seeds[rng.random_range(0..seeds.len())].clone();
                        for _ in 0..rng.random_range(1..4) {
                            match rng.random_range(0..3) {
                                0 if !m.is_empty() => {
                                    let at = rng.random_range(0..m.len());
                                    m[at] = rng.random();
                                }
                                1 => {
                                    let at = rng.random_range(0..=m.len());
                                    m.insert(at, rng.random());
                                }
                                _ => m.truncate(rng.random_range(0..=m.len())),
                            }
                        }
                        m
                    };
                    if let Ok(payload) = entry.decode_binary(&input) {
                        let mut again = Vec::new();
                        if payload.encode_binary(&mut again).is_ok() && seeds.len() < 16 {
                            seeds.push(again);
                        }
                        if let Ok(text) =
                            crate::message::codec::json::to_value_string(&payload, false)
                            && texts.len() < 16
                        {
                            texts.push(text);
                        }
                    }
                }
                // The JSON forms of what decoded, mutated.
                for text in &texts {
                    let _ = entry.decode_json(text);
                    for _ in 0..20 {
                        let mut bytes = text.clone().into_bytes();
                        let at = rng.random_range(0..=bytes.len());
                        let junk = [b'[', b'{', b'"', b'0', b',', b'}', b']', b'-', b'e'];
                        bytes.insert(at, junk[rng.random_range(0..junk.len())]);
                        bytes.truncate(rng.random_range(0..=bytes.len()));
                        if let Ok(mutated) = String::from_utf8(bytes) {
                            let _ = entry.decode_json(&mutated);
                        }
                    }
                }
            }
        });
    }

    #[test]
    fn run_time_registration_and_conflict() {
        assert!(lookup("map<unicode,vector<byte>>").is_none());
        let e = register::<HashMap<String, Vec<u8>>>();
        assert_eq!(e.signature(), "map<unicode,vector<byte>>");
        assert!(std::ptr::eq(e, register::<HashMap<String, Vec<u8>>>()));
        let c = try_register::<BTreeMap<String, Vec<u8>>>().unwrap_err();
        assert_eq!(c.signature, "map<unicode,vector<byte>>");
        assert!(
            c.registered.contains("HashMap") && c.refused.contains("BTreeMap"),
            "{c}"
        );
        assert!(conflicts().contains(&c));
        // The first registration still decodes the signature.
        let kept = register::<BTreeMap<String, Vec<u8>>>();
        assert_eq!(kept.type_id(), TypeId::of::<HashMap<String, Vec<u8>>>());
    }
}
