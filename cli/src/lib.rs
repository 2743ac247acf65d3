//! The `layer-cake` command line, as a library so that its pieces can be
//! tested on their own: [`network`] walks a running directory tree and
//! prints it, [`ping`] times round trips to one node of it.
//!
//! Both are ordinary layer-cake actor code: a detached [`Context`] connects
//! to a directory node over the native transport, asks it
//! [`Inspect`](layer_cake::directory::Inspect), and asks each child address
//! from the answer in turn — those are remote addresses relayed by the
//! parent, so the walk goes down the tree hop by hop without connecting to
//! anything but the first node.
//!
//! [`Context`]: layer_cake::Context

#![forbid(unsafe_code)]

pub mod network;
pub mod ping;
pub mod roles;
pub mod run;
