//! Processes: the entry point that makes a binary a layer-cake process.
//!
//! ```no_run
//! use layer_cake::{Context, Faulted};
//!
//! #[derive(serde::Deserialize)]
//! struct Xy {
//!     x: i64,
//!     y: i64,
//! }
//!
//! async fn area(_cx: Context, xy: Xy) -> Result<i64, Faulted> {
//!     Ok(xy.x * xy.y)
//! }
//!
//! fn main() {
//!     layer_cake::create(area) // area --x=2 --y=3  prints 6
//! }
//! ```
//!
//! [`create`] reads the command line: the standard flags every process
//! accepts ([`ProcessConfig`], read back with [`config`]), then the main
//! actor's own arguments, decoded by [`message::text`](crate::message::text)
//! against the actor's argument type. It runs the main actor, turns SIGINT
//! and SIGTERM into [`Stop`](crate::Stop), prints the result as JSON and
//! exits with a status that says how it went:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | the main actor returned a value (or `--help`) |
//! | 2 ([`EXIT_USAGE`]) | a bad command line |
//! | 71, or the fault's own | the main actor returned a [`Faulted`](crate::Faulted) (an `Aborted` after a signal included) |
//! | 70 ([`EXIT_SOFTWARE`]) | the program's fault: no runtime, an unencodable result, argument names clashing with standard flags |
//! | 74 ([`EXIT_IO`]) | the result could not be written |
//! | 78 ([`EXIT_CONFIG`]) | started as a role of a home that has no such role, or whose role is already running; a secret setting without its key, or that does not open (`docs/secrets.md`) |
//!
//! With `--max-requests=N`, or at SIGUSR1, the main actor **retires**: its
//! publications are withdrawn, it answers what it holds and is stopped, and
//! the process exits 0 with [`Retired`] (see `docs/processes.md`, "Worker
//! recycling").
//!
//! [`Context::spawn_process`](crate::Context::spawn_process) runs another
//! executable as a child process ([`ProcessOptions`]): its main actor is
//! reachable through the proxy address it returns, and its result comes back
//! as [`Returned`](crate::Returned).
//!
//! [`resource_path`], [`model_path`] and [`tmp_path`] are the folders a
//! process keeps its files in: a role's folders in its home, else
//! `--resource-path`, `--model-path` (or the current folder) and a fresh
//! temporary folder (see `docs/home.md`).
//!
//! See `docs/processes.md` for the whole story.

mod args;
mod child;
mod config;
mod entry;
mod folders;
mod retire;
mod secrets;
#[cfg(test)]
mod tests;

pub use child::{
    ChildReady, ChildRetiring, DEFAULT_STDERR_LINES, DEFAULT_STOP_GRACE, LIFELINE_GRACE,
    ProcessOptions, Retiring, find_program, is_executable,
};
pub use config::{DEFAULT_DRAIN, Origin, ProcessConfig, config};
pub use entry::{EXIT_CONFIG, EXIT_IO, EXIT_SOFTWARE, EXIT_USAGE, create, run};
pub(crate) use entry::{RoleKeeper, TakenRole, sub_role_name};
pub(crate) use folders::RoleFolders;
pub use folders::{model_path, resource_path, tmp_path};
pub use retire::{MAX_REQUESTS, RETIRE_QUIET, Retired};
pub(crate) use secrets::key as secret_key;

/// Identifies this start of this process; see
/// [`runtime::incarnation`](crate::runtime::incarnation), where it lives
/// (the runtime and the network need it, and sit below processes).
pub use crate::runtime::incarnation;
