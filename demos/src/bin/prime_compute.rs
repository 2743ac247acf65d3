//! **prime_compute** — a worker of the prime demo's compute stage (issue 13).
//!
//! Publishes itself as `prime:compute:<uuid>` and answers each number with
//! `200` and the number when it is prime, `18446744073709551615` when it is
//! not (trial division, as the original). The answer goes straight to the
//! HTTP session that asked (the request's ingress). See `prime_server` and
//! `docs/pipelines.md`.
//!
//! `--scope=LAN` publishes for a front on another host (HOST by default);
//! `--connect-to-directory=HOST:PORT` names another directory.

use layer_cake_demos::prime::{self, WorkerArgs};

fn main() {
    layer_cake::create(|cx, args: WorkerArgs| {
        prime::compute_worker(cx, args.scope, "prime_compute")
    })
}
