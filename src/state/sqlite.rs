//! [`SqliteState`]: the state store of one host, in `<[state] dir>/sievegate.db`.
//!
//! WAL journal mode lets the CLI read while the server writes (readers never block the
//! writer, nor it them); `synchronous = FULL` makes every commit durable before it returns,
//! which the quarantine needs (its index entry precedes the 250). A busy timeout covers the
//! short moments when two writers (the server and `quarantine release`) meet. The schema is
//! created or migrated on open and versioned with `PRAGMA user_version`.
//!
//! All SQL of sievegate lives in this file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{
    from_micros, rate_allows, to_micros, Expired, QuarantineEntry, QuarantineFilter, QueuedMail,
    RateDecision, RcptRelease, RedirectOwner, StateError, StateSizes, StateStore,
};

/// The database file's name inside `[state] dir`.
pub const DB_FILE: &str = "sievegate.db";

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema version this build creates; each step of [`MIGRATIONS`] raises it by one.
const SCHEMA_VERSION: i64 = 5;

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE quarantine (
    id           TEXT PRIMARY KEY NOT NULL,
    received_at  INTEGER NOT NULL,          -- microseconds since the epoch
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,             -- as given, one per line
    resolved     TEXT NOT NULL,             -- as resolved, one per line
    client_ip    TEXT,
    client_helo  TEXT,
    queue_id     TEXT,
    verdict      TEXT NOT NULL,
    virustest    INTEGER NOT NULL,
    viruses      TEXT NOT NULL,             -- one per line
    message_id   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    from_header  TEXT NOT NULL,
    size         INTEGER NOT NULL,
    backscatter  INTEGER NOT NULL,
    released_at  INTEGER,
    released_by  TEXT
);
-- Listing is by arrival; --since and the retention purge are range scans on it.
CREATE INDEX quarantine_received ON quarantine (received_at, id);
-- --rcpt: one row per address (given and resolved), lowercased, for an index lookup.
CREATE TABLE quarantine_rcpt (
    address  TEXT NOT NULL,
    entry    TEXT NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    PRIMARY KEY (address, entry)
) WITHOUT ROWID;
CREATE INDEX quarantine_rcpt_entry ON quarantine_rcpt (entry);
CREATE TABLE cache (
    key      TEXT PRIMARY KEY NOT NULL,
    value    TEXT NOT NULL,
    expires  INTEGER NOT NULL
);
CREATE TABLE rate (
    key           TEXT PRIMARY KEY NOT NULL,
    last_allowed  INTEGER NOT NULL,
    suppressed    INTEGER NOT NULL
);
CREATE TABLE outbound_queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    sender        TEXT NOT NULL,
    recipients    TEXT NOT NULL,            -- one per line
    message       BLOB NOT NULL,
    attempts      INTEGER NOT NULL,
    next_attempt  INTEGER NOT NULL,
    last_error    TEXT
);
CREATE INDEX outbound_queue_due ON outbound_queue (next_attempt, id);
"#,
    r#"
-- Release is per recipient: each held recipient once (issue 14).
CREATE TABLE quarantine_release (
    entry        TEXT NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    rcpt         TEXT NOT NULL,             -- as given in RCPT TO
    released_at  INTEGER NOT NULL,
    released_by  TEXT NOT NULL,
    PRIMARY KEY (entry, rcpt)
) WITHOUT ROWID;
-- The periodic expiry deletes by these (range scans, not a table scan per pass).
CREATE INDEX cache_expires ON cache (expires);
CREATE INDEX rate_last_allowed ON rate (last_allowed);
"#,
    // 2 → 3: a queued Sieve redirect records whose it is, for the failure keep. Existing rows
    // are our own mail (notices, reports, vacation): NULL, as for new ones of those kinds.
    r#"
