//! A depth bound for the binary codec, as serde adapters around its
//! deserializer and serializer.
//!
//! bincode keeps no count of nesting: a message type that contains itself
//! (`struct Tree { children: Vec<Tree> }`, `enum List { Cons(Box<List>),
//! Nil }`) decodes by recursion, one or two stack frames of the reading
//! thread per level, and a frame costs the sender one byte per level. A few
//! kilobytes from a peer would overflow the stack and abort the process. The
//! adapters here count every level the value opens and refuse the value
//! past [`MAX_DECODE_DEPTH`](super::binary::MAX_DECODE_DEPTH) with
//! "nested deeper than N levels".
//!
//! A level is one of: a sequence, a tuple, a struct, a map, an `Option`
//! holding a value, a newtype struct, an enum variant (one level), and the
//! fields of a tuple or struct variant (one more). Both adapters count the
//! same way, so the encoder refuses exactly what the decoder would: a value
//! this process can encode, a peer can decode.
//!
//! The depth travels by value inside the wrappers — nothing is allocated and
//! nothing is shared — and every method is a forwarding call marked
//! `#[inline]`. Only a refusal touches a thread-local flag, so the caller can
//! tell a depth refusal from any other failure and report it as
//! [`CodecError::TooDeep`](super::CodecError::TooDeep).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize, Serializer};

use super::binary::MAX_DECODE_DEPTH;

thread_local! {
    /// Whether a value was refused for its depth on this thread since the
    /// last [`take_refused`]. Set only on a refusal.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Clears the refusal flag before a decode or encode starts.
#[inline]
pub(crate) fn clear_refused() {
    REFUSED.with(|r| r.set(false));
}

/// Whether the last decode or encode on this thread was refused for its
/// depth (and clears the flag).
pub(crate) fn take_refused() -> bool {
    REFUSED.with(|r| r.replace(false))
}

/// The text of a refusal: "nested deeper than 128 levels".
pub(crate) struct TooDeep;

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nested deeper than {MAX_DECODE_DEPTH} levels")
    }
}

/// The depth after opening `levels` more levels at `depth`, or the refusal.
#[inline]
fn enter<E>(depth: usize, levels: usize, error: impl FnOnce(TooDeep) -> E) -> Result<usize, E> {
    let now = depth + levels;
    if now <= MAX_DECODE_DEPTH {
        Ok(now)
    } else {
        Err(refuse(error))
    }
}

#[cold]
#[inline(never)]
fn refuse<E>(error: impl FnOnce(TooDeep) -> E) -> E {
    REFUSED.with(|r| r.set(true));
    error(TooDeep)
}

/// The longest error text passed up one level.
const MAX_ERROR_TEXT: usize = 1024;

/// An error on its way out of one level, with its text kept plain and short.
///
/// Inside a payload every level of a recursive value is read through
/// `erased_serde`, which turns an error into text and back at each level,
/// and bincode's errors render as their `Debug` form: `OtherString("…")`
/// again at every level, its quotes and backslashes escaped once more, so
/// the text doubled per level (a truncated 60-level value would never have
/// finished failing). Each level here peels those wrappers off and cuts the
/// text at [`MAX_ERROR_TEXT`]; an error that needs neither passes unchanged.
#[cold]
#[inline(never)]
fn plain_de<E: de::Error>(e: E) -> E {
    plain(e.to_string()).map_or(e, E::custom)
}

/// [`plain_de`] for the encoder.
#[cold]
#[inline(never)]
fn plain_ser<E: ser::Error>(e: E) -> E {
    plain(e.to_string()).map_or(e, E::custom)
}

/// `text` without bincode's `OtherString("…")` wrappers, at most
/// [`MAX_ERROR_TEXT`] long (for errors that left the codec as text).
pub(crate) fn plain_text(text: String) -> String {
    plain(text.clone()).unwrap_or(text)
}

