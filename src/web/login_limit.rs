//! Failed logins, counted per client address and per name, so neither one address guessing
//! many names nor many addresses guessing one name get more than a few tries. Kept in this
//! process's memory: each host counts its own (a cluster of `n` hosts allows at most `n`
//! times as many), and a restart forgets, which is acceptable for a limit whose purpose is to
//! make guessing slow, not to lock anyone out for good.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per key within [`WINDOW`] before further logins are refused.
pub const MAX_FAILURES: u32 = 5;

/// The window failures are counted in; a locked key opens again when it ends.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Keys kept at most: past this, expired ones are dropped and then the oldest, so a flood of
/// addresses cannot grow the table without bound.
const MAX_KEYS: usize = 100_000;

/// The failed-login counter of one site.
#[derive(Debug, Default)]
pub struct LoginLimit {
    keys: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Whether a login may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead and check the password.
    Allowed,
    /// Too many failures: refused without checking, for about this long.
    Limited(Duration),
}

impl LoginLimit {
    /// Whether a login from `ip` as `name` may be tried at `now` (nothing is counted).
    pub fn check(&self, ip: &str, name: &str, now: Instant) -> Attempt {
        let keys = self.lock();
        let mut wait = Duration::ZERO;
        for key in [ip_key(ip), name_key(name)] {
            if let Some(&(failures, since)) = keys.get(&key) {
                let elapsed = now.saturating_duration_since(since);
                if failures >= MAX_FAILURES && elapsed < WINDOW {
                    wait = wait.max(WINDOW - elapsed);
                }
            }
        }
        if wait.is_zero() {
            Attempt::Allowed
        } else {
            Attempt::Limited(wait)
        }
    }

    /// Counts a failed login from `ip` as `name`.
    pub fn failed(&self, ip: &str, name: &str, now: Instant) {
        let mut keys = self.lock();
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, (_, since)| now.saturating_duration_since(*since) < WINDOW);
            while keys.len() >= MAX_KEYS {
                let oldest = keys
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => keys.remove(&k),
                    None => break,
                };
            }
        }
        for key in [ip_key(ip), name_key(name)] {
            let slot = keys.entry(key).or_insert((0, now));
            if now.saturating_duration_since(slot.1) >= WINDOW {
                *slot = (0, now);
            }
            slot.0 = slot.0.saturating_add(1);
        }
    }

    /// A successful login as `name` forgets that name's failures (not the address's).
    pub fn succeeded(&self, name: &str) {
        self.lock().remove(&name_key(name));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        // A panic while holding the lock leaves counters only: still usable.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

fn name_key(name: &str) -> String {
    format!("name:{}", name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_address_and_the_name_for_the_window() {
        let l = LoginLimit::default();
        let t = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(l.check("192.0.2.1", "root", t), Attempt::Allowed);
            l.failed("192.0.2.1", "root", t);
        }
        assert!(matches!(
            l.check("192.0.2.1", "alice", t),
            Attempt::Limited(_)
        ));
        assert!(matches!(
            l.check("192.0.2.9", "ROOT", t),
            Attempt::Limited(_)
        ));
        assert_eq!(l.check("192.0.2.9", "alice", t), Attempt::Allowed);
        assert_eq!(l.check("192.0.2.1", "root", t + WINDOW), Attempt::Allowed);
    }

    #[test]
    fn success_forgets_the_name() {
        let l = LoginLimit::default();
        let t = Instant::now();
        for i in 0..MAX_FAILURES {
            l.failed(&format!("192.0.2.{i}"), "alice", t);
        }
        assert!(matches!(
            l.check("192.0.2.200", "alice", t),
            Attempt::Limited(_)
        ));
        l.succeeded("alice");
        assert_eq!(l.check("192.0.2.200", "alice", t), Attempt::Allowed);
    }
}
