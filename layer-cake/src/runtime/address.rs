//! PLACEHOLDER address.
use serde::{Deserialize, Serialize};
/// The address of an actor (placeholder).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address(u64);
