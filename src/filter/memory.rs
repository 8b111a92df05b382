//! What Sieve remembers about a user between deliveries, in the state store: RFC 7352
//! `duplicate` ids and the RFC 5230 vacation response records. sieve-rs asks for both with
//! the same event (`Event::DuplicateId`); the vacation test's ids start with `_v` (sender,
//! then `:handle` or the reason text).
//!
//! Lookups happen while the script runs; the ids are written only after the delivery
//! succeeded ([`Plan::remember`](super::Plan), committed by `delivery::send`), so a
//! delivery that is deferred and retried is not taken for a duplicate of itself (RFC 7352
//! §3: "the id is stored after successful delivery").
//!
//! **`duplicate` is decided once, even for deliveries at the same moment** (the same
//! message to the same user on two connections or two hosts sharing PostgreSQL). A lookup
//! alone would let both see "not seen" and both keep the message. So a plain `duplicate`
//! test (not `:last`, not the vacation test's own check) that finds no record *claims* the
//! id with [`StateStore::remember_once`] on a separate key ([`claim_key`]) for
//! [`CLAIM_LEASE`], and then looks again:
//! - claim won, still no record: "not seen"; this delivery holds the claim
//!   ([`Plan::claims`](super::Plan)). When it succeeds, `delivery::send` writes the record
//!   first and then releases the claim; when it fails (4xx), the claim is released and no
//!   record written, so the MTA's retry is not taken for a duplicate.
//! - claim won, but the record is there now (its holder finished in between): "seen", and
//!   the claim is released at once.
//! - claim lost (another delivery holds it): wait, polling every [`CLAIM_POLL`], until the
//!   record appears ("seen": the holder delivered) or the claim can be taken (the holder
//!   failed and released it), for at most [`CLAIM_WAIT`]. Past that, "not seen" without a
//!   claim: a holder that hangs or crashed may cost a second copy, never the message.
//!
//! A claim is owned by one [`Claim`] value, held in the plan: dropping it releases the
//! claim. So every way a delivery can end releases it once, without a call on each branch:
//! stored or discarded (after `delivery::send` wrote the records), deferred by a failed
//! quarantine write or store, a panic in the recipient's run or in a per-message step, the
//! async stage failing, the LMTP session gone while the delivery runs. Only a crash of the
//! process leaves a claim behind: it ends by itself after [`CLAIM_LEASE`]. A store that
//! fails answers "not seen" (logged), as before: a message is kept once more, never lost.
//!
use std::fmt;
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

/// How long a `duplicate` claim lasts when its delivery neither commits nor releases it (a
/// crash): longer than any delivery's store takes, short enough that a retry after a
/// crash is not held up for long.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// How long a `duplicate` test waits for another delivery's claim to resolve before it
/// answers "not seen" (a second copy rather than a lost or stuck message). Well under the
/// chain's default `[sieve] max_run_time_secs` (10): a shorter limit set there ends the
/// waiting script with the failure keep instead (the message kept, never lost).
pub const CLAIM_WAIT: Duration = Duration::from_secs(5);

/// How often a waiting `duplicate` test looks again.
pub const CLAIM_POLL: Duration = Duration::from_millis(25);

/// The state store as one user's Sieve memory.
#[derive(Clone)]
pub struct Memory {
    /// The store ([`crate::state::SqliteState`] under `[state] dir`: survives restarts).
    pub state: Arc<dyn StateStore>,
    /// Vacation period bounds.
    pub vacation: VacationPeriods,
}

/// One `duplicate` claim this delivery holds ([`claim_key`]), and the duty to release it.
/// Dropping it releases the claim (it expires now), so whichever way the delivery ends the
/// next delivery of the message is not held up (module doc). It is not `Clone`: one owner,
/// one release.
///
/// The release is a state-store write on the dropping thread. That is a blocking thread
/// for every delivery whose store does I/O: the async stage (where a plan can be dropped
/// on the runtime) only exists without a durable store, where the write is in memory.
pub struct Claim {
    /// The claim's key ([`claim_key`]).
    key: String,
    /// Whose claim it is, for the log.
    user: String,
    /// Where the claim is held.
    state: Arc<dyn StateStore>,
}