ALTER TABLE outbound_queue ADD COLUMN redirect_for TEXT;
ALTER TABLE outbound_queue ADD COLUMN redirect_inbox_copy INTEGER NOT NULL DEFAULT 0;
"#,
    // 3 → 4: the sender leases the rows it sends (queue_claim); 0 = not leased.
    r#"
ALTER TABLE outbound_queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
"#,
    // 4 → 5: which entries each recipient's quarantine digest listed (issue 17); the rows
    // go with their entry.
    r#"
CREATE TABLE digest_listed (
    rcpt       TEXT NOT NULL,               -- resolved, lowercased
    entry      TEXT NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
    listed_at  INTEGER NOT NULL,
    PRIMARY KEY (rcpt, entry)
) WITHOUT ROWID;
CREATE INDEX digest_listed_entry ON digest_listed (entry);
"#,
];

/// The schema version of this build (for `sievegate state status`).
pub const KNOWN_SCHEMA: i64 = SCHEMA_VERSION;

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

fn backend(operation: &'static str) -> impl Fn(rusqlite::Error) -> StateError {
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

    fn lock(&self) -> MutexGuard<'_, Connection> {
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

fn lines(items: &[String]) -> String {
    items.join("\n")
}

fn unlines(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_string).collect()
    }
}

/// The columns [`entry_from_row`] reads, in order.
/// Every query names the entry table `q`. The releases come as one text (a line per
/// release, tab-separated fields, in order of release) from an index lookup per entry.
const ENTRY_COLUMNS: &str = "q.id, q.received_at, q.sender, q.recipients, q.resolved, \
    q.client_ip, q.client_helo, q.queue_id, q.verdict, q.virustest, q.viruses, q.message_id, \
    q.subject, q.from_header, q.size, q.backscatter, q.released_at, q.released_by, \
    (SELECT group_concat(r.rcpt || char(9) || r.released_at || char(9) || r.released_by, \
    char(10)) FROM (SELECT * FROM quarantine_release WHERE entry = q.id \
    ORDER BY released_at, rcpt) r)";

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<QuarantineEntry> {
    let virustest: i64 = row.get(9)?;
    let size: i64 = row.get(14)?;
    Ok(QuarantineEntry {
        id: row.get(0)?,
        received_at: from_micros(row.get(1)?),
        sender: row.get(2)?,
        recipients: unlines(row.get(3)?),
        resolved: unlines(row.get(4)?),
        client_ip: row.get(5)?,
        client_helo: row.get(6)?,
        queue_id: row.get(7)?,
        verdict: row.get(8)?,
        virustest: u8::try_from(virustest).unwrap_or(u8::MAX),
        viruses: unlines(row.get(10)?),
        message_id: row.get(11)?,
        subject: row.get(12)?,
        from: row.get(13)?,
        size: u64::try_from(size).unwrap_or(0),
        backscatter: row.get(15)?,
        released_at: row.get::<_, Option<i64>>(16)?.map(from_micros),
        released_by: row.get(17)?,
        releases: releases_from(row.get::<_, Option<String>>(18)?.unwrap_or_default()),
    })
}

/// The inverse of the releases column of [`ENTRY_COLUMNS`]; a malformed line is skipped.
fn releases_from(text: String) -> Vec<RcptRelease> {
    let mut releases: Vec<RcptRelease> = unlines(text)
        .iter()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let rcpt = fields.next()?.to_string();
            let at = from_micros(fields.next()?.parse().ok()?);
            let by = fields.next()?.to_string();
            Some(RcptRelease { rcpt, at, by })
        })
        .collect();
    // group_concat's order is not guaranteed: order of release, then address.
    releases.sort_by(|a, b| (to_micros(a.at), &a.rcpt).cmp(&(to_micros(b.at), &b.rcpt)));
    releases
}

