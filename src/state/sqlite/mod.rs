//! [`SqliteState`]: the state store of one host, in `<[state] dir>/sievegate.db`.
//!
//! WAL journal mode lets the CLI read while the server writes (readers never block the
//! writer, nor it them); `synchronous = FULL` makes every commit durable before it returns,
//! which the quarantine needs (its index entry precedes the 250). A busy timeout covers the
//! short moments when two writers (the server and `quarantine release`) meet. The schema is
//! created or migrated on open and versioned with `PRAGMA user_version`.
//!
//! All SQLite SQL of sievegate lives in this module, split as the PostgreSQL store is:
//! this file opens the file and migrates it, `schema` holds the migrations, `rows` turns
//! rows into values and back, `store` is the [`StateStore`](super::StateStore) impl.

mod rows;
mod schema;
mod store;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub use schema::KNOWN_SCHEMA;
pub(in crate::state) use schema::MIGRATIONS;
use schema::SCHEMA_VERSION;

use super::StateError;

/// The database file's name inside `[state] dir`.
pub const DB_FILE: &str = "sievegate.db";

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite store. One connection behind a mutex: each call is a short transaction, and
/// SQLite serializes writers anyway.
pub struct SqliteState {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteState")
            .field("path", &self.path)
            .finish()
    }
}

pub(super) fn backend(operation: &'static str) -> impl Fn(rusqlite::Error) -> StateError {
    move |e| StateError::Backend {
        operation,
        message: e.to_string(),
    }
}

impl SqliteState {
    /// Opens `<dir>/sievegate.db`, creating the directory, the file and the schema as
    /// needed, and migrating an older schema.
    pub fn open(dir: &Path) -> Result<SqliteState, StateError> {
        let open_error = |path: &Path, message: String| StateError::Open {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_error(dir, e.to_string()))?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|e| open_error(&path, e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(&path, e.to_string()))?;
        // WAL is a property of the file, FULL and foreign keys of the connection.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_error(&path, format!("journal_mode: {e}")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_error(
                &path,
                format!("journal_mode is {mode}, not wal"),
            ));
        }
        // mmap: reads of a large index (listing 100 000 entries) copy pages from the
        // mapping instead of one read(2) per page; writes still go through the WAL.
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 268435456;",
        )
        .map_err(|e| open_error(&path, e.to_string()))?;
        let state = SqliteState {
            conn: Mutex::new(conn),
            path,
        };
        state.migrate()?;
        Ok(state)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file (after the migration at open: [`KNOWN_SCHEMA`]).
    pub fn schema_version(&self) -> Result<i64, StateError> {
        self.lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend("schema version"))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        // rusqlite rolls back an open transaction when it is dropped during a panic, so the
        // connection is usable after a poisoned lock.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the schema to [`SCHEMA_VERSION`] in one exclusive transaction (version read
    /// again inside it), so two processes opening a new file at once do not both create it.
    fn migrate(&self) -> Result<(), StateError> {
        let mut conn = self.lock();
        // The usual case, a current schema, needs no write lock: a reader (the CLI) must
        // open while the server holds a write transaction.
        let current: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend("migrate"))?;
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(backend("migrate"))?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend("migrate"))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::SchemaTooNew {
                path: self.path.display().to_string(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for step in &MIGRATIONS[version.max(0) as usize..] {
            tx.execute_batch(step).map_err(backend("migrate"))?;
        }
        if version < SCHEMA_VERSION {
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(backend("migrate"))?;
        }
        tx.commit().map_err(backend("migrate"))
    }
}
