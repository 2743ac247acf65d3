//! Decoding typed values from text fields: command-line flags
//! (`--name=value`) and the fields of a URL query (`/Xy?x=2&y=2`).
//!
//! Decoding is directed by the target type, with the original library's
//! rules:
//!
//! * strings, chars, unit enum variants (`DEBUG`), uuids and times are taken
//!   verbatim, without JSON quotes: `--name=abc`;
//! * numbers and bools are parsed from the text: `--x=2`, `--full=false`; a
//!   bare flag with no value means `true` for a bool: `--full-output`;
//! * `std::time::Duration` also reads a compact span: `--adjustment=1d2h`,
//!   `--timeout=2.5s`, `--wait=1m30s`, `--delay=250ms` (a plain number is
//!   seconds);
//! * `Option<T>`: `null` is `None`, anything else is decoded as a `T`;
//! * everything else (structs, vectors, maps, tuples, enum variants with
//!   data) is a JSON fragment:
//!   `--server-address='{"host":"127.0.0.1","port":5051}'`.
//!
//! Flag names use dashes where fields use underscores (`--server-address` is
//! the field `server_address`). A field not given takes its serde default
//! (`#[serde(default)]`, or `None` for an `Option`), otherwise it is missing.
//!
//! ```
//! use layer_cake::message::text::{from_fields, Source};
//! use serde::Deserialize;
//!
//! #[derive(Debug, PartialEq, Deserialize)]
//! struct Args {
//!     name: String,
//!     count: u32,
//!     #[serde(default)]
//!     verbose: bool,
//!     sizes: Vec<u8>,
//! }
//!
//! let flags = [
//!     ("name".to_string(), Some("abc".to_string())),
//!     ("count".to_string(), Some("3".to_string())),
//!     ("verbose".to_string(), None),
//!     ("sizes".to_string(), Some("[1,2]".to_string())),
//! ];
//! let args: Args = from_fields(&flags, Source::Flag).unwrap();
//! assert_eq!(args, Args { name: "abc".into(), count: 3, verbose: true, sizes: vec![1, 2] });
//!
//! let e = from_fields::<Args>(&[("z".to_string(), None)], Source::Flag).unwrap_err();
//! assert_eq!(e.to_string(), "unknown flag --z (expected one of --name, --count, --verbose, --sizes)");
//! ```

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

/// Where the text fields came from; it decides how errors name a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Command-line flags: fields are named `--server-address`.
    Flag,
    /// URL query or form fields: fields are named `server_address`.
    Query,
}

impl Source {
    fn display(self, field: &str) -> String {
        match self {
            Source::Flag => format!("--{}", field.replace('_', "-")),
            Source::Query => field.to_owned(),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Query => "field",
        }
    }
}

/// A failure to decode text fields; the text names the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// A field's text did not decode as the field's type:
    /// `--x: invalid value "abc": invalid digit found in string`.
    #[error("{field}: invalid value {}: {reason}", ShowValue(value))]
    Invalid {
        /// The field as given (`--x` or `x`).
        field: String,
        /// The text, `None` for a bare flag.
        value: Option<String>,
        /// What went wrong.
        reason: String,
    },
    /// A field that the type does not have:
    /// `unknown flag --z (expected one of --x, --y)`.
    #[error("unknown {kind} {field} ({})", Expected(expected))]
    Unknown {
        /// `flag` or `field`.
        kind: &'static str,
        /// The field as given.
        field: String,
        /// The fields the type has, named as the source names them.
        expected: Vec<String>,
    },
    /// A field the type requires was not given: `missing flag --x`.
    #[error("missing {kind} {field}")]
    Missing {
        /// `flag` or `field`.
        kind: &'static str,
        /// The field, named as the source names it.
        field: String,
    },
    /// The same field was given twice: `--x given twice`.
    #[error("{field} given twice")]
    Duplicate {
        /// The field as given.
        field: String,
    },
    /// The type cannot be decoded from fields at all (it is not a struct, a
    /// map or `()`), or another error without a field.
    #[error("{0}")]
    Other(String),
}