impl Claim {
    /// The claim's key in the state store ([`claim_key`]).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        release(self.state.as_ref(), &self.key, &self.user);
    }
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Claim").field(&self.key).finish()
    }
}

/// Two claims are the same claim when their keys are (a plan compares by what it holds).
impl PartialEq for Claim {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Claim {}

/// The answer to one `DuplicateId` question.
#[derive(Debug, PartialEq, Eq)]
pub struct Lookup {
    /// Seen before and not expired.
    pub seen: bool,
    /// Key and lifetime to record after a successful delivery, if any: always when not
    /// seen; when seen only with `:last` (RFC 7352 §3.3: the period restarts).
    pub remember: Option<(String, Duration)>,
    /// The claim this delivery took ([`claim_key`]): released when the plan holding it is
    /// dropped, after the record is written or whatever else ended the delivery.
    pub claim: Option<Claim>,
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

/// The key of the claim on `user`'s duplicate id `key` (from [`key`]): its own namespace,
/// so no id can collide with a claim.
pub fn claim_key(key: &str) -> String {
    format!("sieve-dup-claim:{key}")
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
    /// A plain `duplicate` id that is not seen is claimed (see the module doc).
    /// A store that fails answers "not seen" (logged): a message is then kept or answered
    /// once more, never lost.
    /// `held`: the claims this delivery holds already (a second `duplicate` test of the same
    /// id in the same delivery answers like the first, "not seen", without waiting on itself).
    pub fn lookup(
        &self,
        user: &str,
        id: &str,
        expiry: u64,
        last: bool,
        now: SystemTime,
        held: &[Claim],
    ) -> Lookup {
        let vacation = is_vacation_id(id, last);
        let ttl = if vacation {
            self.vacation.clamp(expiry)
        } else {
            Duration::from_secs(expiry.max(1))
        };
        let key = key(user, id);
        let seen = self.seen(&key, user, now);
        if seen || vacation || last {
            // The vacation record is claimed after the delivery (`delivery::send`);
            // `:last` records every time, so there is nothing to race for.
            let remember = (!seen || last).then_some((key, ttl));
            return Lookup {
                seen,
                remember,
                claim: None,
            };
        }
        let wanted = claim_key(&key);
        if held.iter().any(|claim| claim.key == wanted) {
            return Lookup {
                seen: false,
                remember: Some((key, ttl)),
                claim: None,
            };
        }
        let (seen, claim) = self.claim(&key, user, now);
        Lookup {
            seen,
            remember: (!seen).then_some((key, ttl)),
            claim,
        }
    }

    /// The record of `key` is there and not expired (a failing store: not seen).
    fn seen(&self, key: &str, user: &str, now: SystemTime) -> bool {
        match self.state.cache_get(key, now) {
            Ok(found) => found.is_some(),
            Err(error) => {
                tracing::warn!(%error, %user, "duplicate/vacation lookup failed: answered not seen");
                false
            }
        }
    }

    /// Claims `key` (no record seen yet): (seen, the claim held). See the module doc.
    fn claim(&self, key: &str, user: &str, started: SystemTime) -> (bool, Option<Claim>) {
        let claim = claim_key(key);
        let deadline = std::time::Instant::now() + CLAIM_WAIT;
        let mut now = started;
        loop {
            match self.state.remember_once(&claim, now + CLAIM_LEASE, now) {
                Ok(true) => {
                    let claim = Claim {
                        key: claim,
                        user: user.to_string(),
                        state: Arc::clone(&self.state),
                    };
                    // Its holder may have finished between the lookup and the claim: then
                    // the claim is dropped (released) at once.
                    if self.seen(key, user, now) {
                        return (true, None);
                    }
                    return (false, Some(claim));
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, %user, "duplicate claim failed: answered not seen");
                    return (false, None);
                }
            }
            if std::time::Instant::now() >= deadline {
                tracing::warn!(%user, wait_secs = CLAIM_WAIT.as_secs(), "duplicate: another delivery of this message holds its id for too long: answered not seen (a second copy may be kept)");
                return (false, None);
            }
            std::thread::sleep(CLAIM_POLL);
            now = SystemTime::now();
            if self.seen(key, user, now) {
                return (true, None);
            }
        }
    }
}

/// Releases a duplicate claim ([`claim_key`]): it expires now, so the next delivery can take
/// it. Only [`Claim`]'s drop calls it. A release that fails only delays a retry until the
/// claim's lease ends (logged).
fn release(state: &dyn StateStore, claim: &str, user: &str) {
    if let Err(error) = state.cache_put(claim, "1", SystemTime::now()) {
        tracing::warn!(%error, %user, "cannot release a duplicate claim; it ends with its lease");
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
        let first = memory.lookup("alice@x.test", "<1@a>", 100, false, at(0), &[]);
        assert!(!first.seen);
        assert_eq!(
            first.remember,
            Some((key("alice@x.test", "<1@a>"), Duration::from_secs(100)))
        );
        commit(&first, at(0));
        // Within the period: seen, nothing to record.
        let again = memory.lookup("Alice@x.test", "<1@a>", 100, false, at(50), &[]);
        assert_eq!(
            again,
            Lookup {
                seen: true,
                remember: None,
                claim: None,
            }
        );
        // Another user: not seen.
        assert!(
            !memory
                .lookup("bob@x.test", "<1@a>", 100, false, at(50), &[])
                .seen
        );
        // :last refreshes the period.
        let last = memory.lookup("alice@x.test", "<1@a>", 100, true, at(90), &[]);
        assert!(last.seen && last.remember.is_some());
        commit(&last, at(90));
        assert!(
            memory
                .lookup("alice@x.test", "<1@a>", 100, false, at(150), &[])
                .seen
        );
        // Expired: not seen.
        assert!(
            !memory
                .lookup("alice@x.test", "<1@a>", 100, false, at(191), &[])
                .seen
        );
        // A vacation record asking for 10 s is kept for the minimum of one day.
        let vacation = memory.lookup("alice@x.test", "_vbob@y.testaway", 10, false, at(0), &[]);
        assert_eq!(
            vacation.remember.map(|r| r.1),
            Some(Duration::from_secs(86_400))
        );
    }

    /// Two deliveries of one message at once: the second waits for the first's claim and
    /// answers "seen" once the first wrote its record, or takes the claim ("not seen") when
    /// the first failed and released it. A second test of the id in the same delivery
    /// answers "not seen" at once.
    #[test]
    fn a_claim_decides_concurrent_deliveries_once() {
        let state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
        let memory = Memory {
            state: Arc::clone(&state),
            vacation: VacationPeriods::default(),
        };
        let user = "alice@x.test";
        for first_delivers in [true, false] {
            let id = format!("<{first_delivers}@a>");
            let now = SystemTime::now();
            let first = memory.lookup(user, &id, 3600, false, now, &[]);
            assert!(!first.seen);
            let claim = first.claim.expect("the first delivery claims");
            let again = memory.lookup(user, &id, 3600, false, now, std::slice::from_ref(&claim));
            assert!(
                !again.seen && again.claim.is_none(),
                "the holder is not kept waiting"
            );
            let second = {
                let memory = memory.clone();
                let id = id.clone();
                std::thread::spawn(move || {
                    let started = std::time::Instant::now();
                    let lookup = memory.lookup(user, &id, 3600, false, SystemTime::now(), &[]);
                    (lookup, started.elapsed())
                })
            };
            std::thread::sleep(Duration::from_millis(200));
            if first_delivers {
                let (key, ttl) = first.remember.clone().expect("remember");
                state
                    .cache_put(&key, "1", SystemTime::now() + ttl)
                    .expect("record");
            }
            drop(claim);
            let (second, waited) = second.join().expect("second");
            assert!(
                waited >= Duration::from_millis(150),
                "it waited: {waited:?}"
            );
            assert!(waited < CLAIM_WAIT, "{waited:?}");
            assert_eq!(second.seen, first_delivers, "{second:?}");
            assert_eq!(second.claim.is_some(), !first_delivers, "{second:?}");
        }
    }
}
