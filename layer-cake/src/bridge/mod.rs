//! Bridges from outside queues into a spool.
//!
//! A bridge takes requests from a system that is not layer-cake, hands each
//! to a [spool](crate::spool) — the same spool, and so the same workers,
//! an HTTP front may serve — and writes each answer back the way that
//! system expects. It sits above the spool in the layering: it only asks the
//! spool's address, as any client does.
//!
//! - `redis` (cargo feature `redis`): a Redis stream read with a consumer
//!   group, answers pushed to `res:<ref>` lists (`docs/redis.md`).

#[cfg(feature = "redis")]
pub mod redis;
