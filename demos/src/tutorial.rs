//! The message of the tutorial's steps 3 and 4 (`docs/tutorial.md`),
//! shared by their servers and workers as a project's `src/lib.rs` would
//! share it.

use layer_cake::Message;
use serde::{Deserialize, Serialize};

/// The request: `/Greet?name=Ann` becomes `Greet { name: "Ann" }`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
pub struct Greet {
    /// Who to greet.
    pub name: String,
}
