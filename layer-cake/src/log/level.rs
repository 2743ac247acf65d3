//! [`DebugLevel`]: the `--debug-level` flag's values and the mapping from
//! `tracing` levels and targets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing::Level;

/// The target the runtime's per-actor lines (created, sent, received, …) are
/// logged under, at `tracing` level `DEBUG`. Such events count as
/// [`DebugLevel::OBJECT`]; so do `DEBUG` events of any target below it
/// (`layer_cake::object::…`).
pub const OBJECT_TARGET: &str = "layer_cake::object";

/// The target of the span the runtime wraps each actor's task in.
pub const ACTOR_TARGET: &str = "layer_cake::actor";

/// The name of the span that carries an actor's identity (fields `id`,
/// `name`, `state`). Any span with this name counts, whatever its target.
pub const ACTOR_SPAN: &str = "actor";

/// How much a layer-cake process logs: the value of its `--debug-level` flag.
///
/// `--debug-level=X` shows the lines of level `X` and of every more severe
/// level (the derived [`Ord`] follows the numbers, so `level >= X`). With no
/// flag, nothing is shown.
///
/// The variant names are the flag values, spelled as the original library
/// spells them; [`FromStr`], [`fmt::Display`] and serde all use them.
///
/// ```
/// use layer_cake::log::DebugLevel;
///
/// let level: DebugLevel = "OBJECT".parse().unwrap();
/// assert_eq!(level, DebugLevel::OBJECT);
/// assert!(DebugLevel::CONSOLE >= level && DebugLevel::TRACE < level);
/// assert_eq!(level.to_string(), "OBJECT");
/// ```
#[allow(clippy::upper_case_acronyms)] // The names are the flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum DebugLevel {
    /// Everything, down to `tracing::trace!` (tag `_`).
    DEBUG = 1,
    /// Internal tracing: `tracing::debug!` outside the object target (tag `~`).
    TRACE = 2,
    /// The per-actor lines: created, sent, received, destroyed (tags `+ X > < ( )`).
    OBJECT = 3,
    /// Application output: `tracing::info!` (tag `^`).
    CONSOLE = 4,
    /// Warnings: `tracing::warn!` (tag `?`).
    WARNING = 5,
    /// Faults: `tracing::error!` (tag `!`).
    FAULT = 6,
}

impl DebugLevel {
    /// Every level, least severe first.
    pub const ALL: [DebugLevel; 6] = [
        DebugLevel::DEBUG,
        DebugLevel::TRACE,
        DebugLevel::OBJECT,
        DebugLevel::CONSOLE,
        DebugLevel::WARNING,
        DebugLevel::FAULT,
    ];

    /// The flag value, e.g. `"CONSOLE"`.
    pub const fn name(self) -> &'static str {
        match self {
            DebugLevel::DEBUG => "DEBUG",
            DebugLevel::TRACE => "TRACE",
            DebugLevel::OBJECT => "OBJECT",
            DebugLevel::CONSOLE => "CONSOLE",
            DebugLevel::WARNING => "WARNING",
            DebugLevel::FAULT => "FAULT",
        }
    }

    /// The original library's number for the level (`DEBUG` = 1 … `FAULT` = 6).
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// The level a `tracing` event of `level` and `target` counts as.
    ///
    /// | tracing | target | level |
    /// |---|---|---|
    /// | `ERROR` | any | `FAULT` |
    /// | `WARN` | any | `WARNING` |
    /// | `INFO` | any | `CONSOLE` |
    /// | `DEBUG` | [`OBJECT_TARGET`] or below it | `OBJECT` |
    /// | `DEBUG` | any other | `TRACE` |
    /// | `TRACE` | any | `DEBUG` |
    pub fn of(level: &Level, target: &str) -> DebugLevel {
        match *level {
            Level::ERROR => DebugLevel::FAULT,
            Level::WARN => DebugLevel::WARNING,
            Level::INFO => DebugLevel::CONSOLE,
            Level::DEBUG if is_object_target(target) => DebugLevel::OBJECT,
            Level::DEBUG => DebugLevel::TRACE,
            Level::TRACE => DebugLevel::DEBUG,
        }
    }

    /// The tag character a line of this level carries when its event has no
    /// `tag` field: `_ ~ < ^ ? !` from `DEBUG` to `FAULT`.
    pub const fn default_tag(self) -> char {
        match self {
            DebugLevel::DEBUG => '_',
            DebugLevel::TRACE => '~',
            DebugLevel::OBJECT => '<',
            DebugLevel::CONSOLE => '^',
            DebugLevel::WARNING => '?',
            DebugLevel::FAULT => '!',
        }
    }

    /// The most verbose `tracing` level that can produce a line at this
    /// debug level (events of other targets may still be filtered out).
    pub(crate) const fn tracing_level(self) -> Level {
        match self {
            DebugLevel::DEBUG => Level::TRACE,
            DebugLevel::TRACE | DebugLevel::OBJECT => Level::DEBUG,
            DebugLevel::CONSOLE => Level::INFO,
            DebugLevel::WARNING => Level::WARN,
            DebugLevel::FAULT => Level::ERROR,
        }
    }
}

/// Whether `target` is [`OBJECT_TARGET`] or a module path below it
/// (`layer_cake::object::spool`), but not a sibling such as
/// `layer_cake::objects`.
pub(crate) fn is_object_target(target: &str) -> bool {
    match target.strip_prefix(OBJECT_TARGET) {
        Some(rest) => rest.is_empty() || rest.starts_with("::"),
        None => false,
    }
}

impl fmt::Display for DebugLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error from parsing a [`DebugLevel`]: the text was not a level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown debug level {0:?}; expected one of DEBUG, TRACE, OBJECT, CONSOLE, WARNING, FAULT")]
pub struct ParseDebugLevelError(pub String);

impl FromStr for DebugLevel {
    type Err = ParseDebugLevelError;

    /// Parses a level name. Case is ignored (`console` is `CONSOLE`), as a
    /// convenience on the command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DebugLevel::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseDebugLevelError(s.to_owned()))
    }
}

impl From<DebugLevel> for u8 {
    fn from(level: DebugLevel) -> u8 {
        level.value()
    }
}
