//! What a node refused from whom: counted by kind, logged once per kind.
//!
//! A refusal is never a panic and never silent: the first of each kind is
//! a warning with its detail; the rest are counted (shown by `Inspect`) and
//! logged at debug level, so a hostile peer cannot flood the log.

use std::collections::BTreeMap;
use std::fmt::Display;

use super::super::Scope;

/// Refusals by kind.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    counts: BTreeMap<&'static str, u64>,
}

impl Refusals {
    /// Counts one refusal of `kind`, with `detail` for the log.
    pub(super) fn refuse(&mut self, level: Scope, kind: &'static str, detail: &dyn Display) {
        let count = self.counts.entry(kind).or_default();
        *count += 1;
        if *count == 1 {
            tracing::warn!(%level, "directory refused {kind}: {detail} (the next ones are counted)");
        } else {
            tracing::debug!(%level, "directory refused {kind}: {detail} ({count} so far)");
        }
    }

    /// Every kind refused so far, with its count.
    pub(super) fn counts(&self) -> Vec<(String, u64)> {
        self.counts
            .iter()
            .map(|(kind, count)| ((*kind).to_owned(), *count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_kind() {
        let mut r = Refusals::default();
        r.refuse(Scope::Host, "b", &"x");
        r.refuse(Scope::Host, "a", &"y");
        r.refuse(Scope::Host, "b", &"z");
        assert_eq!(r.counts(), vec![("a".into(), 1), ("b".into(), 2)]);
    }
}
