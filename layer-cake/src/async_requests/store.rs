//! The durable store of async requests: one SQLite database in WAL mode
//! with `synchronous=FULL`, owned by one thread of its own.
//!
//! Every change is a job run on that thread. The thread takes every job
//! waiting (up to [`GROUP`]) and runs them in **one transaction**, commits
//! (an fsync of the WAL), and only then runs each job's completion — which
//! is where the service answers `201`. So an accepted request is on disk
//! before its caller hears of it, and concurrent submissions share one
//! fsync (group commit). The runtime's worker threads never wait on SQLite.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{AsyncError, Durability};

/// At most this many jobs share one transaction.
pub(crate) const GROUP: usize = 1024;

/// What runs after the commit, told whether the commit succeeded.
pub(crate) type Done = Box<dyn FnOnce(bool) + Send>;

/// A job: its SQL, run inside the group's transaction; it returns what
/// runs after the commit.
pub(crate) type Job = Box<dyn FnOnce(&Transaction<'_>) -> Done + Send>;

/// The store's handle: jobs go to its thread. Cloning shares the thread.
#[derive(Clone)]
pub(crate) struct Store {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// One request as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) seq: i64,
    pub(crate) model_id: String,
    pub(crate) deployment_id: String,
    pub(crate) priority: u8,
    pub(crate) input: String,
    pub(crate) webhook: Option<String>,
    pub(crate) max_queue_ms: i64,
    pub(crate) max_attempts: u32,
    pub(crate) initial_delay_ms: u64,
    pub(crate) max_delay_ms: u64,
    pub(crate) status: String,
    pub(crate) webhook_status: String,
    pub(crate) created_at: i64,
    pub(crate) status_at: i64,
    pub(crate) attempts: u32,
    pub(crate) errors: String,
    /// `SUCCEEDED` or `FAILED` once the worker's outcome is known and the
    /// webhook not yet delivered; cleared with the output after delivery.
    pub(crate) outcome: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) completed_at: Option<i64>,
}

const COLUMNS: &str = "id, seq, model_id, deployment_id, priority, input, webhook, max_queue_ms, \
     max_attempts, initial_delay_ms, max_delay_ms, status, webhook_status, created_at, status_at, \
     attempts, errors, outcome, output, completed_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        seq: r.get(1)?,
        model_id: r.get(2)?,
        deployment_id: r.get(3)?,
        priority: r.get(4)?,
        input: r.get(5)?,
        webhook: r.get(6)?,
        max_queue_ms: r.get(7)?,
        max_attempts: r.get(8)?,
        initial_delay_ms: r.get(9)?,
        max_delay_ms: r.get(10)?,
        status: r.get(11)?,
        webhook_status: r.get(12)?,
        created_at: r.get(13)?,
        status_at: r.get(14)?,
        attempts: r.get(15)?,
        errors: r.get(16)?,
        outcome: r.get(17)?,
        output: r.get(18)?,
        completed_at: r.get(19)?,
    })
}

/// Inserts a new request.
pub(crate) fn insert(tx: &Transaction<'_>, r: &Row) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO requests ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
    ))?
    .execute(params![
        r.id,
        r.seq,
        r.model_id,
        r.deployment_id,
        r.priority,
        r.input,
        r.webhook,
        r.max_queue_ms,
        r.max_attempts,
        r.initial_delay_ms as i64,
        r.max_delay_ms as i64,
        r.status,
        r.webhook_status,
        r.created_at,
        r.status_at,
        r.attempts,
        r.errors,
        r.outcome,
        r.output,
        r.completed_at,
    ])?;
    Ok(())
}

/// One request by id.
pub(crate) fn get(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<Row>> {
    tx.prepare_cached(&format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"))?
        .query_row([id], row)
        .optional()
}

/// A new attempt starts: `IN_PROGRESS`, one more attempt counted.
pub(crate) fn start_attempt(
    tx: &Transaction<'_>,
    id: &str,
    attempts: u32,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE requests SET status = 'IN_PROGRESS', attempts = ?2, status_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, attempts, now])?;
    Ok(())
}

/// The worker's outcome, kept until the webhook is delivered.
pub(crate) fn outcome(
    tx: &Transaction<'_>,
    id: &str,
    outcome: &str,
    output: Option<&str>,
    errors: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE requests SET outcome = ?2, output = ?3, errors = ?4 WHERE id = ?1")?
        .execute(params![id, outcome, output, errors])?;
    Ok(())
}

