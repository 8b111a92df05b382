//! [`MemoryState`]: the [`StateStore`] behaviour without persistence.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{
    from_micros, rate_allows, to_micros, virus_matches, Expired, QuarantineEntry, QuarantineFilter,
    QueuedMail, RateDecision, RcptRelease, StateError, StateSizes, StateStore,
};

/// Default bound on cache and rate entries held in memory (about 100 bytes each plus the
/// key: some 20 MB at most).
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Default rate retention of [`MemoryState::default`]: a week, longer than any default
/// `min_interval`.
pub const DEFAULT_RATE_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// In-memory implementation with the same behaviour, for tests of other modules (and a
/// server without `[state] dir`, which then forgets everything at restart).
///
/// Unlike the database, memory is bounded: cache and rate entries together are kept to
/// `max_entries`. Past the bound, expired entries go first, then the oldest (cache entries
/// by expiry, rate entries by their last allowed event), down to nine tenths of the bound
/// so the cost of a pass is spread over many inserts. Evicting a cache entry forgets a
/// remembered id (a vacation reply or redirect may then repeat), evicting a rate entry
/// allows its next event early: both bounded nuisances, unlike running out of memory. The
/// outbound queue and the quarantine index are never evicted (they hold mail).
pub struct MemoryState {
    inner: Mutex<Inner>,
}

impl Default for MemoryState {
    fn default() -> Self {
        MemoryState::bounded(DEFAULT_MAX_ENTRIES, DEFAULT_RATE_KEEP)
    }
}

