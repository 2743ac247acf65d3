//! Layer-cake type signatures for the standard Rust types.
//!
//! A signature is the canonical name a type travels under: `integer8` for
//! `i64`, `vector<vector<float8>>` for `Vec<Vec<f64>>`, `map<unicode,Xy>` for
//! `BTreeMap<String, Xy>`. See `docs/messages.md` for the full table.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{OnceLock, RwLock};

use super::Message;

/// The layer-cake type signature of `M`, e.g. `vector<vector<float8>>`.
///
/// ```
/// use layer_cake::message::signature_of;
/// use std::collections::BTreeMap;
///
/// assert_eq!(signature_of::<Vec<Vec<f64>>>(), "vector<vector<float8>>");
/// assert_eq!(signature_of::<BTreeMap<String, Option<u8>>>(), "map<unicode,option<byte>>");
/// ```
pub fn signature_of<M: Message>() -> String {
    static_signature::<M>().to_owned()
}

/// The signature of `M`, computed once per type and cached for the life of
/// the process (one small leaked string per distinct message type).
///
/// Every frame a link writes names its message's signature, so this is on
/// the per-message path: each thread first looks in a short list of its
/// own (no lock, no cache line shared with other threads), then in the
/// process-wide map behind a lock.
pub(crate) fn static_signature<M: Message>() -> &'static str {
    /// How many types each thread keeps at hand.
    const PER_THREAD: usize = 32;
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<(TypeId, &'static str)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let id = TypeId::of::<M>();
    let recent = RECENT.with_borrow(|recent| {
        recent
            .iter()
            .find(|(type_id, _)| *type_id == id)
            .map(|(_, signature)| *signature)
    });
    if let Some(signature) = recent {
        return signature;
    }
    let signature = shared_signature::<M>(id);
    RECENT.with_borrow_mut(|recent| {
        if recent.len() < PER_THREAD {
            recent.push((id, signature));
        }
    });
    signature
}

/// [`static_signature`]'s process-wide map.
fn shared_signature<M: Message>(id: TypeId) -> &'static str {
    static CACHE: OnceLock<RwLock<HashMap<TypeId, &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return s;
    }
    let mut text = String::new();
    M::write_signature(&mut text);
    let mut write = cache.write().unwrap_or_else(|e| e.into_inner());
    write
        .entry(id)
        .or_insert_with(|| Box::leak(text.into_boxed_str()))
}

macro_rules! primitive {
    ($($t:ty => $sig:literal),* $(,)?) => {$(
        impl Message for $t {
            fn write_signature(out: &mut String) { out.push_str($sig) }
        }
    )*};
}

primitive! {
    () => "null",
    bool => "boolean",
    u8 => "byte",
    i16 => "integer2",
    i32 => "integer4",
    i64 => "integer8",
    isize => "integer8",
    u16 => "unsigned2",
    u32 => "unsigned4",
    u64 => "unsigned8",
    usize => "unsigned8",
    f32 => "float4",
    f64 => "float8",
    char => "rune",
    String => "unicode",
    uuid::Uuid => "uuid",
    chrono::DateTime<chrono::Utc> => "world",
    std::time::Duration => "span",
}

macro_rules! container {
    ($($name:literal: $t:ty),* $(,)?) => {$(
        impl<T: Message> Message for $t {
            fn write_signature(out: &mut String) {
                out.push_str($name);
                out.push('<');
                T::write_signature(out);
                out.push('>');
            }
        }
    )*};
}

container! {
    "vector": Vec<T>,
    "deque": VecDeque<T>,
    "option": Option<T>,
}

impl<T: Message + Eq + Hash> Message for HashSet<T> {
    fn write_signature(out: &mut String) {
        out.push_str("set<");
        T::write_signature(out);
        out.push('>');
    }
}

impl<T: Message + Ord> Message for BTreeSet<T> {
    fn write_signature(out: &mut String) {
        out.push_str("set<");
        T::write_signature(out);
        out.push('>');
    }
}

fn write_map<K: Message, V: Message>(out: &mut String) {
    out.push_str("map<");
    K::write_signature(out);
    out.push(',');
    V::write_signature(out);
    out.push('>');
}

impl<K: Message + Eq + Hash, V: Message> Message for HashMap<K, V> {
    fn write_signature(out: &mut String) {
        write_map::<K, V>(out);
    }
}

impl<K: Message + Ord, V: Message> Message for BTreeMap<K, V> {
    fn write_signature(out: &mut String) {
        write_map::<K, V>(out);
    }
}

// serde implements (de)serialization for arrays of 0 to 32 elements.
macro_rules! array {
    ($($n:literal)*) => {$(
        impl<T: Message> Message for [T; $n] {
            fn write_signature(out: &mut String) {
                out.push_str("array<");
                T::write_signature(out);
                out.push_str(concat!(",", $n, ">"));
            }
        }
    )*};
}

array!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_and_containers() {
        assert_eq!(signature_of::<()>(), "null");
        assert_eq!(signature_of::<isize>(), "integer8");
        assert_eq!(signature_of::<usize>(), "unsigned8");
        assert_eq!(signature_of::<Vec<Vec<f64>>>(), "vector<vector<float8>>");
        assert_eq!(
            signature_of::<HashMap<String, Vec<i32>>>(),
            "map<unicode,vector<integer4>>"
        );
        assert_eq!(signature_of::<[u16; 4]>(), "array<unsigned2,4>");
        assert_eq!(signature_of::<[u16; 0]>(), "array<unsigned2,0>");
        assert_eq!(signature_of::<Option<char>>(), "option<rune>");
    }

    #[test]
    fn cached_signature_is_stable() {
        let a = static_signature::<VecDeque<bool>>();
        let b = static_signature::<VecDeque<bool>>();
        assert_eq!(a, "deque<boolean>");
        assert!(std::ptr::eq(a, b));
    }
}
