//! PLACEHOLDER for the state store (the state helper's file replaces this one at merge):
//! the agreed trait, and an in-memory implementation so that `report` compiles and its tests
//! run. Nothing of the abuse reports lives here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A state store failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Anything, as text.
    #[error("{0}")]
    Other(String),
}

/// The answer of [`StateStore::rate_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead; `suppressed` events were suppressed since the last allowed one.
    Send { suppressed: u64 },
    /// Too soon: counted, not sent.
    Suppress,
}

/// One outgoing message waiting in the retry queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: i64,
    pub kind: String,
    pub from: String,
    pub to: Vec<String>,
    pub message: Vec<u8>,
    pub attempts: u32,
    pub next_attempt: SystemTime,
    pub last_error: Option<String>,
}

/// The state the server keeps between messages.
pub trait StateStore: Send + Sync {
    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError>;
    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError>;
    /// allowed when the last allowed event for `key` is older than `min_interval` (or none); Send{suppressed} reports and resets the count of suppressed events since.
    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError>;
    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError>;
    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError>;
    fn queue_done(&self, id: i64) -> Result<(), StateError>;
    fn queue_retry(&self, id: i64, next_attempt: SystemTime, error: &str)
        -> Result<(), StateError>;
}

/// An in-memory [`StateStore`] (tests; a single process).
#[derive(Default)]
pub struct MemoryState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    cache: HashMap<String, (String, SystemTime)>,
    /// key → (last allowed event, suppressed since).
    rates: HashMap<String, (SystemTime, u64)>,
    queue: Vec<QueuedMail>,
    next_id: i64,
}

impl MemoryState {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StateError> {
        self.inner
            .lock()
            .map_err(|_| StateError::Other("state lock poisoned".into()))
    }
}

impl StateStore for MemoryState {
    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError> {
        let inner = self.lock()?;
        Ok(inner
            .cache
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value.clone()))
    }

    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError> {
        self.lock()?
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
        let mut inner = self.lock()?;
        match inner.rates.get_mut(key) {
            Some((last, suppressed))
                if now.duration_since(*last).unwrap_or(Duration::ZERO) < min_interval =>
            {
                *suppressed += 1;
                Ok(RateDecision::Suppress)
            }
            Some((last, suppressed)) => {
                let count = *suppressed;
                *last = now;
                *suppressed = 0;
                Ok(RateDecision::Send { suppressed: count })
            }
            None => {
                inner.rates.insert(key.to_string(), (now, 0));
                Ok(RateDecision::Send { suppressed: 0 })
            }
        }
    }

    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError> {
        let mut inner = self.lock()?;
        inner.next_id += 1;
        let id = inner.next_id;
        inner.queue.push(QueuedMail { id, ..mail.clone() });
        Ok(id)
    }

    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError> {
        Ok(self
            .lock()?
            .queue
            .iter()
            .filter(|m| m.next_attempt <= now)
            .take(limit)
            .cloned()
            .collect())
    }

    fn queue_done(&self, id: i64) -> Result<(), StateError> {
        self.lock()?.queue.retain(|m| m.id != id);
        Ok(())
    }

    fn queue_retry(
        &self,
        id: i64,
        next_attempt: SystemTime,
        error: &str,
    ) -> Result<(), StateError> {
        let mut inner = self.lock()?;
        if let Some(mail) = inner.queue.iter_mut().find(|m| m.id == id) {
            mail.attempts += 1;
            mail.next_attempt = next_attempt;
            mail.last_error = Some(error.to_string());
        }
        Ok(())
    }
}
