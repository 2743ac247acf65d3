//! # layer-cake
//!
//! An async actor runtime with a hierarchical publish/subscribe directory.
//! Application code is written as small message-driven actors; the same code
//! runs as tasks in one process, as separate processes, or across the hosts of
//! a LAN.
//!
//! See `docs/tutorial.md` for a first project and
//! `docs/programming-model.md` for a guided tour.
//!
//! The modules, lowest layer first. A module uses those on its line and
//! above; a lower one reaches a higher one only through a trait it owns
//! (`process` finds `home` that way). The one exception: `message` names
//! `runtime::Address`, which the standard messages carry.
//!
//! - [`message`]: message types, their registry and codecs; [`log`]: the
//!   `--debug-level` log lines, their format and rolling files;
//! - [`runtime`]: actors, addresses, send/ask/reply, timers, supervision;
//! - [`net`]: links between processes and hosts, the HTTP front and client;
//! - [`directory`]: publish/subscribe by name and scope, the directory tree;
//! - [`spool`]: load-balancing requests over workers; [`secret`]: encrypted
//!   settings; [`process`]: a process's entry point, flags and child
//!   processes;
//! - [`home`]: roles, their settings, folders and histories, and group-cake;
//! - on top: [`gateway`] (JSON-RPC routing), [`async_requests`] (submit now,
//!   answer later) and [`bridge`] (outside queues into a spool).

#![forbid(unsafe_code)]

pub mod async_requests;
pub mod bridge;
pub mod directory;
pub mod gateway;
pub mod home;
pub mod log;
pub mod message;
pub mod net;
pub mod process;
pub mod runtime;
pub mod secret;
pub mod spool;

// Lets `#[derive(Message)]`, which names `::layer_cake`, work inside this crate too.
extern crate self as layer_cake;

pub use message::{
    Ack, FAULTY_EXIT, FaultKind, Faulted, Message, Nak, Payload, Restarted, Returned, Start, Stop,
};
pub use runtime::{Address, Cancellation, Context};

pub use net::HostPort;
pub use process::create;

/// Items the derive macros expand to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
}

/// The guides in `docs/`, whose examples run as doctests so they stay true.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../../README.md")]
    struct Readme;
    #[doc = include_str!("../../docs/programming-model.md")]
    struct ProgrammingModel;
    #[doc = include_str!("../../docs/messages.md")]
    struct Messages;
    #[doc = include_str!("../../docs/processes.md")]
    struct Processes;
    #[doc = include_str!("../../docs/logging.md")]
    struct Logging;
    #[doc = include_str!("../../docs/http.md")]
    struct Http;
    #[doc = include_str!("../../docs/wire-protocol.md")]
    struct WireProtocol;
    #[doc = include_str!("../../docs/directory.md")]
    struct Directory;
    #[doc = include_str!("../../docs/lan.md")]
    struct Lan;
    #[doc = include_str!("../../docs/spool.md")]
    struct Spool;
    #[doc = include_str!("../../docs/gateway.md")]
    struct Gateway;
    #[doc = include_str!("../../docs/home.md")]
    struct HomeGuide;
    #[doc = include_str!("../../docs/cli.md")]
    struct Cli;
    #[doc = include_str!("../../docs/tutorial.md")]
    struct Tutorial;
}
