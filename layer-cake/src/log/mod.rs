//! Logging: `tracing` events shown as layer-cake log lines on stderr.
//!
//! The runtime and applications log with the ordinary `tracing` macros. Every
//! layer-cake process accepts `--debug-level=LEVEL` and calls [`init`] with
//! it; the [`LogLayer`] it installs turns the events at that [`DebugLevel`]
//! and above into lines of the original library's shape:
//!
//! ```text
//! [00010778] 2026-11-22T12:22:57.057 ^ <0000000e>server[READY] - Published "x"
//! [pid     ] UTC time, milliseconds  tag actor id, name, [state] - text
//! ```
//!
//! With no level nothing is shown, and a disabled event costs a static
//! check: the subscriber's maximum level is `OFF`.
//!
//! # Levels and tags
//!
//! | `tracing` event | counts as | tag |
//! |---|---|---|
//! | `error!` | `FAULT` | `!` |
//! | `warn!` | `WARNING` | `?` |
//! | `info!` | `CONSOLE` | `^` |
//! | `debug!(target: "layer_cake::object", …)` (or a target below it) | `OBJECT` | the event's `tag` field: `+ X > < ( )`; default `<` |
//! | other `debug!` | `TRACE` | `~` |
//! | `trace!` | `DEBUG` | `_` |
//!
//! An event with a `tag` field shows that character whatever its level (see
//! [`tag`]); the level still comes from the table. `--debug-level=X` shows X
//! and every more severe level: `OBJECT` shows object, console, warning and
//! fault lines but not `TRACE` or `DEBUG` ones.
//!
//! # The actor part
//!
//! `<%08x id>Name[STATE]` names the actor a line is about. It comes from
//!
//! 1. the event's own fields `actor` (the id: an integer, printed as
//!    `%08x`), `name` and `state`, when it has an `actor` field; otherwise
//! 2. the nearest enclosing span named `actor` ([`ACTOR_SPAN`]) and its fields
//!    `id`, `name`, `state`. The runtime instruments each actor's task with
//!    `info_span!(target: "layer_cake::actor", "actor", id = 14u64, name = "server",
//!    state = tracing::field::Empty)` and records `state` as it changes. An
//!    event's own `name` or `state` field overrides the span's.
//!
//! `[STATE]` appears only when a state is set. With no actor at all the part
//! is left out: `… ^ - text`.
//!
//! # The text
//!
//! The event's message, then its other fields (all but `actor`, `name`,
//! `state`, `tag`) as ` (k=v,k2=v2)` in the order given, as the original's
//! `self.console('Upper', 'left', number=10, ratio=0.25)` gives
//! `Upper left (number=10,ratio=0.25)`. Strings print without quotes,
//! `?debug` values with `Debug`, floats with their point (`1.0`). Newlines in
//! the text are written as `\n`, so every line stays one line.
//!
//! ```
//! # use layer_cake::log::{DebugLevel, LogCapture, LogLayer};
//! # use tracing_subscriber::layer::SubscriberExt;
//! let capture = LogCapture::new();
//! let layer = LogLayer::new(Some(DebugLevel::CONSOLE), capture.clone());
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
//!     let span = tracing::info_span!("actor", id = 14u64, name = "server", state = "READY");
//!     span.in_scope(|| tracing::info!(topic = "x", "Published"));
//! });
//! assert!(capture.contents().ends_with(" ^ <0000000e>server[READY] - Published (topic=x)\n"));
//! ```

mod capture;
mod layer;
mod level;
pub mod rolling;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

pub use capture::{CaptureWriter, LogCapture};
pub use layer::LogLayer;
pub use level::{ACTOR_SPAN, ACTOR_TARGET, DebugLevel, OBJECT_TARGET, ParseDebugLevelError};

/// The tag characters, as `&str` so they can be passed straight as the
/// `tag` field: `tracing::debug!(target: OBJECT_TARGET, tag = tag::CREATED, …)`.
pub mod tag {
    /// `+` An actor was created (OBJECT).
    pub const CREATED: &str = "+";
    /// `X` An actor was destroyed (OBJECT).
    pub const DESTROYED: &str = "X";
    /// `>` A message was sent or forwarded (OBJECT).
    pub const SENT: &str = ">";
    /// `<` A message was received or dropped (OBJECT; the default there).
    pub const RECEIVED: &str = "<";
    /// `(` A process was started (OBJECT).
    pub const STARTED: &str = "(";
    /// `)` A process ended (OBJECT).
    pub const ENDED: &str = ")";
    /// `!` A fault (FAULT).
    pub const FAULT: &str = "!";
    /// `?` A warning (WARNING).
    pub const WARNING: &str = "?";
    /// `^` Console output (CONSOLE).
    pub const CONSOLE: &str = "^";
    /// `~` Trace (TRACE).
    pub const TRACE: &str = "~";
    /// `_` Debug (DEBUG).
    pub const DEBUG: &str = "_";
    /// `&` A sample (logged at TRACE: `debug!` outside the object target).
    pub const SAMPLE: &str = "&";
    /// `=` A check or test failure (logged at WARNING: `warn!`).
    pub const CHECK: &str = "=";
}

static INSTALLED: OnceLock<Option<DebugLevel>> = OnceLock::new();

/// Installs the process's global subscriber: a registry with a [`LogLayer`]
/// showing `level` and above on stderr (nothing for `None`).
///
/// Call it once, early, with the `--debug-level` flag's value. Returns
/// whether it installed the subscriber; a later call, or one after another
/// global subscriber was set, changes nothing and returns `false`.
///
/// The subscriber's maximum level is the level's (`OFF` for `None`), so
/// events that cannot be shown are rejected by a static check and a cached
/// callsite interest.
pub fn init(level: Option<DebugLevel>) -> bool {
    use tracing_subscriber::layer::SubscriberExt;

    if INSTALLED.get().is_some() {
        return false;
    }
    let subscriber = tracing_subscriber::registry().with(LogLayer::stderr(level));
    // Only one caller can ever succeed here.
    let installed = tracing::subscriber::set_global_default(subscriber).is_ok();
    if installed {
        let _ = INSTALLED.set(level);
    }
    installed
}

/// The level [`init`] installed, if it installed the subscriber (`Some(None)`:
/// installed with no level). A process passes it on to the processes it starts.
pub fn installed_level() -> Option<Option<DebugLevel>> {
    INSTALLED.get().copied()
}

/// Whether OBJECT lines (created, sent, received, …) are being shown. The
/// runtime asks before it formats anything for them, e.g. state names.
///
/// Costs a static level check, and, when that passes, a cached callsite
/// interest.
#[inline]
pub fn object_enabled() -> bool {
    tracing::enabled!(target: OBJECT_TARGET, tracing::Level::DEBUG)
}
