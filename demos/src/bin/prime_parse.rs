//! **prime_parse** — a worker of the prime demo's parse stage (issue 13).
//!
//! Publishes itself as `prime:parse:<uuid>`, finds the `prime:compute`
//! stage through the directory, and passes each good request's number on
//! to it; a bad request is answered 400 here, and the compute stage never
//! sees it. See `prime_server` and `docs/pipelines.md`.
//!
//! `--scope=LAN` publishes for a front on another host (HOST by default);
//! `--connect-to-directory=HOST:PORT` names another directory.

use layer_cake_demos::prime::{self, WorkerArgs};

fn main() {
    layer_cake::create(|cx, args: WorkerArgs| prime::parse_worker(cx, args.scope, "prime_parse"))
}