impl MemoryState {
    /// A store holding at most `max_entries` cache and rate entries (at least 10), whose
    /// rate entries count as expired `rate_keep` after their last allowed event.
    pub fn bounded(max_entries: usize, rate_keep: Duration) -> Self {
        MemoryState {
            inner: Mutex::new(Inner {
                max_entries: max_entries.max(10),
                rate_keep: i64::try_from(rate_keep.as_micros()).unwrap_or(i64::MAX),
                ..Inner::default()
            }),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Bound on `cache.len() + rates.len()`.
    max_entries: usize,
    /// Rate retention, microseconds.
    rate_keep: i64,
    /// The latest `now` any call was given (microseconds): the eviction's idea of the time,
    /// so it follows the caller's clock (a test's simulated one included).
    clock: i64,
    quarantine: HashMap<String, QuarantineEntry>,
    cache: HashMap<String, (String, i64)>,
    /// key → (last allowed event, suppressed since).
    rates: HashMap<String, (i64, u64)>,
    queue: BTreeMap<i64, QueuedMail>,
    /// Queue id → end of its lease (microseconds), while a sender holds it.
    leases: HashMap<i64, i64>,
    next_queue_id: i64,
    /// Recipient (lowercased) → the entries its digests listed; pruned with the entries.
    digest_listed: HashMap<String, std::collections::BTreeSet<String>>,
}

impl Inner {
    /// Moves the eviction clock forward to `now` (never back).
    fn see(&mut self, now: SystemTime) {
        self.clock = self.clock.max(to_micros(now));
    }

    /// Removes the cache entries expired at `now` and the rate entries older than `keep`.
    fn expire(&mut self, now: i64, keep: i64) -> Expired {
        let (cache, rates) = (self.cache.len(), self.rates.len());
        self.cache.retain(|_, (_, expires)| *expires > now);
        let oldest = now.saturating_sub(keep);
        self.rates.retain(|_, (last, _)| *last >= oldest);
        Expired {
            cache: (cache - self.cache.len()) as u64,
            rate: (rates - self.rates.len()) as u64,
        }
    }

    /// Keeps cache and rate entries within `max_entries` (see [`MemoryState`]).
    fn bound(&mut self) {
        if self.cache.len() + self.rates.len() <= self.max_entries {
            return;
        }
        let target = self.max_entries - self.max_entries / 10;
        let expired = self.expire(self.clock, self.rate_keep);
        let mut evicted = expired.cache + expired.rate;
        let excess = (self.cache.len() + self.rates.len()).saturating_sub(target);
        if excess > 0 {
            // Oldest first: a cache entry by when it expires, a rate entry by when it will
            // (its last allowed event plus the retention); ties by key, for repeatability.
            let mut ages: Vec<(i64, bool, String)> =
                self.cache
                    .iter()
                    .map(|(k, (_, expires))| (*expires, true, k.clone()))
                    .chain(self.rates.iter().map(|(k, (last, _))| {
                        (last.saturating_add(self.rate_keep), false, k.clone())
                    }))
                    .collect();
            ages.sort_unstable();
            for (_, is_cache, key) in ages.into_iter().take(excess) {
                if is_cache {
                    self.cache.remove(&key);
                } else {
                    self.rates.remove(&key);
                }
                evicted += 1;
            }
        }
        tracing::warn!(
            evicted,
            max_entries = self.max_entries,
            "in-memory state full: {evicted} cache/rate entries evicted (expired first, then oldest)"
        );
    }
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
        let mut inner = self.lock();
        for listed in inner.digest_listed.values_mut() {
            listed.remove(id);
        }
        inner.digest_listed.retain(|_, listed| !listed.is_empty());
        Ok(inner.quarantine.remove(id).is_some())
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
        let mut inner = self.lock();
        inner.see(now);
        Ok(inner
            .cache
            .get(key)
            .filter(|(_, expires)| *expires > to_micros(now))
            .map(|(value, _)| value.clone()))
    }

    fn cache_put(&self, key: &str, value: &str, expires: SystemTime) -> Result<(), StateError> {
        let mut inner = self.lock();
        inner
            .cache
            .insert(key.to_string(), (value.to_string(), to_micros(expires)));
        inner.bound();
        Ok(())
    }

    fn remember_once(
        &self,
        key: &str,
        expires: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StateError> {
        let mut inner = self.lock();
        inner.see(now);
        let now = to_micros(now);
        if inner.cache.get(key).is_some_and(|(_, e)| *e > now) {
            return Ok(false);
        }
        inner
            .cache
            .insert(key.to_string(), ("1".to_string(), to_micros(expires)));
        inner.bound();
        Ok(true)
    }

    fn rate_check(
        &self,
        key: &str,
        min_interval: Duration,
        now: SystemTime,
    ) -> Result<RateDecision, StateError> {
        let mut inner = self.lock();
        inner.see(now);
        let entry = inner.rates.get(key).copied();
        if rate_allows(entry.map(|(last, _)| last), min_interval, now) {
            let suppressed = entry.map(|(_, s)| s).unwrap_or(0);
            inner.rates.insert(key.to_string(), (to_micros(now), 0));
            inner.bound();
            Ok(RateDecision::Send { suppressed })
        } else {
            if let Some((_, suppressed)) = inner.rates.get_mut(key) {
                *suppressed += 1;
            }
            Ok(RateDecision::Suppress)
        }
    }

    fn expire(&self, now: SystemTime, rate_keep: Duration) -> Result<Expired, StateError> {
        let mut inner = self.lock();
        inner.see(now);
        let keep = i64::try_from(rate_keep.as_micros()).unwrap_or(i64::MAX);
        Ok(inner.expire(to_micros(now), keep))
    }

    fn sizes(&self) -> Result<StateSizes, StateError> {
        let inner = self.lock();
        Ok(StateSizes {
            cache: inner.cache.len() as u64,
            rate: inner.rates.len() as u64,
            queue: inner.queue.len() as u64,
            quarantine: inner.quarantine.len() as u64,
        })
    }

    fn quarantine_add_recipient(
        &self,
        id: &str,
        given: &str,
        resolved: &str,
    ) -> Result<bool, StateError> {
        let mut inner = self.lock();
        let Some(entry) = inner.quarantine.get_mut(id) else {
            return Ok(false);
        };
        if !entry.recipients.iter().any(|r| r == given) {
            entry.recipients.push(given.to_string());
            entry.resolved.push(resolved.to_string());
        }
        Ok(true)
    }

    fn quarantine_release_rcpts(
        &self,
        id: &str,
        rcpts: &[String],
        at: SystemTime,
        by: &str,
    ) -> Result<bool, StateError> {
        let mut inner = self.lock();
        let Some(entry) = inner.quarantine.get_mut(id) else {
            return Ok(false);
        };
        let at = from_micros(to_micros(at));
        let clean = |t: &str| -> String {
            t.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        };
        for rcpt in rcpts {
            let rcpt = clean(rcpt);
            if !entry.releases.iter().any(|r| r.rcpt == rcpt) {
                entry.releases.push(RcptRelease {
                    rcpt,
                    at,
                    by: clean(by),
                });
            }
        }
        entry
            .releases
            .sort_by(|a, b| (to_micros(a.at), &a.rcpt).cmp(&(to_micros(b.at), &b.rcpt)));
        if entry.released_at.is_none() && entry.held().is_empty() {
            entry.released_at = Some(at);
            entry.released_by = Some(clean(by));
        }
        Ok(true)
    }

    fn digest_listed(&self, rcpt: &str) -> Result<Vec<String>, StateError> {
        Ok(self
            .lock()
            .digest_listed
            .get(&rcpt.to_ascii_lowercase())
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default())
    }

    fn digest_mark_listed(
        &self,
        rcpt: &str,
        entries: &[String],
        _at: SystemTime,
    ) -> Result<(), StateError> {
        let mut inner = self.lock();
        let known: Vec<String> = entries
            .iter()
            .filter(|e| inner.quarantine.contains_key(e.as_str()))
            .cloned()
            .collect();
        if !known.is_empty() {
            inner
                .digest_listed
                .entry(rcpt.to_ascii_lowercase())
                .or_default()
                .extend(known);
        }
        Ok(())
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

    fn queue_claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<QueuedMail>, StateError> {
        let mut inner = self.lock();
        let now = to_micros(now);
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let mut due: Vec<(i64, i64)> = inner
            .queue
            .values()
            .filter(|m| to_micros(m.next_attempt) <= now)
            .filter(|m| inner.leases.get(&m.id).is_none_or(|end| *end <= now))
            .map(|m| (to_micros(m.next_attempt), m.id))
            .collect();
        due.sort_unstable();
        due.truncate(limit);
        let mut claimed = Vec::with_capacity(due.len());
        for (_, id) in due {
            inner.leases.insert(id, until);
            if let Some(mail) = inner.queue.get(&id) {
                claimed.push(mail.clone());
            }
        }
        Ok(claimed)
    }

    fn queue_done(&self, id: i64) -> Result<(), StateError> {
        let mut inner = self.lock();
        inner.queue.remove(&id);
        inner.leases.remove(&id);
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
        let mut inner = self.lock();
        inner.leases.remove(&id);
        if let Some(mail) = inner.queue.get_mut(&id) {
            mail.attempts += 1;
            mail.next_attempt = super::from_micros(to_micros(next_attempt));
            mail.last_error = Some(error.to_string());
        }
        Ok(())
    }
}
