//! [`StateStore`] on PostgreSQL: one short statement or transaction per call (see the
//! parent module for what the server decides atomically). The cache, rate limits, the
//! outbox and the maintenance passes are here; the quarantine's calls go to its own module
//! (`quarantine.rs`: the index and the messages).

use std::time::{Duration, SystemTime};

use super::rows::{lines, micros, owned, queued_from_row, QUEUE_COLUMNS};
use super::schema::EXPIRY_LOCK;
use super::{pg, PostgresState};
use crate::state::{
    rate_allows, to_micros, Expired, QuarantineEntry, QuarantineFilter, QueuedMail, RateDecision,
    StateError, StateSizes, StateStore,
};

impl StateStore for PostgresState {
    fn health(&self) -> Option<&crate::health::Health> {
        Some(PostgresState::health(self))
    }

    fn probe(&self) -> Result<(), StateError> {
        PostgresState::probe(self)
    }

    fn quarantine_insert(&self, e: &QuarantineEntry) -> Result<(), StateError> {
        self.insert_entry(e, None)
    }

    fn holds_quarantine_messages(&self) -> bool {
        true
    }

    fn quarantine_insert_message(
        &self,
        entry: &QuarantineEntry,
        message: &[u8],
    ) -> Result<(), StateError> {
        self.insert_entry(entry, Some(message.to_vec()))
    }

    fn quarantine_message(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.db_quarantine_message(id)
    }

    fn quarantine_get(&self, id: &str) -> Result<Option<QuarantineEntry>, StateError> {
        self.db_quarantine_get(id)
    }