/// A recipient or user name as a field of the releases column: no tab or line end (a
/// recipient never holds one; a user name from `$SUDO_USER` might).
fn release_field(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `LIKE` pattern for a substring, with `\` as the escape character.
fn like_substring(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn queued_from_row(row: &Row<'_>) -> rusqlite::Result<QueuedMail> {
    let attempts: i64 = row.get(5)?;
    Ok(QueuedMail {
        id: row.get(0)?,
        kind: row.get(1)?,
        from: row.get(2)?,
        to: unlines(row.get(3)?),
        message: row.get(4)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt: from_micros(row.get(6)?),
        last_error: row.get(7)?,
        redirect: row
            .get::<_, Option<String>>(8)?
            .map(|rcpt| -> rusqlite::Result<RedirectOwner> {
                Ok(RedirectOwner {
                    rcpt,
                    inbox_copy: row.get::<_, i64>(9)? != 0,
                })
            })
            .transpose()?,
    })
}

impl SqliteState {
    /// Inserts many entries in one transaction (one fsync): imports and the benchmark
    /// (`examples/bench_quarantine.rs`). All or nothing.
    pub fn quarantine_insert_many(&self, entries: &[QuarantineEntry]) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend("quarantine insert"))?;
        for e in entries {
            insert_entry(&tx, e)?;
        }
        tx.commit().map_err(backend("quarantine insert"))
    }
}

/// One entry and its recipient rows, inside the caller's transaction.
fn insert_entry(tx: &rusqlite::Transaction<'_>, e: &QuarantineEntry) -> Result<(), StateError> {
    let inserted = tx.execute(
        "INSERT INTO quarantine (id, received_at, sender, recipients, resolved, client_ip, \
         client_helo, queue_id, verdict, virustest, viruses, message_id, subject, \
         from_header, size, backscatter, released_at, released_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            e.id,
            to_micros(e.received_at),
            e.sender,
            lines(&e.recipients),
            lines(&e.resolved),
            e.client_ip,
            e.client_helo,
            e.queue_id,
            e.verdict,
            i64::from(e.virustest),
            lines(&e.viruses),
            e.message_id,
            e.subject,
            e.from,
            i64::try_from(e.size).unwrap_or(i64::MAX),
            e.backscatter,
            e.released_at.map(to_micros),
            e.released_by,
        ],
    );
    match inserted {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(StateError::Duplicate(format!("quarantine id {}", e.id)));
        }
        Err(other) => return Err(backend("quarantine insert")(other)),
    }
    let mut stmt = tx
        .prepare_cached("INSERT OR IGNORE INTO quarantine_rcpt (address, entry) VALUES (?1, ?2)")
        .map_err(backend("quarantine insert"))?;
    for address in e.recipients.iter().chain(&e.resolved) {
        stmt.execute(params![address.to_ascii_lowercase(), e.id])
            .map_err(backend("quarantine insert"))?;
    }
    Ok(())
}

impl StateStore for SqliteState {
    fn quarantine_insert(&self, e: &QuarantineEntry) -> Result<(), StateError> {
        self.quarantine_insert_many(std::slice::from_ref(e))
    }

    fn quarantine_get(&self, id: &str) -> Result<Option<QuarantineEntry>, StateError> {
        let conn = self.lock();
        conn.query_row(
            &format!("SELECT {ENTRY_COLUMNS} FROM quarantine q WHERE q.id = ?1"),
            [id],
            entry_from_row,
        )
        .optional()
        .map_err(backend("quarantine get"))
    }

    fn quarantine_list(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineEntry>, StateError> {
        let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM quarantine q WHERE 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(since) = filter.since {
            args.push(to_micros(since).into());
            sql.push_str(&format!(" AND q.received_at >= ?{}", args.len()));
        }
        if let Some(virus) = &filter.virus {
            // Each name is on its own line, so a substring of the column is a substring of
            // some name unless the pattern itself spans a line break, which names never hold.
            args.push(like_substring(virus).into());
            sql.push_str(&format!(" AND q.viruses LIKE ?{} ESCAPE '\\'", args.len()));
        }
        if let Some(rcpt) = &filter.rcpt {
            args.push(rcpt.to_ascii_lowercase().into());
            // Driven from the recipient index (IN, not a correlated EXISTS, which would
            // probe once per entry): 3 ms instead of 45 ms over 100 000 entries.
            sql.push_str(&format!(
                " AND q.id IN (SELECT r.entry FROM quarantine_rcpt r WHERE r.address = ?{})",
                args.len()
            ));
        }
        sql.push_str(" ORDER BY q.received_at, q.id");
        if let Some(limit) = filter.limit {
            args.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
            sql.push_str(&format!(" LIMIT ?{}", args.len()));
        }
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql).map_err(backend("quarantine list"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), entry_from_row)
            .map_err(backend("quarantine list"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(backend("quarantine list"))
    }

    fn quarantine_mark_released(
        &self,
        id: &str,
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        let conn = self.lock();
        let changed = conn
            .execute(
                "UPDATE quarantine SET released_at = ?2, released_by = ?3 WHERE id = ?1",
                params![id, to_micros(at), by],
            )
            .map_err(backend("quarantine release"))?;
        Ok(changed > 0)
    }

    fn quarantine_delete(&self, id: &str) -> Result<bool, StateError> {
        let conn = self.lock();
        // quarantine_rcpt rows go with it (ON DELETE CASCADE).
        let changed = conn
            .execute("DELETE FROM quarantine WHERE id = ?1", [id])
            .map_err(backend("quarantine delete"))?;
        Ok(changed > 0)
    }

    fn quarantine_older_than(&self, before: SystemTime) -> Result<Vec<String>, StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id FROM quarantine WHERE received_at < ?1 ORDER BY received_at, id",
            )
            .map_err(backend("quarantine purge"))?;
        let rows = stmt
            .query_map([to_micros(before)], |r| r.get(0))
            .map_err(backend("quarantine purge"))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(backend("quarantine purge"))
    }

    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT value FROM cache WHERE key = ?1 AND expires > ?2",
            params![key, to_micros(now)],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend("cache get"))
    }

    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO cache (key, value, expires) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
            params![key, value, to_micros(expires)],
        )
        .map_err(backend("cache put"))?;
        Ok(())
    }

    fn remember_once(
        &self,
        key: &str,
        expires: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StateError> {
        let conn = self.lock();
        // One statement: inserted, or an expired row taken over; a live row is left
        // alone and returns nothing. SQLite's write lock makes it atomic across processes.
        let set = conn
            .query_row(
                "INSERT INTO cache (key, value, expires) VALUES (?1, '1', ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires \
                 WHERE cache.expires <= ?3 RETURNING 1",
                params![key, to_micros(expires), to_micros(now)],
                |_| Ok(()),
            )
            .optional()
            .map_err(backend("remember once"))?;
        Ok(set.is_some())
    }

    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError> {
        let mut conn = self.lock();
        // IMMEDIATE: read and update under the write lock, so two processes checking the
        // same key at once cannot both be allowed.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend("rate check"))?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT last_allowed, suppressed FROM rate WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend("rate check"))?;
        let decision = if rate_allows(row.map(|(last, _)| last), min_interval, now) {
            tx.execute(
                "INSERT INTO rate (key, last_allowed, suppressed) VALUES (?1, ?2, 0) \
                 ON CONFLICT (key) DO UPDATE SET last_allowed = excluded.last_allowed, suppressed = 0",
                params![key, to_micros(now)],
            )
            .map_err(backend("rate check"))?;
            RateDecision::Send {
                suppressed: row.map(|(_, s)| u64::try_from(s).unwrap_or(0)).unwrap_or(0),
            }
        } else {
            tx.execute(
                "UPDATE rate SET suppressed = suppressed + 1 WHERE key = ?1",
                [key],
            )
            .map_err(backend("rate check"))?;
            RateDecision::Suppress
        };
        tx.commit().map_err(backend("rate check"))?;
        Ok(decision)
    }

    fn expire(&self, now: SystemTime, rate_keep: Duration) -> Result<Expired, StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend("expire"))?;
        let now = to_micros(now);
        let cache = tx
            .execute("DELETE FROM cache WHERE expires <= ?1", [now])
            .map_err(backend("expire"))?;
        let keep = i64::try_from(rate_keep.as_micros()).unwrap_or(i64::MAX);
        let rate = tx
            .execute(
                "DELETE FROM rate WHERE last_allowed < ?1",
                [now.saturating_sub(keep)],
            )
            .map_err(backend("expire"))?;
        tx.commit().map_err(backend("expire"))?;
        Ok(Expired {
            cache: cache as u64,
            rate: rate as u64,
        })
    }

    fn sizes(&self) -> Result<StateSizes, StateError> {
        let conn = self.lock();
        let count = |table: &str| -> Result<u64, StateError> {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .map_err(backend("sizes"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(StateSizes {
            cache: count("cache")?,
            rate: count("rate")?,
            queue: count("outbound_queue")?,
            quarantine: count("quarantine")?,
        })
    }

    fn quarantine_add_recipient(
        &self,
        id: &str,
        given: &str,
        resolved: &str,
    ) -> Result<bool, StateError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend("quarantine add recipient"))?;
        let row: Option<(String, String)> = tx
            .query_row(
                "SELECT recipients, resolved FROM quarantine WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend("quarantine add recipient"))?;
        let Some((recipients, resolved_list)) = row else {
            return Ok(false);
        };
        let mut recipients = unlines(recipients);
        if !recipients.iter().any(|r| r == given) {
            recipients.push(given.to_string());
            let mut resolved_list = unlines(resolved_list);
            resolved_list.push(resolved.to_string());
            tx.execute(
                "UPDATE quarantine SET recipients = ?2, resolved = ?3 WHERE id = ?1",
                params![id, lines(&recipients), lines(&resolved_list)],
            )
            .map_err(backend("quarantine add recipient"))?;
            for address in [given, resolved] {
                tx.execute(
                    "INSERT OR IGNORE INTO quarantine_rcpt (address, entry) VALUES (?1, ?2)",
                    params![address.to_ascii_lowercase(), id],
                )
                .map_err(backend("quarantine add recipient"))?;
            }
        }
        tx.commit().map_err(backend("quarantine add recipient"))?;
        Ok(true)
    }

    fn quarantine_release_rcpts(
        &self,
        id: &str,
        rcpts: &[String],
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend("quarantine release"))?;
        let recipients: Option<String> = tx
            .query_row(
                "SELECT recipients FROM quarantine WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend("quarantine release"))?;
        let Some(recipients) = recipients else {
            return Ok(false);
        };
        let by = release_field(by);
        for rcpt in rcpts {
            tx.execute(
                "INSERT OR IGNORE INTO quarantine_release (entry, rcpt, released_at, released_by) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, release_field(rcpt), to_micros(at), by],
            )
            .map_err(backend("quarantine release"))?;
        }
        let released: Vec<String> = {
            let mut stmt = tx
                .prepare_cached("SELECT rcpt FROM quarantine_release WHERE entry = ?1")
                .map_err(backend("quarantine release"))?;
            let rows = stmt
                .query_map([id], |r| r.get(0))
                .map_err(backend("quarantine release"))?;
            rows.collect::<Result<_, _>>()
                .map_err(backend("quarantine release"))?
        };
        if unlines(recipients).iter().all(|r| released.contains(r)) {
            tx.execute(
                "UPDATE quarantine SET released_at = ?2, released_by = ?3 \
                 WHERE id = ?1 AND released_at IS NULL",
                params![id, to_micros(at), by],
            )
            .map_err(backend("quarantine release"))?;
        }
        tx.commit().map_err(backend("quarantine release"))?;
        Ok(true)
    }

    fn digest_listed(&self, rcpt: &str) -> Result<Vec<String>, StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT entry FROM digest_listed WHERE rcpt = ?1 ORDER BY entry")
            .map_err(backend("digest listed"))?;
        let rows = stmt
            .query_map([rcpt.to_ascii_lowercase()], |r| r.get::<_, String>(0))
            .map_err(backend("digest listed"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(backend("digest listed"))
    }

    fn digest_mark_listed(
        &self,
        rcpt: &str,
        entries: &[String],
        at: SystemTime,
    ) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend("digest mark listed"))?;
        let rcpt = rcpt.to_ascii_lowercase();
        for entry in entries {
            // Only entries still in the index: one purged meanwhile has nothing to list.
            tx.execute(
                "INSERT OR IGNORE INTO digest_listed (rcpt, entry, listed_at) \
                 SELECT ?1, id, ?3 FROM quarantine WHERE id = ?2",
                params![rcpt, entry, to_micros(at)],
            )
            .map_err(backend("digest mark listed"))?;
        }
        tx.commit().map_err(backend("digest mark listed"))
    }

    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO outbound_queue (kind, sender, recipients, message, attempts, next_attempt, last_error, \
             redirect_for, redirect_inbox_copy) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                mail.kind,
                mail.from,
                lines(&mail.to),
                mail.message,
                i64::from(mail.attempts),
                to_micros(mail.next_attempt),
                mail.last_error,
                mail.redirect.as_ref().map(|r| r.rcpt.as_str()),
                mail.redirect.as_ref().is_some_and(|r| r.inbox_copy),
            ],
        )
        .map_err(backend("queue push"))?;
        Ok(conn.last_insert_rowid())
    }

    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, kind, sender, recipients, message, attempts, next_attempt, last_error, \
                 redirect_for, redirect_inbox_copy FROM outbound_queue WHERE next_attempt <= ?1 ORDER BY next_attempt, id LIMIT ?2",
            )
            .map_err(backend("queue due"))?;
        let rows = stmt
            .query_map(
                params![to_micros(now), i64::try_from(limit).unwrap_or(i64::MAX)],
                queued_from_row,
            )
            .map_err(backend("queue due"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(backend("queue due"))
    }

    fn queue_claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<QueuedMail>, StateError> {
        let mut conn = self.lock();
        // IMMEDIATE: select and lease under the write lock, so two processes never claim
        // the same row.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend("queue claim"))?;
        let now = to_micros(now);
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let claimed = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, kind, sender, recipients, message, attempts, next_attempt, last_error, \
                     redirect_for, redirect_inbox_copy FROM outbound_queue \
                     WHERE next_attempt <= ?1 AND lease_until <= ?1 ORDER BY next_attempt, id LIMIT ?2",
                )
                .map_err(backend("queue claim"))?;
            let rows = stmt
                .query_map(
                    params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
                    queued_from_row,
                )
                .map_err(backend("queue claim"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(backend("queue claim"))?
        };
        for mail in &claimed {
            tx.execute(
                "UPDATE outbound_queue SET lease_until = ?2 WHERE id = ?1",
                params![mail.id, until],
            )
            .map_err(backend("queue claim"))?;
        }
        tx.commit().map_err(backend("queue claim"))?;
        Ok(claimed)
    }

    fn queue_done(&self, id: i64) -> Result<(), StateError> {
        let conn = self.lock();
        conn.execute("DELETE FROM outbound_queue WHERE id = ?1", [id])
            .map_err(backend("queue done"))?;
        Ok(())
    }

    fn queue_retry(
        &self,
        id: i64,
        next_attempt: SystemTime,
        error: &str,
    ) -> Result<(), StateError> {
        let conn = self.lock();
        conn.execute(
            "UPDATE outbound_queue SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3, \
             lease_until = 0 WHERE id = ?1",
            params![id, to_micros(next_attempt), error],
        )
        .map_err(backend("queue retry"))?;
        Ok(())
    }
}
