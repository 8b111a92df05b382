//! What Sieve remembers about a user between deliveries, in the state store: RFC 7352
//! `duplicate` ids and the RFC 5230 vacation response records. sieve-rs asks for both with
//! the same event (`Event::DuplicateId`); the vacation test's ids start with `_v` (sender,
//! then `:handle` or the reason text).
//!
//! Lookups happen while the script runs; the ids are written only after the delivery
//! succeeded ([`Plan::remember`](super::Plan), committed by `delivery::send`), so a
//! delivery that is deferred and retried is not taken for a duplicate of itself (RFC 7352
//! §3: the id is recorded when the script completes).
//!
//! The lookup is only a hint for the vacation reply: two deliveries at the same moment (two
//! hosts sharing a PostgreSQL store) both see "not seen". What decides is the claim
//! `delivery::send` makes with [`StateStore::remember_once`] after the delivery succeeded
//! and before the reply is queued: one atomic insert-if-absent, so exactly one delivery
//! per sender and period queues a reply ([`is_vacation_key`] finds the record to claim).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::state::StateStore;

/// Bounds and default of a vacation response period, in days (Pigeonhole's
/// `sieve_vacation_min_period` 1d, `sieve_vacation_default_period` 7d,
/// `sieve_vacation_max_period` 60d).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VacationPeriods {
    /// Shortest period; `:days`/`:seconds` below it are raised to it.
    pub min_days: u64,
    /// Without `:days`/`:seconds`.
    pub default_days: u64,
    /// Longest period; above it is lowered to it.
    pub max_days: u64,
}

impl Default for VacationPeriods {
    fn default() -> Self {
        VacationPeriods {
            min_days: 1,
            default_days: 7,
            max_days: 60,
        }
    }
}

impl VacationPeriods {
    /// The period a script asked for (in seconds), bounded like Pigeonhole: `:seconds 0`
    /// (RFC 6131 "always reply") becomes the minimum too, so a script cannot answer every
    /// message of a mail loop that slipped past the RFC 3834 rules.
    pub fn clamp(&self, seconds: u64) -> Duration {
        let min = self.min_days.saturating_mul(86_400);
        let max = self.max_days.saturating_mul(86_400).max(min);
        Duration::from_secs(seconds.clamp(min, max))
    }
}

/// The state store as one user's Sieve memory.
#[derive(Clone)]
pub struct Memory {
    /// The store ([`crate::state::SqliteState`] under `[state] dir`: survives restarts).
    pub state: Arc<dyn StateStore>,
    /// Vacation period bounds.
    pub vacation: VacationPeriods,
}

/// The answer to one `DuplicateId` question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Seen before and not expired.
    pub seen: bool,
    /// Key and lifetime to record after a successful delivery, if any: always when not
    /// seen; when seen only with `:last` (RFC 7352 §3.3: the period restarts).
    pub remember: Option<(String, Duration)>,
}

/// True for the ids sieve-rs's vacation test asks about.
pub fn is_vacation_id(id: &str, last: bool) -> bool {
    !last && id.starts_with("_v")
}

/// The state-store key of `id` for `user`: namespaced so that users (and other users of
/// the cache, such as RDAP answers) never share an entry.
pub fn key(user: &str, id: &str) -> String {
    format!("sieve-dup:{}:{id}", user.to_ascii_lowercase())
}

/// True when `key` (from [`key`]) is `user`'s record of a vacation response: the id after
/// the user's prefix is a vacation id. The user is known, so an address holding `:` does
/// not confuse the split.
pub fn is_vacation_key(user: &str, key: &str) -> bool {
    key.strip_prefix(&format!("sieve-dup:{}:", user.to_ascii_lowercase()))
        .is_some_and(|id| is_vacation_id(id, false))
}

impl Memory {
    /// Looks `id` up for `user`; `expiry` is what the script asked for, in seconds.
    /// A store that fails answers "not seen" (logged): a message is then kept or answered
    /// once more, never lost.
    pub fn lookup(&self, user: &str, id: &str, expiry: u64, last: bool, now: SystemTime) -> Lookup {
        let ttl = if is_vacation_id(id, last) {
            self.vacation.clamp(expiry)
        } else {
            Duration::from_secs(expiry.max(1))
        };
        let key = key(user, id);
        let seen = match self.state.cache_get(&key, now) {
            Ok(found) => found.is_some(),
            Err(error) => {
                tracing::warn!(%error, %user, "duplicate/vacation lookup failed: answered not seen");
                false
            }
        };
        let remember = (!seen || last).then_some((key, ttl));
        Lookup { seen, remember }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    #[test]
    fn vacation_keys_are_told_apart_per_user() {
        let user = "Alice@x.test";
        assert!(is_vacation_key(user, &key(user, "_vbob@y.testaway")));
        assert!(!is_vacation_key(user, &key(user, "<1@a>")));
        assert!(!is_vacation_key("bob@x.test", &key(user, "_vbob@y.test")));
        // An address with a colon: the split follows the known user.
        let odd = "\"a:_v\"@x.test";
        assert!(!is_vacation_key(odd, &key(odd, "<1@a>")));
        assert!(is_vacation_key(odd, &key(odd, "_vz")));
    }

    #[test]
    fn vacation_period_bounds() {
        let periods = VacationPeriods::default();
        let day = 86_400;
        for (asked, want) in [
            (0, day),
            (60, day),
            (day, day),
            (7 * day, 7 * day),
            (60 * day, 60 * day),
            (365 * day, 60 * day),
            (u64::MAX, 60 * day),
        ] {
            assert_eq!(periods.clamp(asked), Duration::from_secs(want), "{asked}");
        }
    }

    /// Seen / not seen, `:last`, expiry, users kept apart, vacation ids bounded.
    #[test]
    fn duplicate_expiry_table() {
        let state = Arc::new(MemoryState::default());
        let memory = Memory {
            state: state.clone(),
            vacation: VacationPeriods::default(),
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let commit = |lookup: &Lookup, now: SystemTime| {
            if let Some((key, ttl)) = &lookup.remember {
                state.cache_put(key, "1", now + *ttl).expect("put");
            }
        };
        // First time: not seen, remembered for the asked period.
        let first = memory.lookup("alice@x.test", "<1@a>", 100, false, at(0));
        assert!(!first.seen);
        assert_eq!(
            first.remember,
            Some((key("alice@x.test", "<1@a>"), Duration::from_secs(100)))
        );
        commit(&first, at(0));
        // Within the period: seen, nothing to record.
        let again = memory.lookup("Alice@x.test", "<1@a>", 100, false, at(50));
        assert_eq!(
            again,
            Lookup {
                seen: true,
                remember: None
            }
        );
        // Another user: not seen.
        assert!(
            !memory
                .lookup("bob@x.test", "<1@a>", 100, false, at(50))
                .seen
        );
        // :last refreshes the period.
        let last = memory.lookup("alice@x.test", "<1@a>", 100, true, at(90));
        assert!(last.seen && last.remember.is_some());
        commit(&last, at(90));
        assert!(
            memory
                .lookup("alice@x.test", "<1@a>", 100, false, at(150))
                .seen
        );
        // Expired: not seen.
        assert!(
            !memory
                .lookup("alice@x.test", "<1@a>", 100, false, at(191))
                .seen
        );
        // A vacation record asking for 10 s is kept for the minimum of one day.
        let vacation = memory.lookup("alice@x.test", "_vbob@y.testaway", 10, false, at(0));
        assert_eq!(
            vacation.remember.map(|r| r.1),
            Some(Duration::from_secs(86_400))
        );
    }
}
