//! The per-user concurrency limit, like Dovecot's `lmtp_user_concurrency_limit`: across all
//! sessions, at most `[mailbox] user_concurrency_limit` deliveries per user are in flight;
//! the next RCPT for that user gets 451 4.3.0 and the MTA retries it later.
//!
//! Dovecot 2.3 checks the count at RCPT and counts a delivery while it runs. Here a slot is
//! taken at RCPT and held until the transaction ends (after DATA's replies, at RSET, or
//! when the connection goes), so the check and the count cannot race: what RCPT admitted
//! is guaranteed to run. The difference is the time between RCPT and the end of DATA,
//! which with Postfix's pipelining is short.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The shared counts; one per server ([`crate::delivery::Services`]).
#[derive(Debug, Clone)]
pub struct UserLimit {
    /// 0: unlimited (nothing is counted).
    limit: usize,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// One delivery in flight for one user; dropping it frees the slot.
#[derive(Debug)]
pub struct UserSlot {
    user: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl UserLimit {
    /// At most `limit` slots per user; 0: unlimited.
    pub fn new(limit: usize) -> Self {
        UserLimit {
            limit,
            counts: Arc::default(),
        }
    }

    /// A slot for `user`, or `None` when `limit` deliveries for that user are in flight.
    /// Without a limit the slot counts nothing.
    pub fn try_acquire(&self, user: &str) -> Option<Option<UserSlot>> {
        if self.limit == 0 {
            return Some(None);
        }
        let mut counts = lock(&self.counts);
        let count = counts.entry(user.to_string()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Some(UserSlot {
            user: user.to_string(),
            counts: Arc::clone(&self.counts),
        }))
    }

    /// Deliveries in flight for `user` (for tests and logs).
    pub fn in_flight(&self, user: &str) -> usize {
        lock(&self.counts).get(user).copied().unwrap_or(0)
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            // Users without deliveries leave the map, so it stays as small as the traffic.
            if *count == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

/// The map holds plain counters: a panic while it was locked cannot leave it half-updated.
fn lock(counts: &Mutex<HashMap<String, usize>>) -> MutexGuard<'_, HashMap<String, usize>> {
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_user_and_freed_on_drop() {
        let limit = UserLimit::new(2);
        let a1 = limit.try_acquire("a@x").expect("first");
        let a2 = limit.try_acquire("a@x").expect("second");
        assert!(
            limit.try_acquire("a@x").is_none(),
            "third is over the limit"
        );
        let b = limit
            .try_acquire("b@x")
            .expect("another user is not affected");
        assert_eq!(limit.in_flight("a@x"), 2);
        drop(a1);
        assert_eq!(limit.in_flight("a@x"), 1);
        let a3 = limit.try_acquire("a@x").expect("a freed slot is reusable");
        drop((a2, a3, b));
        assert_eq!(limit.in_flight("a@x"), 0);
        assert!(lock(&limit.counts).is_empty(), "no leftovers");
    }

    #[test]
    fn zero_is_unlimited() {
        let limit = UserLimit::new(0);
        let slots: Vec<_> = (0..1000).map(|_| limit.try_acquire("a@x")).collect();
        assert!(slots.iter().all(|s| matches!(s, Some(None))));
        assert_eq!(limit.in_flight("a@x"), 0);
    }
}