struct ShowValue<'a>(&'a Option<String>);

impl fmt::Display for ShowValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:?}"),
            None => f.write_str("(no value)"),
        }
    }
}

struct Expected<'a>(&'a [String]);

impl fmt::Display for Expected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("expected none")
        } else {
            write!(f, "expected one of {}", self.0.join(", "))
        }
    }
}

/// Decodes a `T` from text fields: `(name, value)` pairs where a bare flag
/// (`--verbose`) has no value.
///
/// `T` is normally a struct (one field per flag); a map
/// (`BTreeMap<String, V>`) takes any names; `()` takes no fields.
pub fn from_fields<T: DeserializeOwned>(
    fields: &[(String, Option<String>)],
    source: Source,
) -> Result<T, TextError> {
    T::deserialize(Fields { fields, source }).map_err(|e| e.into_public(source))
}

/// The field names of `T` when it is a struct (for `--help`), `Some(vec![])`
/// for `()`, and `None` for other types.
///
/// ```
/// use layer_cake::message::text::field_names;
///
/// #[derive(serde::Deserialize)]
/// struct Xy { x: i64, y: i64 }
///
/// assert_eq!(field_names::<Xy>(), Some(vec!["x", "y"]));
/// assert_eq!(field_names::<()>(), Some(vec![]));
/// assert_eq!(field_names::<i64>(), None);
/// ```
pub fn field_names<T: DeserializeOwned>() -> Option<Vec<&'static str>> {
    let found = RefCell::new(None);
    let _ = T::deserialize(Probe(&found));
    found.into_inner()
}

// The error used inside the deserializers; turned into a `TextError` with the
// source's naming at the end.
#[derive(Debug)]
enum Error {
    Custom(String),
    Missing(String),
    Unknown {
        field: String,
        expected: Vec<String>,
    },
    Invalid {
        field: String,
        value: Option<String>,
        reason: String,
    },
    Duplicate(String),
}

impl Error {
    fn into_public(self, source: Source) -> TextError {
        match self {
            Error::Custom(reason) => TextError::Other(reason),
            Error::Missing(field) => TextError::Missing {
                kind: source.kind(),
                field: source.display(&field),
            },
            Error::Unknown { field, expected } => TextError::Unknown {
                kind: source.kind(),
                field,
                expected: expected.iter().map(|f| source.display(f)).collect(),
            },
            Error::Invalid {
                field,
                value,
                reason,
            } => TextError::Invalid {
                field,
                value,
                reason,
            },
            Error::Duplicate(field) => TextError::Duplicate { field },
        }
    }

    fn reason(self) -> String {
        match self {
            Error::Custom(r) => r,
            Error::Missing(f) => format!("missing field `{f}`"),
            Error::Unknown { field, .. } => format!("unknown field `{field}`"),
            Error::Invalid { reason, .. } => reason,
            Error::Duplicate(f) => format!("duplicate field `{f}`"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Error::Missing(field.to_owned())
    }
}

/// The deserializer for the whole set of fields.
struct Fields<'a> {
    fields: &'a [(String, Option<String>)],
    source: Source,
}

impl<'a> Fields<'a> {
    fn access(self, known: Option<&'static [&'static str]>) -> Result<FieldAccess<'a>, Error> {
        let mut names: Vec<String> = Vec::with_capacity(self.fields.len());
        for (name, _) in self.fields {
            let field = name.replace('-', "_");
            let given = match self.source {
                Source::Flag => format!("--{name}"),
                Source::Query => name.clone(),
            };
            if let Some(known) = known
                && !known.contains(&field.as_str())
            {
                return Err(Error::Unknown {
                    field: given,
                    expected: known.iter().map(|k| (*k).to_owned()).collect(),
                });
            }
            if names.contains(&field) {
                return Err(Error::Duplicate(given));
            }
            names.push(field);
        }
        Ok(FieldAccess {
            fields: self.fields,
            names,
            source: self.source,
            next: 0,
        })
    }
}

