//! The W3C `tracestate`: vendor entries that travel beside a `traceparent`.

use std::fmt;
use std::sync::Arc;

/// A valid W3C `tracestate` list: 1 to [`TraceState::MAX_MEMBERS`]
/// `key=value` members, each key once, as the spec's grammar allows them.
///
/// A request's trace state travels in its [`Meta`](super::Meta) with the
/// trace context — across actors, over links to other processes and hosts,
/// and on outgoing HTTP calls — unchanged: layer-cake adds no entry of its
/// own. A list that breaks any rule is discarded whole (the spec's strict
/// reading, which the W3C test harness checks), never repaired.
///
/// ```
/// use layer_cake::runtime::TraceState;
///
/// // Several headers are one list, in order; blanks around members go.
/// let state = TraceState::from_headers(["foo=1 ,\tbar=2", "", "baz=3"]).unwrap().unwrap();
/// assert_eq!(state.as_str(), "foo=1,bar=2,baz=3");
/// assert_eq!(state.get("bar"), Some("2"));
/// // No members at all is no trace state.
/// assert_eq!(TraceState::from_headers([" , "]).unwrap(), None);
/// // A key given twice makes the whole list invalid.
/// assert!(TraceState::from_headers(["foo=1", "foo=2"]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceState(Arc<str>);

/// A `tracestate` that breaks the W3C rules; the reason names the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tracestate: {0}")]
pub struct TraceStateError(pub String);

impl TraceState {
    /// The most members a list may have (the spec's limit).
    pub const MAX_MEMBERS: usize = 32;

    /// The longest list text: [`Self::MAX_MEMBERS`] members of the longest
    /// key (256) and value (256), with their `=` and `,`. Longer text cannot
    /// be a valid list, so a peer sending it is refused before parsing.
    pub const MAX_LEN: usize = Self::MAX_MEMBERS * (256 + 1 + 256 + 1);

    /// The trace state of a request from the values of its `tracestate`
    /// headers, in order (several headers are one comma-separated list).
    /// `Ok(None)` when they hold no member.
    pub fn from_headers<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<TraceState>, TraceStateError> {
        let mut members: Vec<(&str, &str)> = Vec::new();
        let mut length = 0_usize;
        for value in values {
            length += value.len();
            if length > Self::MAX_LEN {
                return Err(TraceStateError(format!(
                    "longer than {} bytes",
                    Self::MAX_LEN
                )));
            }
            for member in value.split(',') {
                let member = member.trim_matches([' ', '\t']);
                if member.is_empty() {
                    continue;
                }
                let (key, val) = parse_member(member)?;
                if members.iter().any(|(k, _)| *k == key) {
                    return Err(TraceStateError(format!("the key {key:?} is given twice")));
                }
                members.push((key, val));
                if members.len() > Self::MAX_MEMBERS {
                    return Err(TraceStateError(format!(
                        "more than {} members",
                        Self::MAX_MEMBERS
                    )));
                }
            }
        }
        if members.is_empty() {
            return Ok(None);
        }
        let mut text = String::with_capacity(length);
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(key);
            text.push('=');
            text.push_str(value);
        }
        Ok(Some(TraceState(text.into())))
    }

    /// The list as one header value: `key=value` members joined by `,`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value of `key`, if the list has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .split(',')
            .filter_map(|m| m.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TraceState {
    type Err = TraceStateError;

    /// One header's value; an empty list is an error here.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceState::from_headers([s])?.ok_or_else(|| TraceStateError("no members".into()))
    }
}

