//! The [`StateStore`] impl of [`SqliteState`]: each call one statement or one short
//! transaction on the one connection (IMMEDIATE where it reads and then writes, so two
//! processes on one file decide a claim or a rate row once).

use std::time::{Duration, SystemTime};

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::rows::{
    entry_from_row, like_substring, lines, queued_from_row, release_field, unlines, ENTRY_COLUMNS,
};
use super::{backend, SqliteState};
use crate::state::{
    rate_allows, to_micros, Expired, QuarantineEntry, QuarantineFilter, QueuedMail, RateDecision,
    StateError, StateSizes, StateStore,
};

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
