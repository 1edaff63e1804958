//! Adapters over one embedded SQLite file: the default backend outside AWS.
//!
//! One connection in WAL mode behind a mutex. Every operation is a few microseconds of local
//! I/O, so it runs inline instead of hopping to a blocking thread; the lock is never held across
//! an `.await`. `synchronous=NORMAL` in WAL mode survives a process crash (the case the
//! at-least-once guarantees are about); only an OS crash can lose the last transactions.
//!
//! Checkpoints (copying the WAL into the database file, with an fsync) run on a connection and
//! thread of their own every 250 ms instead of inside whichever commit crosses the WAL's size
//! threshold, so no request waits for a disk flush.

mod eventbus;
mod queue;
mod secrets;
mod store;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

pub use eventbus::EmbeddedEventBus;
pub use queue::{EmbeddedQueue, QueuePolicy};
pub use secrets::EmbeddedSecrets;
pub use store::EmbeddedStore;

use crate::ports::PortError;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    data TEXT,
    n INTEGER,
    version INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS queue_messages (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS queue_visible ON queue_messages (queue, visible_at);
CREATE INDEX IF NOT EXISTS queue_receipt ON queue_messages (receipt);

CREATE TABLE IF NOT EXISTS secrets (
    space TEXT NOT NULL,
    tenant TEXT NOT NULL,
    document TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (space, tenant)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS platform_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    detail_type TEXT NOT NULL,
    detail TEXT NOT NULL,
    published_at INTEGER NOT NULL
);
"#;

/// The embedded database shared by the four embedded adapters.
pub struct Database {
    conn: Mutex<Connection>,
    location: String,
    _checkpointer: Option<Checkpointer>,
}

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL size (pages of 4 KiB) beyond which a checkpoint waits for readers.
const WAL_RESTART_PAGES: i64 = 16_384;
/// The least time between two RESTART checkpoints.
const RESTART_EVERY: Duration = Duration::from_secs(10);

/// The background checkpoint thread of a file database; stopped when the database is dropped.
struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &str) -> Result<Checkpointer, PortError> {
        let conn = Connection::open(path).map_err(sqlite_error)?;
        // A RESTART waits this long for readers, holding writers meanwhile: short, so that no
        // request stalls behind it.
        conn.busy_timeout(Duration::from_millis(100)).map_err(sqlite_error)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut last_restart: Option<std::time::Instant> = None;
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(CHECKPOINT_EVERY);
                    // PASSIVE: copies what it can without waiting for (or blocking) anyone.
                    // Readers that never let it finish would grow the WAL without end: past
                    // `WAL_RESTART_PAGES` a RESTART checkpoint (at most every `RESTART_EVERY`)
                    // waits briefly for them so the WAL starts over.
                    let checkpoint = |mode: &str| {
                        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
                            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                        })
                    };
                    let restart_due = last_restart.is_none_or(|at| at.elapsed() >= RESTART_EVERY);
                    match checkpoint("PASSIVE") {
                        Ok((_, log, done)) if log > WAL_RESTART_PAGES && done < log && restart_due => {
                            last_restart = Some(std::time::Instant::now());
                            match checkpoint("RESTART") {
                                Ok((0, ..)) => {}
                                Ok(_) => {
                                    tracing::warn!(wal_pages = log, "WAL keeps growing: readers block its checkpoint")
                                }
                                Err(e) => tracing::warn!(error = %e, "WAL restart checkpoint failed; retrying"),
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
                    }
                }
            })
            .map_err(|e| PortError::Unavailable(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer { stop, thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("location", &self.location).finish()
    }
}

impl Database {
    /// Open (creating if needed) the database at `path`; `:memory:` gives a private in-memory one.
    pub fn open(path: &str) -> Result<Arc<Database>, PortError> {
        if path != ":memory:" {
            if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| PortError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        let conn = Connection::open(path).map_err(sqlite_error)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite_error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sqlite_error)?;
        conn.execute_batch(SCHEMA).map_err(sqlite_error)?;
        let checkpointer = if path == ":memory:" {
            None
        } else {
            let checkpointer = Checkpointer::start(path)?;
            conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(sqlite_error)?;
            Some(checkpointer)
        };
        Ok(Arc::new(Database { conn: Mutex::new(conn), location: path.to_string(), _checkpointer: checkpointer }))
    }

    pub fn in_memory() -> Arc<Database> {
        // Opening an in-memory database only fails if SQLite itself cannot allocate.
        Database::open(":memory:").expect("in-memory SQLite database")
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run a read on the connection (one statement is its own consistent snapshot; no
    /// transaction to begin and commit).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, PortError> {
        f(&self.lock()).map_err(sqlite_error)
    }

    /// Run `f` inside one IMMEDIATE transaction, committed if `f` returns Ok.
    fn transaction<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, TxError>) -> Result<T, PortError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sqlite_error)?;
        match f(&tx) {
            Ok(value) => {
                tx.commit().map_err(sqlite_error)?;
                Ok(value)
            }
            Err(TxError::Port(e)) => Err(e),
            Err(TxError::Sqlite(e)) => Err(sqlite_error(e)),
        }
    }

    /// Physically remove expired items (they are already invisible to reads).
    pub fn sweep_expired(&self, now_secs: i64) -> Result<usize, PortError> {
        self.lock()
            .execute("DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at <= ?1", [now_secs])
            .map_err(sqlite_error)
    }
}

/// Errors inside a transaction closure: a domain outcome that aborts it, or SQLite failing.
enum TxError {
    Port(PortError),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        TxError::Sqlite(e)
    }
}

impl From<PortError> for TxError {
    fn from(e: PortError) -> Self {
        TxError::Port(e)
    }
}

fn sqlite_error(e: rusqlite::Error) -> PortError {
    PortError::Unavailable(format!("sqlite: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With automatic checkpoints off, only the background thread moves the WAL into the
    /// database file: the file grows while nobody commits.
    #[test]
    fn the_wal_is_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.db");
        let db = Database::open(path.to_str().unwrap()).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        db.transaction(|tx| {
            let mut stmt = tx.prepare_cached("INSERT INTO items (pk, sk, data, version) VALUES (?1, ?2, ?3, 1)")?;
            for i in 0..2000 {
                stmt.execute(rusqlite::params!["P", format!("S{i:05}"), "x".repeat(200)])?;
            }
            Ok(())
        })
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&path).unwrap().len() <= before + 200_000 {
            assert!(std::time::Instant::now() < deadline, "no checkpoint within 5 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(db); // stops and joins the thread
    }
}
