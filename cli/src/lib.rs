//! The `layer-cake` command line, as a library so that its pieces can be
//! tested on their own:
//!
//! - [`roles`]: the commands that make and change a home (`create`, `add`,
//!   `list`, `update`, `edit`, `delete`, `destroy`, `history`, `returned`),
//!   over [`layer_cake::home`];
//! - [`run`]: running it — `run`, `start`, `stop`, `status`, `log` — by
//!   starting group-cake, which supervises the roles
//!   ([`layer_cake::home::run_group`]);
//! - [`recycle`]: `restart`, a rolling restart of running roles;
//! - [`secrets`]: `secret-key`, `secret`, and the key `run` and `start`
//!   hand to group-cake (`docs/secrets.md`);
//! - [`service`]: systemd units for host-cake, lan-cake or a home;
//! - [`folders`]: the home's folders of files — `resource`, `model`,
//!   `script` — and [`image`], a portable `.tar.gz` of a home and every
//!   program it runs;
//! - [`network`] walks a running directory tree and prints it, [`ping`]
//!   times round trips to one node of it. Both are ordinary layer-cake actor
//!   code: a detached [`Context`] connects to a directory node over the
//!   native transport, asks it [`Inspect`](layer_cake::directory::Inspect),
//!   and then `Inspect` with the path to each child the answer names (where
//!   it connects from) — each node passes the inspection on to that child,
//!   so the walk goes down the tree hop by hop without the CLI ever holding
//!   an address of a node below the first.
//!
//! [`Context`]: layer_cake::Context

#![forbid(unsafe_code)]

pub mod folders;
pub mod image;
pub mod network;
pub mod ping;
pub mod recycle;
pub mod roles;
pub mod run;
pub mod secrets;
pub mod service;