struct FieldAccess<'a> {
    fields: &'a [(String, Option<String>)],
    names: Vec<String>,
    source: Source,
    next: usize,
}

impl<'de> MapAccess<'de> for FieldAccess<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.names.get(self.next) {
            None => Ok(None),
            Some(name) => seed
                .deserialize(StrDeserializer::<Error>::new(name))
                .map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (name, value) = &self.fields[self.next];
        self.next += 1;
        seed.deserialize(Text(value.as_deref()))
            .map_err(|e| Error::Invalid {
                field: match self.source {
                    Source::Flag => format!("--{name}"),
                    Source::Query => name.clone(),
                },
                value: value.clone(),
                reason: e.reason(),
            })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next)
    }
}

impl<'de> de::Deserializer<'de> for Fields<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(self.access(Some(fields))?)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(self.access(None)?)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.access(Some(&[]))?;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option seq tuple tuple_struct enum identifier ignored_any
    }
}

/// The deserializer for one field's text (`None` for a bare flag).
struct Text<'a>(Option<&'a str>);

impl<'a> Text<'a> {
    fn text(&self) -> Result<&'a str, Error> {
        self.0
            .ok_or_else(|| Error::Custom("a value is required".into()))
    }

    fn parse<T: std::str::FromStr>(&self) -> Result<T, Error>
    where
        T::Err: fmt::Display,
    {
        self.text()?
            .trim()
            .parse()
            .map_err(|e: T::Err| Error::Custom(e.to_string()))
    }

    fn json(&self) -> Result<serde_json::Deserializer<serde_json::de::StrRead<'a>>, Error> {
        Ok(serde_json::Deserializer::from_str(self.text()?))
    }
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Custom(e.to_string())
}

macro_rules! parsed {
    ($($method:ident $visit:ident $t:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$t>()?)
        }
    )*};
}