    fn quarantine_list(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineEntry>, StateError> {
        self.db_quarantine_list(filter)
    }

    fn quarantine_mark_released(
        &self,
        id: &str,
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        self.db_quarantine_mark_released(id, at, by)
    }

    fn quarantine_delete(&self, id: &str) -> Result<bool, StateError> {
        self.db_quarantine_delete(id)
    }

    fn quarantine_older_than(&self, before: SystemTime) -> Result<Vec<String>, StateError> {
        self.db_quarantine_older_than(before)
    }

    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError> {
        let key = owned(key);
        self.call("cache get", move |client| async move {
            let err = pg("cache get");
            let stmt = client
                .prepare_cached("SELECT value FROM cache WHERE key = $1 AND expires > $2")
                .await
                .map_err(&err)?;
            let row = client
                .query_opt(&stmt, &[&key, &to_micros(now)])
                .await
                .map_err(&err)?;
            row.map(|r| r.try_get(0)).transpose().map_err(&err)
        })
    }

    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError> {
        let (key, value) = (owned(key), owned(value));
        self.call("cache put", move |client| async move {
            let err = pg("cache put");
            let stmt = client
                .prepare_cached(
                    "INSERT INTO cache (key, value, expires) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                )
                .await
                .map_err(&err)?;
            client
                .execute(&stmt, &[&key, &value, &to_micros(expires)])
                .await
                .map_err(&err)?;
            Ok(())
        })
    }

    fn remember_once(
        &self,
        key: &str,
        expires: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StateError> {
        let key = owned(key);
        self.call("remember once", move |client| async move {
            let err = pg("remember once");
            // One statement: a concurrent insert of the same key waits for the first to
            // commit, then takes the conflict path and sees its live row (no update, no
            // row returned). Exactly one caller gets a row.
            let stmt = client
                .prepare_cached(
                    "INSERT INTO cache AS c (key, value, expires) VALUES ($1, '1', $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires \
                     WHERE c.expires <= $3 RETURNING 1",
                )
                .await
                .map_err(&err)?;
            let row = client
                .query_opt(&stmt, &[&key, &to_micros(expires), &to_micros(now)])
                .await
                .map_err(&err)?;
            Ok(row.is_some())
        })
    }

    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError> {
        let key = owned(key);
        self.call("rate check", move |mut client| async move {
            let err = pg("rate check");
            let tx = client.transaction().await.map_err(&err)?;
            // The row exists (a new key as "never allowed") before it is locked and read,
            // so two hosts checking a new key at once still serialize on it.
            tx.execute(
                "INSERT INTO rate (key, last_allowed, suppressed) VALUES ($1, $2, -1) \
                 ON CONFLICT (key) DO NOTHING",
                &[&key, &i64::MIN],
            )
            .await
            .map_err(&err)?;
            let row = tx
                .query_one(
                    "SELECT last_allowed, suppressed FROM rate WHERE key = $1 FOR UPDATE",
                    &[&key],
                )
                .await
                .map_err(&err)?;
            let last: i64 = row.try_get(0).map_err(&err)?;
            let suppressed: i64 = row.try_get(1).map_err(&err)?;
            // suppressed = -1 marks the row inserted just now: no event before.
            let last = (suppressed >= 0).then_some(last);
            let decision = if rate_allows(last, min_interval, now) {
                tx.execute(
                    "UPDATE rate SET last_allowed = $2, suppressed = 0 WHERE key = $1",
                    &[&key, &to_micros(now)],
                )
                .await
                .map_err(&err)?;
                RateDecision::Send {
                    suppressed: u64::try_from(suppressed).unwrap_or(0),
                }
            } else {
                tx.execute(
                    "UPDATE rate SET suppressed = suppressed + 1 WHERE key = $1",
                    &[&key],
                )
                .await
                .map_err(&err)?;
                RateDecision::Suppress
            };
            tx.commit().await.map_err(&err)?;
            Ok(decision)
        })
    }

    fn expire(&self, now: SystemTime, rate_keep: Duration) -> Result<Expired, StateError> {
        self.call("expire", move |mut client| async move {
            let err = pg("expire");
            let tx = client.transaction().await.map_err(&err)?;
            // One host at a time: the others skip this pass (the lock ends with the
            // transaction).
            let locked: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&EXPIRY_LOCK])
                .await
                .map_err(&err)?
                .try_get(0)
                .map_err(&err)?;
            if !locked {
                return Ok(Expired::default());
            }
            let now = to_micros(now);
            let cache = tx
                .execute("DELETE FROM cache WHERE expires <= $1", &[&now])
                .await
                .map_err(&err)?;
            let rate = tx
                .execute(
                    "DELETE FROM rate WHERE last_allowed < $1",
                    &[&now.saturating_sub(micros(rate_keep))],
                )
                .await
                .map_err(&err)?;
            tx.commit().await.map_err(&err)?;
            Ok(Expired { cache, rate })
        })
    }

    fn sizes(&self) -> Result<StateSizes, StateError> {
        self.call("sizes", move |client| async move {
            let err = pg("sizes");
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM cache), (SELECT count(*) FROM rate), \
                     (SELECT count(*) FROM outbound_queue), (SELECT count(*) FROM quarantine)",
                    &[],
                )
                .await
                .map_err(&err)?;
            let n = |i: usize| -> Result<u64, StateError> {
                let v: i64 = row.try_get(i).map_err(&err)?;
                Ok(u64::try_from(v).unwrap_or(0))
            };
            Ok(StateSizes {
                cache: n(0)?,
                rate: n(1)?,
                queue: n(2)?,
                quarantine: n(3)?,
            })
        })
    }

    fn quarantine_add_recipient(
        &self,
        id: &str,
        given: &str,
        resolved: &str,
    ) -> Result<bool, StateError> {
        self.db_quarantine_add_recipient(id, given, resolved)
    }

    fn quarantine_release_rcpts(
        &self,
        id: &str,
        rcpts: &[String],
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        self.db_quarantine_release_rcpts(id, rcpts, at, by)
    }

    fn digest_listed(&self, rcpt: &str) -> Result<Vec<String>, StateError> {
        let rcpt = owned(&rcpt.to_ascii_lowercase());
        self.call("digest listed", move |client| async move {
            let err = pg("digest listed");
            let rows = client
                .query(
                    "SELECT entry FROM digest_listed WHERE rcpt = $1 ORDER BY entry",
                    &[&rcpt],
                )
                .await
                .map_err(&err)?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0).map_err(&err))
                .collect()
        })
    }

    fn digest_mark_listed(
        &self,
        rcpt: &str,
        entries: &[String],
        at: SystemTime,
    ) -> Result<(), StateError> {
        let rcpt = owned(&rcpt.to_ascii_lowercase());
        let entries: Vec<String> = entries.iter().map(|e| owned(e)).collect();
        let at = to_micros(at);
        self.call("digest mark listed", move |client| async move {
            let err = pg("digest mark listed");
            // One statement: only entries still in the index (one purged meanwhile has
            // nothing to list); a row already there keeps its first time.
            client
                .execute(
                    "INSERT INTO digest_listed (rcpt, entry, listed_at) \
                     SELECT $1, id, $3 FROM quarantine WHERE id = ANY($2) \
                     ON CONFLICT DO NOTHING",
                    &[&rcpt, &entries, &at],
                )
                .await
                .map_err(&err)?;
            Ok(())
        })
    }

    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError> {
        let mail = mail.clone();
        self.call("queue push", move |client| async move {
            let err = pg("queue push");
            let row = client
                .query_one(
                    "INSERT INTO outbound_queue (kind, sender, recipients, message, attempts, \
                     next_attempt, last_error, redirect_for, redirect_inbox_copy) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    &[
                        &owned(&mail.kind),
                        &owned(&mail.from),
                        &lines(&mail.to),
                        &mail.message,
                        &i32::try_from(mail.attempts).unwrap_or(i32::MAX),
                        &to_micros(mail.next_attempt),
                        &mail.last_error.as_deref().map(owned),
                        &mail.redirect.as_ref().map(|r| owned(&r.rcpt)),
                        &mail.redirect.as_ref().is_some_and(|r| r.inbox_copy),
                    ],
                )
                .await
                .map_err(&err)?;
            row.try_get(0).map_err(&err)
        })
    }

    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError> {
        self.call("queue due", move |client| async move {
            let err = pg("queue due");
            let rows = client
                .query(
                    &format!(
                        "SELECT {QUEUE_COLUMNS} FROM outbound_queue WHERE next_attempt <= $1 \
                         ORDER BY next_attempt, id LIMIT $2"
                    ),
                    &[&to_micros(now), &i64::try_from(limit).unwrap_or(i64::MAX)],
                )
                .await
                .map_err(&err)?;
            rows.iter()
                .map(queued_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(&err)
        })
    }

    fn queue_claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<QueuedMail>, StateError> {
        self.call("queue claim", move |client| async move {
            let err = pg("queue claim");
            let now = to_micros(now);
            // SKIP LOCKED: a row another host is claiming right now is left to it, not
            // waited for; the lease then keeps it from every claim until it ends.
            let rows = client
                .query(
                    &format!(
                        "UPDATE outbound_queue SET lease_until = $3 WHERE id IN (\
                         SELECT id FROM outbound_queue WHERE next_attempt <= $1 AND lease_until <= $1 \
                         ORDER BY next_attempt, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                         RETURNING {QUEUE_COLUMNS}"
                    ),
                    &[
                        &now,
                        &i64::try_from(limit).unwrap_or(i64::MAX),
                        &now.saturating_add(micros(lease)),
                    ],
                )
                .await
                .map_err(&err)?;
            let mut claimed = rows
                .iter()
                .map(queued_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(&err)?;
            claimed.sort_by_key(|m| (to_micros(m.next_attempt), m.id));
            Ok(claimed)
        })
    }

    fn queue_done(&self, id: i64) -> Result<(), StateError> {
        self.call("queue done", move |client| async move {
            client
                .execute("DELETE FROM outbound_queue WHERE id = $1", &[&id])
                .await
                .map_err(pg("queue done"))?;
            Ok(())
        })
    }

    fn queue_retry(
        &self,
        id: i64,
        next_attempt: SystemTime,
        error: &str,
    ) -> Result<(), StateError> {
        let error = owned(error);
        self.call("queue retry", move |client| async move {
            client
                .execute(
                    "UPDATE outbound_queue SET attempts = attempts + 1, next_attempt = $2, \
                     last_error = $3, lease_until = 0 WHERE id = $1",
                    &[&id, &to_micros(next_attempt), &error],
                )
                .await
                .map_err(pg("queue retry"))?;
            Ok(())
        })
    }
}
