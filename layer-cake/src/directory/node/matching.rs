//! Matching: a subscription's pattern compiled within bounds, and which
//! subscriptions a name matches. Pure functions and a small cache; the node
//! holds the listings.
//!
//! A pattern is matched against whole names (`^(?:pattern)$`). Everything a
//! peer can make a node compile or hold is bounded by the limits below; they
//! are also listed in `docs/directory.md`.

use std::collections::HashMap;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

/// The longest subscription pattern, in bytes. A longer one is refused with
/// `NotSubscribed` at the process node (and not listed by a node above when
/// a link sends one).
pub const MAX_PATTERN_LEN: usize = 1024;

/// The longest publication name, in bytes; a longer one is refused with
/// `NotPublished`.
pub const MAX_NAME_LEN: usize = 1024;

/// The largest compiled form of one pattern, in bytes
/// ([`RegexBuilder::size_limit`]): a short pattern such as `(?:a{1000}){1000}`
/// that would compile to something huge is refused instead.
pub const MAX_COMPILED_PATTERN: usize = 256 * 1024;

/// The most memory one pattern's lazy DFA may use while matching, in bytes
/// ([`RegexBuilder::dfa_size_limit`]).
pub const MAX_PATTERN_DFA: usize = 1024 * 1024;

/// The most subscriptions one actor may hold at its process node.
pub const MAX_SUBSCRIPTIONS_PER_ACTOR: usize = 1000;

/// The most publications one actor may hold at its process node.
pub const MAX_PUBLICATIONS_PER_ACTOR: usize = 1000;

/// The most subscriptions one link may hold at a node above the process:
/// everything a child directory passed up, for all the processes below it.
pub const MAX_SUBSCRIPTIONS_PER_LINK: usize = 10_000;

/// The most publications one link may hold at a node above the process.
pub const MAX_PUBLICATIONS_PER_LINK: usize = 10_000;

/// How many compiled patterns a node keeps for reuse, by pattern text, so
/// that the same pattern listed by many subscribers is compiled once.
pub const PATTERN_CACHE: usize = 1024;

/// Whether `name` can be published: not empty and not too long.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a name of {} bytes (the limit is {MAX_NAME_LEN})",
            name.len()
        ));
    }
    Ok(())
}

/// Compiles `pattern` to match whole names, within the size limits.
pub(super) fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "a pattern of {} bytes (the limit is {MAX_PATTERN_LEN})",
            pattern.len()
        ));
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(MAX_COMPILED_PATTERN)
        .dfa_size_limit(MAX_PATTERN_DFA)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("the pattern compiles to more than {limit} bytes")
            }
            other => format!("not a regular expression: {other}"),
        })
}

/// Compiled patterns by text, at most [`PATTERN_CACHE`] of them.
#[derive(Default)]
pub(super) struct Patterns {
    compiled: HashMap<String, Arc<Regex>>,
}

impl Patterns {
    /// `pattern` compiled (once while it stays in use or cached).
    pub(super) fn get(&mut self, pattern: &str) -> Result<Arc<Regex>, String> {
        if let Some(regex) = self.compiled.get(pattern) {
            return Ok(regex.clone());
        }
        let regex = Arc::new(compile(pattern)?);
        if self.compiled.len() >= PATTERN_CACHE {
            // Forget the patterns no subscription uses any more.
            self.compiled.retain(|_, r| Arc::strong_count(r) > 1);
        }
        if self.compiled.len() < PATTERN_CACHE {
            self.compiled.insert(pattern.to_owned(), regex.clone());
        }
        Ok(regex)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.compiled.len()
    }
}

/// The items whose pattern matches `name`, in the order given.
pub(super) fn matching<'a, T: 'a>(
    name: &str,
    subscriptions: impl IntoIterator<Item = (&'a Regex, T)>,
) -> Vec<T> {
    subscriptions
        .into_iter()
        .filter(|(regex, _)| regex.is_match(name))
        .map(|(_, item)| item)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_whole_names_only() {
        let r = compile("worker:[0-9]+").unwrap();
        assert!(r.is_match("worker:12"));
        assert!(!r.is_match("xworker:12"));
        assert!(!r.is_match("worker:12x"));
        // Alternation is grouped, not split by the anchors.
        let r = compile("a|b").unwrap();
        assert!(r.is_match("b"));
        assert!(!r.is_match("ab"));
    }

    #[test]
    fn bad_long_and_huge_patterns_are_refused_with_a_reason() {
        let bad = compile("(unclosed").unwrap_err();
        assert!(bad.starts_with("not a regular expression"), "{bad}");
        let long = compile(&"a".repeat(MAX_PATTERN_LEN + 1)).unwrap_err();
        assert_eq!(
            long,
            format!(
                "a pattern of {} bytes (the limit is {MAX_PATTERN_LEN})",
                MAX_PATTERN_LEN + 1
            )
        );
        assert!(compile(&"a".repeat(MAX_PATTERN_LEN)).is_ok());
        // Short, but it would compile to megabytes.
        let huge = compile("(?:[a-z]{1000}){1000}").unwrap_err();
        assert!(huge.contains("compiles to more than"), "{huge}");
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(check_name("").unwrap_err(), "an empty name");
        assert!(check_name(&"n".repeat(MAX_NAME_LEN)).is_ok());
        assert!(check_name(&"n".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn the_cache_compiles_a_pattern_once_and_stays_bounded() {
        let mut patterns = Patterns::default();
        let a = patterns.get("x+").unwrap();
        let b = patterns.get("x+").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut held = Vec::new();
        for i in 0..PATTERN_CACHE + 10 {
            held.push(patterns.get(&format!("p{i}")).unwrap());
        }
        assert!(patterns.len() <= PATTERN_CACHE);
        // Patterns nobody holds make room.
        held.clear();
        drop((a, b));
        patterns.get("fresh").unwrap();
        assert!(patterns.len() < PATTERN_CACHE);
        assert!(patterns.get("(").is_err());
    }

    #[test]
    fn matching_keeps_the_order_and_only_matches() {
        let a = compile("svc:.*").unwrap();
        let b = compile("other").unwrap();
        let c = compile("svc:1").unwrap();
        let found = matching("svc:1", [(&a, 1), (&b, 2), (&c, 3)]);
        assert_eq!(found, vec![1, 3]);
        assert!(matching("none", [(&a, 1)]).is_empty());
    }
}