macro_rules! json {
    ($($method:ident ($($arg:ident: $t:ty),*)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $t,)* visitor: V) -> Result<V::Value, Error> {
            let mut de = self.json()?;
            let value = de::Deserializer::$method(&mut de, $($arg,)* visitor).map_err(json_error)?;
            de.end().map_err(json_error)?;
            Ok(value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Text<'de> {
    type Error = Error;

    /// Self-describing targets (`serde_json::Value`, untagged enums): JSON
    /// when the text is JSON, the text as a string otherwise, and `true` for a
    /// bare flag.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            None => visitor.visit_bool(true),
            Some(text) => {
                if serde_json::from_str::<de::IgnoredAny>(text).is_ok() {
                    let mut de = serde_json::Deserializer::from_str(text);
                    de::Deserializer::deserialize_any(&mut de, visitor).map_err(json_error)
                } else {
                    visitor.visit_borrowed_str(text)
                }
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0.map(str::trim) {
            None | Some("true") => visitor.visit_bool(true),
            Some("false") => visitor.visit_bool(false),
            Some(_) => Err(Error::Custom("expected true or false".into())),
        }
    }

    parsed! {
        deserialize_i8 visit_i8 i8,
        deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64,
        deserialize_i128 visit_i128 i128,
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
        deserialize_u128 visit_u128 u128,
        deserialize_f32 visit_f32 f32,
        deserialize_f64 visit_f64 f64,
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.text()?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(Error::Custom("expected a single character".into())),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.text()?.as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Some("null") => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            None | Some("") | Some("null") => visitor.visit_unit(),
            Some(_) => Err(Error::Custom("expected null".into())),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let text = self.text()?;
        if text.trim_start().starts_with(['{', '"']) {
            let mut de = serde_json::Deserializer::from_str(text);
            let value = de::Deserializer::deserialize_enum(&mut de, name, variants, visitor)
                .map_err(json_error)?;
            de.end().map_err(json_error)?;
            Ok(value)
        } else {
            visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(text))
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let text = self.text()?;
        if name == "Duration"
            && fields == ["secs", "nanos"]
            && !text.trim_start().starts_with(['{', '['])
        {
            let span = parse_span(text).map_err(Error::Custom)?;
            return visitor.visit_seq(de::value::SeqDeserializer::<_, Error>::new(
                [span.as_secs(), u64::from(span.subsec_nanos())].into_iter(),
            ));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let value = de::Deserializer::deserialize_struct(&mut de, name, fields, visitor)
            .map_err(json_error)?;
        de.end().map_err(json_error)?;
        Ok(value)
    }

    json! {
        deserialize_seq(),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(),
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// Parses a compact span: `1d2h`, `2m34.1s`, `250ms`, `1.5` (seconds).
fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty time span".into());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return std::time::Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let unit_len = rest[number_len..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - number_len);
        let number: f64 = rest[..number_len].parse().map_err(|_| {
            format!("cannot read time span {text:?} (expected e.g. 1d2h, 2m34.1s, 250ms)")
        })?;
        let unit = match &rest[number_len..number_len + unit_len] {
            "d" => 86_400.0,
            "h" => 3_600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" => 0.000_001,
            "ns" => 0.000_000_001,
            other => {
                return Err(format!(
                    "unknown time unit {other:?} in {text:?} (use d, h, m, s, ms, us, ns)"
                ));
            }
        };
        total += number * unit;
        rest = &rest[number_len + unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|e| e.to_string())
}

/// A deserializer that only records the field list it is asked for.
struct Probe<'a>(&'a RefCell<Option<Vec<&'static str>>>);

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Custom("not a struct".into()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        *self.0.borrow_mut() = Some(fields.to_vec());
        Err(Error::Custom("probed".into()))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        *self.0.borrow_mut() = Some(Vec::new());
        Err(Error::Custom("probed".into()))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn flags(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct HostPort {
        host: String,
        port: u16,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[allow(clippy::upper_case_acronyms)] // the original's level names
    enum Level {
        DEBUG,
        INFO,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Args {
        #[serde(default)]
        full_output: bool,
        debug_level: Option<Level>,
        server_address: Option<HostPort>,
        #[serde(default)]
        timeout: Duration,
    }

    #[test]
    fn flags_follow_the_rules() {
        let a: Args = from_fields(
            &flags(&[
                ("full-output", None),
                ("debug-level", Some("DEBUG")),
                (
                    "server-address",
                    Some(r#"{"host":"127.0.0.1","port":5051}"#),
                ),
                ("timeout", Some("1m30s")),
            ]),
            Source::Flag,
        )
        .unwrap();
        assert!(a.full_output);
        assert_eq!(a.debug_level, Some(Level::DEBUG));
        assert_eq!(a.server_address.unwrap().port, 5051);
        assert_eq!(a.timeout, Duration::from_secs(90));

        let a: Args = from_fields(&flags(&[("debug-level", Some("null"))]), Source::Flag).unwrap();
        assert_eq!(a.debug_level, None);
        assert!(!a.full_output);
        let _ = Level::INFO;
    }

    #[test]
    fn spans() {
        assert_eq!(parse_span("1d2h").unwrap(), Duration::from_secs(26 * 3600));
        assert_eq!(parse_span("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_span("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_span("3x").unwrap_err().contains("unknown time unit"));
    }

    #[test]
    fn maps_take_any_name_and_unit_takes_none() {
        let m: BTreeMap<String, i32> =
            from_fields(&flags(&[("a", Some("1"))]), Source::Query).unwrap();
        assert_eq!(m["a"], 1);
        from_fields::<()>(&[], Source::Flag).unwrap();
        let e = from_fields::<()>(&flags(&[("x", Some("1"))]), Source::Flag).unwrap_err();
        assert_eq!(e.to_string(), "unknown flag --x (expected none)");
    }

    #[test]
    fn duplicate_and_bare_string() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct S {
            name: String,
        }
        let e = from_fields::<S>(
            &flags(&[("name", Some("a")), ("name", Some("b"))]),
            Source::Query,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "name given twice");
        let e = from_fields::<S>(&flags(&[("name", None)]), Source::Flag).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--name: invalid value (no value): a value is required"
        );
    }
}
