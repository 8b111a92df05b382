//! [`StateStore`] on PostgreSQL: one short statement or transaction per call (see the
//! parent module for what the server decides atomically).

use std::time::{Duration, SystemTime};

use super::rows::{
    entry_from_row, like_substring, lines, micros, owned, queued_from_row, refs, release_field,
    unlines, Params, ENTRY_COLUMNS, QUEUE_COLUMNS,
};
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
        let id = owned(id);
        self.call("quarantine message", move |client| async move {
            let err = pg("quarantine message");
            let row = client
                .query_opt(
                    "SELECT message FROM quarantine_message WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(&err)?;
            row.map(|r| r.try_get(0)).transpose().map_err(&err)
        })
    }

    fn quarantine_get(&self, id: &str) -> Result<Option<QuarantineEntry>, StateError> {
        let id = owned(id);
        self.call("quarantine get", move |client| async move {
            let err = pg("quarantine get");
            let row = client
                .query_opt(
                    &format!("SELECT {ENTRY_COLUMNS} FROM quarantine q WHERE q.id = $1"),
                    &[&id],
                )
                .await
                .map_err(&err)?;
            row.map(|r| entry_from_row(&r)).transpose().map_err(&err)
        })
    }

    fn quarantine_list(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineEntry>, StateError> {
        let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM quarantine q WHERE true");
        let mut params: Params = Vec::new();
        if let Some(since) = filter.since {
            params.push(Box::new(to_micros(since)));
            sql.push_str(&format!(" AND q.received_at >= ${}", params.len()));
        }
        if let Some(virus) = &filter.virus {
            // Names are one per line, so a substring of the column is a substring of a name
            // unless the pattern spans a line break, which names never hold.
            params.push(Box::new(like_substring(virus)));
            sql.push_str(&format!(
                " AND q.viruses ILIKE ${} ESCAPE '\\'",
                params.len()
            ));
        }
        if let Some(rcpt) = &filter.rcpt {
            params.push(Box::new(owned(&rcpt.to_ascii_lowercase())));
            sql.push_str(&format!(
                " AND q.id IN (SELECT r.entry FROM quarantine_rcpt r WHERE r.address = ${})",
                params.len()
            ));
        }
        sql.push_str(" ORDER BY q.received_at, q.id");
        if let Some(limit) = filter.limit {
            params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        self.call("quarantine list", move |client| async move {
            let err = pg("quarantine list");
            let rows = client.query(&sql, &refs(&params)).await.map_err(&err)?;
            rows.iter()
                .map(entry_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(&err)
        })
    }

    fn quarantine_mark_released(
        &self,
        id: &str,
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        let (id, by) = (owned(id), owned(by));
        self.call("quarantine release", move |client| async move {
            let changed = client
                .execute(
                    "UPDATE quarantine SET released_at = $2, released_by = $3 WHERE id = $1",
                    &[&id, &to_micros(at), &by],
                )
                .await
                .map_err(pg("quarantine release"))?;
            Ok(changed > 0)
        })
    }

    fn quarantine_delete(&self, id: &str) -> Result<bool, StateError> {
        let id = owned(id);
        self.call("quarantine delete", move |client| async move {
            // Recipient and release rows go with it (ON DELETE CASCADE).
            let changed = client
                .execute("DELETE FROM quarantine WHERE id = $1", &[&id])
                .await
                .map_err(pg("quarantine delete"))?;
            Ok(changed > 0)
        })
    }

    fn quarantine_older_than(&self, before: SystemTime) -> Result<Vec<String>, StateError> {
        self.call("quarantine purge", move |client| async move {
            let err = pg("quarantine purge");
            let rows = client
                .query(
                    "SELECT id FROM quarantine WHERE received_at < $1 ORDER BY received_at, id",
                    &[&to_micros(before)],
                )
                .await
                .map_err(&err)?;
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()
                .map_err(&err)
        })
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
        let (id, given, resolved) = (owned(id), owned(given), owned(resolved));
        self.call("quarantine add recipient", move |mut client| async move {
            let err = pg("quarantine add recipient");
            let tx = client.transaction().await.map_err(&err)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT recipients, resolved FROM quarantine WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(&err)?
            else {
                return Ok(false);
            };
            let mut recipients = unlines(row.try_get(0).map_err(&err)?);
            if !recipients.contains(&given) {
                recipients.push(given.clone());
                let mut resolved_list = unlines(row.try_get(1).map_err(&err)?);
                resolved_list.push(resolved.clone());
                tx.execute(
                    "UPDATE quarantine SET recipients = $2, resolved = $3 WHERE id = $1",
                    &[&id, &lines(&recipients), &lines(&resolved_list)],
                )
                .await
                .map_err(&err)?;
                for address in [&given, &resolved] {
                    tx.execute(
                        "INSERT INTO quarantine_rcpt (address, entry) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                        &[&address.to_ascii_lowercase(), &id],
                    )
                    .await
                    .map_err(&err)?;
                }
            }
            tx.commit().await.map_err(&err)?;
            Ok(true)
        })
    }

    fn quarantine_release_rcpts(
        &self,
        id: &str,
        rcpts: &[String],
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        let id = owned(id);
        let rcpts: Vec<String> = rcpts.iter().map(|r| release_field(r)).collect();
        let by = release_field(by);
        self.call("quarantine release", move |mut client| async move {
            let err = pg("quarantine release");
            let tx = client.transaction().await.map_err(&err)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT recipients FROM quarantine WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(&err)?
            else {
                return Ok(false);
            };
            let recipients = unlines(row.try_get(0).map_err(&err)?);
            for rcpt in &rcpts {
                tx.execute(
                    "INSERT INTO quarantine_release (entry, rcpt, released_at, released_by) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&id, rcpt, &to_micros(at), &by],
                )
                .await
                .map_err(&err)?;
            }
            let released: Vec<String> = tx
                .query(
                    "SELECT rcpt FROM quarantine_release WHERE entry = $1",
                    &[&id],
                )
                .await
                .map_err(&err)?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(&err)?;
            if recipients.iter().all(|r| released.contains(r)) {
                tx.execute(
                    "UPDATE quarantine SET released_at = $2, released_by = $3 \
                     WHERE id = $1 AND released_at IS NULL",
                    &[&id, &to_micros(at), &by],
                )
                .await
                .map_err(&err)?;
            }
            tx.commit().await.map_err(&err)?;
            Ok(true)
        })
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

impl PostgresState {
    /// One entry, its recipient rows and (when given) its message, in one transaction.
    fn insert_entry(
        &self,
        e: &QuarantineEntry,
        message: Option<Vec<u8>>,
    ) -> Result<(), StateError> {
        let e = e.clone();
        self.call("quarantine insert", move |mut client| async move {
            let err = pg("quarantine insert");
            let tx = client.transaction().await.map_err(&err)?;
            let inserted = tx
                .execute(
                    "INSERT INTO quarantine (id, received_at, sender, recipients, resolved, client_ip, \
                     client_helo, queue_id, verdict, virustest, viruses, message_id, subject, \
                     from_header, size, backscatter, released_at, released_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                    &[
                        &owned(&e.id),
                        &to_micros(e.received_at),
                        &owned(&e.sender),
                        &lines(&e.recipients),
                        &lines(&e.resolved),
                        &e.client_ip.as_deref().map(owned),
                        &e.client_helo.as_deref().map(owned),
                        &e.queue_id.as_deref().map(owned),
                        &owned(&e.verdict),
                        &i16::from(e.virustest),
                        &lines(&e.viruses),
                        &owned(&e.message_id),
                        &owned(&e.subject),
                        &owned(&e.from),
                        &i64::try_from(e.size).unwrap_or(i64::MAX),
                        &e.backscatter,
                        &e.released_at.map(to_micros),
                        &e.released_by.as_deref().map(owned),
                    ],
                )
                .await;
            match inserted {
                Ok(_) => {}
                Err(db)
                    if db.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                {
                    return Err(StateError::Duplicate(format!("quarantine id {}", e.id)));
                }
                Err(other) => return Err(err(other)),
            }
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO quarantine_rcpt (address, entry) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(&err)?;
            for address in e.recipients.iter().chain(&e.resolved) {
                tx.execute(&stmt, &[&owned(&address.to_ascii_lowercase()), &owned(&e.id)])
                    .await
                    .map_err(&err)?;
            }
            if let Some(message) = &message {
                tx.execute(
                    "INSERT INTO quarantine_message (id, message) VALUES ($1, $2)",
                    &[&owned(&e.id), message],
                )
                .await
                .map_err(&err)?;
            }
            tx.commit().await.map_err(&err)
        })
    }
}
