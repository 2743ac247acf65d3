//! A role's start/stop/return history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many runs a role remembers.
pub(crate) const KEPT: usize = 16;

/// One run of a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartStop {
    /// When it started.
    pub start: DateTime<Utc>,
    /// Its process id.
    pub pid: u32,
    /// When it ended; `None` while it runs (or if whoever ran it died first).
    pub stop: Option<DateTime<Utc>>,
    /// What it returned, as the typed JSON envelope
    /// `{"value":["<signature>",value,[]]}`; `None` while it runs.
    pub returned: Option<serde_json::Value>,
}

impl StartStop {
    /// The signature of the returned value (`Faulted`, `vector<float8>` …),
    /// if there is one.
    pub fn returned_type(&self) -> Option<&str> {
        self.returned.as_ref()?.get("value")?.get(0)?.as_str()
    }
}
