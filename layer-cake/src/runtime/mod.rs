//! The actor runtime (PLACEHOLDER while the runtime lands).
mod address;
pub use address::Address;
