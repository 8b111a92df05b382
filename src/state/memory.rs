//! [`MemoryState`]: the [`StateStore`] behaviour without persistence.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{
    rate_allows, to_micros, virus_matches, QuarantineEntry, QuarantineFilter, QueuedMail,
    RateDecision, StateError, StateStore,
};

/// In-memory implementation with the same behaviour, for tests of other modules (and a
/// server without `[state] dir`, which then forgets everything at restart).
#[derive(Default)]
pub struct MemoryState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    quarantine: HashMap<String, QuarantineEntry>,
    cache: HashMap<String, (String, i64)>,
    /// key → (last allowed event, suppressed since).
    rates: HashMap<String, (i64, u64)>,
    queue: BTreeMap<i64, QueuedMail>,
    next_queue_id: i64,
}

impl MemoryState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data in a consistent state (every
        // method changes it in one step), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn rcpt_matches(entry: &QuarantineEntry, rcpt: &str) -> bool {
    entry
        .recipients
        .iter()
        .chain(&entry.resolved)
        .any(|r| r.eq_ignore_ascii_case(rcpt))
}

impl StateStore for MemoryState {
    fn quarantine_insert(&self, entry: &QuarantineEntry) -> Result<(), StateError> {
        let mut inner = self.lock();
        if inner.quarantine.contains_key(&entry.id) {
            return Err(StateError::Duplicate(format!("quarantine id {}", entry.id)));
        }
        let mut entry = entry.clone();
        // Same precision as the SQLite store, so both behave alike in tests.
        entry.received_at = super::from_micros(to_micros(entry.received_at));
        inner.quarantine.insert(entry.id.clone(), entry);
        Ok(())
    }

    fn quarantine_get(&self, id: &str) -> Result<Option<QuarantineEntry>, StateError> {
        Ok(self.lock().quarantine.get(id).cloned())
    }

    fn quarantine_list(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineEntry>, StateError> {
        let inner = self.lock();
        let mut out: Vec<QuarantineEntry> = inner
            .quarantine
            .values()
            .filter(|e| {
                filter
                    .since
                    .is_none_or(|s| to_micros(e.received_at) >= to_micros(s))
            })
            .filter(|e| {
                filter
                    .virus
                    .as_deref()
                    .is_none_or(|p| virus_matches(&e.viruses, p))
            })
            .filter(|e| filter.rcpt.as_deref().is_none_or(|r| rcpt_matches(e, r)))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (to_micros(a.received_at), &a.id).cmp(&(to_micros(b.received_at), &b.id))
        });
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    fn quarantine_mark_released(
        &self,
        id: &str,
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        let mut inner = self.lock();
        Ok(match inner.quarantine.get_mut(id) {
            Some(entry) => {
                entry.released_at = Some(super::from_micros(to_micros(at)));
                entry.released_by = Some(by.to_string());
                true
            }
            None => false,
        })
    }

    fn quarantine_delete(&self, id: &str) -> Result<bool, StateError> {
        Ok(self.lock().quarantine.remove(id).is_some())
    }

    fn quarantine_older_than(&self, before: SystemTime) -> Result<Vec<String>, StateError> {
        let inner = self.lock();
        let before = to_micros(before);
        let mut old: Vec<(i64, String)> = inner
            .quarantine
            .values()
            .map(|e| (to_micros(e.received_at), e.id.clone()))
            .filter(|(t, _)| *t < before)
            .collect();
        old.sort();
        Ok(old.into_iter().map(|(_, id)| id).collect())
    }

    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<String>, StateError> {
        let inner = self.lock();
        Ok(inner
            .cache
            .get(key)
            .filter(|(_, expires)| *expires > to_micros(now))
            .map(|(value, _)| value.clone()))
    }

    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError> {
        self.lock()
            .cache
            .insert(key.to_string(), (value.to_string(), to_micros(expires)));
        Ok(())
    }

    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError> {
        let mut inner = self.lock();
        let entry = inner.rates.get(key).copied();
        if rate_allows(entry.map(|(last, _)| last), min_interval, now) {
            let suppressed = entry.map(|(_, s)| s).unwrap_or(0);
            inner.rates.insert(key.to_string(), (to_micros(now), 0));
            Ok(RateDecision::Send { suppressed })
        } else {
            if let Some((_, suppressed)) = inner.rates.get_mut(key) {
                *suppressed += 1;
            }
            Ok(RateDecision::Suppress)
        }
    }

    fn queue_push(&self, mail: &QueuedMail) -> Result<i64, StateError> {
        let mut inner = self.lock();
        inner.next_queue_id += 1;
        let id = inner.next_queue_id;
        let mut mail = mail.clone();
        mail.id = id;
        mail.next_attempt = super::from_micros(to_micros(mail.next_attempt));
        inner.queue.insert(id, mail);
        Ok(id)
    }

    fn queue_due(&self, now: SystemTime, limit: usize) -> Result<Vec<QueuedMail>, StateError> {
        let inner = self.lock();
        let now = to_micros(now);
        let mut due: Vec<&QueuedMail> = inner
            .queue
            .values()
            .filter(|m| to_micros(m.next_attempt) <= now)
            .collect();
        due.sort_by_key(|m| (to_micros(m.next_attempt), m.id));
        Ok(due.into_iter().take(limit).cloned().collect())
    }

    fn queue_done(&self, id: i64) -> Result<(), StateError> {
        self.lock().queue.remove(&id);
        Ok(())
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn queue_retry(
        &self,
        id: i64,
        next_attempt: SystemTime,
        error: &str,
    ) -> Result<(), StateError> {
        if let Some(mail) = self.lock().queue.get_mut(&id) {
            mail.attempts += 1;
            mail.next_attempt = super::from_micros(to_micros(next_attempt));
            mail.last_error = Some(error.to_string());
        }
        Ok(())
    }
}