/// The text without bincode's `OtherString("…")` wrappers and at most
/// [`MAX_ERROR_TEXT`] long, or `None` when it is already both.
fn plain(text: String) -> Option<String> {
    let mut current = text;
    let mut changed = false;
    while let Some(inner) = current
        .strip_prefix("OtherString(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .and_then(unescape_debug)
    {
        current = inner;
        changed = true;
    }
    if current.len() > MAX_ERROR_TEXT {
        let mut end = MAX_ERROR_TEXT;
        while !current.is_char_boundary(end) {
            end -= 1;
        }
        current.truncate(end);
        current.push('…');
        changed = true;
    }
    changed.then_some(current)
}

/// The string whose `Debug` form (without its quotes) is `escaped`, or
/// `None` when it is not one.
fn unescape_debug(escaped: &str) -> Option<String> {
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == '"' {
                return None;
            }
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\'' => out.push('\''),
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '0' => out.push('\0'),
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let mut code = 0u32;
                loop {
                    match chars.next()? {
                        '}' => break,
                        d => code = code.checked_mul(16)?.checked_add(d.to_digit(16)?)?,
                    }
                }
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

// ---------------------------------------------------------------- decoding

/// A deserializer that decodes like `inner` but refuses a value nested
/// deeper than [`MAX_DECODE_DEPTH`](super::binary::MAX_DECODE_DEPTH).
pub(crate) struct Bounded<D> {
    inner: D,
    depth: usize,
}

impl<D> Bounded<D> {
    /// `inner`, at the top of a value (no level opened yet).
    #[inline]
    pub(crate) fn new(inner: D) -> Self {
        Bounded { inner, depth: 0 }
    }
}

impl<'de, D: Deserializer<'de>> Bounded<D> {
    /// A nested [`Payload`](crate::Payload): its pair is read here, from the
    /// concrete decoder, rather than through the `erased_serde` layers
    /// between this adapter and the payload's visitor (one more per level of
    /// payload nesting); the payload is handed to that visitor, which is
    /// then told `visit_unit`. See
    /// [`PAYLOAD_TUPLE`](crate::message::PAYLOAD_TUPLE).
    #[cold]
    #[inline(never)]
    fn payload<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        let payload = self
            .inner
            .deserialize_tuple(len, PayloadPair { depth: self.depth })?;
        crate::message::deliver_payload(payload);
        visitor.visit_unit()
    }
}

/// Reads a payload's `(signature, value)` pair, counting it as one level.
struct PayloadPair {
    depth: usize,
}

impl<'de> Visitor<'de> for PayloadPair {
    type Value = crate::Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a typed message (signature, value)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<crate::Payload, A::Error> {
        let depth = enter(self.depth, 1, de::Error::custom)?;
        crate::message::payload_from_seq(Access { inner: seq, depth }).map_err(plain_de)
    }
}

/// A seed that decodes `T` through a [`Bounded`] deserializer (what
/// bincode's seeded decode takes).
pub(crate) struct BoundedSeed<T>(std::marker::PhantomData<T>);

impl<T> BoundedSeed<T> {
    /// The seed for `T`.
    #[inline]
    pub(crate) fn new() -> Self {
        BoundedSeed(std::marker::PhantomData)
    }
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for BoundedSeed<T> {
    type Value = T;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(Bounded::new(d))
    }
}

/// A visitor handed to the inner deserializer: it counts the level a
/// compound value opens and hands the inner visitor bounded accessors.
struct Counting<V> {
    inner: V,
    depth: usize,
}

/// A seed whose deserializer is bounded at `depth`.
struct Seed<S> {
    inner: S,
    depth: usize,
}

/// Sequence, map and enum accessors whose elements are bounded at `depth`.
struct Access<A> {
    inner: A,
    depth: usize,
}

macro_rules! forward_deserialize {
    ($($method:ident),* $(,)?) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.inner
                .$method(Counting { inner: visitor, depth: self.depth })
                .map_err(plain_de)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Bounded<D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Counting {
            inner: visitor,
            depth: self.depth,
        };
        self.inner
            .deserialize_unit_struct(name, visitor)
            .map_err(plain_de)
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Counting {
            inner: visitor,
            depth: self.depth,
        };
        self.inner
            .deserialize_newtype_struct(name, visitor)
            .map_err(plain_de)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Counting {
            inner: visitor,
            depth: self.depth,
        };
        self.inner.deserialize_tuple(len, visitor).map_err(plain_de)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if name == crate::message::PAYLOAD_TUPLE {
            return self.payload(len, visitor);
        }
        let visitor = Counting {
            inner: visitor,
            depth: self.depth,
        };
        self.inner
            .deserialize_tuple_struct(name, len, visitor)
            .map_err(plain_de)
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Counting {
            inner: visitor,
            depth: self.depth,
        };
        self.inner
            .deserialize_struct(name, fields, visitor)
            .map_err(plain_de)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Counting {
            inner: visitor,
            depth: self.depth,
        };
        self.inner
            .deserialize_enum(name, variants, visitor)
            .map_err(plain_de)
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($t:ty)),* $(,)?) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $t) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Counting<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let depth = enter(self.depth, 1, de::Error::custom)?;
        self.inner
            .visit_some(Bounded { inner: d, depth })
            .map_err(plain_de)
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let depth = enter(self.depth, 1, de::Error::custom)?;
        self.inner
            .visit_newtype_struct(Bounded { inner: d, depth })
            .map_err(plain_de)
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let depth = enter(self.depth, 1, de::Error::custom)?;
        self.inner
            .visit_seq(Access { inner: seq, depth })
            .map_err(plain_de)
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let depth = enter(self.depth, 1, de::Error::custom)?;
        self.inner
            .visit_map(Access { inner: map, depth })
            .map_err(plain_de)
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let depth = enter(self.depth, 1, de::Error::custom)?;
        self.inner
            .visit_enum(Access { inner: data, depth })
            .map_err(plain_de)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner
            .deserialize(Bounded {
                inner: d,
                depth: self.depth,
            })
            .map_err(plain_de)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner
            .next_element_seed(Seed {
                inner: seed,
                depth: self.depth,
            })
            .map_err(plain_de)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner
            .next_key_seed(Seed {
                inner: seed,
                depth: self.depth,
            })
            .map_err(plain_de)
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner
            .next_value_seed(Seed {
                inner: seed,
                depth: self.depth,
            })
            .map_err(plain_de)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Access<A> {
    type Error = A::Error;
    type Variant = Access<A::Variant>;

    #[inline]
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let depth = self.depth;
        let (value, variant) = self
            .inner
            .variant_seed(Seed { inner: seed, depth })
            .map_err(plain_de)?;
        Ok((
            value,
            Access {
                inner: variant,
                depth,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant().map_err(plain_de)
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner
            .newtype_variant_seed(Seed {
                inner: seed,
                depth: self.depth,
            })
            .map_err(plain_de)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = Counting {
            inner: visitor,
            depth: self.depth,
        };
        self.inner.tuple_variant(len, visitor).map_err(plain_de)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = Counting {
            inner: visitor,
            depth: self.depth,
        };
        self.inner.struct_variant(fields, visitor).map_err(plain_de)
    }
}

// ---------------------------------------------------------------- encoding

/// A value that serializes like `value` but refuses to nest deeper than
/// [`MAX_DECODE_DEPTH`](super::binary::MAX_DECODE_DEPTH), counted as the
/// decoder counts: what this refuses, no peer would decode.
pub(crate) struct Limited<'a, T: ?Sized> {
    value: &'a T,
    depth: usize,
}

impl<'a, T: ?Sized> Limited<'a, T> {
    /// `value`, at the top (no level opened yet).
    #[inline]
    pub(crate) fn new(value: &'a T) -> Self {
        Limited { value, depth: 0 }
    }
}

impl<T: ?Sized + Serialize> Serialize for Limited<'_, T> {
    #[inline]
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value
            .serialize(LimitedSerializer {
                inner: s,
                depth: self.depth,
            })
            .map_err(plain_ser)
    }
}