/// `key=value`, already trimmed, checked against the grammar.
fn parse_member(member: &str) -> Result<(&str, &str), TraceStateError> {
    let bad = |why: &str| TraceStateError(format!("{member:?}: {why}"));
    let (key, value) = member.split_once('=').ok_or_else(|| bad("no \"=\""))?;
    if !valid_key(key) {
        return Err(bad("the key breaks the grammar"));
    }
    // value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr;
    // nblk-chr = %x21-2B / %x2D-3C / %x3E-7E (no "," and no "=").
    let nblk = |b: u8| matches!(b, 0x21..=0x2B | 0x2D..=0x3C | 0x3E..=0x7E);
    let ok = !value.is_empty()
        && value.len() <= 256
        && value.bytes().all(|b| b == b' ' || nblk(b))
        && value.bytes().last().is_some_and(nblk);
    if !ok {
        return Err(bad("the value breaks the grammar"));
    }
    Ok((key, value))
}

/// `lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`, or
/// `tenant@system` with a tenant of 1-241 (starting with a letter or digit)
/// and a system of 1-14 (starting with a letter).
fn valid_key(key: &str) -> bool {
    let rest = |b: u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/');
    let part = |text: &str, max: usize, first: fn(u8) -> bool| {
        let bytes = text.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= max
            && first(bytes[0])
            && bytes[1..].iter().all(|b| rest(*b))
    };
    match key.split_once('@') {
        None => part(key, 256, |b| b.is_ascii_lowercase()),
        Some((tenant, system)) => {
            part(tenant, 241, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit()
            }) && part(system, 14, |b| b.is_ascii_lowercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(headers: &[&str]) -> Option<String> {
        TraceState::from_headers(headers.iter().copied())
            .ok()
            .flatten()
            .map(|s| s.as_str().to_string())
    }

    #[test]
    fn valid_lists_are_kept_in_order() {
        assert_eq!(
            parse(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]).as_deref(),
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3")
        );
        assert_eq!(
            parse(&["foo=1\t \t,\t \tbar=2,\t \tbaz=3"]).as_deref(),
            Some("foo=1,bar=2,baz=3")
        );
        assert_eq!(parse(&["", "foo=1"]).as_deref(), Some("foo=1"));
        assert_eq!(parse(&[""]), None);
        // Every character the grammar allows.
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let value: String = (0x20u8..=0x7e)
            .filter(|b| *b != b',' && *b != b'=')
            .map(char::from)
            .collect();
        let member = format!("{key}={value}");
        assert_eq!(parse(&[&member]).as_deref(), Some(member.as_str()));
        let vendor = format!("{key}@a-z0-9_-*/={value}");
        assert_eq!(parse(&[&vendor]).as_deref(), Some(vendor.as_str()));
    }

    #[test]
    fn invalid_lists_are_discarded_whole() {
        for headers in [
            &["foo=1,foo=1"][..],
            &["foo=1", "foo=2"],
            &["foo =1"],
            &["FOO=1"],
            &["foo.bar=1"],
            &["foo@=1,bar=2"],
            &["@foo=1,bar=2"],
            &["foo@@bar=1,bar=2"],
            &["foo@bar@baz=1,bar=2"],
            &["foo=bar=baz"],
            &["foo=,bar=3"],
            &["foo"],
        ] {
            assert_eq!(parse(headers), None, "{headers:?}");
            assert!(TraceState::from_headers(headers.iter().copied()).is_err());
        }
    }

    #[test]
    fn limits_are_the_specs() {
        let members = |n: usize| {
            (1..=n)
                .map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(parse(&[&members(32)]).is_some());
        assert_eq!(parse(&[&members(33)]), None);
        let key = |n: usize| format!("{}=1", "z".repeat(n));
        assert!(parse(&["foo=1", &key(256)]).is_some());
        assert_eq!(parse(&["foo=1", &key(257)]), None);
        let tenant = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
        assert!(parse(&["foo=1", &tenant]).is_some());
        assert_eq!(parse(&["foo=1", &format!("{}@v=1", "t".repeat(242))]), None);
        assert_eq!(parse(&["foo=1", &format!("t@{}=1", "v".repeat(15))]), None);
        // Text past the longest valid list is refused without parsing it.
        let long = "a=b,".repeat(TraceState::MAX_LEN / 4 + 1);
        assert!(TraceState::from_headers([long.as_str()]).is_err());
    }
}
