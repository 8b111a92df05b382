//! PLACEHOLDER for the state store (the state helper writes the real one; the coordinator
//! takes that file at merge). Only the items the outbound module codes against, with the
//! exact signatures agreed, and an in-memory implementation so this branch compiles and
//! its tests run.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// A state store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Any failure, described.
    #[error("{0}")]
    Other(String),
}

/// The answer of [`StateStore::rate_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Allowed; `suppressed` events were refused since the last allowed one.
    Send {
        /// Events suppressed since the last allowed one.
        suppressed: u64,
    },
    /// Refused (counted for the next `Send`).
    Suppress,
}

/// One message waiting to be sent by the outbound module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Assigned by [`StateStore::queue_push`] (ignored on input).
    pub id: i64,
    /// What it is, for the logs.
    pub kind: String,
    /// Envelope sender, `""` = null sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The complete RFC 5322 message, CRLF.
    pub message: Vec<u8>,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub next_attempt: SystemTime,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// The state shared by every part of the server.
pub trait StateStore: Send + Sync {
    /// A cached value, `None` when missing or expired.
    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError>;
    /// Caches `value` until `expires`.
    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError>;
    /// allowed when the last allowed event for `key` is older than `min_interval` (or none); Send{suppressed} reports and resets the count of suppressed events since.
    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError>;
    /// Adds a mail to the outbound queue; returns its id.
    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError>;
    /// Mails whose next_attempt <= now, oldest first, at most `limit`.
    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError>;
    /// Removes a sent mail from the queue.
    fn queue_done(&self, id: i64) -> Result<(), StateError>;
    /// Counts a failed attempt and schedules the next one.
    fn queue_retry(&self, id: i64, next_attempt: SystemTime, error: &str)
        -> Result<(), StateError>;
}

#[derive(Default)]
struct Inner {
    cache: BTreeMap<String, (String, SystemTime)>,
    rates: BTreeMap<String, (SystemTime, u64)>,
    queue: BTreeMap<i64, QueuedMail>,
    next_id: i64,
}

/// The state in memory: for tests and single-run tools.
#[derive(Default)]
pub struct MemoryState {
    inner: Mutex<Inner>,
}

impl MemoryState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StateStore for MemoryState {
    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError> {
        Ok(self
            .lock()
            .cache
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(v, _)| v.clone()))
    }

    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError> {
        self.lock()
            .cache
            .insert(key.to_string(), (value.to_string(), expires));
        Ok(())
    }

    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError> {
        let mut inner = self.lock();
        match inner.rates.get_mut(key) {
            Some((last, suppressed))
                if now.duration_since(*last).unwrap_or_default() < min_interval =>
            {
                *suppressed += 1;
                Ok(RateDecision::Suppress)
            }
            Some((last, suppressed)) => {
                let count = std::mem::take(suppressed);
                *last = now;
                Ok(RateDecision::Send { suppressed: count })
            }
            None => {
                inner.rates.insert(key.to_string(), (now, 0));
                Ok(RateDecision::Send { suppressed: 0 })
            }
        }
    }

    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError> {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.queue.insert(id, QueuedMail { id, ..mail.clone() });
        Ok(id)
    }

    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError> {
        let inner = self.lock();
        let mut due: Vec<QueuedMail> = inner
            .queue
            .values()
            .filter(|m| m.next_attempt <= now)
            .cloned()
            .collect();
        due.sort_by_key(|m| (m.next_attempt, m.id));
        due.truncate(limit);
        Ok(due)
    }

    fn queue_done(&self, id: i64) -> Result<(), StateError> {
        self.lock().queue.remove(&id);
        Ok(())
    }

    fn queue_retry(
        &self,
        id: i64,
        next_attempt: SystemTime,
        error: &str,
    ) -> Result<(), StateError> {
        if let Some(mail) = self.lock().queue.get_mut(&id) {
            mail.attempts += 1;
            mail.next_attempt = next_attempt;
            mail.last_error = Some(error.to_string());
        }
        Ok(())
    }
}