/// The request is done: its final status, the webhook's, and its errors;
/// the output is dropped (outputs are delivered, not stored).
pub(crate) fn finish(
    tx: &Transaction<'_>,
    id: &str,
    status: &str,
    webhook_status: &str,
    errors: &str,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE requests SET status = ?2, webhook_status = ?3, errors = ?4, status_at = ?5, \
         completed_at = ?5, outcome = NULL, output = NULL WHERE id = ?1",
    )?
    .execute(params![id, status, webhook_status, errors, now])?;
    Ok(())
}

/// Forgets the requests completed before `before` (ms since the epoch).
pub(crate) fn purge(tx: &Transaction<'_>, before: i64) -> rusqlite::Result<usize> {
    tx.prepare_cached("DELETE FROM requests WHERE completed_at IS NOT NULL AND completed_at < ?1")?
        .execute([before])
}

impl Store {
    /// Opens (or creates) the database at `path`, and returns the handle and
    /// every request not yet complete, oldest first.
    pub(crate) fn open(
        path: &Path,
        durability: Durability,
    ) -> Result<(Store, Vec<Row>), AsyncError> {
        let fail = |e: rusqlite::Error| AsyncError::Store {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut conn = Connection::open(path).map_err(fail)?;
        // WAL: readers never block the writer. FULL: every commit is
        // fsynced, so a 201 is never sent for a request a crash of the
        // machine can lose; NORMAL: the commit is in the OS's page cache,
        // safe from a crash of the process, not from one of the machine.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(AsyncError::Store {
                path: path.to_path_buf(),
                reason: format!("the database refused WAL mode (it is in {mode} mode)"),
            });
        }
        let synchronous = match durability {
            Durability::Fsync => "FULL",
            Durability::Process => "NORMAL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))
            .map_err(fail)?;
        conn.execute_batch(
            "PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS requests (
                 id TEXT PRIMARY KEY NOT NULL,
                 seq INTEGER NOT NULL,
                 model_id TEXT NOT NULL,
                 deployment_id TEXT NOT NULL,
                 priority INTEGER NOT NULL,
                 input TEXT NOT NULL,
                 webhook TEXT,
                 max_queue_ms INTEGER NOT NULL,
                 max_attempts INTEGER NOT NULL,
                 initial_delay_ms INTEGER NOT NULL,
                 max_delay_ms INTEGER NOT NULL,
                 status TEXT NOT NULL,
                 webhook_status TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 status_at INTEGER NOT NULL,
                 attempts INTEGER NOT NULL,
                 errors TEXT NOT NULL,
                 outcome TEXT,
                 output TEXT,
                 completed_at INTEGER);
             CREATE INDEX IF NOT EXISTS requests_completed ON requests (completed_at);",
        )
        .map_err(fail)?;
        let open = {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM requests WHERE completed_at IS NULL ORDER BY seq"
                ))
                .map_err(fail)?;
            statement
                .query_map([], row)
                .map_err(fail)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?
        };
        let (jobs, inbox) = mpsc::channel::<Job>();
        let name = format!("async-store:{}", path.display());
        std::thread::Builder::new()
            .name("async-store".into())
            .spawn(move || run(&mut conn, inbox, &name))
            .map_err(|e| AsyncError::Store {
                path: PathBuf::from(path),
                reason: format!("cannot start the store's thread: {e}"),
            })?;
        Ok((Store { jobs }, open))
    }

    /// Queues a job; false if the store's thread has ended.
    pub(crate) fn run(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

/// The store's thread: group commits until every handle is gone.
fn run(conn: &mut Connection, inbox: mpsc::Receiver<Job>, name: &str) {
    while let Ok(first) = inbox.recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP {
            match inbox.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!("{name}: cannot begin a transaction: {e}");
                for job in jobs {
                    // Nothing ran: tell each job it failed, without its SQL.
                    drop(job);
                }
                continue;
            }
        };
        let done: Vec<Done> = jobs.into_iter().map(|job| job(&tx)).collect();
        let committed = match tx.commit() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("{name}: commit failed: {e}");
                false
            }
        };
        for d in done {
            d(committed);
        }
    }
}