/// The serializer a [`Limited`] value is written through.
struct LimitedSerializer<S> {
    inner: S,
    depth: usize,
}

/// A compound being written (sequence, tuple, map, struct, variant): its
/// elements are limited at `depth`.
struct Compound<C> {
    inner: C,
    depth: usize,
}

macro_rules! forward_serialize {
    ($($method:ident($t:ty)),* $(,)?) => {$(
        #[inline]
        fn $method(self, v: $t) -> Result<S::Ok, S::Error> {
            self.inner.$method(v)
        }
    )*};
}

impl<S: Serializer> Serializer for LimitedSerializer<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward_serialize!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    #[inline]
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    #[inline]
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    #[inline]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<S::Ok, S::Error> {
        let depth = enter(self.depth, 1, ser::Error::custom)?;
        self.inner
            .serialize_some(&Limited { value, depth })
            .map_err(plain_ser)
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        enter(self.depth, 1, ser::Error::custom)?;
        self.inner.serialize_unit_variant(name, index, variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let depth = enter(self.depth, 1, ser::Error::custom)?;
        self.inner
            .serialize_newtype_struct(name, &Limited { value, depth })
            .map_err(plain_ser)
    }

    #[inline]
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let depth = enter(self.depth, 1, ser::Error::custom)?;
        self.inner
            .serialize_newtype_variant(name, index, variant, &Limited { value, depth })
            .map_err(plain_ser)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let depth = enter(self.depth, 1, ser::Error::custom)?;
        let inner = self.inner.serialize_seq(len)?;
        Ok(Compound { inner, depth })
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let depth = enter(self.depth, 1, ser::Error::custom)?;
        let inner = self.inner.serialize_tuple(len)?;
        Ok(Compound { inner, depth })
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let depth = enter(self.depth, 1, ser::Error::custom)?;
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(Compound { inner, depth })
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        // The variant, then its fields: two levels, as the decoder counts.
        let depth = enter(self.depth, 2, ser::Error::custom)?;
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(Compound { inner, depth })
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let depth = enter(self.depth, 1, ser::Error::custom)?;
        let inner = self.inner.serialize_map(len)?;
        Ok(Compound { inner, depth })
    }

    #[inline]
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let depth = enter(self.depth, 1, ser::Error::custom)?;
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(Compound { inner, depth })
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let depth = enter(self.depth, 2, ser::Error::custom)?;
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(Compound { inner, depth })
    }

    #[inline]
    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<C: ser::SerializeSeq> ser::SerializeSeq for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner
            .serialize_element(&Limited {
                value,
                depth: self.depth,
            })
            .map_err(plain_ser)
    }

    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTuple> ser::SerializeTuple for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner
            .serialize_element(&Limited {
                value,
                depth: self.depth,
            })
            .map_err(plain_ser)
    }

    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner
            .serialize_field(&Limited {
                value,
                depth: self.depth,
            })
            .map_err(plain_ser)
    }

    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner
            .serialize_field(&Limited {
                value,
                depth: self.depth,
            })
            .map_err(plain_ser)
    }

    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    #[inline]
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), C::Error> {
        self.inner
            .serialize_key(&Limited {
                value: key,
                depth: self.depth,
            })
            .map_err(plain_ser)
    }

    #[inline]
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner
            .serialize_value(&Limited {
                value,
                depth: self.depth,
            })
            .map_err(plain_ser)
    }

    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStruct> ser::SerializeStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        self.inner
            .serialize_field(
                key,
                &Limited {
                    value,
                    depth: self.depth,
                },
            )
            .map_err(plain_ser)
    }

    #[inline]
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStructVariant> ser::SerializeStructVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        self.inner
            .serialize_field(
                key,
                &Limited {
                    value,
                    depth: self.depth,
                },
            )
            .map_err(plain_ser)
    }

    #[inline]
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    #[inline]
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_peels_bincode_wrappers_and_cuts_long_text() {
        let once = format!("OtherString({:?})", "a \"b\" \\ c\n\u{7f}");
        let twice = format!("OtherString({once:?})");
        assert_eq!(plain(twice).unwrap(), "a \"b\" \\ c\n\u{7f}");
        assert_eq!(plain("UnexpectedEnd { additional: 1 }".into()), None);
        assert_eq!(plain("OtherString(\"unterminated".into()), None);
        let long = plain("é".repeat(MAX_ERROR_TEXT)).unwrap();
        assert!(long.len() <= MAX_ERROR_TEXT + '…'.len_utf8() && long.ends_with('…'));
    }
}
