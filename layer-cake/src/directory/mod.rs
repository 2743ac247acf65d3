//! The publish/subscribe directory (being built): scopes, listings,
//! matching, sessions, and the node logic every level shares.

pub mod lan;
