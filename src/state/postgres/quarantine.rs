//! The quarantine on PostgreSQL: the index (entry, recipient and release rows) and the
//! quarantined messages themselves (`quarantine_message`, bytea), so every host lists,
//! shows and releases the same entries. Inherent methods the [`StateStore`] impl in
//! `store.rs` calls (`db_` + the trait method's name).
//!
//! [`StateStore`]: crate::state::StateStore

use std::time::SystemTime;

use super::rows::{
    entry_from_row, like_substring, lines, owned, refs, release_field, unlines, Params,
    ENTRY_COLUMNS,
};
use super::{pg, PostgresState};
use crate::state::{to_micros, QuarantineEntry, QuarantineFilter, StateError};

impl PostgresState {
    pub(super) fn db_quarantine_message(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
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

    pub(super) fn db_quarantine_get(
        &self,
        id: &str,
    ) -> Result<Option<QuarantineEntry>, StateError> {
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

    pub(super) fn db_quarantine_list(
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

    pub(super) fn db_quarantine_mark_released(
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

    pub(super) fn db_quarantine_delete(&self, id: &str) -> Result<bool, StateError> {
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

    pub(super) fn db_quarantine_older_than(
        &self,
        before: SystemTime,
    ) -> Result<Vec<String>, StateError> {
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

    pub(super) fn db_quarantine_add_recipient(
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

    pub(super) fn db_quarantine_release_rcpts(
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
}

impl PostgresState {
    /// One entry, its recipient rows and (when given) its message, in one transaction.
    pub(super) fn insert_entry(
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
